"""Loopback sockets and the uvicorn servers that serve ASGI apps on them."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import WSProtocolType

from local_runtime.config import HOST


class PortInUseError(RuntimeError):
    """A fixed port the local runtime needs is taken by another process."""


def bind(port: int, env_key: str = "") -> socket.socket:
    """A listening TCP socket on 127.0.0.1 (``port`` 0: any free port).

    Raises:
        PortInUseError: naming the environment variable that moves the port.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as e:
        sock.close()
        hint = f"; set {env_key} to use another port" if env_key else ""
        raise PortInUseError(f"{HOST}:{port} is in use{hint}") from e
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def port_of(sock: socket.socket) -> int:
    """The port a bound socket listens on."""
    return int(sock.getsockname()[1])


def check_free(port: int, env_key: str) -> None:
    """Fail early, with the variable to set, when a fixed port is taken."""
    if port:
        bind(port, env_key).close()


def free_port() -> int:
    """A port that was free a moment ago (for servers that only take a port number)."""
    sock = bind(0)
    try:
        return port_of(sock)
    finally:
        sock.close()


class AsgiServer:
    """One uvicorn server on an already bound socket, inside the running event loop."""

    def __init__(
        self,
        app: ASGIApp,
        sock: socket.socket,
        name: str,
        *,
        ws: type[asyncio.Protocol] | WSProtocolType = "none",
        ws_max_size: int = 16 * 1024 * 1024,
    ) -> None:
        """Args: ``ws`` is uvicorn's WebSocket protocol ("none": HTTP only), ``ws_max_size``
        the longest message it accepts."""
        config = uvicorn.Config(
            app,
            lifespan="off",
            access_log=False,
            log_level="warning",
            server_header=False,  # API Gateway sends no Server header
            http="httptools",
            ws=ws,
            ws_max_size=ws_max_size,
            ws_ping_interval=None,  # API Gateway sends no pings; it answers the client's
            timeout_graceful_shutdown=2,
            timeout_keep_alive=60,
        )
        self._server = uvicorn.Server(config)
        self._sock = sock
        self._task: asyncio.Task[None] | None = None
        self.name = name

    async def start(self) -> None:
        """Serve until :meth:`stop`; returns once the socket accepts connections."""
        self._task = asyncio.create_task(self._server.serve([self._sock]), name=self.name)
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises the startup error
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        """Close connections and stop serving."""
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._sock.close()

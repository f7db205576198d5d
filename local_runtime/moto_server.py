"""moto's WSGI app served by uvicorn, with keep-alive connections.

moto's ``ThreadedMotoServer`` is werkzeug's development server, which closes
the connection after every response ("they aren't handled well by Python's
http.server") and starts a thread for every connection. Every AWS call of every
handler therefore paid a TCP connect and a thread start on both sides: 0.7 ms
of a 2.4 ms ``GetItem`` here. This serves the very same app
(``DomainDispatcherApplication``) through uvicorn -- httptools parsing,
keep-alive, a pool of threads for the app -- on its own event loop thread.

Two things werkzeug's server put in the environ are put there here too:
``RAW_URI``/``REQUEST_URI`` (moto reads the path as it arrived, before percent
decoding, e.g. for S3 keys), and the pool is large, because moto calls itself
(Step Functions' interpreter, the Lambda seam's invocations whose handlers call
back) from inside a request.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import warnings
from typing import Any

APP_THREADS = 64  # requests in moto at once (some wait for requests they made to moto)
_patched = False


def _keep_raw_uri() -> None:
    """uvicorn's WSGI environ, plus the raw request URI werkzeug's server provides."""
    global _patched
    if _patched:
        return
    from uvicorn.middleware import wsgi

    build = wsgi.build_environ

    def build_environ(scope: Any, message: Any, body: Any) -> Any:
        environ = build(scope, message, body)
        raw = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = scope.get("query_string") or b""
        environ["RAW_URI"] = environ["REQUEST_URI"] = (
            f"{raw}?{query.decode('latin-1')}" if query else raw
        )
        return environ

    wsgi.build_environ = build_environ
    _patched = True


class KeepAliveMotoServer:
    """``ThreadedMotoServer``'s interface (start, get_host_and_port, stop) on uvicorn."""

    def __init__(self, ip_address: str = "127.0.0.1", port: int = 0) -> None:
        self._ip_address = ip_address
        self._port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def start(self) -> None:
        import uvicorn
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from uvicorn.middleware import wsgi

        _keep_raw_uri()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._ip_address, self._port))
        sock.listen(1024)
        self._sock = sock
        # uvicorn's own WSGI bridge (deprecated for a2wsgi, still there in the pinned
        # 0.54): the one whose environ _keep_raw_uri completes
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            moto_app: Any = DomainDispatcherApplication(create_backend_app)
            app = wsgi._WSGIMiddleware(moto_app, APP_THREADS)
        config = uvicorn.Config(
            app,
            interface="asgi3",
            http="httptools",
            lifespan="off",
            access_log=False,
            log_level="warning",
            timeout_keep_alive=75,  # longer than botocore keeps an idle connection
        )
        self._server = uvicorn.Server(config)
        started = threading.Event()

        def serve() -> None:
            loop: asyncio.AbstractEventLoop
            try:
                import uvloop  # uvicorn[standard] brings it

                loop = uvloop.new_event_loop()
            except ImportError:
                loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            task = loop.create_task(self._server.serve(sockets=[sock]))

            async def until_started() -> None:
                while not self._server.started and not task.done():
                    await asyncio.sleep(0.005)
                started.set()

            loop.run_until_complete(until_started())
            loop.run_until_complete(task)
            loop.close()

        self._thread = threading.Thread(target=serve, name="moto-server", daemon=True)
        self._thread.start()
        if not started.wait(30) or not self._server.started:
            raise RuntimeError("moto's server did not start")

    def get_host_and_port(self) -> tuple[str, int]:
        assert self._sock is not None, "start() first"
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(10)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = None

"""The local web client: the chat page at ``/`` and its files under ``/web/``.

The HTTP API gateway hands it the requests no declared route takes for ``GET /``
and ``GET /web/...`` (``WebClient.serves``), so the page shares the API's
origin and calls it without CORS. These paths are not API routes: they are in
no declaration and no OpenAPI document, and nothing like them is deployed (in
AWS the client would be hosted on S3 and CloudFront).

``/web/config.json`` tells the page where the platform listens::

    {"api": "http://127.0.0.1:3000", "websocket": "ws://127.0.0.1:3001"}

The API is the origin the page was loaded from. The WebSocket URL is, in order:
the one set on ``WebClient.websocket_url`` by whoever started the platform,
the ``websocket`` of ``.local/endpoints.json`` when that file describes this
very HTTP API (``make dev`` writes it), or the ``LWM_WS_PORT`` default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from local_runtime import config

WEB_DIR: Final = config.REPO_ROOT / "web"
PREFIX: Final = "/web/"
CONFIG_PATH: Final = "/web/config.json"
# The page inserts user text as text only; the policy makes any slip inert as well.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class WebClient:
    """The ASGI app serving ``web/`` and its ``config.json``.

    Args:
        directory: the folder with ``index.html``, ``app.js`` and ``app.css``.
        websocket_url: the ws:// URL the page connects to; None: found as the module says.
        endpoints_file: the ``endpoints.json`` of a running ``make dev``.
    """

    def __init__(
        self,
        directory: Path = WEB_DIR,
        *,
        websocket_url: str | None = None,
        endpoints_file: Path = config.ENDPOINTS_FILE,
    ) -> None:
        self.directory = directory
        self.websocket_url = websocket_url
        self._endpoints_file = endpoints_file
        self._app = Starlette(
            routes=[
                Route("/", self._index, methods=["GET", "HEAD"]),
                Route(CONFIG_PATH, self._config, methods=["GET", "HEAD"]),
                Mount(PREFIX.rstrip("/"), app=StaticFiles(directory=directory, check_dir=False)),
            ]
        )

    @staticmethod
    def serves(method: str, path: str) -> bool:
        """Whether a request that no API route takes is the web client's."""
        return method in ("GET", "HEAD") and (path == "/" or path.startswith(PREFIX))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.serve(scope, receive, send)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Answer the request; returns the status sent (for the gateway's access log)."""
        status = 0

        async def send_uncached(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # A development server: every load sees the files as they are now.
                message["headers"] = [*message.get("headers", []), (b"cache-control", b"no-cache")]
            await send(message)

        await self._app(scope, receive, send_uncached)
        return status

    def config_for(self, api: str) -> dict[str, str]:
        """What ``/web/config.json`` answers to a page loaded from the HTTP API at ``api``."""
        return {"api": api, "websocket": self._websocket_for(urlsplit(api).port)}

    def _websocket_for(self, http_port: int | None) -> str:
        if self.websocket_url:
            return self.websocket_url
        try:
            running = json.loads(self._endpoints_file.read_text())
        except (OSError, ValueError):
            running = None
        describes_this_api = (
            isinstance(running, dict)
            and bool(running.get("websocket"))
            and urlsplit(str(running.get("http_api"))).port == http_port
        )
        if describes_this_api:
            return str(running["websocket"])
        return config.url(config.Ports.from_env().websocket, "ws")

    async def _index(self, request: Request) -> Response:
        return FileResponse(
            self.directory / "index.html",
            headers={"content-security-policy": CONTENT_SECURITY_POLICY},
        )

    async def _config(self, request: Request) -> Response:
        # The page's own origin (127.0.0.1 or localhost, as typed): its calls stay same-origin.
        return JSONResponse(self.config_for(str(request.base_url).rstrip("/")))

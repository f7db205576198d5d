"""The web client's server (``local_runtime.webclient``): which paths, which files, which config."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from local_runtime import config
from local_runtime.webclient import WebClient


@pytest.fixture
def site(tmp_path: Path) -> Path:
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<!doctype html><title>chat</title>")
    (web / "app.js").write_text("export {};")
    (tmp_path / "secret.txt").write_text("outside the folder")
    return web


def _client(web: WebClient) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=web), base_url="http://127.0.0.1:3123"
    )


@pytest.mark.parametrize(
    ("method", "path", "served"),
    [
        ("GET", "/", True),
        ("HEAD", "/", True),
        ("GET", "/web/app.js", True),
        ("GET", "/web/config.json", True),
        ("POST", "/", False),
        ("GET", "/web", False),
        ("GET", "/webhooks/stripe", False),
        ("GET", "/index.html", False),
    ],
)
def test_only_the_page_and_its_folder_are_the_web_clients(
    method: str, path: str, served: bool
) -> None:
    assert WebClient.serves(method, path) is served


async def test_the_page_and_its_files_are_served_uncached(site: Path, tmp_path: Path) -> None:
    async with _client(WebClient(site, endpoints_file=tmp_path / "none.json")) as client:
        page = await client.get("/")
        script = await client.get("/web/app.js")
        missing = await client.get("/web/missing.js")
        outside = await client.get("/web/%2E%2E/secret.txt")
    assert page.status_code == 200 and "<title>chat</title>" in page.text
    assert page.headers["cache-control"] == "no-cache"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert script.headers["content-type"].startswith("text/javascript")
    assert missing.status_code == 404
    assert outside.status_code == 404  # nothing outside the folder


async def test_the_websocket_url_set_by_the_platform_wins(site: Path, tmp_path: Path) -> None:
    web = WebClient(site, websocket_url="ws://127.0.0.1:4999", endpoints_file=tmp_path / "x")
    async with _client(web) as client:
        answer = await client.get("/web/config.json")
    assert answer.json() == {
        "api": "http://127.0.0.1:3123",
        "websocket": "ws://127.0.0.1:4999",
    }


def test_a_running_make_dev_is_found_only_for_its_own_http_api(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a make dev whose endpoints.json describes another HTTP API port
    endpoints = tmp_path / "endpoints.json"
    endpoints.write_text(
        json.dumps({"http_api": "http://127.0.0.1:3123", "websocket": "ws://127.0.0.1:4001"})
    )
    monkeypatch.setenv(config.ENV_WS_PORT, "4555")
    web = WebClient(site, endpoints_file=endpoints)
    # Then a page from that API connects where it says, and any other API falls back to the env
    assert web.config_for("http://127.0.0.1:3123")["websocket"] == "ws://127.0.0.1:4001"
    assert web.config_for("http://localhost:3123")["websocket"] == "ws://127.0.0.1:4001"
    assert web.config_for("http://127.0.0.1:3999")["websocket"] == "ws://127.0.0.1:4555"
    endpoints.write_text("{not json")
    assert web.config_for("http://127.0.0.1:3123")["websocket"] == "ws://127.0.0.1:4555"

"""The signed poster sends what boto3's PostToConnection sends, over keep-alive connections."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import boto3
import pytest
from botocore.credentials import Credentials

from lwm_core.push import GoneError, SignedPoster


class Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []
    peers: ClassVar[set[int]] = set()  # client ports: one per TCP connection
    status = 200
    close_after = False  # close each keep-alive connection after its answer

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        Recorder.seen.append((self.path, dict(self.headers.items()), self.rfile.read(length)))
        Recorder.peers.add(self.client_address[1])
        self.send_response(Recorder.status)
        self.send_header("content-length", "0")
        self.end_headers()
        if Recorder.close_after:
            self.close_connection = True

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture(params=["HTTP/1.0", "HTTP/1.1"])
def endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    Recorder.seen, Recorder.status, Recorder.close_after = [], 200, False
    Recorder.peers = set()
    Recorder.protocol_version = request.param  # 1.1: keep-alive
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/prod"
    server.shutdown()


def test_the_request_is_the_one_boto3_sends(endpoint: str) -> None:
    creds = Credentials("AKIDEXAMPLE", "secret", "token")
    boto = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint,
        region_name="eu-west-1",
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        aws_session_token=creds.token,
    )
    boto.post_to_connection(ConnectionId="abc=", Data=b'{"type":"x"}')
    SignedPoster(endpoint, "eu-west-1", creds).post("abc=", b'{"type":"x"}')
    (path_a, headers_a, body_a), (path_b, headers_b, body_b) = Recorder.seen
    assert path_a == path_b == "/prod/@connections/abc%3D"
    assert body_a == body_b == b'{"type":"x"}'
    for h in (headers_a, headers_b):
        auth = h["Authorization"]
        assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
        assert "/eu-west-1/execute-api/aws4_request" in auth
        assert h["X-Amz-Security-Token"] == "token"


def test_gone_and_other_errors_are_told_apart(endpoint: str) -> None:
    poster = SignedPoster(endpoint, "eu-west-1", Credentials("a", "b"))
    Recorder.status = 410
    with pytest.raises(GoneError):
        poster.post("abc", b"{}")
    Recorder.status = 403
    with pytest.raises(OSError):
        poster.post("abc", b"{}")
    Recorder.status = 503  # retried twice, then given up
    Recorder.seen.clear()
    with pytest.raises(OSError):
        poster.post("abc", b"{}")
    assert len(Recorder.seen) == 3


def test_a_fan_out_posts_concurrently_on_kept_alive_connections(endpoint: str) -> None:
    if Recorder.protocol_version != "HTTP/1.1":
        pytest.skip("keep-alive needs HTTP/1.1")
    poster = SignedPoster(endpoint, "eu-west-1", Credentials("a", "b"), parallel=4)
    ids = [f"c{i}=" for i in range(40)]
    assert poster.post_many(ids, b"{}") == [None] * 40
    assert poster.post_many(ids, b"{}") == [None] * 40
    assert sorted(path for path, _, _ in Recorder.seen) == sorted(
        [f"/prod/@connections/c{i}%3D" for i in range(40)] * 2
    )
    assert len(Recorder.peers) == 4  # the same four connections served both fan-outs


def test_a_connection_the_server_closed_is_replaced_and_the_post_sent_again(
    endpoint: str,
) -> None:
    if Recorder.protocol_version != "HTTP/1.1":
        pytest.skip("keep-alive needs HTTP/1.1")
    poster = SignedPoster(endpoint, "eu-west-1", Credentials("a", "b"), parallel=1)
    poster.post("one", b"1")
    Recorder.close_after = True  # the server drops the kept-alive connection after this one
    poster.post("two", b"2")
    Recorder.close_after = False
    poster.post("three", b"3")  # on a connection the server closed: sent again on a new one
    assert [body for _, _, body in Recorder.seen] == [b"1", b"2", b"3"]


def test_a_post_from_async_code_does_not_touch_the_running_loop(endpoint: str) -> None:
    import asyncio

    poster = SignedPoster(endpoint, "eu-west-1", Credentials("a", "b"))

    async def caller() -> list[Exception | None]:
        return poster.post_many(["x"], b"{}")

    assert asyncio.run(caller()) == [None]


def test_a_refused_connection_is_a_failure_not_an_exception() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    poster = SignedPoster(f"http://127.0.0.1:{port}", "eu-west-1", Credentials("a", "b"))
    (failure,) = poster.post_many(["x"], b"{}")
    assert isinstance(failure, OSError) and not isinstance(failure, GoneError)


@pytest.mark.parametrize(
    "endpoint_url",
    [
        "https://abc123.execute-api.eu-west-1.amazonaws.com/prod",
        "http://127.0.0.1:3001",
        "http://localhost:80/dev",
    ],
)
@pytest.mark.parametrize("token", [None, "FQoGZXIvYXdzE token/with+odd=chars"])
def test_the_signature_is_botocores_byte_for_byte(
    endpoint_url: str, token: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime
    from urllib.parse import quote, urlsplit

    import botocore.auth
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    from lwm_core.push import ConnectionSigner

    now = datetime(2026, 12, 2, 23, 59, 59, tzinfo=UTC)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: now.replace(tzinfo=None))
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    parts = urlsplit(endpoint_url)
    host = parts.hostname if parts.port in (None, 80, 443) else parts.netloc
    signer = ConnectionSigner(creds, "eu-west-1", str(host))
    for connection_id in ("TLfxoeYtoAMCJwg=", "a+b/c d"):
        path = f"{parts.path.rstrip('/')}/@connections/{quote(connection_id, safe='')}"
        body = b'{"type":"message.new","text":"h\xc3\xa9"}'
        request = AWSRequest(method="POST", url=f"{parts.scheme}://{parts.netloc}{path}", data=body)
        SigV4Auth(creds, "execute-api", "eu-west-1").add_auth(request)
        ours = dict(signer.headers(path, body, now))
        assert ours["Authorization"] == request.headers["Authorization"]
        assert ours["X-Amz-Date"] == request.headers["X-Amz-Date"]
        assert ours.get("X-Amz-Security-Token") == request.headers.get("X-Amz-Security-Token")
        assert ours["Host"] == host

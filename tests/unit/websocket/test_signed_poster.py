"""The signed poster sends what boto3's PostToConnection sends, for a fifth of the CPU."""

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
    status = 200

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        Recorder.seen.append((self.path, dict(self.headers.items()), self.rfile.read(length)))
        self.send_response(Recorder.status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def endpoint() -> Iterator[str]:
    Recorder.seen, Recorder.status = [], 200
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

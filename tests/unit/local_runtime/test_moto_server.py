"""moto served by uvicorn: keep-alive connections, and the raw request path moto relies on."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from local_runtime.moto_server import KeepAliveMotoServer

KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = KeepAliveMotoServer("127.0.0.1", 0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _client(endpoint: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="eu-west-1", **KEYS)


def test_calls_reuse_one_connection(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sqs = _client(endpoint, "sqs")
    url = sqs.create_queue(QueueName="keepalive")["QueueUrl"]
    connects: list[object] = []
    original = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        connects.append(address)
        original(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    for i in range(10):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    assert len(connects) <= 1  # werkzeug's server made it ten


def test_s3_keys_arrive_as_sent(endpoint: str) -> None:
    s3 = _client(endpoint, "s3")
    s3.create_bucket(
        Bucket="raw-paths", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    key = "attachments/c1/a b%2Fc+d/naïve file.png"  # spaces, an encoded slash, a plus, UTF-8
    s3.put_object(Bucket="raw-paths", Key=key, Body=b"x")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="raw-paths")["Contents"]] == [key]
    assert s3.get_object(Bucket="raw-paths", Key=key)["Body"].read() == b"x"

"""moto's server with the dispatch shortcuts: DynamoDB answers the same, without Flask."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from local_runtime import moto_dispatch, moto_dynamodb

KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[ThreadedMotoServer, str]]:
    moto_dispatch.apply()
    moto_dynamodb.apply()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield server, f"http://{host}:{port}"
    server.stop()


def _client(endpoint: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="eu-west-1", **KEYS)


def test_item_requests_answer_as_moto_does_without_its_flask_app(
    server: tuple[ThreadedMotoServer, str],
) -> None:
    moto, endpoint = server
    dynamodb = _client(endpoint, "dynamodb")
    dynamodb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    dynamodb.put_item(TableName="t", Item={"pk": {"S": "a"}, "v": {"B": b"\x00\xff"}})
    item = dynamodb.get_item(TableName="t", Key={"pk": {"S": "a"}}, ConsistentRead=True)["Item"]
    assert item == {"pk": {"S": "a"}, "v": {"B": b"\x00\xff"}}
    # errors keep their codes
    with pytest.raises(ClientError) as refused:
        dynamodb.put_item(
            TableName="t", Item={"pk": {"S": "a"}}, ConditionExpression="attribute_not_exists(pk)"
        )
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    with pytest.raises(ClientError) as missing:
        dynamodb.get_item(TableName="nope", Key={"pk": {"S": "a"}})
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    # the stream is read through the same shortcut
    streams = _client(endpoint, "dynamodbstreams")
    arn = dynamodb.describe_table(TableName="t")["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    assert [r["eventName"] for r in records] == ["INSERT"]
    # neither went through moto's Flask app for the service
    dispatcher = moto._server.app  # type: ignore[union-attr]
    assert "dynamodb" not in dispatcher.app_instances
    assert "dynamodbstreams" not in dispatcher.app_instances


def test_other_services_take_motos_usual_path(server: tuple[ThreadedMotoServer, str]) -> None:
    moto, endpoint = server
    s3 = _client(endpoint, "s3")
    s3.create_bucket(
        Bucket="dispatch-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    s3.put_object(Bucket="dispatch-bucket", Key="k", Body=b"hello")
    assert s3.get_object(Bucket="dispatch-bucket", Key="k")["Body"].read() == b"hello"
    assert "s3" in moto._server.app.app_instances  # type: ignore[union-attr]

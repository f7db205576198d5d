"""The repairs to moto's DynamoDB: cancelled transactions roll back exactly, concurrency is safe."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local_runtime import moto_dynamodb


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    moto_dynamodb.apply()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        yield client


def _put(pk: str, value: str, condition: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "TableName": "t",
        "Item": {"pk": {"S": pk}, "sk": {"S": "x"}, "v": {"S": value}},
    }
    if condition:
        op["ConditionExpression"] = condition
    return {"Put": op}


def _records(client: Any) -> int:
    """Stream records of the table, as moto holds them."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    table = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables["t"]
    return len(table.stream_shard.items)


def test_a_cancelled_transaction_leaves_items_and_stream_as_they_were(table: Any) -> None:
    table.transact_write_items(TransactItems=[_put("a", "1")])
    assert _records(table) == 1
    # When a transaction changes "a", creates "b" and then fails a condition on "c"
    with pytest.raises(ClientError) as refused:
        table.transact_write_items(
            TransactItems=[_put("a", "2"), _put("b", "1"), _put("c", "1", "attribute_exists(pk)")]
        )
    assert refused.value.response["Error"]["Code"] == "TransactionCanceledException"
    # Then "a" is unchanged, "b" does not exist, and the stream has no record of either
    got = table.get_item(TableName="t", Key={"pk": {"S": "a"}, "sk": {"S": "x"}})["Item"]
    assert got["v"] == {"S": "1"}
    assert "Item" not in table.get_item(TableName="t", Key={"pk": {"S": "b"}, "sk": {"S": "x"}})
    assert _records(table) == 1


def test_concurrent_transactions_and_writes_all_land(table: Any) -> None:
    def write(i: int) -> None:
        if i % 2:
            table.transact_write_items(TransactItems=[_put(f"t{i}", "v"), _put(f"u{i}", "v")])
        else:
            table.put_item(TableName="t", Item={"pk": {"S": f"p{i}"}, "sk": {"S": "x"}})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(200)))
    assert table.scan(TableName="t", Select="COUNT")["Count"] == 300


def test_item_data_answers_skip_the_serializer_and_read_back_the_same(table: Any) -> None:
    item = {
        "pk": {"S": "all"},
        "sk": {"S": "types"},
        "b": {"B": b"\x00\x01\xff"},
        "bs": {"BS": [b"z", b"\x00"]},
        "n": {"N": "1.5"},
        "ns": {"NS": ["1", "2"]},
        "ss": {"SS": ["x", "y"]},
        "m": {"M": {"l": {"L": [{"BOOL": True}, {"NULL": True}, {"S": "é"}]}}},
    }
    key = {"pk": item["pk"], "sk": item["sk"]}
    table.put_item(TableName="t", Item=item)
    assert table.get_item(TableName="t", Key=key)["Item"] == item
    assert table.query(
        TableName="t",
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": item["pk"]},
    )["Items"] == [item]
    got = table.batch_get_item(RequestItems={"t": {"Keys": [key]}})
    assert got["Responses"]["t"] == [item] and got["UnprocessedKeys"] == {}
    old = table.put_item(TableName="t", Item=item, ReturnValues="ALL_OLD")["Attributes"]
    assert old == item
    # and an error still comes back as DynamoDB's error
    with pytest.raises(ClientError) as refused:
        table.put_item(TableName="t", Item=item, ConditionExpression="attribute_not_exists(pk)")
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"


def test_stream_records_read_back_as_written_through_the_fast_answer() -> None:
    from datetime import datetime

    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    from local_runtime import moto_streams

    moto_dynamodb.apply()
    moto_streams.apply(moto_dynamodb.LOCK)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        url = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
        keys = {"region_name": "us-east-1", "aws_access_key_id": "a", "aws_secret_access_key": "b"}
        db = boto3.client("dynamodb", endpoint_url=url, **keys)  # type: ignore[arg-type]
        streams = boto3.client("dynamodbstreams", endpoint_url=url, **keys)  # type: ignore[arg-type]
        db.create_table(
            TableName="s",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        first = {"pk": {"S": "a"}, "b": {"B": b"\x00\xff"}, "m": {"M": {"l": {"L": [{"S": "é"}]}}}}
        second = {"pk": {"S": "a"}, "n": {"N": "2"}}
        db.put_item(TableName="s", Item=first)
        db.put_item(TableName="s", Item=second)
        arn = db.describe_table(TableName="s")["Table"]["LatestStreamArn"]
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = streams.get_records(ShardIterator=iterator)["Records"]
        assert [r["eventName"] for r in records] == ["INSERT", "MODIFY"]
        assert records[0]["dynamodb"]["NewImage"] == first
        assert records[1]["dynamodb"]["OldImage"] == first
        assert records[1]["dynamodb"]["NewImage"] == second
        assert isinstance(records[0]["dynamodb"]["ApproximateCreationDateTime"], datetime)
        assert int(records[0]["dynamodb"]["SequenceNumber"]) < int(
            records[1]["dynamodb"]["SequenceNumber"]
        )
    finally:
        server.stop()

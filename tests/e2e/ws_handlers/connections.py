"""``$connect`` and ``$disconnect``: records both in the connections table."""

from __future__ import annotations

import os
from typing import Any

import boto3

TABLE = boto3.resource("dynamodb").Table(os.environ["LWM_TABLE_WS_TEST_CONNECTIONS"])


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    ctx = event["requestContext"]
    if ctx["eventType"] == "CONNECT":
        if (event.get("queryStringParameters") or {}).get("reject"):
            return {"statusCode": 403, "body": "no"}
        TABLE.put_item(
            Item={
                "connection_id": ctx["connectionId"],
                "principal": ctx["authorizer"]["principalId"],
            }
        )
        protocols = event["headers"].get("Sec-WebSocket-Protocol")
        if protocols:
            return {
                "statusCode": 200,
                "headers": {"Sec-WebSocket-Protocol": protocols.split(",")[0].strip()},
            }
        return {"statusCode": 200}
    TABLE.update_item(
        Key={"connection_id": ctx["connectionId"]},
        UpdateExpression="SET disconnect_code = :c, disconnect_reason = :r",
        ExpressionAttributeValues={
            ":c": ctx["disconnectStatusCode"],
            ":r": ctx["disconnectReason"],
        },
    )
    return {"statusCode": 200}

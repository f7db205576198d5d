"""Messages: posts what it received back to the sender through ``@connections``."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3

CLIENT = boto3.client("apigatewaymanagementapi", endpoint_url=os.environ["LWM_WS_MANAGEMENT_URL"])


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    ctx = event["requestContext"]
    if ctx["routeKey"] == "fail":
        raise RuntimeError("boom")
    reply = {
        "route": ctx["routeKey"],
        "body": event["body"],
        "eventType": ctx["eventType"],
        "authorizer": ctx.get("authorizer"),
        "connectionId": ctx["connectionId"],
    }
    CLIENT.post_to_connection(ConnectionId=ctx["connectionId"], Data=json.dumps(reply).encode())
    return {"statusCode": 200, "body": "API Gateway does not send this back"}

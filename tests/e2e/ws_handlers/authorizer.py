"""A Lambda REQUEST authorizer: allows ``token=good`` (query) or the subprotocol ``good``."""

from __future__ import annotations

from typing import Any


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    query = event.get("queryStringParameters") or {}
    protocols = (event.get("headers") or {}).get("Sec-WebSocket-Protocol", "")
    token = query.get("token") or next(
        (p.strip() for p in protocols.split(",") if p.strip() != "lwm.v1"), None
    )
    if token == "deny":
        effect = "Deny"
    elif token == "good":
        effect = "Allow"
    else:
        raise Exception("Unauthorized")  # API Gateway's convention for a 401
    return {
        "principalId": "user-1",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": effect, "Resource": event["methodArn"]}
            ],
        },
        "context": {"userId": "user-1", "admin": False, "level": 7},
    }

"""API Gateway event samples (JSON, shaped as AWS delivers them) and a builder over them."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

_HERE = Path(__file__).resolve().parent


@cache
def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((_HERE / f"{name}.json").read_text())
    return data


def sample(name: str) -> dict[str, Any]:
    """A fresh copy of ``tests/events/<name>.json``."""
    return copy.deepcopy(_load(name))


def http_event(
    method: str,
    path: str,
    *,
    route_key: str | None = None,
    body: object = None,
    raw_body: str | None = None,
    query: dict[str, str] | None = None,
    path_parameters: dict[str, str] | None = None,
    claims: dict[str, str] | None = None,
    source_ip: str | None = None,
) -> dict[str, Any]:
    """An HTTP API (payload 2.0) event from the samples, for one request.

    ``claims`` makes it an authorized request (the JWT authorizer's claims, as
    strings); without them it is a public route's event. ``route_key``
    defaults to ``METHOD path`` (give the template path for routes with params).
    """
    event = sample("http_api_v2_jwt" if claims is not None else "http_api_v2_public")
    key = route_key or f"{method} {path}"
    event["routeKey"] = event["requestContext"]["routeKey"] = key
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    if claims is not None:
        event["requestContext"]["authorizer"]["jwt"]["claims"] = claims
    if query:
        event["rawQueryString"] = urlencode(query)
        event["queryStringParameters"] = dict(query)
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if source_ip:
        event["requestContext"]["http"]["sourceIp"] = source_ip
        event["headers"]["x-forwarded-for"] = source_ip
    text = raw_body if raw_body is not None else (None if body is None else json.dumps(body))
    if text is None:
        event.pop("body", None)
        event["headers"].pop("content-type", None)
        event["headers"]["content-length"] = "0"
    else:
        event["body"] = text
        event["headers"]["content-type"] = "application/json"
        event["headers"]["content-length"] = str(len(text.encode()))
    return event


def claims_for(
    user_id: str, roles: tuple[str, ...] = ("mentee",), verified: bool = True
) -> dict[str, str]:
    """Authorizer claims for ``user_id``, rendered as API Gateway renders them (strings)."""
    claims = dict(_load("http_api_v2_jwt")["requestContext"]["authorizer"]["jwt"]["claims"])
    claims.update(
        {
            "sub": user_id,
            "roles": "[" + " ".join(roles) + "]",
            "scope": " ".join(roles),
            "active_role": roles[0],
            "email_verified": "true" if verified else "false",
        }
    )
    return claims

"""The Lambda events of an API Gateway WebSocket API, built as AWS builds them.

Pure functions over plain values, so that the unit tests can check every
event against Powertools' models without a server: the ``$connect`` REQUEST
authorizer event, the CONNECT, MESSAGE and DISCONNECT proxy events, and the
reading of an authorizer's policy.
"""

from __future__ import annotations

import fnmatch
import json
import os
import secrets
import string
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl

from local_runtime import config

API_ID: Final = "lwmlocalws"  # API Gateway ids are 10 lower-case letters and digits
STAGE: Final = config.STAGE
_ID_ALPHABET: Final = string.ascii_letters + string.digits
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# API Gateway passes headers as the client spelled them; ASGI servers lower-case them,
# so the usual spelling is restored (handlers should look headers up case-insensitively).
_SPECIAL_WORDS = {"websocket": "WebSocket", "id": "Id", "ip": "IP", "www": "WWW"}
# What API Gateway puts in the headers of a DISCONNECT event (none of the client's).
_DISCONNECT_HEADERS = ("x-api-key", "X-Forwarded-For", "x-restapi")


def new_id() -> str:
    """An id shaped like API Gateway's connection, request and message ids: ``TLfxoeYtoAMCJwg=``.

    Fifteen letters and digits and a ``=``: base64 without ``+`` and ``/``, which
    would need escaping in ``/@connections/{connectionId}``.
    """
    chars: list[str] = []
    while len(chars) < 15:  # one read of the OS's randomness, not one per letter
        # bytes below 248 (4 x 62) map to the alphabet without bias; the rest are dropped
        chars += [_ID_ALPHABET[b % 62] for b in secrets.token_bytes(24) if b < 248]
    return "".join(chars[:15]) + "="


def method_arn(route_key: str = "$connect") -> str:
    """The ``methodArn`` of a WebSocket route, as the authorizer receives it."""
    return f"arn:aws:execute-api:{config.REGION}:{config.ACCOUNT_ID}:{API_ID}/{STAGE}/{route_key}"


def request_time(epoch_s: float) -> str:
    """``requestTime`` as API Gateway writes it: ``09/Feb/2024:18:11:43 +0000``."""
    t = time.gmtime(epoch_s)
    return (
        f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{time.strftime('%H:%M:%S', t)} +0000"
    )


def header_name(lower: str) -> str:
    """The usual spelling of a header name: ``sec-websocket-key`` → ``Sec-WebSocket-Key``."""
    return "-".join(_SPECIAL_WORDS.get(w, w.capitalize()) for w in lower.split("-"))


@dataclass(frozen=True)
class Handshake:
    """What the client sent to open the connection, and when."""

    connection_id: str
    headers: tuple[tuple[str, str], ...]  # (lower-case name, value), in order
    query_string: str
    source_ip: str
    connected_at_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    @classmethod
    def from_scope(cls, scope: Mapping[str, Any], connection_id: str) -> Handshake:
        """The handshake of an ASGI ``websocket`` scope."""
        headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])
        client = scope.get("client")
        return cls(
            connection_id=connection_id,
            headers=headers,
            query_string=scope.get("query_string", b"").decode("latin-1"),
            source_ip=client[0] if client else config.HOST,
        )

    def header(self, lower: str) -> str | None:
        """The first value of a header, by its lower-case name."""
        return next((v for k, v in self.headers if k == lower), None)

    @property
    def domain_name(self) -> str:
        return self.header("host") or config.HOST

    @property
    def user_agent(self) -> str:
        return self.header("user-agent") or ""

    def client_headers(self) -> tuple[dict[str, str], dict[str, list[str]]]:
        """``headers`` and ``multiValueHeaders`` as API Gateway passes them on ``$connect``."""
        multi: dict[str, list[str]] = {}
        for name, value in self.headers:
            multi.setdefault(header_name(name), []).append(value)
        forwarded = {
            "X-Forwarded-For": self.source_ip,
            "X-Forwarded-Port": self.domain_name.rpartition(":")[2] or "80",
            "X-Forwarded-Proto": "http",
        }
        for name, value in forwarded.items():
            multi.setdefault(name, [value])
        multi.setdefault(
            "X-Amzn-Trace-Id", [f"Root=1-{int(time.time()):08x}-{os.urandom(12).hex()}"]
        )
        return {k: v[-1] for k, v in multi.items()}, multi

    def query(self) -> tuple[dict[str, str], dict[str, list[str]]]:
        """``queryStringParameters`` and their multi-value form (last value wins in the first)."""
        multi: dict[str, list[str]] = {}
        for key, value in parse_qsl(self.query_string, keep_blank_values=True):
            multi.setdefault(key, []).append(value)
        return {k: v[-1] for k, v in multi.items()}, multi


def _context(
    handshake: Handshake,
    *,
    route_key: str,
    event_type: str,
    request_id: str,
    now_s: float,
    authorizer: Mapping[str, Any] | None,
) -> dict[str, Any]:
    context: dict[str, Any] = {"routeKey": route_key}
    if authorizer is not None:
        context["authorizer"] = dict(authorizer)
    context.update(
        {
            "eventType": event_type,
            "extendedRequestId": request_id,
            "requestTime": request_time(now_s),
            "messageDirection": "IN",
            "stage": STAGE,
            "connectedAt": handshake.connected_at_ms,
            "requestTimeEpoch": int(now_s * 1000),
            "identity": {"userAgent": handshake.user_agent, "sourceIp": handshake.source_ip},
            "requestId": request_id,
            "domainName": handshake.domain_name,
            "connectionId": handshake.connection_id,
            "apiId": API_ID,
        }
    )
    return context


def authorizer_event(handshake: Handshake, request_id: str) -> dict[str, Any]:
    """The Lambda REQUEST authorizer event of a ``$connect``."""
    headers, multi_headers = handshake.client_headers()
    query, multi_query = handshake.query()
    return {
        "type": "REQUEST",
        "methodArn": method_arn(),
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "stageVariables": {},
        "requestContext": _context(
            handshake,
            route_key="$connect",
            event_type="CONNECT",
            request_id=request_id,
            now_s=time.time(),
            authorizer=None,
        ),
    }


def connect_event(
    handshake: Handshake, request_id: str, authorizer: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The CONNECT event the ``$connect`` route's function receives."""
    headers, multi_headers = handshake.client_headers()
    query, multi_query = handshake.query()
    event: dict[str, Any] = {"headers": headers, "multiValueHeaders": multi_headers}
    if query:  # API Gateway leaves the keys out when there is no query string
        event["queryStringParameters"] = query
        event["multiValueQueryStringParameters"] = multi_query
    event["requestContext"] = _context(
        handshake,
        route_key="$connect",
        event_type="CONNECT",
        request_id=request_id,
        now_s=time.time(),
        authorizer=authorizer,
    )
    event["isBase64Encoded"] = False
    return event


def message_event(
    handshake: Handshake,
    route_key: str,
    body: str,
    request_id: str,
    message_id: str,
    authorizer: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The MESSAGE event of one text message (no headers: AWS sends none after the handshake)."""
    context = _context(
        handshake,
        route_key=route_key,
        event_type="MESSAGE",
        request_id=request_id,
        now_s=time.time(),
        authorizer=authorizer,
    )
    context["messageId"] = message_id
    return {"requestContext": context, "body": body, "isBase64Encoded": False}


def disconnect_event(
    handshake: Handshake,
    request_id: str,
    authorizer: Mapping[str, Any] | None,
    status_code: int,
    reason: str,
) -> dict[str, Any]:
    """The DISCONNECT event, with the close code and reason (AWS: best effort)."""
    headers = {"Host": handshake.domain_name, **dict.fromkeys(_DISCONNECT_HEADERS, "")}
    context = _context(
        handshake,
        route_key="$disconnect",
        event_type="DISCONNECT",
        request_id=request_id,
        now_s=time.time(),
        authorizer=authorizer,
    )
    context["disconnectStatusCode"] = status_code
    context["disconnectReason"] = reason
    return {
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "requestContext": context,
        "isBase64Encoded": False,
    }


def select_route(body: str, routes: Iterable[str]) -> str:
    """Route selection on ``$request.body.action``: a declared action, else ``$default``."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return "$default"
    action = parsed.get("action") if isinstance(parsed, dict) else None
    if isinstance(action, str) and not action.startswith("$") and action in set(routes):
        return action
    return "$default"


class PolicyError(ValueError):
    """The authorizer's result is not a policy API Gateway accepts (it answers 500)."""


@dataclass(frozen=True)
class Decision:
    """What an authorizer's policy says about the ``$connect`` route."""

    allowed: bool
    authorizer: dict[str, Any]  # principalId and the stringified context, flat


def _as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _matches(patterns: object, value: str) -> bool:
    return any(isinstance(p, str) and fnmatch.fnmatchcase(value, p) for p in _as_list(patterns))


def _context_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise PolicyError("context values must be strings, numbers or booleans")


def read_policy(result: object, arn: str, latency_ms: int = 0) -> Decision:
    """Read an authorizer's output (IAM policy, ``principalId``, ``context``) for ``arn``.

    An explicit Deny wins over any Allow; no matching Allow is a Deny.

    Raises:
        PolicyError: the output lacks a principal or a policy, or the context is nested.
    """
    if not isinstance(result, dict):
        raise PolicyError("the authorizer's result is not an object")
    principal, document = result.get("principalId"), result.get("policyDocument")
    if principal is None or not isinstance(document, dict):
        raise PolicyError("principalId and policyDocument are required")
    allowed = denied = False
    for statement in _as_list(document.get("Statement")):
        if not isinstance(statement, dict):
            raise PolicyError("a Statement is not an object")
        action_ok = _matches(statement.get("Action"), "execute-api:Invoke")
        if not (action_ok and _matches(statement.get("Resource"), arn)):
            continue
        effect = str(statement.get("Effect", "")).lower()
        allowed |= effect == "allow"
        denied |= effect == "deny"
    context = result.get("context") or {}
    if not isinstance(context, dict):
        raise PolicyError("context is not an object")
    authorizer: dict[str, Any] = {k: _context_value(v) for k, v in context.items()}
    authorizer["principalId"] = str(principal)
    authorizer["integrationLatency"] = latency_ms
    return Decision(allowed and not denied, authorizer)

"""The WebSocket API's $connect authorizer (a Lambda REQUEST authorizer).

The access token comes in the query string (``?token=…``, for clients that
can) or in ``Sec-WebSocket-Protocol: bearer, <token>`` (browsers cannot set an
Authorization header on a WebSocket). It is verified like the HTTP API's JWT
authorizer does: ES256 only, against the platform's KMS public keys, issuer,
audience and expiry. An invalid token is refused with ``Unauthorized`` (API
Gateway answers 401); a valid one is allowed with the user in the context that
API Gateway passes to every later event of the connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from lwm_core.errors import UnauthorizedError
from lwm_core.observability import logger
from lwm_core.realtime import BEARER_SUBPROTOCOL

if TYPE_CHECKING:
    from lwm_core.tokens import TokenVerifier


@cache
def _verifier() -> TokenVerifier:
    from lwm_core.tokens import KmsKeyRing, TokenPolicy, TokenVerifier
    from websocket_handlers.settings import AuthorizerSettings

    settings = AuthorizerSettings()
    ring = KmsKeyRing.from_setting(settings.signing_keys)
    return TokenVerifier(TokenPolicy(settings.issuer, settings.audience), ring.jwks)


def token_of(event: Mapping[str, Any]) -> str | None:
    """The access token of a $connect request: ``?token=``, else the bearer subprotocol."""
    query = event.get("queryStringParameters") or {}
    if query.get("token"):
        return str(query["token"])
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    offered = [p.strip() for p in str(headers.get("sec-websocket-protocol") or "").split(",")]
    if len(offered) >= 2 and offered[0].lower() == BEARER_SUBPROTOCOL and offered[1]:
        return offered[1]
    return None


def policy(principal: str, effect: str, resource: str, context: dict[str, str]) -> dict[str, Any]:
    """An API Gateway authorizer answer."""
    return {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
        "context": context,
    }


def authorize(event: Mapping[str, Any], verifier: TokenVerifier) -> dict[str, Any]:
    """Allow the connection of a valid token's user.

    Raises:
        UnauthorizedError: no token, or one that does not verify.
    """
    token = token_of(event)
    if not token:
        raise UnauthorizedError("no access token")
    claims = verifier.verify(token)
    roles = claims.get("roles") or []
    context = {
        "userId": str(claims["sub"]),
        "roles": " ".join(str(r) for r in roles),
        "activeRole": str(claims.get("active_role") or ""),
        "emailVerified": "true" if claims.get("email_verified") else "false",
    }
    return policy(str(claims["sub"]), "Allow", str(event.get("methodArn", "*")), context)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: an Allow policy, or ``Unauthorized`` (API Gateway's 401)."""
    try:
        return authorize(event, _verifier())
    except UnauthorizedError as e:
        logger.info("connection refused", extra={"reason": e.detail})
        raise Exception("Unauthorized") from None

"""The HTTP API's native JWT authorizer, reproduced for the local gateway.

What AWS does for a route with a JWT authorizer, and so what this does:
the token comes from ``Authorization`` (with or without ``Bearer``); its keys
come from the issuer's ``/.well-known/openid-configuration`` → ``jwks_uri``,
fetched on first use, cached, and fetched again when a token names an unknown
``kid``; the signature must verify with that key's asymmetric algorithm
(``alg: none`` and HMAC tokens never do); ``iss`` must equal the issuer;
``aud`` (or ``client_id``) must be an accepted audience; ``exp``, ``nbf`` and
``iat`` must hold now. A route with authorization scopes (``Auth.ROLE``) also
needs one of them in the token's ``scp``/``scope``. Failures answer 401
``{"message":"Unauthorized"}`` (403 ``Forbidden`` for a missing scope), and
the claims reach the handler as strings, the way API Gateway renders them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from blueprint.model import Auth, Route

log = logging.getLogger("local_runtime.authorizer")

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
KEYS_TTL_S = 3600.0  # API Gateway caches an issuer's keys "for up to 1 hour"
MIN_REFETCH_S = 5.0  # an unknown kid refetches the key set at most this often
FETCH_TIMEOUT_S = 10.0


class DeniedError(Exception):
    """The authorizer refuses the request; the gateway answers with these values."""

    def __init__(self, status: int, message: str, challenge: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.challenge = challenge  # the www-authenticate header value


def _invalid(description: str) -> DeniedError:
    return DeniedError(
        401,
        "Unauthorized",
        f'Bearer scope="" error="invalid_token" error_description="{description}"',
    )


@dataclass(frozen=True)
class Grant:
    """An accepted token: what goes into ``requestContext.authorizer.jwt``."""

    claims: dict[str, str]
    scopes: list[str] | None


def render_claim(value: object) -> str | None:
    """A claim value as API Gateway delivers it to a payload-2.0 handler.

    Strings stay as they are, numbers and booleans become their JSON text,
    arrays become ``[a b c]`` (space-separated, in brackets), objects become
    JSON text, and null claims are left out (None).
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + " ".join(render_claim(v) or "" for v in value) + "]"
    return json.dumps(value, separators=(",", ":"))


def token_scopes(claims: Mapping[str, Any]) -> list[str]:
    """The scopes a token holds: ``scp`` (list or string) first, else ``scope`` (spaces)."""
    raw = claims.get("scp", claims.get("scope"))
    if isinstance(raw, list):
        return [str(s) for s in raw]
    if isinstance(raw, str):
        return raw.split()
    return []


class JwksCache:
    """The issuer's signing keys, found through its OpenID discovery document."""

    def __init__(self, issuer: str, client: httpx.AsyncClient) -> None:
        self._issuer = issuer.rstrip("/")
        self._client = client
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at = -float("inf")
        self._lock = asyncio.Lock()

    async def jwk(self, kid: str) -> dict[str, Any] | None:
        """The JWK with this ``kid``, fetching the key set when needed."""
        stale = time.monotonic() - self._fetched_at > KEYS_TTL_S
        if kid not in self._keys or stale:
            await self._refresh(force=stale)
        return self._keys.get(kid)

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            if not force and time.monotonic() - self._fetched_at < MIN_REFETCH_S:
                return
            self._fetched_at = time.monotonic()
            try:
                discovery = await self._get_json(f"{self._issuer}/.well-known/openid-configuration")
                key_set = await self._get_json(str(discovery["jwks_uri"]))
                keys = [k for k in key_set["keys"] if isinstance(k, dict) and "kid" in k]
            except (httpx.HTTPError, KeyError, TypeError, ValueError) as e:
                log.warning("JWT authorizer: cannot read the keys of %s: %r", self._issuer, e)
                return
            self._keys = {str(k["kid"]): k for k in keys}

    async def _get_json(self, url: str) -> Any:
        response = await self._client.get(url, timeout=FETCH_TIMEOUT_S)
        response.raise_for_status()
        return response.json()


class JwtAuthorizer:
    """Validates bearer tokens for routes that need one."""

    def __init__(self, issuer: str, audiences: Sequence[str], keys: JwksCache) -> None:
        self._issuer = issuer
        self._audiences = frozenset(audiences)
        self._keys = keys
        self._parsed: dict[tuple[str, str], tuple[dict[str, Any], jwt.PyJWK]] = {}

    async def authorize(self, route: Route, authorization: str | None) -> Grant:
        """The grant for a request to ``route`` carrying this ``Authorization`` header.

        Raises:
            DeniedError: 401 for a missing or invalid token, 403 for a missing scope.
        """
        token = (authorization or "").strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if not token:
            raise DeniedError(401, "Unauthorized", "Bearer")
        claims = await self._verify(token)
        scopes: list[str] | None = None
        if route.auth is Auth.ROLE:
            scopes = token_scopes(claims)
            if not set(route.roles) & set(scopes):
                raise DeniedError(
                    403,
                    "Forbidden",
                    f'Bearer scope="{" ".join(route.roles)}" error="insufficient_scope" '
                    'error_description="the token does not have the required scope"',
                )
        rendered = {k: r for k, v in claims.items() if (r := render_claim(v)) is not None}
        return Grant(rendered, scopes)

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise _invalid("the token is malformed") from e
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ASYMMETRIC_ALGORITHMS:
            raise _invalid(f"the token's algorithm {alg!r} is not supported")
        if not isinstance(kid, str):
            raise _invalid("the token has no kid")
        key = await self._key(kid, alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                issuer=self._issuer,
                options={"verify_aud": False, "require": ["exp", "iss"]},
            )
        except jwt.ExpiredSignatureError as e:
            raise _invalid("the token has expired") from e
        except jwt.ImmatureSignatureError as e:
            raise _invalid("the token is not valid yet") from e
        except jwt.InvalidIssuerError as e:
            raise _invalid("the token does not have a valid issuer") from e
        except jwt.InvalidSignatureError as e:
            raise _invalid("the token does not have a valid signature") from e
        except jwt.PyJWTError as e:
            raise _invalid(f"the token is invalid: {e}") from e
        if not self._audience_ok(claims):
            raise _invalid("the token does not have a valid audience")
        return claims

    async def _key(self, kid: str, alg: str) -> jwt.PyJWK:
        jwk = await self._keys.jwk(kid)
        if jwk is None:
            raise _invalid("the token's kid is not in the issuer's key set")
        cached = self._parsed.get((kid, alg))
        if cached is not None and cached[0] is jwk:
            return cached[1]
        if jwk.get("alg", alg) != alg:
            raise _invalid(f"the key {kid!r} is not for {alg}")
        try:
            key = jwt.PyJWK(jwk, algorithm=alg)
        except jwt.PyJWTError as e:
            raise _invalid(f"the key {kid!r} does not fit {alg}") from e
        self._parsed[(kid, alg)] = (jwk, key)
        return key

    def _audience_ok(self, claims: Mapping[str, Any]) -> bool:
        aud = claims.get("aud")
        if aud is None:
            aud = claims.get("client_id")
        values = aud if isinstance(aud, list) else [aud]
        return any(isinstance(v, str) and v in self._audiences for v in values)

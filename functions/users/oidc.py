"""Sign-in with an external OpenID Connect provider: authorization code + PKCE (authlib).

Providers are configured in a Secrets Manager secret (JSON ``{name: {issuer,
client_id, client_secret}}``). The ID token is verified with pyjwt against the
provider's JWKS (issuer, audience, expiry, nonce).
"""

from __future__ import annotations

import json
import secrets
import time
import warnings
from dataclasses import dataclass
from functools import cache
from typing import Any

from functions.users import errors
from functions.users.domain import TokenStore
from functions.users.logic import ExternalIdentity

STATE_TTL_S = 600


@dataclass(frozen=True)
class Provider:
    """One configured external identity provider."""

    name: str
    issuer: str
    client_id: str
    client_secret: str
    scope: str = "openid email profile"


@cache
def _metadata(issuer: str) -> dict[str, Any]:
    import httpx

    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = httpx.get(url, timeout=5)
        response.raise_for_status()
    except httpx.HTTPError as e:
        _metadata.cache_clear()
        raise errors.OidcLoginError("the identity provider is unreachable") from e
    data: dict[str, Any] = response.json()
    return data


def load_providers(secret_arn: str | None) -> dict[str, Provider]:
    """The configured providers (none when the secret is unset or empty)."""
    if not secret_arn:
        return {}
    from aws_lambda_powertools.utilities import parameters

    try:
        raw: Any = parameters.get_secret(secret_arn, max_age=300)
    except parameters.exceptions.GetParameterError:
        return {}
    config = json.loads(raw) if isinstance(raw, str) and raw.strip() else {}
    return {
        name: Provider(
            name,
            p["issuer"],
            p["client_id"],
            p["client_secret"],
            p.get("scope") or "openid email profile",
        )
        for name, p in config.items()
    }


def _client(provider: Provider, redirect_uri: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from authlib.integrations.httpx_client import OAuth2Client

    return OAuth2Client(
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        scope=provider.scope,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",  # noqa: S106 (a method name)
        timeout=10,
    )


def authorization_url(provider: Provider, redirect_uri: str, store: TokenStore) -> str:
    """Where to send the browser; remembers state, nonce and PKCE verifier for the callback."""
    from authlib.common.security import generate_token

    meta = _metadata(provider.issuer)
    verifier = generate_token(64)
    nonce = secrets.token_urlsafe(24)
    state = secrets.token_urlsafe(24)
    url, _ = _client(provider, redirect_uri).create_authorization_url(
        meta["authorization_endpoint"], state=state, code_verifier=verifier, nonce=nonce
    )
    store.put_login_state(
        state,
        {"provider": provider.name, "verifier": verifier, "nonce": nonce},
        int(time.time()) + STATE_TTL_S,
    )
    return str(url)


def complete(
    provider: Provider,
    redirect_uri: str,
    store: TokenStore,
    code: str | None,
    state: str,
    error: str | None = None,
    iss: str | None = None,
) -> ExternalIdentity:
    """Exchange the code, verify the ID token, and say who signed in.

    ``code`` is None when the provider answered with an error (RFC 6749 4.1.2.1),
    for instance because the person cancelled; the state is spent either way.
    """
    import jwt

    if iss is not None and iss != _metadata(provider.issuer).get("issuer", provider.issuer):
        # RFC 9207: an answer naming another issuer is a mix-up; the state stays unspent.
        raise errors.OidcLoginError("the answer comes from another identity provider")
    saved = store.pop_login_state(state, int(time.time()))
    if saved is None or saved.get("provider") != provider.name:
        raise errors.OidcLoginError("the sign-in expired or was already used; start again")
    if code is None:
        raise errors.OidcLoginError(f"the provider did not sign you in ({error or 'no code'})")
    meta = _metadata(provider.issuer)
    try:
        token = _client(provider, redirect_uri).fetch_token(
            meta["token_endpoint"], code=code, code_verifier=saved["verifier"]
        )
    except Exception as e:  # authlib raises several OAuth error types
        raise errors.OidcLoginError("the provider refused the authorization code") from e
    id_token = token.get("id_token")
    if not id_token:
        raise errors.OidcLoginError("the provider returned no ID token")
    try:
        key = jwt.PyJWKClient(meta["jwks_uri"], cache_keys=True).get_signing_key_from_jwt(id_token)
        claims = jwt.decode(
            id_token,
            key=key.key,
            algorithms=["RS256", "ES256", "PS256", "EdDSA"],
            audience=provider.client_id,
            issuer=meta.get("issuer", provider.issuer),
            options={"require": ["exp", "iat", "sub"]},
        )
    except jwt.PyJWTError as e:
        raise errors.OidcLoginError(f"the ID token is not valid: {e}") from e
    if claims.get("nonce") != saved["nonce"]:
        raise errors.OidcLoginError("the ID token nonce does not match")
    email = claims.get("email")
    verified = bool(claims.get("email_verified"))
    if email is None or "email_verified" not in claims:
        userinfo = _client(provider, redirect_uri)
        userinfo.token = token
        try:
            response = userinfo.get(meta["userinfo_endpoint"])
            response.raise_for_status()
            info = response.json()
        except Exception as e:  # transport, HTTP status and JSON errors alike
            raise errors.OidcLoginError("the provider's userinfo endpoint failed") from e
        if info.get("sub") != claims["sub"]:
            # OpenID Connect Core 5.3.2: userinfo about another subject must not be used.
            raise errors.OidcLoginError("the provider's userinfo is about another subject")
        email = info.get("email", email)
        verified = bool(info.get("email_verified", verified))
        claims.setdefault("name", info.get("name"))
    return ExternalIdentity(
        provider=provider.name,
        subject=str(claims["sub"]),
        email=email,
        email_verified=verified,
        name=claims.get("name"),
    )

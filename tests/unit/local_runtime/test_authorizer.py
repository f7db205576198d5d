"""The local JWT authorizer (``local_runtime.authorizer``), as API Gateway's native one.

The issuer is served by an ``httpx.MockTransport``: its discovery document and
JWKS hold a P-256 key generated here, so tokens are really signed and verified.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from blueprint.model import public, role, user
from functions.users import logic
from local_runtime.authorizer import (
    DeniedError,
    JwksCache,
    JwtAuthorizer,
    render_claim,
    token_scopes,
)
from lwm_core.web import principal_from_claims

from ..users.fakes import FakeWorld

ISSUER = "https://auth.test.linkwithmentor.dev"
AUDIENCE = "linkwithmentor-api"
KID = "key-1"
REMOVED = object()  # a claim override that leaves the claim out

ME = user("GET", "/me")
ADMIN = role("GET", "/admin/users", "admin")
MENTORS = public("GET", "/mentors")


class Issuer:
    """An OpenID issuer over HTTP (in memory): discovery, JWKS, and a signing key."""

    def __init__(self, url: str = ISSUER, jwks: list[dict[str, Any]] | None = None) -> None:
        self.url = url
        self.key = ec.generate_private_key(ec.SECP256R1())
        public_jwk = dict(ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True))
        self.jwks = jwks or [{**public_jwk, "kid": KID, "alg": "ES256", "use": "sig"}]
        self.requests: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request.url.path)
        if str(request.url) == f"{self.url}/.well-known/openid-configuration":
            jwks_uri = f"{self.url}/.well-known/jwks.json"
            return httpx.Response(200, json={"issuer": self.url, "jwks_uri": jwks_uri})
        if str(request.url) == f"{self.url}/.well-known/jwks.json":
            return httpx.Response(200, json={"keys": self.jwks})
        return httpx.Response(404)

    def token(self, *, kid: str = KID, key: Any = None, **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "01HUSER",
            "iat": now,
            "nbf": now,
            "exp": now + 900,
            "scope": "mentee",
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not REMOVED}
        return jwt.encode(claims, key or self.key, algorithm="ES256", headers={"kid": kid})


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture
async def authorizer(issuer: Issuer) -> AsyncIterator[JwtAuthorizer]:
    transport = httpx.MockTransport(issuer.handle)
    async with httpx.AsyncClient(transport=transport) as client:
        yield JwtAuthorizer(ISSUER, [AUDIENCE], JwksCache(ISSUER, client))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


async def _denied(authorizer: JwtAuthorizer, authorization: str | None, route: Any = ME) -> Any:
    with pytest.raises(DeniedError) as caught:
        await authorizer.authorize(route, authorization)
    return caught.value


def _valid_claims() -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": "01HUSER", "iat": now, "exp": now + 900}


# --- claims as API Gateway renders them --------------------------------------------------


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        ("text", "text"),
        ("", ""),
        (True, "true"),
        (False, "false"),
        (1800000000, "1800000000"),
        (1.5, "1.5"),
        (0, "0"),
        (["mentee", "mentor"], "[mentee mentor]"),
        ([], "[]"),
        ([1, True, "x"], "[1 true x]"),
        ({"a": 1, "b": [2]}, '{"a":1,"b":[2]}'),
        (None, None),
    ],
)
def test_render_claim(value: object, rendered: str | None) -> None:
    # Given a claim value of some JSON type
    # When API Gateway hands it to a payload-2.0 handler
    # Then it is this string (or left out when null)
    assert render_claim(value) == rendered


@pytest.mark.parametrize(
    ("claims", "scopes"),
    [
        ({"scope": "mentee mentor"}, ["mentee", "mentor"]),
        ({"scope": "  admin  "}, ["admin"]),
        ({"scope": ""}, []),
        ({"scp": ["admin", "mentee"]}, ["admin", "mentee"]),
        ({"scp": "admin mentee"}, ["admin", "mentee"]),
        ({"scp": ["admin"], "scope": "mentee"}, ["admin"]),  # scp first
        ({}, []),
        ({"scope": 42}, []),
    ],
)
def test_token_scopes(claims: dict[str, Any], scopes: list[str]) -> None:
    # Given a token's claims
    # When its scopes are read
    # Then scp (list or string) wins over scope (space-separated)
    assert token_scopes(claims) == scopes


# --- accepted tokens ----------------------------------------------------------------------


class TestAccepted:
    async def test_a_valid_token_is_granted_with_rendered_claims(
        self, authorizer: JwtAuthorizer, issuer: Issuer
    ) -> None:
        # Given a valid token with claims of every type
        token = issuer.token(
            roles=["mentee", "mentor"], email_verified=True, active_role="mentee", nickname=None
        )
        # When a user route is called with it
        grant = await authorizer.authorize(ME, f"Bearer {token}")
        # Then it is granted, its claims rendered as strings, null claims left out
        claims = jwt.decode(token, options={"verify_signature": False})
        assert grant.claims["sub"] == "01HUSER"
        assert grant.claims["roles"] == "[mentee mentor]"
        assert grant.claims["email_verified"] == "true"
        assert grant.claims["exp"] == str(claims["exp"])
        assert grant.claims["aud"] == AUDIENCE
        assert "nickname" not in grant.claims
        assert all(isinstance(v, str) for v in grant.claims.values())
        # And a route without authorization scopes gets no scopes
        assert grant.scopes is None

    @pytest.mark.parametrize("prefix", ["Bearer ", "bearer ", "BEARER  ", ""])
    async def test_the_bearer_prefix_is_optional(
        self, authorizer: JwtAuthorizer, issuer: Issuer, prefix: str
    ) -> None:
        # Given a valid token, with or without "Bearer"
        # When it is presented
        # Then it is granted
        grant = await authorizer.authorize(ME, f"{prefix}{issuer.token()}")
        assert grant.claims["sub"] == "01HUSER"

    async def test_a_role_route_with_the_scope_is_granted_with_scopes(
        self, authorizer: JwtAuthorizer, issuer: Issuer
    ) -> None:
        # Given an admin's token
        token = issuer.token(scope="admin mentee")
        # When the admin route is called
        grant = await authorizer.authorize(ADMIN, token)
        # Then it is granted with the token's scopes
        assert grant.scopes == ["admin", "mentee"]

    async def test_client_id_stands_in_for_a_missing_audience(
        self, authorizer: JwtAuthorizer, issuer: Issuer
    ) -> None:
        # Given a token with client_id instead of aud (as Cognito access tokens have)
        token = issuer.token(aud=REMOVED, client_id=AUDIENCE)
        # When it is presented
        # Then it is granted
        assert (await authorizer.authorize(ME, token)).claims["client_id"] == AUDIENCE

    async def test_one_of_several_audiences_is_enough(
        self, authorizer: JwtAuthorizer, issuer: Issuer
    ) -> None:
        # Given a token for two audiences, one of them ours
        token = issuer.token(aud=["another-api", AUDIENCE])
        # When it is presented
        # Then it is granted
        assert (await authorizer.authorize(ME, token)).claims["aud"] == f"[another-api {AUDIENCE}]"

    async def test_the_key_set_is_fetched_once(
        self, authorizer: JwtAuthorizer, issuer: Issuer
    ) -> None:
        # Given several tokens of the same key
        # When they are presented one after another, and an unknown kid right after
        for _ in range(3):
            await authorizer.authorize(ME, issuer.token())
        await _denied(authorizer, issuer.token(kid="unknown"))
        # Then discovery and the JWKS were read once (unknown kids refetch at most every 5 s)
        assert issuer.requests == ["/.well-known/openid-configuration", "/.well-known/jwks.json"]

    async def test_users_tokens_become_the_principal_the_service_expects(self) -> None:
        # Given an access token the users service issued, acting as mentor
        world = FakeWorld()
        account = logic.register(
            world.deps,
            email="ada@example.com",
            password="correct horse battery staple",
            display_name="Ada",
            timezone="UTC",
            roles={"mentee", "mentor"},
        )
        pair = logic.switch_role(world.deps, account.id, "mentor")
        # And the users service as the issuer, publishing its signer's keys
        users = Issuer(url=world.config.issuer, jwks=world.signer.jwks())
        async with httpx.AsyncClient(transport=httpx.MockTransport(users.handle)) as client:
            keys = JwksCache(world.config.issuer, client)
            authorizer = JwtAuthorizer(world.config.issuer, [world.config.audience], keys)
            # When the gateway authorizes the token
            grant = await authorizer.authorize(ME, f"Bearer {pair.access_token}")
        # Then the service reads the rendered claims back as the same caller
        principal = principal_from_claims(grant.claims)
        assert principal.user_id == account.id
        assert principal.roles == frozenset({"mentee", "mentor"})
        assert principal.active_role == "mentor"
        assert principal.email_verified is False


# --- refused tokens -----------------------------------------------------------------------


class TestRefused:
    @pytest.mark.parametrize("authorization", [None, "", "  "])
    async def test_a_missing_token_is_a_401_with_a_bare_challenge(
        self, authorizer: JwtAuthorizer, authorization: str | None
    ) -> None:
        # Given no token
        # When a user route is called
        denied = await _denied(authorizer, authorization)
        # Then 401 Unauthorized, challenging for a bearer token
        assert (denied.status, denied.message, denied.challenge) == (401, "Unauthorized", "Bearer")

    @pytest.mark.parametrize("authorization", ["Bearer", "Bearer ", "bearer   "])
    async def test_a_bare_scheme_is_a_401(
        self, authorizer: JwtAuthorizer, authorization: str
    ) -> None:
        # Given the scheme name alone
        # When a user route is called
        # Then 401 Unauthorized (the word is no token)
        assert (await _denied(authorizer, authorization)).status == 401

    async def test_an_expired_token_is_a_401(
        self, authorizer: JwtAuthorizer, issuer: Issuer
    ) -> None:
        # Given a token that expired a second ago
        now = int(time.time())
        token = issuer.token(iat=now - 901, nbf=now - 901, exp=now - 1)
        # When it is presented
        denied = await _denied(authorizer, token)
        # Then 401 invalid_token, saying why
        assert (denied.status, denied.message) == (401, "Unauthorized")
        assert 'error="invalid_token"' in denied.challenge
        assert "expired" in denied.challenge

    async def test_a_token_not_valid_yet_is_a_401(
        self, authorizer: JwtAuthorizer, issuer: Issuer
    ) -> None:
        # Given a token valid only from a minute from now
        token = issuer.token(nbf=int(time.time()) + 60)
        # When it is presented
        # Then 401
        assert "not valid yet" in (await _denied(authorizer, token)).challenge

    @pytest.mark.parametrize(
        ("overrides", "reason"),
        [
            ({"iss": "https://evil.example"}, "issuer"),
            ({"iss": ISSUER + "/"}, "issuer"),
            ({"aud": "another-api"}, "audience"),
            ({"aud": REMOVED}, "audience"),
            ({"aud": ["a", "b"]}, "audience"),
            ({"exp": REMOVED}, "exp"),
        ],
    )
    async def test_wrong_issuer_or_audience_is_a_401(
        self,
        authorizer: JwtAuthorizer,
        issuer: Issuer,
        overrides: dict[str, Any],
        reason: str,
    ) -> None:
        # Given a properly signed token with a wrong or missing claim
        token = issuer.token(**overrides)
        # When it is presented
        denied = await _denied(authorizer, token)
        # Then 401, naming the claim
        assert denied.status == 401
        assert reason in denied.challenge

    async def test_alg_none_is_a_401(self, authorizer: JwtAuthorizer) -> None:
        # Given an unsigned token naming the issuer's key
        token = _unsigned({"alg": "none", "typ": "JWT", "kid": KID}, _valid_claims()) + "."
        # When it is presented
        denied = await _denied(authorizer, token)
        # Then 401: the algorithm is not supported
        assert denied.status == 401
        assert "algorithm" in denied.challenge

    async def test_hs256_keyed_with_the_public_key_is_a_401(
        self, authorizer: JwtAuthorizer, issuer: Issuer
    ) -> None:
        # Given the key-confusion forgery: HMAC keyed with the issuer's public key
        pem = issuer.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        unsigned = _unsigned({"alg": "HS256", "typ": "JWT", "kid": KID}, _valid_claims())
        signature = hmac.new(pem, unsigned.encode(), hashlib.sha256).digest()
        # When it is presented
        denied = await _denied(authorizer, f"{unsigned}.{_b64(signature)}")
        # Then 401
        assert denied.status == 401
        assert "algorithm" in denied.challenge

    async def test_an_unknown_kid_is_a_401(self, authorizer: JwtAuthorizer, issuer: Issuer) -> None:
        # Given a token naming a key the issuer does not publish
        # When it is presented
        denied = await _denied(authorizer, issuer.token(kid="key-2"))
        # Then 401
        assert denied.status == 401
        assert "kid" in denied.challenge

    async def test_a_token_without_kid_is_a_401(
        self, authorizer: JwtAuthorizer, issuer: Issuer
    ) -> None:
        # Given a token without a kid header
        token = jwt.encode(_valid_claims(), issuer.key, algorithm="ES256")
        # When it is presented
        # Then 401
        assert "no kid" in (await _denied(authorizer, token)).challenge

    async def test_another_key_under_the_published_kid_is_a_401(
        self, authorizer: JwtAuthorizer, issuer: Issuer
    ) -> None:
        # Given a token signed by another key that claims the issuer's kid
        token = issuer.token(key=ec.generate_private_key(ec.SECP256R1()))
        # When it is presented
        # Then 401: the signature does not verify
        assert "signature" in (await _denied(authorizer, token)).challenge

    async def test_an_algorithm_the_key_is_not_for_is_a_401(
        self, authorizer: JwtAuthorizer, issuer: Issuer
    ) -> None:
        # Given an ES384 token naming the issuer's ES256 key
        token = jwt.encode(
            _valid_claims(),
            ec.generate_private_key(ec.SECP384R1()),
            algorithm="ES384",
            headers={"kid": KID},
        )
        # When it is presented
        # Then 401
        assert (await _denied(authorizer, token)).status == 401

    @pytest.mark.parametrize("token", ["garbage", "a.b.c", "Bearer a.b"])
    async def test_a_malformed_token_is_a_401(self, authorizer: JwtAuthorizer, token: str) -> None:
        # Given something that is not a JWT
        # When it is presented
        # Then 401
        assert (await _denied(authorizer, token)).status == 401

    async def test_a_role_route_without_the_scope_is_a_403(
        self, authorizer: JwtAuthorizer, issuer: Issuer
    ) -> None:
        # Given a valid mentee token
        token = issuer.token(scope="mentee mentor")
        # When the admin route is called
        denied = await _denied(authorizer, token, ADMIN)
        # Then 403 Forbidden with an insufficient_scope challenge naming the role
        assert (denied.status, denied.message) == (403, "Forbidden")
        assert 'scope="admin"' in denied.challenge
        assert 'error="insufficient_scope"' in denied.challenge

    async def test_an_unreachable_issuer_refuses_every_token(self, issuer: Issuer) -> None:
        # Given an issuer whose discovery document fails
        transport = httpx.MockTransport(lambda request: httpx.Response(503))
        async with httpx.AsyncClient(transport=transport) as client:
            authorizer = JwtAuthorizer(ISSUER, [AUDIENCE], JwksCache(ISSUER, client))
            # When a valid token is presented
            denied = await _denied(authorizer, issuer.token())
        # Then 401 (no key to verify with), not an exception
        assert denied.status == 401

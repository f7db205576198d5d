"""The users API end to end: httpx through the local HTTP API gateway, as a client calls it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import uuid

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from local_runtime import LocalPlatform
from local_runtime.config import REPO_ROOT
from local_runtime.mailbox import latest_token
from lwm_core.tokens import KmsKeyRing
from tests.stack import PASSWORD, Account, boto, register, unique_email

pytestmark = pytest.mark.stack


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    assert body["code"] == code and body["status"] == status
    return body


def _claims(local: LocalPlatform, account: Account, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": local.endpoints.issuer,
        "aud": local.endpoints.audience,
        "sub": account.id,
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "roles": ["mentee"],
        "scope": "mentee",
        "active_role": "mentee",
        "email_verified": True,
    }
    claims.update(overrides)
    return claims


def _platform_keyring(local: LocalPlatform) -> KmsKeyRing:
    key_id = local.endpoints.resources.signing_keys["access-token"]
    return KmsKeyRing([key_id], kms=boto(local, "kms"))


@pytest.fixture
def mentee(api: httpx.Client, aws_endpoint: str) -> Account:
    return register(api, aws_endpoint, prefix="mentee")


# --- tokens at the edge ---------------------------------------------------------------


def test_a_valid_token_reaches_the_function(api: httpx.Client, mentee: Account) -> None:
    # When the signed-in mentee reads /me
    me = api.get("/me", headers=mentee.auth)
    # Then the account comes back
    assert me.status_code == 200
    assert me.json()["id"] == mentee.id and me.json()["roles"] == ["mentee"]


def test_an_expired_token_is_refused(
    api: httpx.Client, local: LocalPlatform, mentee: Account
) -> None:
    # Given a token signed by the platform's own KMS key that expired a minute ago
    past = int(time.time()) - 960
    token = _platform_keyring(local).sign(
        _claims(local, mentee, iat=past, nbf=past, exp=past + 900)
    )
    # When it is presented / Then the gateway refuses it before any function runs
    response = api.get("/me", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}
    assert "expired" in response.headers["www-authenticate"]
    # And the same claims, unexpired, are accepted (the test can fail for the right reason only)
    fresh = _platform_keyring(local).sign(_claims(local, mentee))
    assert api.get("/me", headers={"authorization": f"Bearer {fresh}"}).status_code == 200


def test_a_token_signed_by_another_key_is_refused(
    api: httpx.Client, local: LocalPlatform, mentee: Account
) -> None:
    # Given a token with the platform's kid but signed by a key the attacker made
    kid = api.get("/.well-known/jwks.json").json()["keys"][0]["kid"]
    forged = jwt.encode(
        _claims(local, mentee),
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={"kid": kid},
    )
    # When it is presented / Then it is refused
    response = api.get("/me", headers={"authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert "signature" in response.headers["www-authenticate"]


def test_alg_none_and_hs256_tokens_are_refused(
    api: httpx.Client, local: LocalPlatform, mentee: Account
) -> None:
    # Given an unsigned token and one "signed" with HMAC over the public key
    jwk = api.get("/.well-known/jwks.json").json()["keys"][0]
    claims = _claims(local, mentee)

    def b64(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': jwk['kid']})}.{b64(claims)}."
    public_pem = (
        jwt.PyJWK(jwk).key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    )
    header = b64({"alg": "HS256", "typ": "JWT", "kid": jwk["kid"]})
    signing_input = f"{header}.{b64(claims)}"
    import hashlib
    import hmac

    mac = hmac.new(public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    hs256 = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    # When each is presented / Then both are refused at the edge
    for token in (unsigned, hs256):
        response = api.get("/me", headers={"authorization": f"Bearer {token}"})
        assert response.status_code == 401, token
        assert "algorithm" in response.headers["www-authenticate"]


def test_missing_and_garbage_tokens_are_refused(api: httpx.Client) -> None:
    assert api.get("/me").status_code == 401
    assert api.get("/me", headers={"authorization": "Bearer not.a.jwt"}).status_code == 401
    assert api.get("/me", headers={"authorization": "Basic Zm9vOmJhcg=="}).status_code == 401


# --- authorization -------------------------------------------------------------------


def test_a_mentee_cannot_edit_or_read_another_profile(
    api: httpx.Client, aws_endpoint: str, mentee: Account
) -> None:
    # Given another account
    other = register(api, aws_endpoint, prefix="other")
    # When the mentee edits and reads it by id
    edit = api.patch(f"/users/{other.id}", json={"display_name": "Mallory"}, headers=mentee.auth)
    read = api.get(f"/users/{other.id}", headers=mentee.auth)
    # Then both are forbidden, and the other account is untouched
    _problem(edit, 403, "not_your_account")
    _problem(read, 403, "not_your_account")
    assert api.get("/me", headers=other.auth).json()["display_name"] == "Other"


def test_admin_routes_need_the_admin_role_granted_by_the_operator(
    api: httpx.Client, local: LocalPlatform, aws_endpoint: str
) -> None:
    # Given an account without the admin role
    account = register(api, aws_endpoint, prefix="operator")
    # When it lists users / Then the gateway refuses the missing scope
    denied = api.get("/admin/users", headers=account.auth)
    assert denied.status_code == 403 and denied.json() == {"message": "Forbidden"}
    # And a mentee cannot give itself admin
    _problem(
        api.post("/me/roles", json={"role": "admin"}, headers=account.auth),
        422,
        "validation_failed",
    )
    # When the operator CLI grants admin and the account signs in again
    env = {
        **os.environ,
        "DATABASE_URL": str(local.endpoints.database_url),
        "PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'layers' / 'core'}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "functions.users.cli", "grant-admin", account.email],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    login = api.post("/auth/login", json={"email": account.email, "password": PASSWORD})
    admin = {"authorization": f"Bearer {login.json()['access_token']}"}
    # Then the admin lists accounts, newest first, with a cursor
    listed = api.get("/admin/users", params={"limit": 2}, headers=admin)
    assert listed.status_code == 200, listed.text
    assert len(listed.json()["items"]) == 2 and listed.json()["next_cursor"]
    # And may read another account by id
    assert api.get(f"/users/{account.id}", headers=admin).status_code == 200


def test_dual_role_switch(api: httpx.Client, aws_endpoint: str, mentee: Account) -> None:
    # Given a mentee who adds the mentor role
    added = api.post("/me/roles", json={"role": "mentor"}, headers=mentee.auth)
    assert added.status_code == 200 and added.json()["roles"] == ["mentee", "mentor"]
    # When it switches its active role
    switched = api.post("/auth/switch-role", json={"role": "mentor"}, headers=mentee.auth)
    # Then the new token acts as mentor and holds both roles
    assert switched.status_code == 200, switched.text
    claims = jwt.decode(switched.json()["access_token"], options={"verify_signature": False})
    assert claims["active_role"] == "mentor" and claims["roles"] == ["mentee", "mentor"]
    # And switching to a role not held is refused
    _problem(
        api.post("/auth/switch-role", json={"role": "admin"}, headers=mentee.auth),
        403,
        "role_not_held",
    )


# --- bad input ------------------------------------------------------------------------


def test_malformed_json_unknown_fields_and_wrong_types(api: httpx.Client, mentee: Account) -> None:
    headers = {**mentee.auth, "content-type": "application/json"}
    _problem(api.patch("/me", content=b'{"display_name": ', headers=headers), 400, "malformed_json")
    unknown = _problem(
        api.patch("/me", json={"is_admin": True}, headers=mentee.auth), 422, "validation_failed"
    )
    assert unknown["errors"][0]["loc"] == ["body", "is_admin"]  # type: ignore[index]
    wrong = _problem(
        api.patch("/me", json={"display_name": 42}, headers=mentee.auth), 422, "validation_failed"
    )
    assert wrong["errors"][0]["loc"] == ["body", "display_name"]  # type: ignore[index]
    _problem(
        api.patch("/me", content=b"name=x", headers={**mentee.auth, "content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    )


def test_oversized_bodies_get_413(api: httpx.Client, mentee: Account) -> None:
    # A JSON body over the platform's 64 KiB limit: the function answers problem+json
    big = {"display_name": "x", "mentee_profile": {"goals": "g" * 70_000}}
    _problem(api.patch("/me", json=big, headers=mentee.auth), 413, "payload_too_large")
    # A body over API Gateway's 10 MB payload limit: the gateway answers before the function
    huge = api.post(
        "/auth/login",
        content=b"{" + b" " * (10 * 1024 * 1024 + 10) + b"}",
        headers={"content-type": "application/json"},
    )
    assert huge.status_code == 413
    assert huge.json() == {"message": "Request Entity Too Large"}


def test_unknown_routes_are_the_gateways_404(api: httpx.Client) -> None:
    response = api.get("/no/such/route")
    assert response.status_code == 404 and response.json() == {"message": "Not Found"}
    assert api.put("/me").status_code == 404  # a declared path, an undeclared method


# --- sessions -----------------------------------------------------------------------


def test_refresh_rotates_and_reuse_revokes_the_session(api: httpx.Client, mentee: Account) -> None:
    # Given a refresh token rotated once
    rotated = api.post("/auth/refresh", json={"refresh_token": mentee.refresh_token})
    assert rotated.status_code == 200
    newest = rotated.json()["refresh_token"]
    assert newest != mentee.refresh_token
    # When the old one is replayed
    replay = api.post("/auth/refresh", json={"refresh_token": mentee.refresh_token})
    # Then it is refused, and the newest token of the family is dead too
    _problem(replay, 401, "refresh_token_reused")
    assert api.post("/auth/refresh", json={"refresh_token": newest}).status_code == 401


def test_logout_revokes_the_refresh_token(api: httpx.Client, mentee: Account) -> None:
    assert api.post("/auth/logout", json={"refresh_token": mentee.refresh_token}).status_code == 204
    _problem(
        api.post("/auth/refresh", json={"refresh_token": mentee.refresh_token}),
        401,
        "invalid_refresh_token",
    )


def test_login_brute_force_is_slowed_down(api: httpx.Client, mentee: Account) -> None:
    # When someone guesses the mentee's password over and over
    statuses = [
        api.post(
            "/auth/login", json={"email": mentee.email, "password": f"guess-{n}-xxxx"}
        ).status_code
        for n in range(7)
    ]
    # Then after five failures the account answers 429 with Retry-After
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429, 429]
    limited = api.post("/auth/login", json={"email": mentee.email, "password": PASSWORD})
    body = _problem(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) > 0 and body["detail"]


# --- email flows ------------------------------------------------------------------------


def test_unverified_mentors_are_not_listed_until_they_verify(
    api: httpx.Client, aws_endpoint: str
) -> None:
    # Given an unverified mentor with a complete profile and a unique skill
    skill = f"skill{uuid.uuid4().hex[:8]}"
    mentor = register(api, aws_endpoint, roles=("mentor",), verify=False, prefix="mentor")
    profile = {
        "headline": "Unverified mentor",
        "skills": [skill],
        "languages": ["en"],
        "hourly_rate_minor": 3000,
        "currency": "EUR",
    }
    patched = api.patch("/me", json={"mentor_profile": profile}, headers=mentor.auth)
    assert patched.status_code == 200 and patched.json()["listed_as_mentor"] is False
    assert api.get("/mentors", params={"skill": skill}).json()["items"] == []
    # When the emailed link is followed
    token = latest_token(aws_endpoint, mentor.email, "confirm")
    assert api.get("/auth/verify-email", params={"token": token}).status_code == 200
    # Then the mentor is listed, and the link cannot be used twice
    assert [m["id"] for m in api.get("/mentors", params={"skill": skill}).json()["items"]] == [
        mentor.id
    ]
    _problem(api.get("/auth/verify-email", params={"token": token}), 400, "invalid_token")


def test_password_reset_by_emailed_token_signs_out_everywhere(
    api: httpx.Client, aws_endpoint: str, mentee: Account
) -> None:
    # When the mentee asks for a reset, and an unknown address does too
    assert api.post("/auth/password/forgot", json={"email": mentee.email}).status_code == 202
    unknown = api.post("/auth/password/forgot", json={"email": unique_email("nobody")})
    assert unknown.status_code == 202  # the same answer: nothing is revealed
    token = latest_token(aws_endpoint, mentee.email, "reset")
    assert token
    reset = api.post(
        "/auth/password/reset", json={"token": token, "new_password": "a brand new passphrase 9"}
    )
    # Then the new password works, the old one and the old session do not
    assert reset.status_code == 200, reset.text
    new_login = api.post(
        "/auth/login", json={"email": mentee.email, "password": "a brand new passphrase 9"}
    )
    assert new_login.status_code == 200
    old_login = api.post("/auth/login", json={"email": mentee.email, "password": PASSWORD})
    _problem(old_login, 401, "invalid_credentials")
    assert (
        api.post("/auth/refresh", json={"refresh_token": mentee.refresh_token}).status_code == 401
    )


# --- discovery ----------------------------------------------------------------------------


def test_discovery_filters_sorts_and_pages(api: httpx.Client, aws_endpoint: str) -> None:
    # Given five verified mentors sharing a unique skill, prices in two currencies
    skill = f"skill{uuid.uuid4().hex[:8]}"
    prices = [("EUR", 5000), ("EUR", 2000), ("USD", 1000), ("EUR", 9000), ("EUR", 3000)]
    for currency, rate in prices:
        mentor = register(api, aws_endpoint, roles=("mentor",), prefix="mentor")
        profile = {
            "headline": f"{rate} {currency}",
            "skills": [skill, "python"],
            "languages": ["en", "pt"],
            "hourly_rate_minor": rate,
            "currency": currency,
        }
        assert api.patch("/me", json={"mentor_profile": profile}, headers=mentor.auth).is_success
    # When EUR mentors up to 60.00 are listed cheapest first, two per page
    params = {
        "skill": skill,
        "language": "pt",
        "currency": "eur",
        "max_price": 6000,
        "sort": "price_asc",
        "limit": 2,
    }
    seen: list[int] = []
    cursor = None
    while True:
        page = api.get("/mentors", params={**params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        seen += [m["hourly_rate"]["amount_minor"] for m in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    # Then exactly the matching EUR prices come back, in order, across pages
    assert seen == [2000, 3000, 5000]
    # And price filters without a currency are refused rather than compared across currencies
    _problem(api.get("/mentors", params={"max_price": 100}), 400, "currency_required")
    _problem(api.get("/mentors", params={"cursor": "garbage"}), 400, "invalid_cursor")


# --- GDPR -----------------------------------------------------------------------------------


def test_export_then_delete_the_account(api: httpx.Client, aws_endpoint: str) -> None:
    # Given an account with a mentee profile
    account = register(api, aws_endpoint, prefix="leaving")
    api.patch("/me", json={"mentee_profile": {"goals": "learn rust"}}, headers=account.auth)
    # When it exports its data
    export = api.get("/me/export", headers=account.auth)
    assert export.status_code == 200
    assert export.json()["account"]["email"] == account.email
    assert export.json()["mentee_profile"]["goals"] == "learn rust"
    # And deletes the account
    assert api.delete("/me", headers=account.auth).status_code == 204
    # Then it cannot sign in or refresh, and its email is free again
    gone = api.post("/auth/login", json={"email": account.email, "password": PASSWORD})
    _problem(gone, 401, "invalid_credentials")
    assert (
        api.post("/auth/refresh", json={"refresh_token": account.refresh_token}).status_code == 401
    )
    _problem(api.get("/me", headers=account.auth), 401, "account_deleted")
    again = api.post(
        "/auth/register",
        json={
            "email": account.email,
            "password": PASSWORD,
            "display_name": "Back",
            "timezone": "UTC",
        },
    )
    assert again.status_code == 201

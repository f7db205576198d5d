"""The users handler invoked with API Gateway v2 events against moto server and PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import uuid

import psycopg
import pytest
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model

from functions.users import service
from local_runtime import LocalPlatform
from local_runtime.mailbox import latest_token
from tests.events import claims_for, http_event, sample
from tests.integration.conftest import Invoke, Reply
from tests.stack import boto

pytestmark = pytest.mark.stack
PASSWORD = "integration passphrase 7"


def _register_event(
    email: str, *, name: str = "Integration", timezone: str = "UTC", **extra: object
) -> dict[str, object]:
    """The API Gateway event of a registration with the suite's password."""
    body = {"email": email, "password": PASSWORD, "display_name": name, "timezone": timezone}
    return http_event("POST", "/auth/register", body={**body, **extra})


def _register(invoke: Invoke, aws: str, roles: tuple[str, ...] = ("mentee",)) -> tuple[str, str]:
    email = f"int-{uuid.uuid4().hex[:10]}@example.com"
    reply = invoke(_register_event(email, timezone="Asia/Tokyo", roles=list(roles)))
    assert reply.status == 201, reply.body
    token = latest_token(aws, email, "confirm")
    assert token
    verified = invoke(http_event("GET", "/auth/verify-email", query={"token": token}))
    assert verified.status == 200, verified.body
    return reply.body["user"]["id"], email


def _login(invoke: Invoke, email: str) -> Reply:
    return invoke(http_event("POST", "/auth/login", body={"email": email, "password": PASSWORD}))


def test_event_samples_are_valid_api_gateway_v2_events() -> None:
    # Given the samples every integration test builds on / Then Powertools' model accepts them
    for name in ("http_api_v2_jwt", "http_api_v2_public"):
        APIGatewayProxyEventV2Model.model_validate(sample(name))
    APIGatewayProxyEventV2Model.model_validate(
        http_event("PATCH", "/me", body={"display_name": "x"}, claims=claims_for("u1"))
    )


def test_register_verify_login_and_read_me(invoke: Invoke, aws_endpoint: str) -> None:
    # Given a registered and verified account
    user_id, email = _register(invoke, aws_endpoint)
    # When it signs in and reads /me with the claims the authorizer would pass
    login = _login(invoke, email)
    me = invoke(http_event("GET", "/me", claims=claims_for(user_id)))
    # Then tokens are issued and the account is verified
    assert login.status == 200
    assert set(login.body) >= {"access_token", "refresh_token", "expires_in", "active_role"}
    assert login.body["expires_in"] == 900
    assert me.status == 200
    assert me.body["id"] == user_id and me.body["email"] == email
    assert me.body["email_verified"] is True


def test_accounts_live_in_postgres_with_argon2id_hashes(
    invoke: Invoke, aws_endpoint: str, local: LocalPlatform
) -> None:
    # Given a registered account
    user_id, email = _register(invoke, aws_endpoint)
    # When its row is read straight from PostgreSQL
    url = str(local.endpoints.database_url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT email, password_hash, email_verified_at FROM users.accounts WHERE id = %s",
            (user_id,),
        ).fetchone()
    # Then the password is stored only as an argon2id hash
    assert row is not None
    assert row[0] == email
    assert row[1].startswith("$argon2id$") and PASSWORD not in row[1]
    assert row[2] is not None


def test_refresh_tokens_are_stored_hashed_and_reuse_revokes_the_family(
    invoke: Invoke, aws_endpoint: str, local: LocalPlatform
) -> None:
    # Given a session
    _, email = _register(invoke, aws_endpoint)
    first = _login(invoke, email).body["refresh_token"]
    secret = first.partition(".")[2]
    # Then DynamoDB holds the token's hash, never the token
    table = local.endpoints.resources.tables["auth"]
    dynamo = boto(local, "dynamodb")
    digest = hashlib.sha256(secret.encode()).hexdigest()
    item = dynamo.get_item(TableName=table, Key={"pk": {"S": f"RT#{digest}"}, "sk": {"S": "RT"}})
    assert "Item" in item
    scanned = str(dynamo.scan(TableName=table)["Items"])
    assert secret not in scanned
    # When the token is rotated, and the spent one presented again
    second = invoke(http_event("POST", "/auth/refresh", body={"refresh_token": first}))
    reused = invoke(http_event("POST", "/auth/refresh", body={"refresh_token": first}))
    newest = invoke(
        http_event("POST", "/auth/refresh", body={"refresh_token": second.body["refresh_token"]})
    )
    # Then the reuse is refused and the whole family is revoked
    assert second.status == 200
    assert (reused.status, reused.code) == (401, "refresh_token_reused")
    assert newest.status == 401


def test_duplicate_email_is_a_409_that_reveals_nothing_else(
    invoke: Invoke, aws_endpoint: str
) -> None:
    # Given an account
    _, email = _register(invoke, aws_endpoint)
    # When someone registers the same address (in another case)
    reply = invoke(_register_event(email.upper(), name="Someone", password="another phrase 99"))
    # Then it is a conflict with a stable code and no account data
    assert (reply.status, reply.code) == (409, "email_taken")
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert "user" not in reply.body


def test_a_mentee_cannot_edit_another_account(invoke: Invoke, aws_endpoint: str) -> None:
    # Given two accounts
    alice, _ = _register(invoke, aws_endpoint)
    bob, _ = _register(invoke, aws_endpoint)
    # When Alice patches Bob's account by id
    reply = invoke(
        http_event(
            "PATCH",
            f"/users/{bob}",
            route_key="PATCH /users/{user_id}",
            path_parameters={"user_id": bob},
            body={"display_name": "Hacked"},
            claims=claims_for(alice),
        )
    )
    # Then it is forbidden, and Bob's name is unchanged
    assert (reply.status, reply.code) == (403, "not_your_account")
    bob_me = invoke(http_event("GET", "/me", claims=claims_for(bob)))
    assert bob_me.body["display_name"] == "Integration"


def test_a_verified_complete_mentor_is_listed_and_found(invoke: Invoke, aws_endpoint: str) -> None:
    # Given a verified mentor with a rare skill and a complete profile
    skill = f"skill{uuid.uuid4().hex[:8]}"
    mentor_id, _ = _register(invoke, aws_endpoint, roles=("mentor",))
    profile = {
        "mentor_profile": {
            "headline": "Integration mentor",
            "skills": [skill],
            "languages": ["ja"],
            "hourly_rate_minor": 4200,
            "currency": "JPY",
        }
    }
    patched = invoke(
        http_event("PATCH", "/me", body=profile, claims=claims_for(mentor_id, ("mentor",)))
    )
    # When anyone searches for the skill, and opens the public profile
    found = invoke(http_event("GET", "/mentors", query={"skill": skill}))
    public = invoke(
        http_event(
            "GET",
            f"/mentors/{mentor_id}",
            route_key="GET /mentors/{mentor_id}",
            path_parameters={"mentor_id": mentor_id},
        )
    )
    # Then the mentor is listed, and the public view carries no private data
    assert patched.status == 200 and patched.body["listed_as_mentor"] is True
    assert [m["id"] for m in found.body["items"]] == [mentor_id]
    assert public.status == 200
    assert public.body["hourly_rate"] == {"amount_minor": 4200, "currency": "JPY"}
    assert "email" not in public.body


def test_bad_bodies_are_problem_json_4xx(invoke: Invoke) -> None:
    # When bodies are malformed, have unknown fields or wrong types
    malformed = invoke(http_event("POST", "/auth/login", raw_body='{"email": '))
    unknown = invoke(
        http_event("POST", "/auth/login", body={"email": "a@b.co", "password": "x", "admin": True})
    )
    wrong_type = invoke(http_event("POST", "/auth/login", body={"email": 5, "password": []}))
    # Then each is a 4xx with a stable code and field details where they apply
    assert (malformed.status, malformed.code) == (400, "malformed_json")
    assert (unknown.status, unknown.code) == (422, "validation_failed")
    assert ["body", "admin"] in [e["loc"] for e in unknown.body["errors"]]
    assert (wrong_type.status, wrong_type.code) == (422, "validation_failed")
    assert {tuple(e["loc"]) for e in wrong_type.body["errors"]} >= {
        ("body", "email"),
        ("body", "password"),
    }


def test_a_database_outage_is_a_503_and_changes_nothing(
    invoke: Invoke, aws_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the database becomes unreachable (a closed port)
    email = f"outage-{uuid.uuid4().hex[:8]}@example.com"
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://app@127.0.0.1:9/lwm")
    for cached in (service.settings, service.deps, service.limiter):
        cached.cache_clear()
    try:
        # When someone registers
        reply = invoke(_register_event(email, name="Outage"))
    finally:
        monkeypatch.undo()
        for cached in (service.settings, service.deps, service.limiter):
            cached.cache_clear()
    # Then the answer is a retryable 503, no mail went out, and a retry succeeds
    assert (reply.status, reply.code) == (503, "dependency_unavailable")
    assert reply.headers.get("retry-after")
    assert latest_token(aws_endpoint, email, "confirm") is None
    assert os.environ["DATABASE_URL"] != "postgresql+psycopg://app@127.0.0.1:9/lwm"
    retried = invoke(_register_event(email, name="Outage"))
    assert retried.status == 201, retried.body


def test_a_mail_outage_keeps_the_registration(
    invoke: Invoke, aws_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given SES is unreachable (the users function's SES endpoint is a closed port)
    from lwm_core import aws

    email = f"mailout-{uuid.uuid4().hex[:8]}@example.com"
    monkeypatch.setenv("AWS_ENDPOINT_URL_SES", "http://127.0.0.1:9")
    for cached in (aws.client, aws._session, service.deps):
        cached.cache_clear()
    try:
        # When someone registers
        reply = invoke(_register_event(email, name="M"))
    finally:
        monkeypatch.undo()
        for cached in (aws.client, aws._session, service.deps):
            cached.cache_clear()
    # Then the account is accepted (no mail went out) and can sign in
    assert reply.status == 201, reply.body
    assert latest_token(aws_endpoint, email, "confirm") is None
    login = _login(invoke, email)
    assert login.status == 200
    # And once mail works again, a new link can be asked for and used
    user_id = reply.body["user"]["id"]
    resend = invoke(
        http_event("POST", "/auth/verify-email/resend", claims=claims_for(user_id, verified=False))
    )
    assert resend.status == 202
    token = latest_token(aws_endpoint, email, "confirm")
    assert token
    assert invoke(http_event("GET", "/auth/verify-email", query={"token": token})).status == 200

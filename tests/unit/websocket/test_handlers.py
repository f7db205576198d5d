"""The WebSocket functions' rules: authorizing $connect, connection records, $default answers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from blueprint.platform import CONNECTIONS_TABLE
from lwm_core.connections import ConnectionItem, DynamoConnectionStore
from lwm_core.dynamo import bind
from lwm_core.errors import UnauthorizedError
from lwm_core.tokens import KmsKeyRing, TokenPolicy, TokenVerifier
from websocket_handlers import authorizer, connections, default

ISSUER = "https://api.test.linkwithmentor.dev"
AUDIENCE = "linkwithmentor-api"
REGION = "us-east-1"
ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/$connect"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SES"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


@pytest.fixture
def keyring(aws: None) -> KmsKeyRing:
    kms = boto3.client("kms", region_name=REGION)
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    return KmsKeyRing([key], kms=kms)


def _token(ring: KmsKeyRing, **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "01USER",
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "roles": ["mentee", "mentor"],
        "active_role": "mentee",
        "email_verified": True,
    }
    claims.update(overrides)
    return ring.sign(claims)


def _connect_event(
    query: dict[str, str] | None = None, protocol: str | None = None
) -> dict[str, Any]:
    headers = {"Host": "abc123.execute-api.us-east-1.amazonaws.com"}
    if protocol:
        headers["Sec-WebSocket-Protocol"] = protocol
    return {
        "type": "REQUEST",
        "methodArn": ARN,
        "headers": headers,
        "queryStringParameters": query,
        "requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "connectionId": "c1="},
    }


class TestAuthorizer:
    def test_a_valid_token_in_the_query_is_allowed_with_the_user_in_the_context(
        self, keyring: KmsKeyRing
    ) -> None:
        verifier = TokenVerifier(TokenPolicy(ISSUER, AUDIENCE), keyring.jwks)
        answer = authorizer.authorize(_connect_event({"token": _token(keyring)}), verifier)
        statement = answer["policyDocument"]["Statement"][0]
        assert (statement["Effect"], statement["Resource"]) == ("Allow", ARN)
        assert answer["principalId"] == "01USER"
        assert answer["context"] == {
            "userId": "01USER",
            "roles": "mentee mentor",
            "activeRole": "mentee",
            "emailVerified": "true",
        }

    def test_the_bearer_subprotocol_carries_the_token_for_browsers(
        self, keyring: KmsKeyRing
    ) -> None:
        verifier = TokenVerifier(TokenPolicy(ISSUER, AUDIENCE), keyring.jwks)
        event = _connect_event(protocol=f"bearer, {_token(keyring)}")
        assert authorizer.authorize(event, verifier)["principalId"] == "01USER"

    @pytest.mark.parametrize(
        "overrides",
        [{"exp": int(time.time()) - 120}, {"aud": "another-api"}, {"iss": "https://evil.example"}],
    )
    def test_expired_or_foreign_tokens_are_refused(
        self, keyring: KmsKeyRing, overrides: dict[str, Any]
    ) -> None:
        verifier = TokenVerifier(TokenPolicy(ISSUER, AUDIENCE), keyring.jwks)
        with pytest.raises(UnauthorizedError):
            authorizer.authorize(_connect_event({"token": _token(keyring, **overrides)}), verifier)

    def test_no_token_is_refused(self, keyring: KmsKeyRing) -> None:
        verifier = TokenVerifier(TokenPolicy(ISSUER, AUDIENCE), keyring.jwks)
        with pytest.raises(UnauthorizedError):
            authorizer.authorize(_connect_event(protocol="chat.v1"), verifier)

    def test_token_of_prefers_the_query_string(self) -> None:
        event = _connect_event({"token": "from-query"}, protocol="bearer, from-header")
        assert authorizer.token_of(event) == "from-query"
        assert authorizer.token_of(_connect_event(protocol="bearer, from-header")) == "from-header"
        assert authorizer.token_of(_connect_event(protocol="bearer")) is None


@pytest.fixture
def store(aws: None) -> DynamoConnectionStore:
    dynamo = boto3.client("dynamodb", region_name=REGION)
    dynamo.create_table(
        TableName="connections",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": kind}
            for name, kind in CONNECTIONS_TABLE.attributes().items()
        ],
        KeySchema=[{"AttributeName": CONNECTIONS_TABLE.partition_key.name, "KeyType": "HASH"}],
    )
    bind(ConnectionItem, "connections", REGION)
    return DynamoConnectionStore()


def _event(
    event_type: str, connection_id: str, user_id: str = "u1", **extra: Any
) -> dict[str, Any]:
    route = {"CONNECT": "$connect", "DISCONNECT": "$disconnect"}.get(event_type, "$default")
    return {
        "requestContext": {
            "routeKey": route,
            "eventType": event_type,
            "connectionId": connection_id,
            "authorizer": {"principalId": user_id, "userId": user_id, "roles": "mentee"},
        },
        **extra,
    }


class TestConnections:
    def test_connect_records_every_device_and_disconnect_forgets_one(
        self, store: DynamoConnectionStore
    ) -> None:
        # Given a user connecting from two devices
        for cid in ("phone=", "laptop="):
            assert connections.on_connect(_event("CONNECT", cid), store)["statusCode"] == 200
        # Then both are found by user
        assert sorted(c.connection_id for c in store.of_user("u1")) == ["laptop=", "phone="]
        # When one disconnects / Then only the other remains
        connections.on_disconnect(_event("DISCONNECT", "phone="), store)
        assert [c.connection_id for c in store.of_user("u1")] == ["laptop="]
        assert store.get("phone=") is None

    def test_the_bearer_subprotocol_is_echoed_so_browsers_accept_the_handshake(
        self, store: DynamoConnectionStore
    ) -> None:
        event = _event("CONNECT", "b=", headers={"Sec-WebSocket-Protocol": "bearer, eyJ.x.y"})
        assert connections.on_connect(event, store)["headers"] == {
            "Sec-WebSocket-Protocol": "bearer"
        }
        assert "headers" not in connections.on_connect(_event("CONNECT", "c="), store)

    def test_records_expire_after_the_longest_connection(
        self, store: DynamoConnectionStore
    ) -> None:
        store.add("old=", "u2", now=time.time() - 3 * 3600)
        assert list(store.of_user("u2")) == []  # TTL deletion lags: never pushed to


class TestDefaultAnswers:
    def test_malformed_json_is_answered_not_dropped(self) -> None:
        assert default.answer("{nope")["code"] == "malformed_json"
        assert default.answer(None)["code"] == "malformed_json"

    def test_a_message_needs_a_string_action(self) -> None:
        assert default.answer(json.dumps([1, 2]))["code"] == "invalid_message"
        assert default.answer(json.dumps({"action": 7}))["code"] == "invalid_message"

    def test_an_unknown_action_is_named_in_the_error(self) -> None:
        reply = default.answer(json.dumps({"action": "teleport"}))
        assert (reply["type"], reply["code"], reply["action"]) == (
            "error",
            "unknown_action",
            "teleport",
        )

    def test_ping_is_answered_with_pong_and_the_echo(self) -> None:
        reply = default.answer(json.dumps({"action": "ping", "echo": {"n": 1}}))
        assert reply["type"] == "pong" and reply["echo"] == {"n": 1}
        assert abs(reply["server_time_ms"] - time.time() * 1000) < 5000

"""The WebSocket API's Lambda events validate against Powertools' models, as AWS's do."""

from __future__ import annotations

import json

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayWebSocketEvent
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerResponseWebSocket,
)
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
)

from local_runtime.websocket_events import (
    API_ID,
    Handshake,
    PolicyError,
    authorizer_event,
    connect_event,
    disconnect_event,
    header_name,
    message_event,
    method_arn,
    new_id,
    read_policy,
    select_route,
)

AUTHORIZER = {"principalId": "user-1", "role": "mentor", "integrationLatency": 3}


@pytest.fixture
def handshake() -> Handshake:
    return Handshake(
        connection_id=new_id(),
        headers=(
            ("host", "127.0.0.1:3001"),
            ("user-agent", "pytest"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-protocol", "lwm.v1, token.abc"),
            ("x-tag", "a"),
            ("x-tag", "b"),
        ),
        query_string="token=good&room=1&room=2",
        source_ip="127.0.0.1",
    )


def test_ids_look_like_api_gateway_ids() -> None:
    # Given/When an id
    ident = new_id()
    # Then it is 16 base64 characters ending with "="
    assert len(ident) == 16 and ident.endswith("=")


def test_header_names_get_their_usual_spelling() -> None:
    assert header_name("sec-websocket-protocol") == "Sec-WebSocket-Protocol"
    assert header_name("x-amzn-trace-id") == "X-Amzn-Trace-Id"


def test_authorizer_event_is_a_websocket_request_authorizer_event(handshake: Handshake) -> None:
    # Given a handshake; When its authorizer event is built
    event = authorizer_event(handshake, new_id())
    # Then it has the REQUEST shape and Powertools reads it
    assert event["type"] == "REQUEST"
    assert (
        event["methodArn"] == f"arn:aws:execute-api:us-east-1:123456789012:{API_ID}/local/$connect"
    )
    parsed = APIGatewayAuthorizerRequestEvent(event)
    assert parsed.query_string_parameters["token"] == "good"
    assert event["multiValueQueryStringParameters"]["room"] == ["1", "2"]
    assert event["headers"]["Sec-WebSocket-Protocol"] == "lwm.v1, token.abc"
    context = event["requestContext"]
    assert (context["routeKey"], context["eventType"]) == ("$connect", "CONNECT")
    assert context["connectionId"] == handshake.connection_id
    assert parsed.parsed_arn.api_id == API_ID and parsed.parsed_arn.stage == "local"
    # And Powertools' WebSocket policy builder produces a policy we accept
    policy = APIGatewayAuthorizerResponseWebSocket.from_route_arn(
        event["methodArn"], "user-1", {"role": "mentor", "admin": False, "n": 2}
    )
    policy.allow_all_routes()
    decision = read_policy(policy.asdict(), event["methodArn"])
    assert decision.allowed
    assert decision.authorizer["role"] == "mentor"
    assert decision.authorizer["admin"] == "false" and decision.authorizer["n"] == "2"


def test_connect_event_validates(handshake: Handshake) -> None:
    event = connect_event(handshake, new_id(), AUTHORIZER)
    model = APIGatewayWebSocketConnectEventModel.model_validate(event)
    assert model.request_context.connection_id == handshake.connection_id
    assert event["headers"]["Sec-WebSocket-Protocol"] == "lwm.v1, token.abc"
    assert event["multiValueHeaders"]["X-Tag"] == ["a", "b"]
    assert event["queryStringParameters"] == {"token": "good", "room": "2"}
    assert event["requestContext"]["authorizer"] == AUTHORIZER
    assert event["isBase64Encoded"] is False
    assert APIGatewayWebSocketEvent(event).request_context.connection_id == handshake.connection_id


def test_connect_event_without_query_has_no_query_keys(handshake: Handshake) -> None:
    bare = Handshake(handshake.connection_id, handshake.headers, "", "127.0.0.1")
    event = connect_event(bare, new_id(), AUTHORIZER)
    assert "queryStringParameters" not in event
    APIGatewayWebSocketConnectEventModel.model_validate(event)


def test_message_event_validates(handshake: Handshake) -> None:
    body = json.dumps({"action": "ping", "n": 1})
    event = message_event(handshake, "ping", body, new_id(), new_id(), AUTHORIZER)
    model = APIGatewayWebSocketMessageEventModel.model_validate(event)
    assert model.request_context.route_key == "ping"
    assert model.request_context.event_type == "MESSAGE"
    assert model.body == body
    assert "headers" not in event  # AWS sends no headers after the handshake


def test_disconnect_event_validates(handshake: Handshake) -> None:
    event = disconnect_event(handshake, new_id(), AUTHORIZER, 1001, "Going away")
    model = APIGatewayWebSocketDisconnectEventModel.model_validate(event)
    assert model.request_context.disconnect_status_code == 1001
    assert model.request_context.disconnect_reason == "Going away"
    assert event["requestContext"]["authorizer"]["principalId"] == "user-1"


@pytest.mark.parametrize(
    ("body", "route"),
    [
        ('{"action": "ping"}', "ping"),
        ('{"action": "nope"}', "$default"),
        ('{"action": "$connect"}', "$default"),
        ('{"action": 3}', "$default"),
        ("[1, 2]", "$default"),
        ("not json {", "$default"),
        ("", "$default"),
    ],
)
def test_route_selection_on_request_body_action(body: str, route: str) -> None:
    assert select_route(body, ["ping", "echo"]) == route


def _policy(
    effect: str, resource: object, action: object = "execute-api:Invoke"
) -> dict[str, object]:
    return {
        "principalId": "p",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": action, "Effect": effect, "Resource": resource}],
        },
    }


@pytest.mark.parametrize(
    ("policy", "allowed"),
    [
        (_policy("Allow", method_arn()), True),
        (_policy("Allow", [f"arn:aws:execute-api:us-east-1:123456789012:{API_ID}/*"]), True),
        (_policy("Allow", "*", "execute-api:*"), True),
        (_policy("Allow", "arn:aws:execute-api:us-east-1:123456789012:other/*"), False),
        (_policy("Deny", method_arn()), False),
        (_policy("Allow", method_arn(), "s3:GetObject"), False),
    ],
)
def test_policy_decides_the_connect(policy: dict[str, object], allowed: bool) -> None:
    assert read_policy(policy, method_arn()).allowed is allowed


def test_explicit_deny_wins() -> None:
    policy = _policy("Allow", "*")
    statements = policy["policyDocument"]["Statement"]  # type: ignore[index]
    statements.append({"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": method_arn()})
    assert read_policy(policy, method_arn()).allowed is False


@pytest.mark.parametrize(
    "result",
    [
        None,
        {"policyDocument": {}},
        {"principalId": "p"},
        {**_policy("Allow", "*"), "context": {"a": {}}},
    ],
)
def test_malformed_policies_are_errors(result: object) -> None:
    with pytest.raises(PolicyError):
        read_policy(result, method_arn())

"""The WebSocket API: route selection on ``action``, a throttled stage with JSON access logs,
the ``$connect`` REQUEST authorizer, and invoke permissions scoped per route."""

from __future__ import annotations

import json
from typing import Any

import pytest

from . import cfn
from .conftest import RETENTION_DAYS, Synthesis

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]


def _ws_id(synth: Synthesis) -> str:
    assert synth.api.websocket is not None, "the platform declares a WebSocket API"
    return cfn.logical_id(synth.api.websocket.api)


def _stage(synth: Synthesis) -> dict[str, Any]:
    (stage,) = cfn.api_resources(synth.api_json, "AWS::ApiGatewayV2::Stage", _ws_id(synth)).values()
    return cfn.props(stage)


def test_api_selects_routes_on_the_action_field(synth: Synthesis) -> None:
    # Given the WebSocket API of the Api stack
    p = cfn.props(cfn.resources(synth.api_json, "AWS::ApiGatewayV2::Api")[_ws_id(synth)])
    # Then it routes each message by its `action`, under the stage's physical name
    assert p["ProtocolType"] == "WEBSOCKET"
    assert p["RouteSelectionExpression"] == "$request.body.action"
    assert p["Name"] == f"{synth.config.prefix}-realtime"


def test_stage_is_deployed_throttled_and_logs_every_event(synth: Synthesis) -> None:
    # Given the one stage of the WebSocket API
    p = _stage(synth)
    # Then it is named after the stage and deployed on every change
    assert p["StageName"] == synth.stage
    assert p["AutoDeploy"] is True
    # and it throttles connects and messages at the stage's WebSocket rate and burst
    assert p["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": synth.config.ws_throttle_rate,
        "ThrottlingBurstLimit": synth.config.ws_throttle_burst,
    }
    assert 0 < synth.config.ws_throttle_rate <= synth.config.ws_throttle_burst
    assert "RouteSettings" not in p, "per-route settings would bypass the default throttling"
    # and it writes JSON access logs to a log group of the stack with the stage's retention
    group_id = cfn.target(p["AccessLogSettings"]["DestinationArn"])
    group = cfn.resources(synth.api_json, "AWS::Logs::LogGroup")[str(group_id)]
    assert cfn.props(group)["RetentionInDays"] == RETENTION_DAYS[synth.stage]
    fields = json.loads(p["AccessLogSettings"]["Format"])
    for name in ("requestId", "connectionId", "eventType", "routeKey", "status"):
        assert fields[name] == f"$context.{name}", name


def test_account_lets_api_gateway_write_logs(synth: Synthesis) -> None:
    # Given the API Gateway account setting (WebSocket stages refuse access logs without it)
    (account,) = cfn.resources(synth.api_json, "AWS::ApiGateway::Account").values()
    role_id = str(cfn.target(cfn.props(account)["CloudWatchRoleArn"]))
    role = cfn.resources(synth.api_json, "AWS::IAM::Role")[role_id]
    # Then its role is assumed by API Gateway only, and both outlive the stack
    (trust,) = cfn.statements(cfn.props(role)["AssumeRolePolicyDocument"])
    assert trust["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert account["DeletionPolicy"] == role["DeletionPolicy"] == "Retain"
    # and the stage is created only once the setting exists
    (stage_id,) = cfn.api_resources(synth.api_json, "AWS::ApiGatewayV2::Stage", _ws_id(synth))
    stage = synth.api_json["Resources"][stage_id]
    (account_id,) = cfn.resources(synth.api_json, "AWS::ApiGateway::Account")
    assert account_id in stage.get("DependsOn", [])


def test_connect_authorizer_is_called_whatever_carries_the_token(synth: Synthesis) -> None:
    # Given the WebSocket API's authorizer
    (authorizer,) = cfn.api_resources(
        synth.api_json, "AWS::ApiGatewayV2::Authorizer", _ws_id(synth)
    ).values()
    p = cfn.props(authorizer)
    # Then it is a REQUEST authorizer without identity sources: the token comes in the
    # `token` query parameter or the Sec-WebSocket-Protocol header, and a listed source that
    # is missing would make API Gateway refuse the connect without calling the function
    assert p["AuthorizerType"] == "REQUEST"
    assert p.get("IdentitySource", []) == []


def test_functions_are_invoked_by_this_api_per_route(synth: Synthesis) -> None:
    websocket = synth.platform.websocket
    assert websocket is not None
    ws_id = _ws_id(synth)
    by_physical = {
        cfn.props(r).get("FunctionName"): k
        for k, r in cfn.resources(synth.api_json, "AWS::Lambda::Function").items()
    }
    function_ids = {
        fn.name: by_physical[f"{synth.config.prefix}-{fn.name}"]
        for fn in synth.platform.functions()
    }
    # Given the invoke permissions whose source is the WebSocket API
    granted = set()
    for permission in cfn.resources(synth.api_json, "AWS::Lambda::Permission").values():
        p = cfn.props(permission)
        source = cfn.flatten(p["SourceArn"])
        if ws_id not in cfn.referenced_ids(p["SourceArn"]):
            continue
        assert p["Principal"] == "apigateway.amazonaws.com"
        assert p["Action"] == "lambda:InvokeFunction"
        granted.add((cfn.target(p["FunctionName"]), source.split(f"${{{ws_id}}}/", 1)[1]))
    # Then each route's function may be invoked for that route only, the authorizer by it
    (authorizer_id,) = cfn.api_resources(synth.api_json, "AWS::ApiGatewayV2::Authorizer", ws_id)
    expected = {(function_ids[r.function], f"*{r.key}") for r in websocket.routes}
    expected.add((function_ids[websocket.authorizer], f"authorizers/${{{authorizer_id}}}"))
    assert granted == expected


def test_stack_outputs_the_wss_url(synth: Synthesis) -> None:
    # Given the Api stack's outputs
    url = cfn.flatten(synth.api_json["Outputs"]["WebSocketUrl"]["Value"])
    # Then clients find the stage's wss:// URL there
    assert url == (
        f"wss://${{{_ws_id(synth)}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/{synth.stage}"
    )

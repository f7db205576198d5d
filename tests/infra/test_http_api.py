"""The HTTP API: a throttled ``$default`` stage with JSON access logs, and the JWT authorizer."""

from __future__ import annotations

import json

import pytest

from . import cfn
from .conftest import RETENTION_DAYS, Synthesis

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]


def test_default_stage_is_throttled_and_logs_every_request(synth: Synthesis) -> None:
    # Given the one HTTP API of the Api stack and its stages
    apis = cfn.resources(synth.api_json, "AWS::ApiGatewayV2::Api")
    (api_id,) = [k for k, a in apis.items() if cfn.props(a)["ProtocolType"] == "HTTP"]
    assert cfn.props(apis[api_id])["Name"] == synth.config.prefix
    assert api_id == cfn.logical_id(synth.api.http.api)
    (stage,) = cfn.api_resources(synth.api_json, "AWS::ApiGatewayV2::Stage", api_id).values()
    p = cfn.props(stage)
    # Then the only stage is $default, deployed on every change
    assert p["StageName"] == "$default"
    assert p["AutoDeploy"] is True
    # and it throttles every route at the stage's rate and burst
    assert p["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": synth.config.throttle_rate,
        "ThrottlingBurstLimit": synth.config.throttle_burst,
    }
    assert 0 < synth.config.throttle_rate <= synth.config.throttle_burst
    assert "RouteSettings" not in p, "per-route settings would bypass the default throttling"
    # and it writes JSON access logs to a log group of the stack with the stage's retention
    group_id = cfn.target(p["AccessLogSettings"]["DestinationArn"])
    group = cfn.resources(synth.api_json, "AWS::Logs::LogGroup")[str(group_id)]
    assert cfn.props(group)["RetentionInDays"] == RETENTION_DAYS[synth.stage]
    fields = json.loads(p["AccessLogSettings"]["Format"])
    assert {"requestId", "ip", "routeKey", "status", "responseLatency"} <= set(fields)
    assert fields["requestId"] == "$context.requestId"


def test_jwt_authorizer_checks_the_platform_issuer_and_audience(synth: Synthesis) -> None:
    # Given the authorizers of the HTTP API
    api_id = cfn.logical_id(synth.api.http.api)
    authorizers = cfn.api_resources(synth.api_json, "AWS::ApiGatewayV2::Authorizer", api_id)
    (authorizer,) = authorizers.values()
    p = cfn.props(authorizer)
    # Then there is one, a JWT authorizer on the bearer token
    assert p["AuthorizerType"] == "JWT"
    assert p["IdentitySource"] == ["$request.header.Authorization"]
    # and it accepts the platform audience from the API's own issuer (no `issuer` context set)
    assert p["JwtConfiguration"] == {
        "Audience": [synth.config.audience],
        "Issuer": {"Fn::GetAtt": [api_id, "ApiEndpoint"]},
    }
    # and the stack tells operators that issuer
    assert synth.api_json["Outputs"]["Issuer"]["Value"] == {"Fn::GetAtt": [api_id, "ApiEndpoint"]}


def test_functions_are_invoked_by_this_api_only(synth: Synthesis) -> None:
    # Given the invoke permissions of the Api stack
    api_id = cfn.logical_id(synth.api.http.api)
    ws_id = cfn.logical_id(synth.api.websocket.api) if synth.api.websocket else None
    permissions = [
        p
        for p in cfn.resources(synth.api_json, "AWS::Lambda::Permission").values()
        if ws_id is None or ws_id not in cfn.referenced_ids(cfn.props(p).get("SourceArn"))
    ]
    served = {fn.name for _, fn in synth.platform.routes()}
    # Then one permission per function with routes lets API Gateway invoke it
    assert len(list(permissions)) == len(served)
    for permission in permissions:
        p = cfn.props(permission)
        assert p["Principal"] == "apigateway.amazonaws.com"
        assert p["Action"] == "lambda:InvokeFunction"
        # and only from this API
        assert f"${{{api_id}}}/" in cfn.flatten(p["SourceArn"]), p["SourceArn"]

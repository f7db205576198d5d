"""``blueprint`` is the one declaration: what CDK deploys and what the local runtime serves
is exactly what it declares, no more and no less."""

from __future__ import annotations

import json
import re
from typing import Any, get_args

import pytest

from blueprint.model import Auth, HttpMethod, Platform, Route
from blueprint.platform import PLATFORM
from local_runtime.gateway import RouteTable
from local_runtime.openapi import load_app
from local_runtime.streams import EventSourceMapping, event_source_mappings

from . import cfn
from .conftest import Synthesis
from .sample_platform import SAMPLE_PLATFORM

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]

PLATFORMS = {"platform": PLATFORM, "sample": SAMPLE_PLATFORM}
HTTP_METHODS: tuple[str, ...] = get_args(HttpMethod)
_PARAM = re.compile(r"\{([a-z_]+)(\+?)\}")


def _function_ids(synth: Synthesis) -> dict[str, str]:
    """Declared function name -> logical id of its AWS::Lambda::Function."""
    by_physical = {
        cfn.props(r).get("FunctionName"): k
        for k, r in cfn.resources(synth.api_json, "AWS::Lambda::Function").items()
    }
    return {
        fn.name: by_physical[f"{synth.config.prefix}-{fn.name}"]
        for fn in synth.platform.functions()
        if f"{synth.config.prefix}-{fn.name}" in by_physical
    }


def _http_routes(synth: Synthesis) -> cfn.Resources:
    """The routes of the HTTP API (the WebSocket API's are checked on their own)."""
    http_id = cfn.logical_id(synth.api.http.api)
    return cfn.api_resources(synth.api_json, "AWS::ApiGatewayV2::Route", http_id)


def _ws_routes(synth: Synthesis) -> dict[str, dict[str, Any]]:
    """Route key -> properties of the WebSocket API's routes."""
    assert synth.api.websocket is not None, "the platform declares a WebSocket API"
    ws_id = cfn.logical_id(synth.api.websocket.api)
    routes = cfn.api_resources(synth.api_json, "AWS::ApiGatewayV2::Route", ws_id)
    deployed = {cfn.props(r)["RouteKey"]: cfn.props(r) for r in routes.values()}
    assert len(deployed) == len(routes), "a WebSocket route key is deployed twice"
    return deployed


# --- deployed ------------------------------------------------------------------------------


def test_every_declared_route_is_deployed_and_nothing_else(synth: Synthesis) -> None:
    # Given the declared routes and the routes of the Api template
    declared = {route.key: (route, fn) for route, fn in synth.platform.routes()}
    routes = _http_routes(synth)
    deployed = {cfn.props(r)["RouteKey"]: cfn.props(r) for r in routes.values()}
    # Then the route keys are the same set, each deployed once
    assert len(deployed) == len(routes), "a route key is deployed twice"
    assert set(deployed) == set(declared), (
        f"undeclared {sorted(set(deployed) - set(declared))}, "
        f"missing {sorted(set(declared) - set(deployed))}"
    )
    # and the only other routes are the declared WebSocket routes (tested below)
    websocket = synth.platform.websocket
    ws_routes = len(websocket.routes) if websocket else 0
    synth.api_template.resource_count_is("AWS::ApiGatewayV2::Route", len(declared) + ws_routes)


def test_routes_are_authorized_as_declared(synth: Synthesis) -> None:
    http_id = cfn.logical_id(synth.api.http.api)
    (authorizer_id,) = cfn.api_resources(synth.api_json, "AWS::ApiGatewayV2::Authorizer", http_id)
    deployed = {cfn.props(r)["RouteKey"]: cfn.props(r) for r in _http_routes(synth).values()}
    for route, _ in synth.platform.routes():
        # Given a declared route and the route deployed for it
        p = deployed[route.key]
        # Then a public route has no authorizer
        if route.auth is Auth.PUBLIC:
            assert p["AuthorizationType"] == "NONE", route.key
            assert "AuthorizerId" not in p and "AuthorizationScopes" not in p, route.key
        # and every other route needs a valid token from the JWT authorizer
        else:
            assert p["AuthorizationType"] == "JWT", route.key
            assert p["AuthorizerId"] == {"Ref": authorizer_id}, route.key
            # with one of the declared roles in its scope when the route is for roles
            if route.auth is Auth.ROLE:
                assert p["AuthorizationScopes"] == list(route.roles), route.key
            else:
                assert "AuthorizationScopes" not in p, route.key


def test_routes_reach_the_function_that_serves_them(synth: Synthesis) -> None:
    function_ids = _function_ids(synth)
    integrations = cfn.resources(synth.api_json, "AWS::ApiGatewayV2::Integration")
    deployed = {cfn.props(r)["RouteKey"]: cfn.props(r) for r in _http_routes(synth).values()}
    for route, fn in synth.platform.routes():
        # Given a declared route, its deployed target and that target's integration
        target = cfn.flatten(deployed[route.key]["Target"])
        assert target.startswith("integrations/${"), target
        integration = cfn.props(integrations[target.removeprefix("integrations/${").rstrip("}")])
        # Then the integration is a payload 2.0 Lambda proxy to the declared function
        assert integration["IntegrationType"] == "AWS_PROXY"
        assert integration["PayloadFormatVersion"] == "2.0"
        assert cfn.target(integration["IntegrationUri"]) == function_ids[fn.name], route.key


def test_every_declared_websocket_route_is_deployed_and_nothing_else(synth: Synthesis) -> None:
    websocket = synth.platform.websocket
    assert websocket is not None
    # Given the declared WebSocket routes and the routes of the deployed WebSocket API
    deployed = _ws_routes(synth)
    # Then the route keys are the same set
    assert set(deployed) == {r.key for r in websocket.routes}
    # and no other WebSocket API exists
    apis = cfn.resources(synth.api_json, "AWS::ApiGatewayV2::Api")
    assert [cfn.props(a)["ProtocolType"] for a in apis.values()].count("WEBSOCKET") == 1


def test_websocket_routes_reach_the_declared_function(synth: Synthesis) -> None:
    websocket = synth.platform.websocket
    assert websocket is not None
    function_ids = _function_ids(synth)
    integrations = cfn.resources(synth.api_json, "AWS::ApiGatewayV2::Integration")
    deployed = _ws_routes(synth)
    for route in websocket.routes:
        # Given a declared WebSocket route and its deployed integration
        target = cfn.flatten(deployed[route.key]["Target"])
        assert target.startswith("integrations/${"), target
        integration = cfn.props(integrations[target.removeprefix("integrations/${").rstrip("}")])
        # Then it is a Lambda proxy to the declared function
        assert integration["IntegrationType"] == "AWS_PROXY", route.key
        assert cfn.referenced_ids(integration["IntegrationUri"]) == {
            function_ids[route.function]
        }, route.key


def test_only_connect_is_authorized_by_the_declared_authorizer(synth: Synthesis) -> None:
    websocket = synth.platform.websocket
    assert websocket is not None and synth.api.websocket is not None
    ws_id = cfn.logical_id(synth.api.websocket.api)
    (authorizer_id, authorizer), *others = cfn.api_resources(
        synth.api_json, "AWS::ApiGatewayV2::Authorizer", ws_id
    ).items()
    # Given the one authorizer of the WebSocket API
    assert others == []
    p = cfn.props(authorizer)
    # Then it is a Lambda REQUEST authorizer running the declared function
    assert p["AuthorizerType"] == "REQUEST"
    assert cfn.referenced_ids(p["AuthorizerUri"]) == {_function_ids(synth)[websocket.authorizer]}
    for key, route in _ws_routes(synth).items():
        # and $connect uses it, while later frames ride the connection it admitted
        if key == "$connect":
            assert route["AuthorizationType"] == "CUSTOM"
            assert route["AuthorizerId"] == {"Ref": authorizer_id}
        else:
            assert route["AuthorizationType"] == "NONE", key
            assert "AuthorizerId" not in route, key


def test_every_declared_function_is_deployed_and_nothing_else(synth: Synthesis) -> None:
    # Given the declared functions and the Python functions of the Api template
    functions = cfn.resources(synth.api_json, "AWS::Lambda::Function")
    python = {
        cfn.props(r)["FunctionName"]: cfn.props(r)
        for r in functions.values()
        if str(cfn.props(r).get("Runtime", "")).startswith("python")
    }
    declared = {f"{synth.config.prefix}-{fn.name}": fn for fn in synth.platform.functions()}
    # Then they are the same set (CDK's own Node.js handlers aside)
    assert set(python) == set(declared)
    for physical, fn in declared.items():
        # and each runs the declared handler with the declared sizing
        p = python[physical]
        assert p["Handler"] == fn.handler, fn.name
        assert p["MemorySize"] == fn.memory_mb, fn.name
        assert p["Timeout"] == fn.timeout_s, fn.name
        assert p["Description"] == fn.description, fn.name
    # and no Python function hides in the Data stack
    assert not [
        r
        for r in cfn.resources(synth.data_json, "AWS::Lambda::Function").values()
        if str(cfn.props(r).get("Runtime", "")).startswith("python")
    ]


def test_every_declared_data_resource_exists(synth: Synthesis) -> None:
    platform, data, prefix = synth.platform, synth.data, synth.config.prefix
    template = synth.data_template
    # Given the declared tables, buckets, queues, secrets and signing keys
    # Then each table exists under its fixed name
    for table in platform.tables:
        template.has_resource_properties(
            "AWS::DynamoDB::Table", {"TableName": f"{prefix}-{table.name}"}
        )
    # and each bucket exists, exported by name for the Api stack
    exports = cfn.exports(synth.data_json)
    bucket_ids = set(cfn.resources(synth.data_json, "AWS::S3::Bucket"))
    for bucket in platform.buckets:
        for attribute in ("arn", "name"):
            assert exports.get(f"{prefix}-bucket-{bucket.name}-{attribute}") in bucket_ids
    # and each queue exists with its dead-letter queue
    queue_ids = set(cfn.resources(synth.data_json, "AWS::SQS::Queue"))
    for queue in platform.queues:
        assert cfn.logical_id(data.queues.queues[queue.name]) in queue_ids
        assert cfn.logical_id(data.queues.dead_letter_queues[queue.name]) in queue_ids
    # and each secret exists, generated or left as an empty JSON object for the operator
    secrets = cfn.resources(synth.data_json, "AWS::SecretsManager::Secret")
    assert len(secrets) == len(platform.secrets) + 1  # + the database credentials
    for secret in platform.secrets:
        p = cfn.props(secrets[cfn.logical_id(data.secrets.secrets[secret.name])])
        assert p["Description"] == f"LinkWithMentor {synth.stage}: {secret.description}"
        if secret.generate:
            assert "GenerateSecretString" in p and "SecretString" not in p, secret.name
        else:
            assert p["SecretString"] == "{}" and "GenerateSecretString" not in p, secret.name
    # and each signing key exists behind its alias
    for key in platform.signing_keys:
        template.has_resource_properties(
            "AWS::KMS::Alias", {"AliasName": f"alias/{prefix}/{key.name}"}
        )


def test_every_rule_targets_its_queue(synth: Synthesis) -> None:
    # Given the declared rules and the rules of the Data template
    bus_id = cfn.logical_id(synth.data.events.bus)
    deployed = set()
    for rule in cfn.resources(synth.data_json, "AWS::Events::Rule").values():
        p = cfn.props(rule)
        assert p["EventBusName"] == {"Ref": bus_id}, "a rule listens on another bus"
        (target,) = p["Targets"]
        deployed.add(
            (
                json.dumps(p["EventPattern"], sort_keys=True),
                cfn.target(target["Arn"]),
                cfn.target(target.get("DeadLetterConfig", {}).get("Arn")),
            )
        )
    queues, dlqs = synth.data.queues.queues, synth.data.queues.dead_letter_queues
    declared = {
        (
            json.dumps(dict(rule.pattern), sort_keys=True),
            cfn.logical_id(queues[rule.queue]),
            cfn.logical_id(dlqs[rule.queue]),
        )
        for rule in synth.platform.rules
    }
    # Then each declared pattern delivers to its declared queue (failures to its DLQ), nothing else
    assert deployed == declared


def test_every_rule_target_queue_accepts_eventbridge(synth: Synthesis) -> None:
    # Given the queues that rules deliver to (KMS-encrypted with the data key)
    key = cfn.props(
        cfn.resources(synth.data_json, "AWS::KMS::Key")[cfn.logical_id(synth.data.data_key)]
    )
    events_on_key = [
        s
        for s in cfn.statements(key["KeyPolicy"])
        if s.get("Principal") == {"Service": "events.amazonaws.com"}
    ]
    for rule in synth.platform.rules:
        for queue in (
            synth.data.queues.queues[rule.queue],
            synth.data.queues.dead_letter_queues[rule.queue],
        ):
            queue_id = cfn.logical_id(queue)
            statements = [
                s
                for p in cfn.resources(synth.data_json, "AWS::SQS::QueuePolicy").values()
                if {"Ref": queue_id} in cfn.props(p)["Queues"]
                for s in cfn.statements(cfn.props(p)["PolicyDocument"])
            ]
            # Then EventBridge may send to the queue and to its DLQ
            assert any(
                s["Effect"] == "Allow"
                and s.get("Principal") == {"Service": "events.amazonaws.com"}
                and "sqs:SendMessage" in cfn.as_list(s["Action"])
                for s in statements
            ), f"{rule.name}: EventBridge cannot send to {queue_id}"
    # and may use the data key that encrypts them
    if synth.platform.rules:
        actions = {a for s in events_on_key for a in cfn.as_list(s["Action"])}
        assert {"kms:GenerateDataKey*", "kms:Decrypt"} <= actions


def test_every_schedule_targets_its_function(synth: Synthesis) -> None:
    function_ids = _function_ids(synth)
    schedules = {
        cfn.props(s)["Name"]: cfn.props(s)
        for s in cfn.resources(synth.api_json, "AWS::Scheduler::Schedule").values()
    }
    # Given the declared schedules and the schedules of the Api template
    declared = {f"{synth.config.prefix}-{s.name}": s for s in synth.platform.schedules}
    # Then they are the same set
    assert set(schedules) == set(declared)
    for name, schedule in declared.items():
        p = schedules[name]
        # and each invokes its declared function, on time, with the declared payload
        assert p["ScheduleExpression"] == schedule.expression
        assert cfn.target(p["Target"]["Arn"]) == function_ids[schedule.function]
        assert json.loads(p["Target"]["Input"]) == dict(schedule.payload)
        # through a role that may invoke that function only
        role_id = str(cfn.target(p["Target"]["RoleArn"]))
        (statement,) = cfn.role_statements(synth.api_json, role_id)
        assert statement["Action"] == "lambda:InvokeFunction"
        assert cfn.target(statement["Resource"]) == function_ids[schedule.function]


def _deployed_mapping(synth: Synthesis, name: str) -> dict[str, Any]:
    mapping = synth.api.streams.mappings[name]
    resources = cfn.resources(synth.api_json, "AWS::Lambda::EventSourceMapping")
    return cfn.props(resources[cfn.logical_id(mapping)])


def _local_properties(mapping: EventSourceMapping) -> dict[str, Any]:
    """What the local poller runs, in the deployed mapping's property names."""
    out: dict[str, Any] = {
        "StartingPosition": mapping.starting_position,
        "BatchSize": mapping.batch_size,
        "MaximumBatchingWindowInSeconds": mapping.maximum_batching_window_s,
        "MaximumRetryAttempts": mapping.maximum_retry_attempts,
        "MaximumRecordAgeInSeconds": mapping.maximum_record_age_s,
        "BisectBatchOnFunctionError": mapping.bisect_batch_on_function_error,
        "FunctionResponseTypes": list(mapping.function_response_types),
        "ParallelizationFactor": mapping.parallelization_factor,
    }
    if mapping.filter_patterns:
        out["FilterCriteria"] = [json.loads(p) for p in mapping.filter_patterns]
    return out


def test_local_stream_poller_runs_what_is_deployed(synth: Synthesis) -> None:
    # Given the mappings the local poller runs for the declaration
    local = {m.name: m for m in event_source_mappings(synth.platform)}
    # Then they are the deployed ones: the same streams, no more, no less
    assert set(local) == {s.name for s in synth.platform.streams} == set(synth.api.streams.mappings)
    function_ids = _function_ids(synth)
    exports = cfn.exports(synth.data_json)
    for name, mapping in local.items():
        deployed = _deployed_mapping(synth, name)
        # on the same table's stream, into the same function, failures to the same queue
        (stream_export,) = cfn.imported_names(deployed["EventSourceArn"])
        assert exports[stream_export] == cfn.logical_id(synth.data.tables.tables[mapping.table])
        assert cfn.target(deployed["FunctionName"]) == function_ids[mapping.function]
        destination = deployed.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        queues = synth.data.queues.queues
        assert (exports[next(iter(cfn.imported_names(destination)))] if destination else None) == (
            cfn.logical_id(queues[mapping.on_failure_queue]) if mapping.on_failure_queue else None
        ), name
        # with the same batching, retries, filters and partial batch responses
        compared = {k: deployed.get(k) for k in _local_properties(mapping)}
        if "FilterCriteria" in compared:
            compared["FilterCriteria"] = [
                json.loads(f["Pattern"]) for f in deployed["FilterCriteria"]["Filters"]
            ]
        assert compared == _local_properties(mapping), name
        assert "FilterCriteria" in deployed or not mapping.filter_patterns, name


# --- served locally ------------------------------------------------------------------------


def _sample_path(route: Route) -> tuple[str, dict[str, str]]:
    """A concrete request path for ``route`` and the path parameters it should yield."""
    params: dict[str, str] = {}

    def value(match: re.Match[str]) -> str:
        name, greedy = match.group(1), match.group(2)
        params[name] = f"{name}-1/nested" if greedy else f"{name}-1"
        return params[name]

    return _PARAM.sub(value, route.path), params


@pytest.mark.parametrize("name", sorted(PLATFORMS))
def test_local_gateway_serves_every_declared_route(name: str) -> None:
    platform = PLATFORMS[name]
    # Given the local gateway's route table built from the declaration
    table = RouteTable(platform.routes())
    for route, fn in platform.routes():
        # When a request for the route arrives (path parameters filled in)
        path, params = _sample_path(route)
        match = table.match(route.method, path)
        # Then the declared route and function serve it, with the path parameters
        assert match is not None, route.key
        assert (match.route, match.fn, match.path_parameters) == (route, fn, params), route.key


@pytest.mark.parametrize("name", sorted(PLATFORMS))
def test_local_gateway_refuses_what_is_not_declared(name: str) -> None:
    platform = PLATFORMS[name]
    table = RouteTable(platform.routes())
    declared = {(route.method, route.path) for route, _ in platform.routes()}
    # Given paths and methods that no route declares
    assert table.match("GET", "/undeclared") is None
    for route, _ in platform.routes():
        path, _ = _sample_path(route)
        # Then a deeper path is not served by the route (unless its last parameter is greedy)
        deeper = table.match(route.method, f"{path}/undeclared")
        greedy = route.path.endswith("+}")
        assert deeper is None or deeper.route != route or greedy, f"{route.key}: {path}/undeclared"
        # and another method on the same path is not served unless declared for it
        for method in HTTP_METHODS:
            if (method, route.path) not in declared:
                other = table.match(method, path)
                assert other is None or other.route.method == method, f"{method} {path}"
                assert other is None or other.route.path != route.path, f"{method} {path}"


def _openapi_routes(app: Any) -> set[str]:
    paths = app.openapi()["paths"]
    return {
        f"{method.upper()} {path}"
        for path, operations in paths.items()
        for method in operations
        if method.upper() in HTTP_METHODS or method.upper() in {"HEAD", "OPTIONS", "TRACE"}
    }


def _declared_keys(routes: tuple[Route, ...]) -> set[str]:
    """Route keys as FastAPI writes paths: a greedy ``{name+}`` is ``{name}`` there."""
    return {f"{r.method} {_PARAM.sub(_fastapi_param, r.path)}" for r in routes}


def _fastapi_param(match: re.Match[str]) -> str:
    return f"{{{match.group(1)}}}"


def test_every_service_declares_its_app() -> None:
    # Given the real platform's services
    # Then each names its FastAPI app, so its served routes can be checked below
    assert [s.name for s in PLATFORM.services if not s.app] == []


@pytest.mark.parametrize("platform", [PLATFORM, SAMPLE_PLATFORM], ids=["platform", "sample"])
def test_each_service_app_serves_exactly_its_declared_routes(platform: Platform) -> None:
    services = [s for s in platform.services if s.app]
    assert services
    for service in services:
        # Given a service's FastAPI app and its declared routes
        app = load_app(str(service.app))
        served, declared = _openapi_routes(app), _declared_keys(service.routes)
        # Then the app serves exactly the declared routes
        assert served == declared, (
            f"{service.name}: served but undeclared {sorted(served - declared)}, "
            f"declared but not served {sorted(declared - served)}"
        )

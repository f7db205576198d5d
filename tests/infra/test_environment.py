"""A function's environment has the same keys in AWS and locally: the ones its declaration
implies (values differ: CloudFormation tokens in AWS, local names and URLs here)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic_settings import BaseSettings

from blueprint.environment import environment_for, static_environment
from blueprint.model import Function, Platform
from blueprint.platform import PLATFORM
from functions.chat.search_settings import ChatSearchIndexerSettings, ChatSearchSettings
from functions.chat.settings import ChatEventsSettings, ChatFunctionSettings
from functions.users.settings import UsersSettings
from infra_cdk.api.resolver import CdkResolver
from local_runtime.aws import Provisioned
from local_runtime.resolver import LocalResolver
from lwm_core import constants as c
from lwm_core.settings import DatabaseSettings
from websocket_handlers.settings import AuthorizerSettings, ConnectionsSettings, PushSettings

from . import cfn
from .conftest import Synthesis
from .sample_platform import SAMPLE_PLATFORM

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]

COMMON_KEYS = {c.ENV_STAGE, c.ENV_ISSUER, c.ENV_AUDIENCE, c.ENV_EVENT_BUS, c.ENV_MAIL_FROM}
# Where the runtimes differ on purpose: only locally is there an AWS endpoint to point boto3
# at and a public base URL apart from the issuer; the database is a URL locally and the RDS
# Proxy host plus the credentials secret in AWS.
LOCAL_ONLY_KEYS = {c.ENV_AWS_ENDPOINT, c.ENV_PUBLIC_BASE_URL}
LOCAL_DATABASE_KEYS = {c.ENV_DATABASE_URL}
AWS_DATABASE_KEYS = {c.ENV_DATABASE_HOST, c.ENV_DATABASE_NAME, c.ENV_DATABASE_SECRET_ARN}
# The settings class each function of the real platform validates its environment with.
SETTINGS: dict[str, type[BaseSettings]] = {
    "users": UsersSettings,
    "chat": ChatFunctionSettings,
    "db-migrate": DatabaseSettings,
    "ws-authorizer": AuthorizerSettings,
    "ws-connections": ConnectionsSettings,
    "ws-default": PushSettings,
    "chat-socket": ChatFunctionSettings,
    "chat-presence": ChatFunctionSettings,
    "chat-events": ChatEventsSettings,
    "chat-search": ChatSearchSettings,
    "chat-search-indexer": ChatSearchIndexerSettings,
}


def declared_keys(platform: Platform, fn: Function, *, local: bool) -> set[str]:
    """The keys ``fn``'s declaration implies, spelled out from the constants."""
    # static_environment: what no deployed resource decides (Powertools, interpreter flags)
    keys = set(static_environment(fn)) | COMMON_KEYS | (LOCAL_ONLY_KEYS if local else set())
    lookups = {
        "table": platform.table,
        "bucket": platform.bucket,
        "queue": platform.queue,
        "signing_key": platform.signing_key,
        "secret": platform.secret,
    }
    for access in fn.access:
        if access.kind in lookups:
            keys.add(lookups[access.kind](access.name).env_key)
        elif access.kind == "database":
            keys |= LOCAL_DATABASE_KEYS if local else AWS_DATABASE_KEYS
        elif access.kind == "websocket":
            keys.add(c.ENV_WS_MANAGEMENT_URL)
    return keys | set(fn.environment)


def local_resolver(platform: Platform) -> LocalResolver:
    """A LocalResolver over a fake ``Provisioned`` naming every declared resource."""
    resources = Provisioned(
        tables={t.name: f"lwm-local-{t.name}" for t in platform.tables},
        buckets={b.name: f"lwm-local-{b.name}" for b in platform.buckets},
        queues={
            q.name: f"http://127.0.0.1:4566/000000000000/lwm-local-{q.name}"
            for q in platform.queues
        },
        dead_letter_queues={
            q.name: f"http://127.0.0.1:4566/000000000000/lwm-local-{q.dlq_name}"
            for q in platform.queues
        },
        signing_keys={k.name: f"key-{k.name}" for k in platform.signing_keys},
        secrets={
            s.name: f"arn:aws:secretsmanager:us-east-1:000000000000:secret:{s.name}"
            for s in platform.secrets
        },
        functions={
            f.name: f"arn:aws:lambda:us-east-1:000000000000:function:{f.name}"
            for f in platform.functions()
        },
    )
    return LocalResolver(
        resources,
        aws_endpoint="http://127.0.0.1:4566",
        http_api="http://127.0.0.1:3000",
        database_url="postgresql+psycopg://app@127.0.0.1:5433/lwm",
    )


def cdk_resolver(synth: Synthesis) -> CdkResolver:
    """The resolver the Api stack built its functions with."""
    websocket = synth.api.websocket
    return CdkResolver(
        synth.data,
        config=synth.config,
        issuer=synth.api.http.issuer,
        websocket_management_url=websocket.management_url if websocket else None,
    )


def template_environments(synth: Synthesis) -> Iterator[tuple[Function, dict[str, object]]]:
    """Each declared function with the environment variables of its template resource."""
    by_physical = {
        cfn.props(r)["FunctionName"]: cfn.props(r)
        for r in cfn.resources(synth.api_json, "AWS::Lambda::Function").values()
        if "FunctionName" in cfn.props(r)
    }
    for fn in synth.platform.functions():
        p = by_physical[f"{synth.config.prefix}-{fn.name}"]
        yield fn, dict(p.get("Environment", {}).get("Variables", {}))


def test_template_environment_has_exactly_the_declared_keys(synth: Synthesis) -> None:
    resolver = cdk_resolver(synth)
    for fn, variables in template_environments(synth):
        # Given a deployed function's environment in the template
        # Then its keys are those environment_for computes for AWS (plus the operator's
        # context overrides, such as -c rate_limits=..., none in these synths)
        overrides = set(synth.config.function_environment)
        computed = set(environment_for(synth.platform, fn, resolver)) | overrides
        assert set(variables) == computed, fn.name
        # and those its declaration implies
        assert set(variables) == declared_keys(synth.platform, fn, local=False) | overrides


def test_template_environment_has_the_literal_values(synth: Synthesis) -> None:
    for fn, variables in template_environments(synth):
        # Given a deployed function's environment
        # Then what is known at synth time is spelled out: stage, service, audience, sender
        assert variables["POWERTOOLS_SERVICE_NAME"] == fn.name
        assert variables[c.ENV_STAGE] == synth.stage
        assert variables[c.ENV_AUDIENCE] == synth.config.audience
        assert variables[c.ENV_MAIL_FROM] == synth.config.mail_from
        # and tables by their fixed physical names
        for access in fn.access:
            if access.kind == "table":
                key = synth.platform.table(access.name).env_key
                assert variables[key] == f"{synth.config.prefix}-{access.name}", key
        # and the issuer the HTTP API's JWT authorizer checks
        http_id = cfn.logical_id(synth.api.http.api)
        (authorizer,) = cfn.api_resources(
            synth.api_json, "AWS::ApiGatewayV2::Authorizer", http_id
        ).values()
        assert variables[c.ENV_ISSUER] == cfn.props(authorizer)["JwtConfiguration"]["Issuer"]
        # and the WebSocket stage's @connections endpoint for functions that manage connections
        if any(a.kind == "websocket" for a in fn.access):
            assert synth.api.websocket is not None
            ws_id = cfn.logical_id(synth.api.websocket.api)
            assert cfn.flatten(variables[c.ENV_WS_MANAGEMENT_URL]) == (
                f"https://${{{ws_id}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/"
                f"{synth.stage}"
            )


@pytest.mark.parametrize("platform", [PLATFORM, SAMPLE_PLATFORM], ids=["platform", "sample"])
def test_local_environment_has_the_declared_keys(platform: Platform) -> None:
    resolver = local_resolver(platform)
    for fn in platform.functions():
        # Given the environment the local runtime starts a function with
        env = environment_for(platform, fn, resolver)
        # Then its keys are those the declaration implies for the local runtime
        assert set(env) == declared_keys(platform, fn, local=True), fn.name
        # and its values name the provisioned resources
        for access in fn.access:
            if access.kind == "table":
                assert env[platform.table(access.name).env_key] == f"lwm-local-{access.name}"


def test_local_and_aws_keys_differ_only_where_the_runtimes_do(synth: Synthesis) -> None:
    resolver = local_resolver(synth.platform)
    for fn, variables in template_environments(synth):
        # Given the keys a function gets in AWS and locally
        local = set(environment_for(synth.platform, fn, resolver))
        aws = set(variables) - set(synth.config.function_environment)
        # When the documented runtime differences are set aside
        local -= LOCAL_ONLY_KEYS | LOCAL_DATABASE_KEYS
        aws -= AWS_DATABASE_KEYS
        # Then both runtimes give the function the same keys
        assert local == aws, (
            f"{fn.name}: only local {sorted(local - aws)}, only AWS {sorted(aws - local)}"
        )


def test_every_real_function_names_its_settings_class() -> None:
    # Given the real platform's functions
    # Then each has its settings class listed here, so the check below covers it
    assert {fn.name for fn in PLATFORM.functions()} == set(SETTINGS)


def test_each_runtime_environment_satisfies_the_function_settings(real: Synthesis) -> None:
    aws = cdk_resolver(real)
    local = local_resolver(PLATFORM)
    for fn in PLATFORM.functions():
        for resolver in (aws, local):
            # Given the environment a runtime gives a function
            env = environment_for(PLATFORM, fn, resolver)
            # When its settings class validates exactly that (model_validate reads no os.environ)
            settings = SETTINGS[fn.name].model_validate(env)
            # Then every setting it requires is there
            assert isinstance(settings, SETTINGS[fn.name]), fn.name

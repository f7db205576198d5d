"""Builds the CDK app for one stage: used by ``app.py`` and by ``tests/infra``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from aws_cdk import App, CfnResource, Stack, Tags, Validations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from cdk_nag import AwsSolutionsChecks
from constructs import Construct

from blueprint.model import Platform
from blueprint.platform import DB_MIGRATE, PLATFORM
from infra_cdk.api.stack import ApiStack
from infra_cdk.config import StageConfig, stage_config
from infra_cdk.data.stack import DataStack

REPO_ROOT = Path(__file__).resolve().parent.parent
CDK_JSON = REPO_ROOT / "cdk.json"
_UNTAGGABLE = ("AWS::RDS::DBProxyTargetGroup",)


def cdk_json_context(path: Path = CDK_JSON) -> dict[str, object]:
    """The ``context`` block of ``cdk.json`` (feature flags and defaults).

    The CDK CLI passes it to the app itself; reading it here too makes
    ``python app.py`` and the tests synthesize exactly what ``cdk synth`` does.
    """
    if not path.is_file():
        return {}
    context = json.loads(path.read_text(encoding="utf-8")).get("context", {})
    if not isinstance(context, dict):
        raise ValueError(f"{path}: 'context' must be an object")
    return context


def build_app(
    context: Mapping[str, object] | None = None,
    *,
    outdir: str | None = None,
    platform: Platform = PLATFORM,
    migrator: str | None = DB_MIGRATE.name,
) -> tuple[App, StageConfig, DataStack, ApiStack]:
    """The app with the Data and Api stacks of one stage and the AwsSolutions checks.

    Args:
        context: context values on top of ``cdk.json`` (the CLI's ``-c`` still wins).
        outdir: the cloud assembly folder; the CLI's choice or ``cdk.out`` when omitted.
        platform: the declaration to deploy (tests pass a fuller one).
        migrator: the function the deploy trigger runs, or None for no trigger.
    """
    app = App(context={**cdk_json_context(), **(context or {})}, outdir=outdir)
    config = stage_config(app.node)
    data = DataStack(
        app,
        config.stack_name("Data"),
        config=config,
        platform=platform,
        env=config.env,
        description=f"LinkWithMentor {config.stage}: stateful resources (data, keys, network)",
        tags=config.tags,
    )
    api = ApiStack(
        app,
        config.stack_name("Api"),
        config=config,
        platform=platform,
        data=data,
        migrator=migrator,
        env=config.env,
        description=f"LinkWithMentor {config.stage}: functions, the HTTP API and the WebSocket API",
        tags=config.tags,
    )
    for stack in (data, api):
        _expire_handler_logs(stack, config)
    for key, value in config.tags.items():
        # DBProxyTargetGroup takes no Tags in CloudFormation although its L1 is taggable.
        Tags.of(app).add(key, value, exclude_resource_types=list(_UNTAGGABLE))
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, config, data, api


def _expire_handler_logs(stack: Stack, config: StageConfig) -> None:
    """Give CDK's own custom-resource handlers a log group with the stage's retention.

    The platform's functions get theirs from ``FunctionsConstruct``; the handlers
    CDK adds itself (the migration trigger, restricting the default security
    group, emptying dev buckets) are plain CfnResources that would otherwise log
    into groups Lambda creates on first use, kept forever.
    """
    for node in stack.node.find_all():
        if (
            isinstance(node, CfnResource)
            and not isinstance(node, lambda_.CfnFunction)
            and node.cfn_resource_type == "AWS::Lambda::Function"
        ):
            provider = node.node.scope
            if not isinstance(provider, Construct):
                raise TypeError(f"{node.node.path}: a handler outside any construct")
            group = logs.LogGroup(
                provider,
                f"{node.node.id}Logs",
                retention=config.log_retention,
                removal_policy=config.removal_policy,
            )
            node.add_property_override("LoggingConfig.LogGroup", group.log_group_name)

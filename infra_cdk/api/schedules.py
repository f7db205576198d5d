"""EventBridge Scheduler schedules, one per ``blueprint`` Schedule, invoking their function."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from blueprint.model import Schedule
from infra_cdk.config import StageConfig

_RETRY_ATTEMPTS = 3


class SchedulesConstruct(Construct):
    """Schedules with the declared expression and JSON payload, one invoke-only role each.

    ``CfnSchedule`` rather than the L2 ``Schedule``: the L2 Lambda target grants
    ``lambda:InvokeFunction`` on ``<function>:*`` (every version and alias) to
    whatever role it gets; a schedule invokes the unqualified function only.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        schedules: Iterable[Schedule],
        functions: Mapping[str, lambda_.IFunction],
    ) -> None:
        super().__init__(scope, construct_id)
        for schedule in schedules:
            self._build_schedule(schedule, functions[schedule.function], config)

    def _build_role(self, schedule: Schedule, function: lambda_.IFunction) -> iam.Role:
        role = iam.Role(
            self,
            f"{schedule.name}-role",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            ),
            description=f"EventBridge Scheduler: invoke {schedule.function}",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"], resources=[function.function_arn]
            )
        )
        return role

    def _build_schedule(
        self, schedule: Schedule, function: lambda_.IFunction, config: StageConfig
    ) -> scheduler.CfnSchedule:
        role = self._build_role(schedule, function)
        return scheduler.CfnSchedule(
            self,
            schedule.name,
            name=f"{config.prefix}-{schedule.name}",
            description=f"{schedule.name}: {schedule.expression} -> {schedule.function}",
            schedule_expression=schedule.expression,
            schedule_expression_timezone="UTC",
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            state="ENABLED",
            target=scheduler.CfnSchedule.TargetProperty(
                arn=function.function_arn,
                role_arn=role.role_arn,
                input=json.dumps(dict(schedule.payload)),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_retry_attempts=_RETRY_ATTEMPTS
                ),
            ),
        )

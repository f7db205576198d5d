"""Runs the database migrator on deploy, before any function that could see the new schema."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, triggers
from aws_cdk import aws_lambda as lambda_
from constructs import Construct


class MigrationsConstruct(Construct):
    """A CDK trigger invoking ``migrator`` synchronously on every deploy that changes it.

    The migrator's asset carries every service's Alembic scripts, so a new
    migration changes its code hash and the trigger runs again; a failed
    migration fails (and rolls back) the deploy before the other functions update.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        migrator: lambda_.Function,
        before: Sequence[Construct],
        timeout: Duration,
    ) -> None:
        super().__init__(scope, construct_id)
        self.trigger = triggers.Trigger(
            self,
            "Run",
            handler=migrator,
            invocation_type=triggers.InvocationType.REQUEST_RESPONSE,
            timeout=timeout,
            execute_on_handler_change=True,
            execute_before=list(before),
        )

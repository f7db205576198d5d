"""The EventBridge bus for domain events, its archive, and the declared rules to queues."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from blueprint.model import EventRule
from infra_cdk.config import StageConfig

# blueprint patterns use EventBridge's JSON keys; EventPattern takes them in snake case.
_PATTERN_FIELDS = {
    "account",
    "detail",
    "detail-type",
    "id",
    "region",
    "resources",
    "source",
    "time",
    "version",
}


def event_pattern(pattern: Mapping[str, object]) -> events.EventPattern:
    """An ``EventPattern`` from a pattern written as EventBridge JSON."""
    unknown = set(pattern) - _PATTERN_FIELDS
    if unknown:
        raise ValueError(f"unknown event pattern fields {sorted(unknown)}")
    fields: dict[str, Any] = {k.replace("-", "_"): v for k, v in pattern.items()}
    return events.EventPattern(**fields)


class EventBusConstruct(Construct):
    """A custom bus with an archive (replay) and one rule per ``blueprint`` EventRule."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        rules: Iterable[EventRule],
        queues: Mapping[str, sqs.IQueue],
        dead_letter_queues: Mapping[str, sqs.IQueue],
    ) -> None:
        super().__init__(scope, construct_id)
        self.bus = self._build_bus(config)
        for rule in rules:
            self._build_rule(rule, queues[rule.queue], dead_letter_queues[rule.queue])

    def _build_bus(self, config: StageConfig) -> events.EventBus:
        bus = events.EventBus(
            self,
            "Bus",
            event_bus_name=config.prefix,
            description=f"LinkWithMentor {config.stage} domain events",
        )
        bus.archive(
            "Archive",
            description="Every domain event, for replay after a consumer fix",
            event_pattern=events.EventPattern(account=[Stack.of(self).account]),
            retention=Duration.days(90 if config.is_prod else 7),
        )
        return bus

    def _build_rule(self, rule: EventRule, queue: sqs.IQueue, dlq: sqs.IQueue) -> None:
        events.Rule(
            self,
            rule.name,
            event_bus=self.bus,
            description=f"{rule.name}: to queue {rule.queue}",
            event_pattern=event_pattern(rule.pattern),
            targets=[targets.SqsQueue(queue, dead_letter_queue=dlq, retry_attempts=8)],
        )

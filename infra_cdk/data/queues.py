"""SQS queues, one per ``blueprint`` Queue, each with its dead-letter queue."""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from blueprint.model import Queue
from infra_cdk.config import StageConfig

_DLQ_RETENTION = Duration.days(14)  # the SQS maximum: time to inspect and replay


class QueuesConstruct(Construct):
    """KMS-encrypted, TLS-only queues with a DLQ each (``max_receive_count`` as declared)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        queues: Iterable[Queue],
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queues: dict[str, sqs.Queue] = {}
        self.queues: dict[str, sqs.Queue] = {
            q.name: self._build_queue(q, config, key) for q in queues
        }

    def _build_queue(self, queue: Queue, config: StageConfig, key: kms.IKey) -> sqs.Queue:
        dlq = sqs.Queue(
            self,
            queue.dlq_name,
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            data_key_reuse=Duration.hours(1),
            enforce_ssl=True,
            retention_period=_DLQ_RETENTION,
            removal_policy=config.removal_policy,
        )
        self.dead_letter_queues[queue.name] = dlq
        return sqs.Queue(
            self,
            queue.name,
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            data_key_reuse=Duration.hours(1),
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(queue.visibility_timeout_s),
            retention_period=Duration.days(queue.retention_days),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=dlq, max_receive_count=queue.max_receive_count
            ),
            removal_policy=config.removal_policy,
        )

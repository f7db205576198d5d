"""A fuller declaration than today's platform: every resource kind and access mode once.

The infra tests synthesize it too, so constructs for buckets, queues, rules,
schedules, streams and workers are proven nag- and lint-clean before the real
platform declares its first one. It reuses existing code folders (CDK needs the
folders only).
"""

from __future__ import annotations

from blueprint.model import (
    Access,
    Bucket,
    EventRule,
    Function,
    Index,
    KeyAttr,
    Platform,
    Queue,
    Schedule,
    Secret,
    Service,
    SigningKey,
    Table,
    TableStream,
    public,
    role,
    user,
)
from blueprint.platform import PLATFORM

EVENTS_TABLE = Table(
    "ledger",
    KeyAttr("pk"),
    KeyAttr("sk", "N"),
    indexes=(Index("by-user", KeyAttr("user_id")),),
    stream="NEW_AND_OLD_IMAGES",
)
UPLOADS = Bucket("uploads", versioned=True, expire_days=30, cors=True)
REPORTS = Bucket("reports")
NOTIFY = Queue("notify", visibility_timeout_s=120, max_receive_count=3)
WEBHOOK_KEY = Secret("webhook-key", "HMAC key for outgoing webhooks", generate=True)
RECEIPT_KEY = SigningKey("receipt")

WORKER = Function(
    name="notifier",
    handler="functions.users.handler.handler",  # any existing folder will do for synth
    description="Sample queue consumer",
    access=(
        Access.queue(NOTIFY.name, "read_write"),
        Access.bucket(UPLOADS.name, "read"),
        Access.bucket(REPORTS.name, "write"),
        Access.table(EVENTS_TABLE.name, "read"),
        Access.signing_key(RECEIPT_KEY.name, "verify"),
        Access.secret(WEBHOOK_KEY.name),
        Access.events(),
        Access.email(),
    ),
)

SAMPLE = Service(
    name="sample",
    function=Function(
        name="sample",
        handler="functions.users.handler.handler",
        description="Sample REST service",
        access=(
            Access.table(EVENTS_TABLE.name, "write"),
            Access.bucket(UPLOADS.name),
            Access.queue(NOTIFY.name),
            Access.signing_key(RECEIPT_KEY.name),
            Access.events(),
        ),
    ),
    routes=(
        public("GET", "/sample/health"),
        user("POST", "/sample/items"),
        role("DELETE", "/sample/items/{item_id}", "admin", "mentor"),
    ),
)

# A second kind of stream consumer: from the latest record, no failure queue, a batching
# window, two filters (either matches), no bisecting.
LEDGER_STREAM = TableStream(
    table=EVENTS_TABLE.name,
    function=WORKER.name,
    filters=(
        {"eventName": ["REMOVE"]},
        {"dynamodb": {"NewImage": {"kind": {"S": [{"anything-but": ["draft"]}]}}}},
    ),
    batch_size=25,
    batching_window_s=5,
    retry_attempts=3,
    max_record_age_s=3600,
    bisect_on_error=False,
    starting_position="LATEST",
)

SAMPLE_PLATFORM = Platform(
    services=(*PLATFORM.services, SAMPLE),
    workers=(*PLATFORM.workers, WORKER),
    tables=(*PLATFORM.tables, EVENTS_TABLE),
    buckets=(*PLATFORM.buckets, UPLOADS, REPORTS),
    queues=(*PLATFORM.queues, NOTIFY),
    signing_keys=(*PLATFORM.signing_keys, RECEIPT_KEY),
    secrets=(*PLATFORM.secrets, WEBHOOK_KEY),
    rules=(
        *PLATFORM.rules,
        EventRule(
            "booking-confirmed",
            {"source": ["lwm.meetings"], "detail-type": ["BookingConfirmed"]},
            NOTIFY.name,
        ),
    ),
    schedules=(
        *PLATFORM.schedules,
        Schedule("nightly-digest", "cron(0 3 * * ? *)", WORKER.name, {"kind": "digest"}),
    ),
    streams=(*PLATFORM.streams, LEDGER_STREAM),
    websocket=PLATFORM.websocket,
)

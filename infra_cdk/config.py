"""Per-stage settings of the CDK app, read from CDK context with defaults.

Every knob an operator may turn at synth time is a context value
(``npx cdk synth -c stage=prod -c throttle_rate=200``); everything else is a
per-stage default below. Nothing here calls AWS: synth stays offline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from aws_cdk import Duration, Environment, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Node

from lwm_core import constants as c

Stage = Literal["dev", "prod"]
STAGES: tuple[Stage, ...] = ("dev", "prod")

PROJECT = "linkwithmentor"
STACK_PREFIX = "Lwm"

# The Lambda runtime every function runs on; the dependency layer is built for the same CPython.
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_12
LAMBDA_ARCHITECTURE = lambda_.Architecture.ARM_64

# The JWT audience the users service writes into access tokens and the HTTP API checks.
# lwm_core.constants holds no value for it yet (only the env key); see docs/decisions-infra.md.
DEFAULT_AUDIENCE = "linkwithmentor-api"
DEFAULT_MAIL_FROM = "no-reply@linkwithmentor.com"
DATABASE_NAME = "lwm"
DATABASE_ADMIN_USER = "lwm_admin"
DATABASE_PORT = 5432


def python_version(runtime: lambda_.Runtime = LAMBDA_RUNTIME) -> str:
    """The CPython version of a Lambda runtime, e.g. ``3.12`` for ``python3.12``."""
    return runtime.name.removeprefix("python")


@dataclass(frozen=True)
class StageConfig:
    """Everything that differs between stages, resolved once per synth."""

    stage: Stage
    env: Environment | None
    audience: str
    issuer: str | None  # None: the HTTP API's own endpoint URL
    mail_from: str
    throttle_rate: int
    throttle_burst: int
    # WebSocket stage: $connect upgrades plus every message frame, per second.
    ws_throttle_rate: int
    ws_throttle_burst: int
    nat_gateways: int
    max_azs: int
    cors_origins: tuple[str, ...]
    log_retention: logs.RetentionDays
    db_min_capacity: float
    db_max_capacity: float
    db_readers: int
    db_backup_days: int
    secret_rotation_days: int
    # Operator overrides every function gets (e.g. LWM_RATE_LIMITS from -c rate_limits=...).
    function_environment: Mapping[str, str]

    @property
    def is_prod(self) -> bool:
        return self.stage == "prod"

    @property
    def removal_policy(self) -> RemovalPolicy:
        """Stateful resources survive a stack deletion in prod and are cleaned up in dev."""
        return RemovalPolicy.RETAIN if self.is_prod else RemovalPolicy.DESTROY

    @property
    def prefix(self) -> str:
        """Physical-name prefix, e.g. ``lwm-dev``."""
        return f"lwm-{self.stage}"

    def stack_name(self, part: str) -> str:
        """Stack name, e.g. ``Lwm-dev-Data``."""
        return f"{STACK_PREFIX}-{self.stage}-{part}"

    @property
    def mail_domain(self) -> str:
        return self.mail_from.rpartition("@")[2]

    @property
    def backup_retention(self) -> Duration:
        return Duration.days(self.db_backup_days)

    @property
    def tags(self) -> dict[str, str]:
        return {"project": PROJECT, "stage": self.stage}


@dataclass(frozen=True)
class _StageDefaults:
    throttle_rate: int
    throttle_burst: int
    ws_throttle_rate: int
    ws_throttle_burst: int
    log_retention: logs.RetentionDays
    db_min_capacity: float
    db_max_capacity: float
    db_readers: int
    db_backup_days: int


_DEFAULTS: Mapping[Stage, _StageDefaults] = {
    "dev": _StageDefaults(
        throttle_rate=50,
        throttle_burst=100,
        ws_throttle_rate=50,
        ws_throttle_burst=100,
        log_retention=logs.RetentionDays.TWO_WEEKS,
        db_min_capacity=0.5,
        db_max_capacity=2.0,
        db_readers=0,
        db_backup_days=1,
    ),
    "prod": _StageDefaults(
        throttle_rate=500,
        throttle_burst=1000,
        ws_throttle_rate=500,
        ws_throttle_burst=1000,
        log_retention=logs.RetentionDays.THREE_MONTHS,
        db_min_capacity=0.5,
        db_max_capacity=16.0,
        db_readers=1,
        db_backup_days=14,
    ),
}


def _str(node: Node, key: str) -> str | None:
    value = node.try_get_context(key)
    if value is None or value == "":
        return None
    return str(value)


def _int(node: Node, key: str, default: int) -> int:
    raw = _str(node, key)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as e:
        raise ValueError(f"context {key!r} must be an integer, got {raw!r}") from e


def _function_environment(node: Node) -> dict[str, str]:
    raw = _str(node, "rate_limits")
    if raw is None:
        return {}
    try:
        limits = json.loads(raw)
        valid = isinstance(limits, dict) and all(
            isinstance(v, list) and len(v) == 2 and all(isinstance(n, int) for n in v)
            for v in limits.values()
        )
    except ValueError:
        valid = False
    if not valid:
        raise ValueError('context "rate_limits" must be JSON like {"register-ip": [50, 3600]}')
    return {c.ENV_RATE_LIMITS: json.dumps(limits, separators=(",", ":"))}


def stage_config(node: Node) -> StageConfig:
    """Read the stage and its settings from the app's context.

    Context keys: ``stage`` (dev|prod, default dev), ``account`` and ``region``
    (both or neither; default: environment-agnostic stacks), ``issuer``,
    ``audience``, ``mail_from``, ``throttle_rate``, ``throttle_burst``,
    ``ws_throttle_rate``, ``ws_throttle_burst`` (the WebSocket stage),
    ``nat_gateways``, ``cors_origins`` (comma-separated) and ``rate_limits``
    (JSON ``{"limit-name": [max_hits, window_s]}``, given to every function).
    """
    stage = _str(node, "stage") or "dev"
    if stage not in STAGES:
        raise ValueError(f"context 'stage' must be one of {STAGES}, got {stage!r}")
    typed_stage: Stage = stage  # narrowed by the check above
    defaults = _DEFAULTS[typed_stage]
    account, region = _str(node, "account"), _str(node, "region")
    if (account is None) != (region is None):
        raise ValueError("give both 'account' and 'region' context values, or neither")
    env = Environment(account=account, region=region) if account and region else None
    origins = _str(node, "cors_origins")
    return StageConfig(
        stage=typed_stage,
        env=env,
        audience=_str(node, "audience") or DEFAULT_AUDIENCE,
        issuer=_str(node, "issuer"),
        mail_from=_str(node, "mail_from") or DEFAULT_MAIL_FROM,
        throttle_rate=_int(node, "throttle_rate", defaults.throttle_rate),
        throttle_burst=_int(node, "throttle_burst", defaults.throttle_burst),
        ws_throttle_rate=_int(node, "ws_throttle_rate", defaults.ws_throttle_rate),
        ws_throttle_burst=_int(node, "ws_throttle_burst", defaults.ws_throttle_burst),
        nat_gateways=_int(node, "nat_gateways", 0),
        max_azs=2,
        cors_origins=tuple(o.strip() for o in origins.split(",") if o.strip())
        if origins
        else ("*",),
        log_retention=defaults.log_retention,
        db_min_capacity=defaults.db_min_capacity,
        db_max_capacity=defaults.db_max_capacity,
        db_readers=defaults.db_readers,
        db_backup_days=defaults.db_backup_days,
        secret_rotation_days=30,
        function_environment=_function_environment(node),
    )

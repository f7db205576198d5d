"""Settings of the local runtime: ports, names, paths and the environment variables that set them.

Every environment variable the local runtime reads is named here, so that the
docs (``docs/local-runtime.md``) and the code list the same ones.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from lwm_core import constants as c

ENV_STATE_DIR: Final = "LWM_STATE_DIR"

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
# Where `up` keeps its state: endpoints.json and the PostgreSQL cluster (git-ignored .local/).
STATE_DIR: Final = Path(os.environ.get(ENV_STATE_DIR) or REPO_ROOT / ".local")
ENDPOINTS_FILE: Final = STATE_DIR / "endpoints.json"
PG_DATA_DIR: Final = STATE_DIR / "pg"

HOST: Final = "127.0.0.1"  # the local runtime never listens on another interface
REGION: Final = "us-east-1"
ACCOUNT_ID: Final = "123456789012"  # moto's default account
STAGE: Final = "local"
NAME_PREFIX: Final = "lwm-local-"  # physical names: lwm-local-<logical name>

# Dummy credentials: moto accepts anything, and nothing may ever reach real AWS.
ACCESS_KEY_ID: Final = "testing"
SECRET_ACCESS_KEY: Final = "testing"  # noqa: S105 - not a secret, moto's convention

# Audience of access tokens: what the users service puts in `aud`.
AUDIENCE: Final = c.TOKEN_AUDIENCE

ENV_HTTP_PORT: Final = "LWM_HTTP_PORT"
ENV_WS_PORT: Final = "LWM_WS_PORT"
ENV_AWS_PORT: Final = "LWM_AWS_PORT"
ENV_LAMBDA_PORT: Final = "LWM_LAMBDA_PORT"
ENV_PG_PORT: Final = "LWM_PG_PORT"
ENV_PG_BIN: Final = "LWM_PG_BIN"
ENV_DATABASE_URL: Final = c.ENV_DATABASE_URL
ENV_STREAM_POLL_MS: Final = "LWM_STREAM_POLL_MS"  # the table stream poller's idle interval

# What local_runtime.moto_process prints, with its port, once it serves.
MOTO_READY: Final = "READY"

HTTP_API_MAX_PAYLOAD_BYTES: Final = c.HTTP_API_MAX_PAYLOAD_BYTES
HTTP_API_INTEGRATION_TIMEOUT_S: Final = 30.0
LAMBDA_SYNC_PAYLOAD_LIMIT_BYTES: Final = 6 * 1024 * 1024

# WebSocket API quotas (API Gateway developer guide, "Quotas for configuring and running a
# WebSocket API"): a larger frame or message closes the connection with code 1009; a
# @connections post over the message size is refused with 413 PayloadTooLargeException.
WS_FRAME_MAX_BYTES: Final = 32 * 1024
WS_MESSAGE_MAX_BYTES: Final = 128 * 1024
WS_INTEGRATION_TIMEOUT_S: Final = 29.0


@dataclass(frozen=True)
class Ports:
    """TCP ports the local runtime listens on; 0 asks the OS for a free one."""

    http: int = 3000
    websocket: int = 3001  # the WebSocket API and its @connections endpoint
    aws: int = 4566
    lambda_: int = 9001
    postgres: int = 5433

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Ports:
        """The default ports, each overridden by its ``LWM_*_PORT`` variable when set."""
        env = os.environ if environ is None else environ
        default = cls()

        def port(key: str, fallback: int) -> int:
            value = env.get(key, "").strip()
            return int(value) if value else fallback

        return cls(
            http=port(ENV_HTTP_PORT, default.http),
            websocket=port(ENV_WS_PORT, default.websocket),
            aws=port(ENV_AWS_PORT, default.aws),
            lambda_=port(ENV_LAMBDA_PORT, default.lambda_),
            postgres=port(ENV_PG_PORT, default.postgres),
        )

    @classmethod
    def ephemeral(cls) -> Ports:
        """Free ports chosen by the OS, for tests that run beside a developer's stack."""
        return cls(http=0, websocket=0, aws=0, lambda_=0, postgres=0)


def physical_name(logical: str) -> str:
    """The local physical name of a declared resource, e.g. ``lwm-local-auth``."""
    return f"{NAME_PREFIX}{logical}"


def function_arn(name: str) -> str:
    """The ARN moto gives a function with this physical name."""
    return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"


def queue_arn(name: str) -> str:
    """The ARN of the local queue with this physical name."""
    return f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"


def url(port: int, scheme: str = "http") -> str:
    """The loopback URL of a local server."""
    return f"{scheme}://{HOST}:{port}"

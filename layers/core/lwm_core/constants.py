"""Names and environment keys shared by functions, the CDK app and the local runtime.

Keep every environment key here: functions read them through settings classes,
``blueprint`` writes them, and nothing spells them a second time.
"""

from typing import Final

PLATFORM: Final = "lwm"

# Roles a user can hold. Admin is granted only by the operator CLI.
ROLE_MENTEE: Final = "mentee"
ROLE_MENTOR: Final = "mentor"
ROLE_ADMIN: Final = "admin"
ROLES: Final = (ROLE_MENTEE, ROLE_MENTOR, ROLE_ADMIN)
SELF_SERVICE_ROLES: Final = (ROLE_MENTEE, ROLE_MENTOR)

# Environment keys every function gets.
ENV_STAGE: Final = "LWM_STAGE"
ENV_ISSUER: Final = "LWM_ISSUER"
ENV_AUDIENCE: Final = "LWM_AUDIENCE"
ENV_PUBLIC_BASE_URL: Final = "LWM_PUBLIC_BASE_URL"
ENV_AWS_ENDPOINT: Final = "AWS_ENDPOINT_URL"  # honoured natively by boto3/botocore
ENV_EVENT_BUS: Final = "LWM_EVENT_BUS"

# Per-resource environment key prefixes; the suffix is the resource's name in upper snake case.
ENV_TABLE_PREFIX: Final = "LWM_TABLE_"
ENV_BUCKET_PREFIX: Final = "LWM_BUCKET_"
ENV_QUEUE_PREFIX: Final = "LWM_QUEUE_URL_"
ENV_SIGNING_KEY_PREFIX: Final = "LWM_SIGNING_KEY_"
ENV_SECRET_PREFIX: Final = "LWM_SECRET_ARN_"

# PostgreSQL: locally a URL; in AWS the RDS Proxy host plus the credentials secret.
ENV_DATABASE_URL: Final = "DATABASE_URL"
ENV_DATABASE_HOST: Final = "LWM_DATABASE_HOST"
ENV_DATABASE_NAME: Final = "LWM_DATABASE_NAME"
ENV_DATABASE_SECRET_ARN: Final = "LWM_DATABASE_SECRET_ARN"

# Rate-limit overrides, JSON {"limit-name": [max_hits, window_s]} (lwm_core.settings).
ENV_RATE_LIMITS: Final = "LWM_RATE_LIMITS"

# The WebSocket API's @connections endpoint (apigatewaymanagementapi endpoint_url).
ENV_WS_MANAGEMENT_URL: Final = "LWM_WS_MANAGEMENT_URL"

# Email sender identity (SES).
ENV_MAIL_FROM: Final = "LWM_MAIL_FROM"

# Limits documented in docs/api.md.
MAX_JSON_BODY_BYTES: Final = 64 * 1024
HTTP_API_MAX_PAYLOAD_BYTES: Final = 10 * 1024 * 1024  # API Gateway HTTP API hard limit
ACCESS_TOKEN_TTL_S: Final = 15 * 60
REFRESH_TOKEN_TTL_S: Final = 30 * 24 * 3600

# Access tokens: the audience every API accepts and the scope prefix-free role names.
TOKEN_AUDIENCE: Final = "linkwithmentor-api"

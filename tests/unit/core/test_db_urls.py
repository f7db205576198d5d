"""Database URLs: plain locally; in AWS the RDS Proxy with a fresh IAM token per connection."""

from __future__ import annotations

from typing import Any

import pytest
from moto import mock_aws

from lwm_core import db
from lwm_core.settings import DatabaseSettings

PROXY = "lwm-dev.proxy-abc123.eu-west-1.rds.amazonaws.com"


@pytest.fixture(autouse=True)
def _no_database_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the arguments here, not from a handler environment in this process."""
    for key in (
        "DATABASE_URL",
        "LWM_DATABASE_HOST",
        "LWM_DATABASE_NAME",
        "LWM_DATABASE_SECRET_ARN",
    ):
        monkeypatch.delenv(key, raising=False)


def test_a_local_url_is_used_as_given_with_the_psycopg_driver() -> None:
    settings = DatabaseSettings(DATABASE_URL="postgresql://app@127.0.0.1:5433/lwm")
    assert db.database_url(settings) == "postgresql+psycopg://app@127.0.0.1:5433/lwm"


def test_settings_need_a_url_or_the_proxy_and_its_secret() -> None:
    with pytest.raises(ValueError, match="DATABASE_URL"):
        DatabaseSettings(LWM_DATABASE_HOST=PROXY)


@mock_aws
def test_in_aws_the_proxy_is_reached_with_tls_and_iam_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the proxy endpoint and the credentials secret the CDK app passes
    import boto3

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    arn = boto3.client("secretsmanager", region_name="eu-west-1").create_secret(
        Name="db", SecretString='{"username": "lwm_admin", "password": "rotated", "port": 5432}'
    )["ARN"]
    settings = DatabaseSettings(
        LWM_DATABASE_HOST=PROXY, LWM_DATABASE_SECRET_ARN=arn, AWS_REGION="eu-west-1"
    )
    # When the URL and the engine are built
    url = db.database_url(settings)
    engine = db.engine(url)
    params: dict[str, Any] = {}
    engine.dialect.dispatch.do_connect(engine.dialect, None, [], params)
    # Then the password never travels in the URL, TLS is required, and each
    # connection gets a signed IAM token for the secret's user on the proxy
    assert "rotated" not in url
    assert engine.url.query == {"sslmode": "require"}
    assert engine.url.username == "lwm_admin" and engine.url.host == PROXY
    token = params["password"]
    assert token.startswith(f"{PROXY}:5432/?Action=connect&DBUser=lwm_admin")
    assert "X-Amz-Signature=" in token

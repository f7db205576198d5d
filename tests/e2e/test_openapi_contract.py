"""The committed OpenAPI document is the apps' contract, and the running API keeps it.

Schemathesis generates requests from ``docs/openapi.json`` (valid and
invalid ones) and sends them through the local gateway with a real token:
no answer may be a 5xx, and every answer must match the document (status
code, content type, headers and body schema). Three checks are left out on
purpose: an HTTP API answers an undeclared method with 404 ``Not Found``, as
AWS does, not 405 (``unsupported_method``); a schema-valid request may still
break a rule only the service knows, such as an unknown or spent token or a
time zone that is not IANA's (``positive_data_acceptance``); and every call
here carries a token, so ``ignored_auth`` cannot tell; refusal without a token
is proven route by route in ``test_every_protected_route_refuses_a_missing_token``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    positive_data_acceptance,
    unsupported_method,
)

from blueprint import PLATFORM
from blueprint.model import Auth
from local_runtime.openapi import build_document
from tests.stack import register

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "openapi.json"

schema = schemathesis.openapi.from_path(DOCUMENT)


def test_the_committed_document_matches_the_apps() -> None:
    # Given the document generated from the apps now / Then docs/openapi.json is identical
    committed = json.loads(DOCUMENT.read_text())
    assert committed == build_document(PLATFORM), "run `make openapi` and commit docs/openapi.json"


def test_every_declared_route_is_documented() -> None:
    documented = {
        f"{method.upper()} {path}"
        for path, operations in json.loads(DOCUMENT.read_text())["paths"].items()
        for method in operations
    }
    assert documented == {route.key for route, _ in PLATFORM.routes()}


@pytest.mark.stack
def test_every_protected_route_refuses_a_missing_token(api_url: str) -> None:
    # Given every declared route that needs a token, with sample path parameters
    with httpx.Client(base_url=api_url, timeout=30, trust_env=False) as client:
        for route, _ in PLATFORM.routes():
            if route.auth is Auth.PUBLIC:
                continue
            path = re.sub(r"\{[a-z_]+\+?\}", "01M8T2DT7KX0TKNZXE7MYDCMSA", route.path)
            # When it is called without one / Then the gateway refuses it
            response = client.request(
                route.method, path, json={} if route.method != "GET" else None
            )
            assert response.status_code == 401, route.key
            assert response.json() == {"message": "Unauthorized"}


@pytest.fixture(scope="module")
def fuzz_token(api_url: str, aws_endpoint: str) -> str:
    """A verified mentee-and-mentor account for the fuzzer's authorized calls."""
    with httpx.Client(base_url=api_url, timeout=30, trust_env=False) as client:
        return register(
            client, aws_endpoint, roles=("mentee", "mentor"), prefix="fuzz"
        ).access_token


@pytest.mark.stack
@schema.exclude(method="DELETE", path="/me").parametrize()
@settings(
    # The suite replays the same examples every run (no flaky CI); LWM_FUZZ_EXAMPLES=200
    # explores new ones, and whatever it finds becomes a fix and, where it fits, a test.
    max_examples=int(os.environ.get("LWM_FUZZ_EXAMPLES", "12")),
    derandomize="LWM_FUZZ_EXAMPLES" not in os.environ,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_the_api_keeps_its_contract(case: schemathesis.Case, api_url: str, fuzz_token: str) -> None:
    # When any generated request is sent through the gateway with a valid token
    # Then no 5xx, and the response conforms to the document
    # A case generated to test missing or broken headers (the Authorization header among
    # them) goes as generated; every other case carries the fuzz account's token.
    negative_headers = case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER)
    auth = {} if negative_headers else {"authorization": f"Bearer {fuzz_token}"}
    case.call_and_validate(
        base_url=api_url,
        headers=auth,
        excluded_checks=[unsupported_method, positive_data_acceptance, ignored_auth],
        timeout=30,
    )

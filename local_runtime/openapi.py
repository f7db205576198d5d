"""The platform's OpenAPI document: every service's FastAPI contract, merged.

``python -m local_runtime openapi`` prints it (``make openapi`` writes
``docs/openapi.json``); a test proves the committed file matches the apps.
Security follows the declaration: public routes carry no requirement, the
others need the bearer token API Gateway's JWT authorizer checks.
"""

from __future__ import annotations

import importlib
from typing import Any

from blueprint.model import Auth, Platform
from lwm_core.errors import PROBLEM_JSON
from lwm_core.web import Problem

OPENAPI_VERSION = "3.1.0"
TITLE = "LinkWithMentor API"
BEARER = "accessToken"
GATEWAY_MESSAGE = "GatewayMessage"
PROBLEM = "Problem"
PROBLEM_SCHEMA = Problem.model_json_schema()


def _problems_by_reference(responses: dict[str, Any]) -> dict[str, Any]:
    """Problem bodies as one ``$ref`` to ``#/components/schemas/Problem`` (apps inline it)."""
    out: dict[str, Any] = {}
    for status, entry in responses.items():
        content = dict(entry.get("content", {}))
        problem = content.get(PROBLEM_JSON)
        if problem and (problem.get("schema") or {}).get("title") == PROBLEM:
            content[PROBLEM_JSON] = {"schema": {"$ref": f"#/components/schemas/{PROBLEM}"}}
            entry = {**entry, "content": content}
        out[status] = entry
    return out


# What the HTTP API itself may answer on any route: payload over 10 MB, throttling,
# integration timeout. Routes with a JWT authorizer add 401 (and 403 for missing scopes).
GATEWAY_STATUSES = ("413", "429", "503")


def _with_gateway_answers(responses: dict[str, Any], statuses: list[str]) -> dict[str, Any]:
    """Add API Gateway's own answers (``application/json`` ``{"message": ...}``) to ``statuses``.

    The gateway answers before any function runs, so these are not problem+json;
    the function's own problems for the same status stay documented beside them.
    """
    out = dict(responses)
    gateway = {"schema": {"$ref": f"#/components/schemas/{GATEWAY_MESSAGE}"}}
    for status in statuses:
        entry = dict(out.get(status, {"description": "Answered by API Gateway"}))
        entry["content"] = {**entry.get("content", {}), "application/json": gateway}
        out[status] = entry
    return out


def load_app(ref: str) -> Any:
    """Import ``module:attribute`` and return the attribute (a FastAPI app)."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def build_document(platform: Platform, version: str = "1.0.0") -> dict[str, Any]:
    """One OpenAPI 3.1 document for every service that declares an app."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    declared = {route.key: route for route, _ in platform.routes()}
    for service in platform.services:
        if not service.app:
            continue
        spec = load_app(service.app).openapi()
        for path, operations in spec.get("paths", {}).items():
            merged = paths.setdefault(path, {})
            for method, operation in operations.items():
                route = declared.get(f"{method.upper()} {path}")
                operation = dict(operation)
                operation.pop("security", None)
                statuses = list(GATEWAY_STATUSES)
                if route is not None and route.auth is not Auth.PUBLIC:
                    operation["security"] = [{BEARER: list(route.roles)}]
                    statuses += ["401", "403"] if route.roles else ["401"]
                responses = _problems_by_reference(operation.get("responses", {}))
                operation["responses"] = _with_gateway_answers(responses, statuses)
                merged[method] = operation
        for name, schema in spec.get("components", {}).get("schemas", {}).items():
            if name in schemas and schemas[name] != schema:
                # One document serves every service: a name may mean one schema only.
                raise ValueError(f"schema {name!r} differs between services; rename one")
            schemas[name] = schema
    schemas[PROBLEM] = PROBLEM_SCHEMA
    schemas[GATEWAY_MESSAGE] = {
        "title": GATEWAY_MESSAGE,
        "type": "object",
        "description": "The API Gateway's own answer, before any function runs "
        "(missing or invalid token, missing role, unknown route, body over 10 MB).",
        "properties": {"message": {"type": "string"}},
        "required": ["message"],
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": TITLE,
            "version": version,
            "description": "REST API of LinkWithMentor. Errors are application/problem+json "
            "(RFC 9457) with a stable `code`; see docs/api.md.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "Access token from POST /auth/login (ES256, 15 minutes)",
                }
            },
        },
    }

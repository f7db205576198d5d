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

OPENAPI_VERSION = "3.1.0"
TITLE = "LinkWithMentor API"
BEARER = "accessToken"


def load_app(ref: str) -> Any:
    """Import ``module:attribute`` and return the attribute (a FastAPI app)."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def build_document(platform: Platform, version: str = "1.0.0") -> dict[str, Any]:
    """One OpenAPI 3.1 document for every service that declares an app."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    tags: list[dict[str, str]] = []
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
                if route is not None and route.auth is not Auth.PUBLIC:
                    operation["security"] = [{BEARER: list(route.roles)}]
                merged[method] = operation
        schemas.update(spec.get("components", {}).get("schemas", {}))
        tags.append({"name": service.name, "description": spec["info"].get("description", "")})
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

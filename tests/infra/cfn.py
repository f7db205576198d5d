"""Small readers of synthesized CloudFormation templates (plain JSON from ``Template.to_json``).

CloudFormation values are intrinsics (``Ref``, ``Fn::GetAtt``, ``Fn::Join``,
``Fn::ImportValue``...). :func:`flatten` renders one as a string in which
``${LogicalId}``, ``${LogicalId.Attr}`` and ``${import:ExportName}`` name what it
points to, so tests can say which resources a policy, a route or a target reaches.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from aws_cdk import Stack
from constructs import IConstruct

Resources = dict[str, dict[str, Any]]

_REF = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}")
_IMPORT = re.compile(r"\$\{import:([^}]+)\}")


def resources(template: Mapping[str, Any], kind: str) -> Resources:
    """The resources of one type, by logical id."""
    return {k: r for k, r in template.get("Resources", {}).items() if r["Type"] == kind}


def api_resources(template: Mapping[str, Any], kind: str, api_id: str) -> Resources:
    """The ``AWS::ApiGatewayV2::*`` resources of one API (their ``ApiId`` refers to ``api_id``)."""
    return {
        k: r
        for k, r in resources(template, kind).items()
        if target(props(r).get("ApiId")) == api_id
    }


def props(resource: Mapping[str, Any]) -> dict[str, Any]:
    """A resource's ``Properties`` (empty when it has none)."""
    return dict(resource.get("Properties") or {})


def as_list(value: Any) -> list[Any]:
    """A policy field (one value or a list) as a list; ``None`` is empty."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def target(value: Any) -> str | None:
    """The logical id a ``Ref`` or ``Fn::GetAtt`` points to, else None."""
    if isinstance(value, dict) and len(value) == 1:
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            attr = value["Fn::GetAtt"]
            return str(attr[0] if isinstance(attr, list) else attr.split(".")[0])
    return None


def flatten(value: Any) -> str:
    """An intrinsic as readable text: ``${Id}``, ``${Id.Attr}``, ``${import:Name}``, joins."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    if isinstance(value, list):
        return ",".join(flatten(v) for v in value)
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return f"${{{arg}}}"
        if fn == "Fn::GetAtt":
            parts = arg if isinstance(arg, list) else arg.split(".", 1)
            return f"${{{parts[0]}.{parts[1]}}}"
        if fn == "Fn::Join":
            separator, items = arg
            return str(separator).join(flatten(v) for v in items)
        if fn == "Fn::ImportValue":
            return f"${{import:{flatten(arg)}}}"
        if fn == "Fn::Sub":
            return str(arg if isinstance(arg, str) else arg[0])
        return f"{fn}({flatten(arg)})"
    return json.dumps(value, sort_keys=True)


def referenced_ids(value: Any) -> set[str]:
    """Logical ids of this template that ``value`` refers to (pseudo parameters left out)."""
    return set(_REF.findall(flatten(value)))


def imported_names(value: Any) -> set[str]:
    """Export names that ``value`` imports."""
    return set(_IMPORT.findall(flatten(value)))


def exports(template: Mapping[str, Any]) -> dict[str, str]:
    """Export name -> the logical id of the resource the exported value comes from."""
    out: dict[str, str] = {}
    for output in template.get("Outputs", {}).values():
        name = output.get("Export", {}).get("Name")
        source = target(output.get("Value"))
        if isinstance(name, str) and source:
            out[name] = source
    return out


def statements(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The statements of a policy document."""
    return [dict(s) for s in as_list(document.get("Statement"))]


def iam_statements(template: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every identity-policy statement: ``AWS::IAM::Policy`` and roles' inline policies."""
    for logical_id, policy in resources(template, "AWS::IAM::Policy").items():
        for statement in statements(props(policy)["PolicyDocument"]):
            yield logical_id, statement
    for logical_id, role in resources(template, "AWS::IAM::Role").items():
        for inline in props(role).get("Policies", []):
            for statement in statements(inline["PolicyDocument"]):
                yield f"{logical_id}/{inline.get('PolicyName')}", statement


def role_statements(template: Mapping[str, Any], role_id: str) -> list[dict[str, Any]]:
    """Every statement of the ``AWS::IAM::Policy`` resources attached to one role."""
    out: list[dict[str, Any]] = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        if role_id in {target(r) for r in props(policy).get("Roles", [])}:
            out += statements(props(policy)["PolicyDocument"])
    return out


def logical_id(construct: IConstruct) -> str:
    """The logical id of an L2 construct's CloudFormation resource."""
    stack = Stack.of(construct)
    default_child = construct.node.default_child
    if default_child is None:
        raise ValueError(f"{construct.node.path} has no CloudFormation resource")
    return str(stack.resolve(stack.get_logical_id(default_child)))  # type: ignore[arg-type]

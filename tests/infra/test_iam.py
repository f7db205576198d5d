"""IAM: no wildcard actions, no ``Resource: *`` on data, and each function reaches exactly
the resources its ``Access`` declarations name, with the actions their modes allow."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import pytest

from blueprint.model import Access, Function

from . import cfn
from .conftest import Synthesis

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]

# X-Ray's write actions support no resource-level permission (nag IAM5[Resource::*] says why).
XRAY_ACTIONS = frozenset({"xray:PutTraceSegments", "xray:PutTelemetryRecords"})
# Neither does dynamodb:ListStreams, which a table stream's event source mapping needs
# (test_streams.py checks that only stream consumers have it).
LIST_STREAMS = "dynamodb:ListStreams"
UNSCOPED_ACTIONS = XRAY_ACTIONS | {LIST_STREAMS}
# The CDK grant_* action groups the nag acknowledgments in infra_cdk/api/grants.py explain.
ACKNOWLEDGED_ACTION_GROUPS = frozenset(
    {"kms:GenerateDataKey*", "kms:ReEncrypt*", "s3:GetObject*", "s3:GetBucket*", "s3:List*"}
    | {"s3:Abort*"}
)
DATA_SERVICES = ("dynamodb", "s3", "sqs", "kms", "secretsmanager", "rds-db")
# A wildcard may only narrow a named resource to its parts: a table's indexes, a bucket's objects.
_NAMED_SUFFIXES = ("/index/*", "/stream/*", "/*")
AWS_MANAGED_VPC_POLICY = "service-role/AWSLambdaVPCAccessExecutionRole"
CDK_PROVIDER_POLICIES = {"service-role/AWSLambdaBasicExecutionRole"}
# API Gateway's account-level logging role (WebSocket access logs need it; see websocket_api.py).
APIGW_LOGS_POLICY = "service-role/AmazonAPIGatewayPushToCloudWatchLogs"
APIGW_PRINCIPAL = {"Service": "apigateway.amazonaws.com"}

TABLE_READS = {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:BatchGetItem"}
TABLE_WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
BUCKET_READS = {"s3:GetObject*"}
BUCKET_WRITES = {"s3:PutObject"}
QUEUE_SENDS = {"sqs:SendMessage"}
QUEUE_RECEIVES = {"sqs:ReceiveMessage", "sqs:DeleteMessage"}
READ_WRITE_ACTIONS = {
    "table": (TABLE_READS, TABLE_WRITES),
    "bucket": (BUCKET_READS, BUCKET_WRITES),
    "queue": (QUEUE_RECEIVES, QUEUE_SENDS),
}
EXACT_ACTIONS = {
    ("signing_key", "sign"): {"kms:Sign", "kms:GetPublicKey"},
    ("signing_key", "verify"): {"kms:Verify", "kms:GetPublicKey"},
    ("secret", "read"): {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"},
    ("events", "publish"): {"events:PutEvents"},
    ("email", "send"): {"ses:SendEmail", "ses:SendRawEmail"},
    ("database", "connect"): {"rds-db:connect"},
    ("websocket", "manage"): {"execute-api:ManageConnections"},
}


def _all_statements(synth: Synthesis) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for stack in synth.stacks:
        for where, statement in cfn.iam_statements(synth.template_of(stack)):
            out.append((f"{stack.stack_name}/{where}", statement))
    assert out, "no IAM statement at all"
    return out


def test_no_policy_allows_every_action(synth: Synthesis) -> None:
    # Given every statement of every identity policy in both stacks
    problems = []
    for where, statement in _all_statements(synth):
        # Then none uses NotAction (an allow-list turned inside out)
        if "NotAction" in statement or "NotResource" in statement:
            problems.append(f"{where}: NotAction/NotResource")
        for action in cfn.as_list(statement.get("Action")):
            # and no action is `*` or a whole service
            if action == "*" or str(action).endswith(":*"):
                problems.append(f"{where}: {action}")
            # and the only partial wildcards are the acknowledged CDK grant groups
            elif "*" in str(action) and action not in ACKNOWLEDGED_ACTION_GROUPS:
                problems.append(f"{where}: unacknowledged wildcard action {action}")
    assert problems == [], "\n".join(problems)


def test_resource_star_is_only_for_xray(synth: Synthesis) -> None:
    # Given every statement of every identity policy in both stacks
    problems = []
    for where, statement in _all_statements(synth):
        actions = {str(a) for a in cfn.as_list(statement.get("Action"))}
        resources = [cfn.flatten(r) for r in cfn.as_list(statement.get("Resource"))]
        # Then `Resource: *` only carries X-Ray's actions and ListStreams (no resource scoping)
        if "*" in resources and not actions <= UNSCOPED_ACTIONS:
            problems.append(f"{where}: {sorted(actions - UNSCOPED_ACTIONS)} on Resource *")
        # and a data action names its resource: a wildcard may only pick the resource's parts
        if any(a.split(":")[0] in DATA_SERVICES for a in actions - UNSCOPED_ACTIONS):
            for resource in resources:
                named = next(
                    (resource[: -len(s)] for s in _NAMED_SUFFIXES if resource.endswith(s)), resource
                )
                if "*" in named or not named:
                    problems.append(f"{where}: {sorted(actions)} on {resource}")
    assert problems == [], "\n".join(problems)


def test_roles_attach_no_broad_managed_policy(synth: Synthesis) -> None:
    # Given every role of both stacks
    functions = synth.platform.functions()
    db_roles = {
        f"{synth.config.prefix}-{fn.name} Lambda execution role"
        for fn in functions
        if fn.uses_database
    }
    problems = []
    for stack in synth.stacks:
        for role_id, role in cfn.resources(synth.template_of(stack), "AWS::IAM::Role").items():
            arns = {
                cfn.flatten(a).rsplit(":policy/", 1)[-1]
                for a in cfn.props(role).get("ManagedPolicyArns", [])
            }
            description = cfn.props(role).get("Description")
            principals = [
                s.get("Principal")
                for s in cfn.statements(cfn.props(role)["AssumeRolePolicyDocument"])
            ]
            # Then functions that use the database get the VPC ENI policy and nothing else
            if description in db_roles:
                expected = {AWS_MANAGED_VPC_POLICY}
            # and API Gateway's own logging role (assumed by API Gateway only) the push policy
            elif principals == [APIGW_PRINCIPAL]:
                expected = {APIGW_LOGS_POLICY}
            # and every other role only CDK's custom-resource logging policy, or none
            else:
                expected = arns & CDK_PROVIDER_POLICIES
            if arns != expected:
                problems.append(f"{stack.stack_name}/{role_id} ({description}): {sorted(arns)}")
    assert problems == [], "\n".join(problems)


# --- least privilege, per declaration -----------------------------------------------------


def _function_statements(synth: Synthesis, fn: Function) -> tuple[str, list[dict[str, Any]]]:
    """The logical id of a declared function and the statements of its role's policies."""
    physical = f"{synth.config.prefix}-{fn.name}"
    functions = cfn.resources(synth.api_json, "AWS::Lambda::Function")
    function_id, function = next(
        (k, r) for k, r in functions.items() if cfn.props(r).get("FunctionName") == physical
    )
    role_id = cfn.target(cfn.props(function)["Role"])
    assert role_id, f"{fn.name}: role is not a resource of the stack"
    return function_id, cfn.role_statements(synth.api_json, role_id)


def _reached(synth: Synthesis, statements: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Actions allowed per reached resource: ``table:<name>``, a Data or Api logical id, ``ses``."""
    data_exports = cfn.exports(synth.data_json)
    reached: dict[str, set[str]] = defaultdict(set)
    for statement in statements:
        assert statement.get("Effect") == "Allow", statement
        actions = {str(a) for a in cfn.as_list(statement.get("Action"))}
        if actions <= UNSCOPED_ACTIONS:
            continue
        for resource in cfn.as_list(statement.get("Resource")):
            keys = {f"table:{m}" for m in re.findall(r":table/([a-z0-9-]+)", cfn.flatten(resource))}
            keys |= {
                data_exports.get(name, f"unresolved-import:{name}")
                for name in cfn.imported_names(resource)
            }
            keys |= cfn.referenced_ids(resource)
            if ":ses:" in cfn.flatten(resource):
                keys.add("ses")
            assert keys, f"cannot tell what {cfn.flatten(resource)} names"
            for key in keys:
                reached[key] |= actions
    return reached


def _expected(synth: Synthesis, fn: Function) -> dict[str, Access | None]:
    """What ``fn`` may reach, per key of :func:`_reached`, from its declared access."""
    data = synth.data
    out: dict[str, Access | None] = {}
    for access in fn.access:
        if access.kind == "table":
            out[f"table:{synth.config.prefix}-{access.name}"] = access
        elif access.kind == "bucket":
            out[cfn.logical_id(data.buckets.buckets[access.name])] = access
        elif access.kind == "queue":
            out[cfn.logical_id(data.queues.queues[access.name])] = access
        elif access.kind == "signing_key":
            out[cfn.logical_id(data.signing_keys.keys[access.name])] = access
        elif access.kind == "secret":
            out[cfn.logical_id(data.secrets.secrets[access.name])] = access
        elif access.kind == "events":
            out[cfn.logical_id(data.events.bus)] = access
        elif access.kind == "email":
            out["ses"] = access
        elif access.kind == "database":
            out[cfn.logical_id(data.database.proxy)] = access
            out[cfn.logical_id(data.database.secret)] = None
        elif access.kind == "websocket":
            assert synth.api.websocket is not None
            out[cfn.logical_id(synth.api.websocket.api)] = access
    # The data key encrypts tables, buckets, queues and secrets (the database secret too).
    if any(a.kind in {"table", "bucket", "queue", "secret", "database"} for a in fn.access):
        out[cfn.logical_id(data.data_key)] = None
    # A stream consumer reads its table's stream (the table's StreamArn, imported) and
    # sends to its failure queue, both encrypted with the data key (test_streams.py
    # checks the actions).
    for stream in synth.platform.streams:
        if stream.function == fn.name:
            out[cfn.logical_id(data.tables.tables[stream.table])] = None
            out[cfn.logical_id(data.data_key)] = None
            if stream.on_failure_queue is not None:
                out[cfn.logical_id(data.queues.queues[stream.on_failure_queue])] = None
    return out


def test_functions_reach_exactly_their_declared_resources(synth: Synthesis) -> None:
    for fn in synth.platform.functions():
        # Given a declared function and the statements of its role
        function_id, statements = _function_statements(synth, fn)
        reached = _reached(synth, statements)
        own_log_group = cfn.target(
            cfn.props(cfn.resources(synth.api_json, "AWS::Lambda::Function")[function_id])[
                "LoggingConfig"
            ]["LogGroup"]
        )
        # Then it reaches its own log group, and the data resources it declares, nothing else
        expected = set(_expected(synth, fn)) | {str(own_log_group)}
        assert set(reached) == expected, (
            f"{fn.name}: undeclared {sorted(set(reached) - expected)}, "
            f"missing {sorted(expected - set(reached))}"
        )
        assert reached[str(own_log_group)] == {"logs:CreateLogStream", "logs:PutLogEvents"}


def test_access_modes_limit_the_actions(synth: Synthesis) -> None:
    problems = []
    for fn in synth.platform.functions():
        # Given a declared function, what it reaches and what it declares
        _, statements = _function_statements(synth, fn)
        reached = _reached(synth, statements)
        for key, access in _expected(synth, fn).items():
            if access is None:
                continue
            actions = reached.get(key, set())
            mode = access.mode
            # Then reads and writes follow the declared mode
            if access.kind in READ_WRITE_ACTIONS:
                reads, writes = READ_WRITE_ACTIONS[access.kind]
                may_read = mode in {"read", "read_write"}
                may_write = mode in {"write", "read_write", "send"}
                if may_read != bool(actions & reads) or (may_read and not reads <= actions):
                    problems.append(f"{fn.name} {access}: read actions {sorted(actions & reads)}")
                if may_write != bool(actions & writes) or (may_write and not writes <= actions):
                    problems.append(f"{fn.name} {access}: write actions {sorted(actions & writes)}")
                if access.kind in {"table", "bucket"} and actions & {
                    "dynamodb:DeleteTable",
                    "s3:DeleteBucket",
                    "s3:PutBucketPolicy",
                    "s3:DeleteObject",
                }:
                    problems.append(
                        f"{fn.name} {access}: may delete or reconfigure {sorted(actions)}"
                    )
            # and other resources allow exactly the actions their use needs
            elif actions != EXACT_ACTIONS.get((access.kind, mode)):
                problems.append(f"{fn.name} {access}: {sorted(actions)}")
    assert problems == [], "\n".join(problems)


def test_email_is_sent_only_from_the_configured_sender(synth: Synthesis) -> None:
    for fn in synth.platform.functions():
        if not any(a.kind == "email" for a in fn.access):
            continue
        # Given the SES statement of a function that declares email
        _, statements = _function_statements(synth, fn)
        (ses,) = [s for s in statements if "ses:SendEmail" in cfn.as_list(s["Action"])]
        # Then it is conditioned on the configured From address
        assert ses["Condition"] == {"StringEquals": {"ses:FromAddress": synth.config.mail_from}}
        identities = {
            cfn.flatten(r).rsplit(":identity/", 1)[-1] for r in cfn.as_list(ses["Resource"])
        }
        assert identities == {synth.config.mail_domain, synth.config.mail_from}


def test_websocket_connections_are_managed_on_this_stage_only(synth: Synthesis) -> None:
    websocket = synth.api.websocket
    assert websocket is not None
    ws_id = cfn.logical_id(websocket.api)
    for fn in synth.platform.functions():
        # Given a declared function and its execute-api statements
        _, statements = _function_statements(synth, fn)
        manage = [
            s for s in statements if "execute-api:ManageConnections" in cfn.as_list(s["Action"])
        ]
        if not any(a.kind == "websocket" for a in fn.access):
            # Then a function that declares no WebSocket access may not manage connections
            assert manage == [], fn.name
            continue
        # and one that does may POST, GET and DELETE @connections of this API's stage, no more
        (statement,) = manage
        assert cfn.as_list(statement["Action"]) == ["execute-api:ManageConnections"]
        assert sorted(cfn.flatten(r) for r in cfn.as_list(statement["Resource"])) == [
            f"arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{{ws_id}}}"
            f"/{synth.stage}/{method}/@connections/*"
            for method in ("DELETE", "GET", "POST")
        ]

"""One Lambda function per ``blueprint`` Function, each with its own role and log group."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from blueprint.environment import Resolver, environment_for
from blueprint.model import Function, Platform
from infra_cdk import bundling
from infra_cdk.api.grants import AccessGrants
from infra_cdk.api.layers import function_code
from infra_cdk.api.websocket_api import WebSocketApiConstruct
from infra_cdk.config import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME, StageConfig
from infra_cdk.data.stack import DataStack
from infra_cdk.nag import acknowledge

_VPC_POLICY = "service-role/AWSLambdaVPCAccessExecutionRole"


class FunctionsConstruct(Construct):
    """arm64 Python functions with X-Ray, the two layers, and grants from their declared access.

    A function that declares database access runs in the VPC's ``app`` subnets with
    the database client security group; every other function stays outside the VPC.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        platform: Platform,
        data: DataStack,
        layers: Sequence[lambda_.ILayerVersion],
        resolver: Resolver,
        websocket: WebSocketApiConstruct | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._platform = platform
        self._data = data
        self._layers = list(layers)
        self._resolver = resolver
        self.grants = self._grants = AccessGrants(
            self, "Grants", config=config, platform=platform, data=data, websocket=websocket
        )
        # Functions that use the database also ship every service's Alembic scripts,
        # so the migrator finds them next to its own code.
        self._migrations = tuple(s.migrations for s in platform.services if s.migrations)
        self.functions: dict[str, lambda_.Function] = {
            fn.name: self._build_function(fn) for fn in platform.functions()
        }

    def _build_function(self, fn: Function) -> lambda_.Function:
        scope = Construct(self, fn.name)
        role = self._build_role(scope, fn)
        log_group = self._build_log_group(scope)
        code = bundling.function_code(
            fn.name, fn.code_dir, extra_dirs=self._migrations if fn.uses_database else ()
        )
        database = self._data.database
        in_vpc = fn.uses_database
        function = lambda_.Function(
            scope,
            "Function",
            function_name=f"{self._config.prefix}-{fn.name}",
            description=fn.description,
            runtime=LAMBDA_RUNTIME,
            architecture=LAMBDA_ARCHITECTURE,
            handler=fn.handler,
            code=function_code(code),
            layers=self._layers,
            memory_size=fn.memory_mb,
            timeout=Duration.seconds(fn.timeout_s),
            environment={
                **environment_for(self._platform, fn, self._resolver),
                **self._config.function_environment,
            },
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            role=role,
            vpc=self._data.network.vpc if in_vpc else None,
            vpc_subnets=self._data.network.app_subnets if in_vpc else None,
            security_groups=[database.client_security_group] if in_vpc else None,
        )
        log_group.grant_write(role)
        for access in fn.access:
            self._grants.grant(access, function)
        self._acknowledge(function, role, fn)
        return function

    def _acknowledge(self, function: lambda_.Function, role: iam.Role, fn: Function) -> None:
        acknowledge(
            function,
            "L1",
            f"{LAMBDA_RUNTIME.name} on purpose: pyproject supports CPython 3.11-3.13 and the "
            "dependency layer is built for this version; change LAMBDA_RUNTIME in "
            "infra_cdk/config.py to move.",
        )
        reason = (
            "X-Ray active tracing: xray:PutTraceSegments and xray:PutTelemetryRecords support "
            "no resource-level permissions."
        )
        if any(stream.function == fn.name for stream in self._platform.streams):
            reason += (
                " Its table stream event source mapping needs dynamodb:ListStreams, which "
                "supports none either (the stream reads name the one stream)."
            )
        acknowledge(role, "IAM5[Resource::*]", reason)

    def _build_role(self, scope: Construct, fn: Function) -> iam.Role:
        # An own role instead of AWSLambdaBasicExecutionRole: log writes are granted on the
        # function's log group only (see _build_function).
        role = iam.Role(
            scope,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{self._config.prefix}-{fn.name} Lambda execution role",
        )
        if fn.uses_database:
            role.add_managed_policy(iam.ManagedPolicy.from_aws_managed_policy_name(_VPC_POLICY))
            acknowledge(
                role,
                f"IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{_VPC_POLICY}]",
                "Lambda needs the ENI actions of this AWS-maintained policy to run in the VPC; "
                "they take no resource scoping the function could name in advance.",
            )
        return role

    def _build_log_group(self, scope: Construct) -> logs.LogGroup:
        return logs.LogGroup(
            scope,
            "Logs",
            retention=self._config.log_retention,
            removal_policy=self._config.removal_policy,
        )

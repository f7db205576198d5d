"""The WebSocket API: one route per declared ``WebSocketRoute``, a Lambda REQUEST authorizer on
``$connect``, a throttled stage with JSON access logs, and ``@connections`` grants."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from blueprint.model import WS_CONNECT, WebSocketApi, WebSocketRoute
from infra_cdk.api.http_api import JsonAccessLogSettings
from infra_cdk.config import StageConfig
from infra_cdk.nag import acknowledge

# A message goes to the route named by its `action` field, else to $default.
ROUTE_SELECTION_EXPRESSION = "$request.body.action"
# The @connections verbs: post to a connection, read its state, close it.
MANAGEMENT_METHODS = ("POST", "GET", "DELETE")
_PUSH_TO_LOGS_POLICY = "service-role/AmazonAPIGatewayPushToCloudWatchLogs"

# WebSocket API $context variables, one JSON object per connect, message and disconnect.
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "userAgent": "$context.identity.userAgent",
    "connectionId": "$context.connectionId",
    "eventType": "$context.eventType",
    "routeKey": "$context.routeKey",
    "messageId": "$context.messageId",
    "status": "$context.status",
    "integrationLatency": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
    "authorizerError": "$context.authorizer.error",
    "principalId": "$context.authorizer.principalId",
    "disconnectStatusCode": "$context.disconnectStatusCode",
    "disconnectReason": "$context.disconnectReason",
}


def route_id(route: WebSocketRoute) -> str:
    """A construct id for a route, stable under reordering (``$connect`` -> ``connect``)."""
    return f"Route-{route.key.removeprefix('$')}"


class WebSocketApiConstruct(Construct):
    """The declared WebSocket API and its stage; routes are added once the functions exist.

    Only ``$connect`` carries an authorizer: API Gateway authorizes a WebSocket once,
    at the upgrade, and every later frame belongs to that authorized connection.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, config: StageConfig, api: WebSocketApi
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._declaration = api
        self.api = apigwv2.WebSocketApi(
            self,
            "Api",
            api_name=f"{config.prefix}-{api.name}",
            description=f"LinkWithMentor {config.stage} WebSocket API ({api.name})",
            route_selection_expression=ROUTE_SELECTION_EXPRESSION,
        )
        self._build_logging_role()
        self.stage = self._build_stage()
        self._integrations: dict[str, integrations.WebSocketLambdaIntegration] = {}

    @property
    def url(self) -> str:
        """The ``wss://`` URL clients connect to."""
        return self.stage.url

    @property
    def management_url(self) -> str:
        """The ``@connections`` endpoint: ``https://{apiId}.execute-api.{region}.amazonaws.com/{stage}``."""
        return self.stage.callback_url

    def _build_logging_role(self) -> None:
        # Unlike HTTP APIs, a WebSocket stage with access logs is refused ("CloudWatch Logs
        # role ARN must be set in account settings") until the account-level API Gateway
        # setting names a role that may write logs. The setting is per account and region:
        # both are retained so another stage's APIs keep logging when this stack goes.
        role = iam.Role(
            self,
            "CloudWatchRole",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            description="API Gateway account setting: writes REST/WebSocket logs to CloudWatch",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(_PUSH_TO_LOGS_POLICY)],
        )
        role.apply_removal_policy(RemovalPolicy.RETAIN)
        acknowledge(
            role,
            f"IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{_PUSH_TO_LOGS_POLICY}]",
            "The AWS-maintained policy for API Gateway's account-wide logging role; it serves "
            "every API and stage of the account and region, so no log group can be named.",
        )
        account = apigw.CfnAccount(self, "Account", cloud_watch_role_arn=role.role_arn)
        account.apply_removal_policy(RemovalPolicy.RETAIN)
        self._account = account

    def _build_stage(self) -> apigwv2.WebSocketStage:
        config = self._config
        log_group = logs.LogGroup(
            self,
            "AccessLogs",
            retention=config.log_retention,
            removal_policy=config.removal_policy,
        )
        stage = apigwv2.WebSocketStage(
            self,
            "Stage",
            web_socket_api=self.api,
            stage_name=config.stage,
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=config.ws_throttle_rate, burst_limit=config.ws_throttle_burst
            ),
            access_log_settings=JsonAccessLogSettings(log_group, ACCESS_LOG_FIELDS),
        )
        stage.node.add_dependency(self._account)
        return stage

    def add_routes(self, functions: Mapping[str, lambda_.IFunction]) -> None:
        """One ``AWS::ApiGatewayV2::Route`` per declared route; ``$connect`` is authorized."""
        authorizer = self._build_authorizer(functions[self._declaration.authorizer])
        for route in self._declaration.routes:
            self._build_route(
                route,
                self._integration(route.function, functions[route.function]),
                authorizer if route.key == WS_CONNECT else None,
            )

    def _build_authorizer(
        self, function: lambda_.IFunction
    ) -> authorizers.WebSocketLambdaAuthorizer:
        return authorizers.WebSocketLambdaAuthorizer(
            "Authorizer",
            function,
            authorizer_name=f"{self._declaration.name}-connect",
            # No identity source on purpose: the token comes in the `token` query parameter
            # or the Sec-WebSocket-Protocol header, either may be absent, and API Gateway
            # answers 401 *without calling the authorizer* when any listed source is missing
            # (it would need both). WebSocket authorizers have no result cache to key, so
            # the function is called on every $connect and refuses a tokenless one itself.
            identity_source=[],
        )

    def _integration(
        self, name: str, function: lambda_.IFunction
    ) -> integrations.WebSocketLambdaIntegration:
        # One integration per function; each route still gets its own invoke permission,
        # scoped to its route key (WebSocketLambdaIntegration binds once per route).
        if name not in self._integrations:
            self._integrations[name] = integrations.WebSocketLambdaIntegration(
                f"{name}-integration", function
            )
        return self._integrations[name]

    def _build_route(
        self,
        route: WebSocketRoute,
        integration: integrations.WebSocketLambdaIntegration,
        authorizer: authorizers.WebSocketLambdaAuthorizer | None,
    ) -> apigwv2.WebSocketRoute:
        ws_route = apigwv2.WebSocketRoute(
            self,
            route_id(route),
            web_socket_api=self.api,
            route_key=route.key,
            integration=integration,
            authorizer=authorizer,
        )
        if authorizer is None:
            acknowledge(
                ws_route,
                "APIG4",
                f"WebSocket route {route.key}: API Gateway runs authorizers on $connect only; "
                "this route serves frames of a connection the $connect authorizer admitted.",
            )
        return ws_route

    def grant_manage_connections(self, grantee: iam.IGrantable) -> iam.Grant:
        """``execute-api:ManageConnections`` on this stage's ``@connections``, per verb."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["execute-api:ManageConnections"],
            resource_arns=self.management_arns(),
        )

    def management_arns(self) -> list[str]:
        """``arn:…:execute-api:{region}:{account}:{apiId}/{stage}/{METHOD}/@connections/*``."""
        return [
            self.api.arn_for_execute_api_v2(f"{method}/@connections/*", self.stage.stage_name)
            for method in MANAGEMENT_METHODS
        ]

    def management_nag_findings(self) -> list[str]:
        """The IAM5 finding ids cdk-nag reports for :meth:`management_arns`."""
        stack = Stack.of(self)
        default_child = self.api.node.default_child
        if default_child is None:
            raise RuntimeError(f"{self.api.node.path} has no CloudFormation resource")
        api_id = stack.resolve(stack.get_logical_id(default_child))  # type: ignore[arg-type]
        return [
            "IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:"
            f"<{api_id}>/{self.stage.stage_name}/{method}/@connections/*]"
            for method in MANAGEMENT_METHODS
        ]

"""The HTTP API: one route per declared ``Route``, a JWT authorizer, throttling, access logs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

import jsii
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from blueprint.model import Auth, Function, Route
from infra_cdk.config import StageConfig
from infra_cdk.nag import acknowledge

# HTTP API $context variables, one JSON object per request.
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "userAgent": "$context.identity.userAgent",
    "httpMethod": "$context.httpMethod",
    "path": "$context.path",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
    "authorizerError": "$context.authorizer.error",
    "sub": "$context.authorizer.claims.sub",
}


@jsii.implements(apigwv2.IAccessLogSettings)
class JsonAccessLogSettings:
    """Access logs of a stage (HTTP or WebSocket): one JSON object of ``fields`` per line."""

    def __init__(self, log_group: logs.ILogGroup, fields: Mapping[str, str]) -> None:
        self._destination = apigwv2.LogGroupLogDestination(log_group)
        self._format = apigw.AccessLogFormat.custom(json.dumps(dict(fields)))

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format


def route_id(route: Route) -> str:
    """A construct id for a route, stable under reordering (``/`` is a path separator)."""
    return f"{route.method}{route.path.replace('/', '|')}"


class HttpApiConstruct(Construct):
    """An HTTP API whose issuer is its own endpoint URL unless the ``issuer`` context says so.

    Routes default to the JWT authorizer; ``Auth.PUBLIC`` routes opt out and
    ``Auth.ROLE`` routes also require one of their roles in the token's ``scope``.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig) -> None:
        super().__init__(scope, construct_id)
        self.api = apigwv2.HttpApi(
            self,
            "Api",
            api_name=config.prefix,
            description=f"LinkWithMentor {config.stage} REST API",
            create_default_stage=False,
        )
        self.issuer: str = config.issuer or self.api.api_endpoint
        self.authorizer = authorizers.HttpJwtAuthorizer(
            "JwtAuthorizer",
            self.issuer,
            jwt_audience=[config.audience],
            authorizer_name="jwt",
            identity_source=["$request.header.Authorization"],
        )
        self.stage = self._build_stage(config)
        self._integrations: dict[str, integrations.HttpLambdaIntegration] = {}

    def _build_stage(self, config: StageConfig) -> apigwv2.HttpStage:
        log_group = logs.LogGroup(
            self,
            "AccessLogs",
            retention=config.log_retention,
            removal_policy=config.removal_policy,
        )
        return apigwv2.HttpStage(
            self,
            "DefaultStage",
            http_api=self.api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=config.throttle_rate, burst_limit=config.throttle_burst
            ),
            access_log_settings=JsonAccessLogSettings(log_group, ACCESS_LOG_FIELDS),
        )

    def add_routes(
        self,
        routes: Iterable[tuple[Route, Function]],
        functions: Mapping[str, lambda_.IFunction],
    ) -> None:
        """One ``AWS::ApiGatewayV2::Route`` per declared route, to its function's integration."""
        for route, fn in routes:
            self._build_route(route, self._integration(fn.name, functions[fn.name]))

    def _integration(
        self, name: str, function: lambda_.IFunction
    ) -> integrations.HttpLambdaIntegration:
        if name not in self._integrations:
            self._integrations[name] = integrations.HttpLambdaIntegration(
                f"{name}-integration",
                function,
                payload_format_version=apigwv2.PayloadFormatVersion.VERSION_2_0,
                # One invoke permission per function for this API, not one per route: a
                # function's resource policy is capped at 20 KB (about 50 route statements).
                scope_permission_to_route=False,
            )
        return self._integrations[name]

    def _build_route(
        self, route: Route, integration: integrations.HttpLambdaIntegration
    ) -> apigwv2.HttpRoute:
        public = route.auth is Auth.PUBLIC
        http_route = apigwv2.HttpRoute(
            self,
            route_id(route),
            http_api=self.api,
            route_key=apigwv2.HttpRouteKey.with_(route.path, apigwv2.HttpMethod[route.method]),
            integration=integration,
            authorizer=apigwv2.HttpNoneAuthorizer() if public else self.authorizer,
            authorization_scopes=list(route.roles) if route.auth is Auth.ROLE else None,
        )
        if public:
            acknowledge(
                http_route,
                "APIG4",
                f"{route.key} is declared Auth.PUBLIC in blueprint/platform.py (sign-up, "
                "sign-in, token refresh, JWKS/OIDC metadata or public discovery).",
            )
        return http_route

"""The stateless stack: code, API and schedules; safe to destroy and redeploy at any time."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from constructs import Construct

from blueprint.model import Platform
from infra_cdk.api.functions import FunctionsConstruct
from infra_cdk.api.http_api import HttpApiConstruct
from infra_cdk.api.layers import LayersConstruct
from infra_cdk.api.migrations import MigrationsConstruct
from infra_cdk.api.resolver import CdkResolver
from infra_cdk.api.schedules import SchedulesConstruct
from infra_cdk.api.streams import TableStreamsConstruct
from infra_cdk.api.websocket_api import WebSocketApiConstruct
from infra_cdk.config import StageConfig
from infra_cdk.data.stack import DataStack


class ApiStack(Stack):
    """``Lwm-<stage>-Api``: layers, one function per declaration, the HTTP and WebSocket APIs,
    the table stream mappings, the migrator."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        platform: Platform,
        data: DataStack,
        migrator: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.add_stack_dependency(data, "functions read the tables, keys, secrets and database")
        layers = LayersConstruct(self, "Layers", config=config)
        self.http = HttpApiConstruct(self, "HttpApi", config=config)
        # The APIs exist before the functions (whose environment names them); their routes
        # are added once the functions exist.
        self.websocket = (
            WebSocketApiConstruct(self, "WebSocketApi", config=config, api=platform.websocket)
            if platform.websocket is not None
            else None
        )
        functions = FunctionsConstruct(
            self,
            "Functions",
            config=config,
            platform=platform,
            data=data,
            layers=layers.all,
            resolver=CdkResolver(
                data,
                config=config,
                issuer=self.http.issuer,
                websocket_management_url=self.websocket.management_url if self.websocket else None,
            ),
            websocket=self.websocket,
        )
        self.functions = functions.functions
        self.http.add_routes(platform.routes(), self.functions)
        if self.websocket is not None:
            self.websocket.add_routes(self.functions)
        SchedulesConstruct(
            self, "Schedules", config=config, schedules=platform.schedules, functions=self.functions
        )
        self.streams = TableStreamsConstruct(
            self,
            "Streams",
            streams=platform.streams,
            data=data,
            functions=self.functions,
            grants=functions.grants,
        )
        if migrator is not None:
            fn = platform.function(migrator)
            MigrationsConstruct(
                self,
                "Migrations",
                migrator=self.functions[migrator],
                before=[f for name, f in self.functions.items() if name != migrator],
                timeout=Duration.seconds(fn.timeout_s),
            )
        CfnOutput(self, "ApiEndpoint", value=self.http.api.api_endpoint)
        CfnOutput(self, "Issuer", value=self.http.issuer)
        if self.websocket is not None:
            CfnOutput(self, "WebSocketUrl", value=self.websocket.url)

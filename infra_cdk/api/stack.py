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
from infra_cdk.config import StageConfig
from infra_cdk.data.stack import DataStack


class ApiStack(Stack):
    """``Lwm-<stage>-Api``: layers, one function per declaration, the HTTP API, the migrator."""

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
        self.functions = FunctionsConstruct(
            self,
            "Functions",
            config=config,
            platform=platform,
            data=data,
            layers=layers.all,
            resolver=CdkResolver(data, config=config, issuer=self.http.issuer),
        ).functions
        self.http.add_routes(platform.routes(), self.functions)
        SchedulesConstruct(
            self, "Schedules", config=config, schedules=platform.schedules, functions=self.functions
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

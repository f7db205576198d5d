"""The VPC the database and database-using functions live in, reaching AWS APIs via endpoints."""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra_cdk.config import StageConfig

VPC_CIDR = "10.40.0.0/16"
APP_SUBNETS = "app"
DATA_SUBNETS = "data"
_INGRESS_SUBNETS = "ingress"

# The AWS APIs a function inside the VPC calls. Gateway endpoints are free; interface
# endpoints replace a NAT gateway (no internet route exists unless nat_gateways > 0).
_GATEWAY_ENDPOINTS = {
    "DynamoDb": ec2.GatewayVpcEndpointAwsService.DYNAMODB,
    "S3": ec2.GatewayVpcEndpointAwsService.S3,
}
_INTERFACE_ENDPOINTS = {
    "Kms": ec2.InterfaceVpcEndpointAwsService.KMS,
    "SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "Ses": ec2.InterfaceVpcEndpointAwsService.EMAIL,
    "Sqs": ec2.InterfaceVpcEndpointAwsService.SQS,
    "Events": ec2.InterfaceVpcEndpointAwsService.EVENTBRIDGE,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
}


class NetworkConstruct(Construct):
    """A two-AZ VPC: ``app`` subnets for functions, isolated ``data`` subnets for the database.

    With the default ``nat_gateways=0`` both tiers are isolated and AWS APIs are
    reached through VPC endpoints only; ``-c nat_gateways=1`` adds public subnets
    and a NAT so ``app`` functions can call third parties (e.g. OIDC providers).
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig) -> None:
        super().__init__(scope, construct_id)
        self.vpc = self._build_vpc(config)
        self.app_subnets = ec2.SubnetSelection(subnet_group_name=APP_SUBNETS)
        self.data_subnets = ec2.SubnetSelection(subnet_group_name=DATA_SUBNETS)
        self._build_flow_log(config)
        self.endpoints = self._build_endpoints()

    def _build_vpc(self, config: StageConfig) -> ec2.Vpc:
        with_nat = config.nat_gateways > 0
        subnets = [
            ec2.SubnetConfiguration(
                name=APP_SUBNETS,
                subnet_type=(
                    ec2.SubnetType.PRIVATE_WITH_EGRESS
                    if with_nat
                    else ec2.SubnetType.PRIVATE_ISOLATED
                ),
                cidr_mask=22,
            ),
            ec2.SubnetConfiguration(
                name=DATA_SUBNETS, subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
            ),
        ]
        if with_nat:
            subnets.insert(
                0,
                ec2.SubnetConfiguration(
                    name=_INGRESS_SUBNETS,
                    subnet_type=ec2.SubnetType.PUBLIC,
                    cidr_mask=26,
                    map_public_ip_on_launch=False,
                ),
            )
        return ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(VPC_CIDR),
            max_azs=config.max_azs,
            nat_gateways=config.nat_gateways,
            subnet_configuration=subnets,
            restrict_default_security_group=True,
        )

    def _build_flow_log(self, config: StageConfig) -> None:
        log_group = logs.LogGroup(
            self,
            "FlowLogs",
            retention=config.log_retention,
            removal_policy=config.removal_policy,
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(log_group),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )

    def _build_endpoints(self) -> dict[str, ec2.InterfaceVpcEndpoint]:
        for name, gateway in _GATEWAY_ENDPOINTS.items():
            self.vpc.add_gateway_endpoint(name, service=gateway, subnets=[self.app_subnets])
        endpoints: dict[str, ec2.InterfaceVpcEndpoint] = {}
        for name, service in _INTERFACE_ENDPOINTS.items():
            endpoint = self.vpc.add_interface_endpoint(
                name,
                service=service,
                subnets=ec2.SubnetSelection(subnet_group_name=APP_SUBNETS, one_per_az=True),
                private_dns_enabled=True,
                open=False,
            )
            # HTTPS from inside the VPC only; the literal CIDR (not the VPC's CidrBlock
            # attribute) keeps the rule checkable at synth time.
            endpoint.connections.allow_from(
                ec2.Peer.ipv4(VPC_CIDR), ec2.Port.tcp(443), "HTTPS from inside the VPC"
            )
            endpoints[name] = endpoint
        return endpoints

"""Aurora PostgreSQL Serverless v2 behind an RDS Proxy, credentials in Secrets Manager."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra_cdk.config import DATABASE_ADMIN_USER, DATABASE_NAME, DATABASE_PORT, StageConfig
from infra_cdk.data.network import NetworkConstruct
from infra_cdk.nag import acknowledge

ENGINE_VERSION = rds.AuroraPostgresEngineVersion.VER_16_13


class DatabaseConstruct(Construct):
    """The cluster (isolated subnets), its rotated admin secret, and a TLS + IAM-auth proxy.

    Functions never reach the cluster directly: they join ``client_security_group``,
    which may open connections to the proxy only, and authenticate with an IAM
    token for ``admin_user`` (``rds-db:connect`` on the proxy).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        network: NetworkConstruct,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.database_name = DATABASE_NAME
        self.admin_user = DATABASE_ADMIN_USER
        self.client_security_group = self._build_security_group(
            network.vpc, "Clients", "Functions that connect to the database proxy"
        )
        self._proxy_security_group = self._build_security_group(
            network.vpc, "Proxy", "RDS Proxy in front of the Aurora cluster"
        )
        self.cluster = self._build_cluster(config, network, key)
        secret = self.cluster.secret
        if secret is None:  # always set: credentials are generated
            raise RuntimeError("the Aurora cluster has no credentials secret")
        self.secret: secretsmanager.ISecret = secret
        self.proxy = self._build_proxy(network)
        self._build_rotation(config, network)

    def _build_security_group(self, vpc: ec2.IVpc, name: str, purpose: str) -> ec2.SecurityGroup:
        return ec2.SecurityGroup(
            self, f"{name}SecurityGroup", vpc=vpc, description=purpose, allow_all_outbound=True
        )

    def _build_cluster(
        self, config: StageConfig, network: NetworkConstruct, key: kms.IKey
    ) -> rds.DatabaseCluster:
        identifier = f"{config.prefix}-aurora"
        # Our own secret: the one Credentials.from_generated_secret makes is always deleted
        # with the stack, even when the cluster it opens is retained.
        admin_secret = rds.DatabaseSecret(
            self,
            "AdminSecret",
            username=DATABASE_ADMIN_USER,
            encryption_key=key,
        )
        admin_secret.apply_removal_policy(config.removal_policy)
        # Created up front so the PostgreSQL log export gets a retention without the
        # LogRetention custom resource.
        log_group = logs.LogGroup(
            self,
            "PostgresLogs",
            log_group_name=f"/aws/rds/cluster/{identifier}/postgresql",
            retention=config.log_retention,
            removal_policy=config.removal_policy,
        )
        cluster = rds.DatabaseCluster(
            self,
            "Cluster",
            engine=rds.DatabaseClusterEngine.aurora_postgres(version=ENGINE_VERSION),
            cluster_identifier=identifier,
            credentials=rds.Credentials.from_secret(admin_secret),
            default_database_name=DATABASE_NAME,
            port=DATABASE_PORT,
            # TLS between the proxy (and the rotation function) and the cluster, too.
            parameters={"rds.force_ssl": "1"},
            writer=rds.ClusterInstance.serverless_v2("Writer", publicly_accessible=False),
            readers=[
                rds.ClusterInstance.serverless_v2(
                    f"Reader{i + 1}", scale_with_writer=True, publicly_accessible=False
                )
                for i in range(config.db_readers)
            ],
            serverless_v2_min_capacity=config.db_min_capacity,
            serverless_v2_max_capacity=config.db_max_capacity,
            vpc=network.vpc,
            vpc_subnets=network.data_subnets,
            storage_encrypted=True,
            storage_encryption_key=key,
            iam_authentication=True,
            deletion_protection=config.is_prod,
            backup=rds.BackupProps(retention=config.backup_retention),
            copy_tags_to_snapshot=True,
            cloudwatch_logs_exports=["postgresql"],
            auto_minor_version_upgrade=True,
            removal_policy=config.removal_policy,
        )
        cluster.node.add_dependency(log_group)
        cluster.connections.allow_from(
            self._proxy_security_group,
            ec2.Port.tcp(DATABASE_PORT),
            "PostgreSQL from the RDS Proxy",
        )
        if not config.is_prod:
            acknowledge(
                cluster,
                "RDS10",
                "Dev clusters are disposable (RemovalPolicy.DESTROY); "
                "prod sets deletion protection.",
            )
        return cluster

    def _build_proxy(self, network: NetworkConstruct) -> rds.DatabaseProxy:
        proxy = rds.DatabaseProxy(
            self,
            "Proxy",
            proxy_target=rds.ProxyTarget.from_cluster(self.cluster),
            secrets=[self.secret],
            vpc=network.vpc,
            vpc_subnets=network.data_subnets,
            security_groups=[self._proxy_security_group],
            require_tls=True,
            iam_auth=True,
            debug_logging=False,
            idle_client_timeout=Duration.minutes(15),
        )
        self._proxy_security_group.add_ingress_rule(
            self.client_security_group,
            ec2.Port.tcp(DATABASE_PORT),
            "PostgreSQL from database clients",
        )
        return proxy

    def _build_rotation(self, config: StageConfig, network: NetworkConstruct) -> None:
        # The proxy reads the secret on each new backend connection, so rotation is seamless.
        self.cluster.add_rotation_single_user(
            automatically_after=Duration.days(config.secret_rotation_days),
            vpc_subnets=network.data_subnets,
            endpoint=network.endpoints["SecretsManager"],
        )

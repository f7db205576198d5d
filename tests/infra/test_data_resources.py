"""The Data stack: encrypted tables, queues with DLQs, private TLS-only buckets, Aurora behind
RDS Proxy, and what each stage does with data when a stack is deleted."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match

from . import cfn
from .conftest import Synthesis

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]

DAY_S = 24 * 3600
# Resources that hold data or decrypt it: prod keeps them when a stack is deleted.
STATEFUL_TYPES = (
    "AWS::DynamoDB::Table",
    "AWS::S3::Bucket",
    "AWS::RDS::DBCluster",
    "AWS::RDS::DBInstance",
    "AWS::KMS::Key",
    "AWS::SecretsManager::Secret",
    "AWS::SQS::Queue",
)


def _key_schema(partition: str, sort: str | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": partition, "KeyType": "HASH"}]
    if sort:
        schema.append({"AttributeName": sort, "KeyType": "RANGE"})
    return schema


def _data_key(synth: Synthesis) -> str:
    return cfn.logical_id(synth.data.data_key)


# --- DynamoDB -----------------------------------------------------------------------------


def test_tables_are_encrypted_recoverable_and_shaped_as_declared(synth: Synthesis) -> None:
    # Given the declared tables and the tables of the Data template
    synth.data_template.resource_count_is("AWS::DynamoDB::Table", len(synth.platform.tables))
    by_name = {
        cfn.props(t)["TableName"]: cfn.props(t)
        for t in cfn.resources(synth.data_json, "AWS::DynamoDB::Table").values()
    }
    for table in synth.platform.tables:
        p = by_name[f"{synth.config.prefix}-{table.name}"]
        # Then each is encrypted with the data key and has point-in-time recovery
        assert p["SSESpecification"] == {
            "SSEEnabled": True,
            "SSEType": "KMS",
            "KMSMasterKeyId": {"Fn::GetAtt": [_data_key(synth), "Arn"]},
        }, table.name
        assert p["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert p["BillingMode"] == "PAY_PER_REQUEST"
        # and has the declared keys, indexes, TTL and stream
        sort = table.sort_key.name if table.sort_key else None
        assert p["KeySchema"] == _key_schema(table.partition_key.name, sort), table.name
        assert {a["AttributeName"]: a["AttributeType"] for a in p["AttributeDefinitions"]} == (
            table.attributes()
        )
        declared_indexes = {
            i.name: _key_schema(i.partition_key.name, i.sort_key.name if i.sort_key else None)
            for i in table.indexes
        }
        indexes = {i["IndexName"]: i for i in p.get("GlobalSecondaryIndexes", [])}
        assert {k: i["KeySchema"] for k, i in indexes.items()} == declared_indexes, table.name
        assert all(i["Projection"] == {"ProjectionType": "ALL"} for i in indexes.values())
        if table.ttl_attribute:
            assert p["TimeToLiveSpecification"] == {
                "AttributeName": table.ttl_attribute,
                "Enabled": True,
            }
        else:
            assert "TimeToLiveSpecification" not in p, table.name
        if table.stream:
            assert p["StreamSpecification"] == {"StreamViewType": table.stream}
        else:
            assert "StreamSpecification" not in p, table.name
        # and prod refuses to delete it
        assert p["DeletionProtectionEnabled"] is synth.config.is_prod


# --- SQS ----------------------------------------------------------------------------------


def _queue_policies(synth: Synthesis) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for policy in cfn.resources(synth.data_json, "AWS::SQS::QueuePolicy").values():
        for queue in cfn.props(policy)["Queues"]:
            out.setdefault(str(cfn.target(queue)), []).extend(
                cfn.statements(cfn.props(policy)["PolicyDocument"])
            )
    return out


def _denies_insecure_transport(statements: list[dict[str, Any]], action: str) -> bool:
    return any(
        s["Effect"] == "Deny"
        and s.get("Principal") in ({"AWS": "*"}, "*")
        and action in cfn.as_list(s["Action"])
        and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )


def test_every_queue_but_a_dlq_redrives_to_a_dlq(synth: Synthesis) -> None:
    # Given every SQS queue of the Data template
    queues = cfn.resources(synth.data_json, "AWS::SQS::Queue")
    synth.data_template.resource_count_is("AWS::SQS::Queue", 2 * len(synth.platform.queues))
    dead_letter = {
        cfn.target(cfn.props(q)["RedrivePolicy"]["deadLetterTargetArn"])
        for q in queues.values()
        if "RedrivePolicy" in cfn.props(q)
    }
    policies = _queue_policies(synth)
    for queue_id, queue in queues.items():
        p = cfn.props(queue)
        # Then a queue no redrive points to has a redrive policy of its own
        if queue_id not in dead_letter:
            assert "RedrivePolicy" in p, f"{queue_id} has no dead-letter queue"
        # and a DLQ is a queue of the stack that does not redrive further, kept 14 days
        else:
            assert "RedrivePolicy" not in p, f"DLQ {queue_id} redrives again"
            assert p["MessageRetentionPeriod"] == 14 * DAY_S, queue_id
        # and every queue is encrypted with the data key and refuses plain HTTP
        assert p["KmsMasterKeyId"] == {"Fn::GetAtt": [_data_key(synth), "Arn"]}, queue_id
        assert _denies_insecure_transport(policies.get(queue_id, []), "sqs:*"), queue_id
    assert dead_letter <= set(queues)


def test_declared_queues_have_the_declared_settings(synth: Synthesis) -> None:
    queues = cfn.resources(synth.data_json, "AWS::SQS::Queue")
    for queue in synth.platform.queues:
        # Given a declared queue and its dead-letter queue
        main = cfn.props(queues[cfn.logical_id(synth.data.queues.queues[queue.name])])
        dlq_id = cfn.logical_id(synth.data.queues.dead_letter_queues[queue.name])
        # Then its timeouts and redrive are as declared
        assert main["VisibilityTimeout"] == queue.visibility_timeout_s
        assert main["MessageRetentionPeriod"] == queue.retention_days * DAY_S
        assert main["RedrivePolicy"] == {
            "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
            "maxReceiveCount": queue.max_receive_count,
        }


# --- S3 -----------------------------------------------------------------------------------


def _bucket_policies(synth: Synthesis) -> dict[str, list[dict[str, Any]]]:
    return {
        str(cfn.target(cfn.props(p)["Bucket"])): cfn.statements(cfn.props(p)["PolicyDocument"])
        for p in cfn.resources(synth.data_json, "AWS::S3::BucketPolicy").values()
    }


def test_buckets_are_private_encrypted_and_tls_only(synth: Synthesis) -> None:
    # Given every bucket of the Data template (the declared ones and their access-log bucket)
    buckets = cfn.resources(synth.data_json, "AWS::S3::Bucket")
    declared = len(synth.platform.buckets)
    synth.data_template.resource_count_is("AWS::S3::Bucket", declared + (1 if declared else 0))
    log_bucket = synth.data.buckets.access_logs
    log_bucket_id = cfn.logical_id(log_bucket) if log_bucket else None
    policies = _bucket_policies(synth)
    for bucket_id, bucket in buckets.items():
        p = cfn.props(bucket)
        # Then public access is blocked in all four ways
        assert p["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, bucket_id
        assert p["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
        # and objects are encrypted: with the data key, or SSE-S3 for the log bucket
        # (S3 server access log delivery cannot write SSE-KMS objects)
        (rule,) = p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        by_default = rule["ServerSideEncryptionByDefault"]
        if bucket_id == log_bucket_id:
            assert by_default == {"SSEAlgorithm": "AES256"}
        else:
            assert by_default == {
                "SSEAlgorithm": "aws:kms",
                "KMSMasterKeyID": {"Fn::GetAtt": [_data_key(synth), "Arn"]},
            }, bucket_id
        # and the bucket policy denies any request without TLS, on the bucket and its objects
        statements = policies.get(bucket_id, [])
        assert _denies_insecure_transport(statements, "s3:*"), bucket_id
        tls = next(
            s
            for s in statements
            if s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        )
        assert {cfn.flatten(r) for r in cfn.as_list(tls["Resource"])} == {
            f"${{{bucket_id}.Arn}}",
            f"${{{bucket_id}.Arn}}/*",
        }


def test_declared_buckets_have_the_declared_settings(synth: Synthesis) -> None:
    buckets = cfn.resources(synth.data_json, "AWS::S3::Bucket")
    for bucket in synth.platform.buckets:
        # Given a declared bucket
        p = cfn.props(buckets[cfn.logical_id(synth.data.buckets.buckets[bucket.name])])
        # Then versioning, expiry and CORS are as declared
        assert ("VersioningConfiguration" in p) is bucket.versioned, bucket.name
        expiry = [
            r.get("ExpirationInDays") for r in p.get("LifecycleConfiguration", {}).get("Rules", [])
        ]
        assert expiry == ([bucket.expire_days] if bucket.expire_days else []), bucket.name
        assert ("CorsConfiguration" in p) is bucket.cors, bucket.name
        # and access is logged to the log bucket under the bucket's name
        assert p["LoggingConfiguration"] == {
            "DestinationBucketName": {"Ref": cfn.logical_id(synth.data.buckets.access_logs)},
            "LogFilePrefix": f"{bucket.name}/",
        }


# --- Aurora -------------------------------------------------------------------------------


def test_aurora_serverless_v2_postgres_is_encrypted_behind_rds_proxy(synth: Synthesis) -> None:
    template = synth.data_template
    data_key = _data_key(synth)
    cluster_id = cfn.logical_id(synth.data.database.cluster)
    # Given the one cluster of the Data template
    template.resource_count_is("AWS::RDS::DBCluster", 1)
    cluster = cfn.props(cfn.resources(synth.data_json, "AWS::RDS::DBCluster")[cluster_id])
    # Then it is Aurora PostgreSQL, storage encrypted with the data key, IAM auth on
    assert cluster["Engine"] == "aurora-postgresql"
    assert int(cluster["EngineVersion"].split(".")[0]) >= 16
    assert cluster["StorageEncrypted"] is True
    assert cluster["KmsKeyId"] == {"Fn::GetAtt": [data_key, "Arn"]}
    assert cluster["EnableIAMDatabaseAuthentication"] is True
    assert cluster["DeletionProtection"] is synth.config.is_prod
    assert cluster["BackupRetentionPeriod"] == synth.config.db_backup_days
    # and it scales as Serverless v2 within the stage's capacity
    assert cluster["ServerlessV2ScalingConfiguration"] == {
        "MinCapacity": synth.config.db_min_capacity,
        "MaxCapacity": synth.config.db_max_capacity,
    }
    template.resource_properties_count_is(
        "AWS::RDS::DBInstance",
        {
            "DBClusterIdentifier": {"Ref": cluster_id},
            "DBInstanceClass": "db.serverless",
            "PubliclyAccessible": False,
        },
        1 + synth.config.db_readers,
    )
    template.resource_count_is("AWS::RDS::DBInstance", 1 + synth.config.db_readers)
    # and its credentials come from a Secrets Manager secret encrypted with the data key
    secrets = cfn.resources(synth.data_json, "AWS::SecretsManager::Secret")
    for field in ("MasterUsername", "MasterUserPassword"):
        value = cfn.flatten(cluster[field])
        assert value.startswith("{{resolve:secretsmanager:${"), field
        secret_id = value.split("${", 1)[1].split("}", 1)[0]
        assert cfn.props(secrets[secret_id])["KmsKeyId"] == {"Fn::GetAtt": [data_key, "Arn"]}
    assert "ManageMasterUserPassword" not in cluster
    # and the secret rotates
    template.has_resource_properties(
        "AWS::SecretsManager::RotationSchedule",
        {
            "SecretId": {"Ref": cfn.logical_id(synth.data.database.secret)},
            "RotationRules": {
                "ScheduleExpression": f"rate({synth.config.secret_rotation_days} days)"
            },
        },
    )
    # and clients reach it through an RDS Proxy that requires TLS and IAM auth
    template.resource_count_is("AWS::RDS::DBProxy", 1)
    template.has_resource_properties(
        "AWS::RDS::DBProxy",
        {
            "EngineFamily": "POSTGRESQL",
            "RequireTLS": True,
            "Auth": [
                {
                    "AuthScheme": "SECRETS",
                    "IAMAuth": "REQUIRED",
                    "SecretArn": {"Ref": cfn.logical_id(synth.data.database.secret)},
                }
            ],
        },
    )
    template.has_resource_properties(
        "AWS::RDS::DBProxyTargetGroup",
        {
            "DBProxyName": {"Ref": cfn.logical_id(synth.data.database.proxy)},
            "DBClusterIdentifiers": [{"Ref": cluster_id}],
        },
    )
    # and the cluster itself refuses unencrypted connections too
    template.has_resource_properties(
        "AWS::RDS::DBClusterParameterGroup",
        {"Parameters": Match.object_like({"rds.force_ssl": "1"})},
    )


# --- KMS ----------------------------------------------------------------------------------


def test_keys_are_as_declared(synth: Synthesis) -> None:
    keys = cfn.resources(synth.data_json, "AWS::KMS::Key")
    # Given the data key and one key per declared signing key
    synth.data_template.resource_count_is("AWS::KMS::Key", 1 + len(synth.platform.signing_keys))
    # Then the data key is symmetric and rotates
    data_key = cfn.props(keys[_data_key(synth)])
    assert data_key["EnableKeyRotation"] is True
    assert "KeySpec" not in data_key
    # and each signing key is an ECC P-256 signing key with its alias
    for key in synth.platform.signing_keys:
        key_id = cfn.logical_id(synth.data.signing_keys.keys[key.name])
        assert cfn.props(keys[key_id])["KeySpec"] == "ECC_NIST_P256"
        assert cfn.props(keys[key_id])["KeyUsage"] == "SIGN_VERIFY"
        synth.data_template.has_resource_properties(
            "AWS::KMS::Alias",
            {
                "AliasName": f"alias/{synth.config.prefix}/{key.name}",
                "TargetKeyId": {"Fn::GetAtt": [key_id, "Arn"]},
            },
        )


# --- stage removal policies ---------------------------------------------------------------


def _stateful(synth: Synthesis) -> dict[str, dict[str, Any]]:
    out = {}
    for kind in STATEFUL_TYPES:
        for logical_id, resource in cfn.resources(synth.data_json, kind).items():
            out[f"{kind} {logical_id}"] = resource
    return out


def test_prod_keeps_data_when_a_stack_is_deleted(prod: Synthesis) -> None:
    # Given the stateful resources of the prod Data stack
    stateful = _stateful(prod)
    kinds = {key.split()[0] for key in stateful}
    assert {"AWS::DynamoDB::Table", "AWS::RDS::DBCluster", "AWS::KMS::Key"} <= kinds
    # Then each is retained on deletion and on replacement
    kept = {k: (r.get("DeletionPolicy"), r.get("UpdateReplacePolicy")) for k, r in stateful.items()}
    assert kept == dict.fromkeys(stateful, ("Retain", "Retain"))
    # and nothing empties buckets on the way out
    prod.data_template.resource_count_is("Custom::S3AutoDeleteObjects", 0)


@pytest.mark.parametrize("key", ["dev", "sample-dev"])
def test_dev_destroys_data_with_the_stack(synths: dict[str, Synthesis], key: str) -> None:
    synth = synths[key]
    # Given the stateful resources of a dev Data stack
    stateful = _stateful(synth)
    # Then each is deleted with the stack
    gone = {k: (r.get("DeletionPolicy"), r.get("UpdateReplacePolicy")) for k, r in stateful.items()}
    assert gone == dict.fromkeys(stateful, ("Delete", "Delete"))
    # and every bucket is emptied first, or CloudFormation could not delete it
    buckets = cfn.resources(synth.data_json, "AWS::S3::Bucket")
    emptied = {
        cfn.target(cfn.props(r)["BucketName"])
        for r in cfn.resources(synth.data_json, "Custom::S3AutoDeleteObjects").values()
    }
    assert emptied == set(buckets)


def test_the_sample_platform_exercises_every_stateful_kind(sample: Synthesis) -> None:
    # Given the sample declaration (it exists so that these checks are never vacuous)
    kinds = {key.split()[0] for key in _stateful(sample)}
    # Then its Data stack holds every stateful resource kind the checks above cover
    assert kinds == set(STATEFUL_TYPES)
    assert sample.platform.queues and sample.platform.buckets and sample.platform.rules

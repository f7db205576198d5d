"""Lambda functions: arm64 Python 3.12+, X-Ray, both layers, a log group with retention each,
and bundles that carry runtime code only (no pytest, no aws-cdk-lib)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from infra_cdk import bundling
from infra_cdk.app_factory import REPO_ROOT
from infra_cdk.config import LAMBDA_RUNTIME, python_version

from . import cfn
from .conftest import RETENTION_DAYS, Synthesis

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]

LOG_GROUP_FLAG = "@aws-cdk/aws-lambda:useCdkManagedLogGroup"
_PYTHON_RUNTIME = re.compile(r"^python3\.(\d+)$")
# Import names of the forbidden distributions, for folders vendored without metadata.
_FORBIDDEN_IMPORTS = frozenset(
    {"pytest", "_pytest", "aws_cdk", "cdk_nag", "jsii", "constructs", "cfnlint", "moto"}
    | {"hypothesis", "mypy", "ruff", "schemathesis", "uvicorn", "awslambdaric"}
)
_ELF_MACHINE_AARCH64 = 183


def declared_functions(synth: Synthesis) -> dict[str, tuple[str, dict[str, Any]]]:
    """The logical id and template resource of each declared function, by declared name."""
    by_name = {
        cfn.props(r).get("FunctionName"): (k, r)
        for k, r in cfn.resources(synth.api_json, "AWS::Lambda::Function").items()
    }
    out = {}
    for fn in synth.platform.functions():
        physical = f"{synth.config.prefix}-{fn.name}"
        assert physical in by_name, f"declared function {fn.name} is not in the Api stack"
        out[fn.name] = by_name[physical]
    return out


def log_group_of(template: dict[str, Any], function_id: str, function: dict[str, Any]) -> Any:
    """The log group a function logs to: its LoggingConfig one, or ``/aws/lambda/<name>``."""
    configured = cfn.target(cfn.props(function).get("LoggingConfig", {}).get("LogGroup"))
    groups = cfn.resources(template, "AWS::Logs::LogGroup")
    if configured:
        return groups.get(configured)
    for group in groups.values():
        name = cfn.flatten(cfn.props(group).get("LogGroupName", ""))
        if name in {f"/aws/lambda/${{{function_id}}}", f"/aws/lambda/{function_id}"}:
            return group
    return None


def test_functions_run_arm64_python_with_tracing_and_both_layers(synth: Synthesis) -> None:
    # Given the declared functions in the Api template and its two layers
    layers = cfn.resources(synth.api_json, "AWS::Lambda::LayerVersion")
    assert len(layers) == 2, sorted(layers)
    for layer in layers.values():
        assert cfn.props(layer)["CompatibleArchitectures"] == ["arm64"]
        assert cfn.props(layer)["CompatibleRuntimes"] == [LAMBDA_RUNTIME.name]
    for name, (_, function) in declared_functions(synth).items():
        p = cfn.props(function)
        # Then each runs on arm64 with CPython 3.12 or later
        assert p["Architectures"] == ["arm64"], name
        runtime = _PYTHON_RUNTIME.match(p["Runtime"])
        assert runtime and int(runtime.group(1)) >= 12, f"{name}: {p['Runtime']}"
        # and traces with X-Ray
        assert p["TracingConfig"] == {"Mode": "Active"}, name
        # and uses the dependency and core layers (and no other)
        assert {cfn.target(ref) for ref in p["Layers"]} == set(layers), name
    # and the runtime the layers are built for is the one the functions run
    assert python_version() == LAMBDA_RUNTIME.name.removeprefix("python")
    synth.api_template.resource_properties_count_is(
        "AWS::Lambda::Function",
        {"Runtime": LAMBDA_RUNTIME.name, "TracingConfig": {"Mode": "Active"}},
        len(list(synth.platform.functions())),
    )


def test_functions_log_to_their_own_group_with_retention(synth: Synthesis) -> None:
    # Given the CDK-managed log group flag of cdk.json
    assert synth.app.node.try_get_context(LOG_GROUP_FLAG) is True
    removal = "Retain" if synth.config.is_prod else "Delete"
    seen: set[str] = set()
    for name, (function_id, function) in declared_functions(synth).items():
        # When a declared function's log group is looked up
        group = log_group_of(synth.api_json, function_id, function)
        # Then it exists, in the stack, with the stage's retention and removal policy
        assert group is not None, f"{name} has no log group of its own"
        assert cfn.props(group)["RetentionInDays"] == RETENTION_DAYS[synth.stage], name
        assert group.get("DeletionPolicy") == removal, name
        # and no two functions share one
        group_id = cfn.target(cfn.props(function)["LoggingConfig"]["LogGroup"])
        assert group_id not in seen, f"{name} shares log group {group_id}"
        seen.add(str(group_id))


def test_every_lambda_function_has_a_log_group_with_retention(synth: Synthesis) -> None:
    # Given every AWS::Lambda::Function of both stacks, CDK's own handlers included
    missing = []
    for stack in synth.stacks:
        template = synth.template_of(stack)
        for function_id, function in cfn.resources(template, "AWS::Lambda::Function").items():
            # Then each has a log group in the stack with a retention
            group = log_group_of(template, function_id, function)
            if group is None or not cfn.props(group).get("RetentionInDays"):
                missing.append(f"{stack.stack_name}/{function_id}")
    assert missing == [], f"functions whose logs never expire: {missing}"


def test_functions_run_in_the_vpc_exactly_when_they_use_the_database(synth: Synthesis) -> None:
    # Given the declared functions
    for fn in synth.platform.functions():
        _, function = declared_functions(synth)[fn.name]
        # Then database users sit in the VPC's app subnets with the proxy client group
        vpc = cfn.props(function).get("VpcConfig")
        if fn.uses_database:
            assert vpc and len(vpc["SubnetIds"]) == synth.config.max_azs, fn.name
            assert len(vpc["SecurityGroupIds"]) == 1, fn.name
        else:
            assert vpc is None, f"{fn.name} declares no database access but runs in the VPC"


# --- bundles ------------------------------------------------------------------------------


def _bundles(synth: Synthesis) -> dict[str, Path]:
    """Staged asset folder of every function and layer of the Api stack, by logical id."""
    out = {}
    for kind, code_key in (
        ("AWS::Lambda::Function", "Code"),
        ("AWS::Lambda::LayerVersion", "Content"),
    ):
        for logical_id, resource in cfn.resources(synth.api_json, kind).items():
            s3_key = cfn.props(resource)[code_key]["S3Key"]
            out[logical_id] = synth.asset_dir(synth.api, s3_key)
    return out


def _distributions(folder: Path) -> set[str]:
    """Every distribution with metadata anywhere in a bundle (layers keep them under python/)."""
    names = bundling.installed_distributions(folder)
    for info in folder.rglob("*.dist-info"):
        names.add(bundling.normalize(info.name.removesuffix(".dist-info").rsplit("-", 1)[0]))
    return names


def test_no_bundle_ships_test_or_tooling_packages(synth: Synthesis) -> None:
    # Given every function and layer asset the Api stack deploys
    bundles = _bundles(synth)
    assert bundles
    for logical_id, folder in bundles.items():
        assert folder.is_dir(), f"{logical_id}: {folder} was not staged"
        # Then no forbidden distribution (pytest, aws-cdk-lib, ...) is installed in it
        bad = bundling.forbidden_in(_distributions(folder))
        assert bad == set(), f"{logical_id} ships {sorted(bad)}"
        # and no forbidden package is vendored without metadata at an import root
        roots = [folder, folder / "python"]
        vendored = {p.name for root in roots if root.is_dir() for p in root.iterdir()}
        assert vendored & _FORBIDDEN_IMPORTS == set(), (
            f"{logical_id}: {vendored & _FORBIDDEN_IMPORTS}"
        )


def test_function_bundles_hold_their_handler_and_the_migrations(synth: Synthesis) -> None:
    # Given each declared function and the asset it deploys
    functions = declared_functions(synth)
    migrations = [s.migrations for s in synth.platform.services if s.migrations]
    for fn in synth.platform.functions():
        _, function = functions[fn.name]
        folder = synth.asset_dir(synth.api, cfn.props(function)["Code"]["S3Key"])
        # Then the handler module is in it, at its import path
        assert (folder / f"{fn.module.replace('.', '/')}.py").is_file(), fn.name
        # and a function that uses the database carries every service's Alembic scripts
        if fn.uses_database:
            for scripts in migrations:
                assert (folder / scripts / "env.py").is_file(), f"{fn.name} lacks {scripts}"
        # and no package metadata: third-party code comes from the dependency layer only
        assert not list(folder.rglob("*.dist-info")), fn.name


def _dependency_layer(synth: Synthesis) -> Path:
    layers = cfn.resources(synth.api_json, "AWS::Lambda::LayerVersion")
    (layer,) = [
        r for r in layers.values() if "runtime dependencies" in cfn.props(r).get("Description", "")
    ]
    return synth.asset_dir(synth.api, cfn.props(layer)["Content"]["S3Key"])


def test_dependency_layer_holds_the_runtime_dependencies_for_arm64(synth: Synthesis) -> None:
    # Given the dependency layer the functions use
    folder = _dependency_layer(synth)
    installed = bundling.installed_distributions(folder)
    # Then it holds every runtime dependency of pyproject.toml
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    wanted = {
        bundling.normalize(re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0])
        for spec in pyproject["project"]["dependencies"]
    }
    assert wanted - installed == set()
    # and every native extension is an aarch64 ELF built for the Lambda CPython
    extensions = list((folder / "python").rglob("*.so"))
    assert extensions, "no native extension at all: is this the right layer?"
    tag = f"cpython-{LAMBDA_RUNTIME.name.removeprefix('python').replace('.', '')}"
    for so in extensions:
        header = so.read_bytes()[:20]
        assert header[:4] == b"\x7fELF", so
        assert int.from_bytes(header[18:20], "little") == _ELF_MACHINE_AARCH64, so
        assert "cpython-" not in so.name or tag in so.name, so


def test_cached_dependency_layer_under_build_is_clean() -> None:
    # Given the dependency layer folder bundling caches under build/ (built by the synths)
    layer = bundling.dependency_layer(python_version())
    assert layer.path.parent == bundling.BUILD_DIR / "layers"
    # Then it holds no test or tooling distribution either
    installed = bundling.installed_distributions(layer.path)
    assert {"fastapi", "pydantic", "boto3"} <= installed
    assert bundling.forbidden_in(installed) == set()


def test_the_bundle_check_would_catch_pytest_and_the_cdk(tmp_path: Path) -> None:
    # Given a folder shaped like a layer over the test virtualenv (which has pytest and the CDK)
    site = Path(pytest.__file__).resolve().parent.parent
    (tmp_path / "python").symlink_to(site, target_is_directory=True)
    # When the same checks run on it
    bad = bundling.forbidden_in(_distributions(tmp_path))
    # Then they name pytest and aws-cdk-lib
    assert {"pytest", "aws-cdk-lib"} <= bad

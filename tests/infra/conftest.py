"""Session fixtures of the infra tests: each (stage, platform) is synthesized once.

Synthesis costs ~10 s and ~550 MB per app, so the ``synths`` fixture builds the
three cases once per session, each into its own temporary cloud assembly, and
starts cfn-lint on the templates in the background as soon as they are written
(it overlaps the next synthesis). Every infra test module sits in the xdist
group ``infra``, so under ``-n 2 --dist loadgroup`` all of this happens in one
worker only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aws_cdk.assertions import Template

from blueprint.model import Platform
from blueprint.platform import PLATFORM
from infra_cdk.app_factory import REPO_ROOT, build_app

from .sample_platform import SAMPLE_PLATFORM

if TYPE_CHECKING:
    from aws_cdk import App, Stack

    from infra_cdk.api.stack import ApiStack
    from infra_cdk.config import StageConfig
    from infra_cdk.data.stack import DataStack

CFN_LINT_CONFIG = REPO_ROOT / "infra_cdk" / "cfnlintrc.yaml"
CFN_LINT_TIMEOUT_S = 240
# Log retention each stage promises (infra_cdk/config.py turns these into RetentionDays).
RETENTION_DAYS = {"dev": 14, "prod": 90}


@dataclass(frozen=True)
class Case:
    """One synthesis: a stage of one declaration."""

    key: str
    stage: str
    platform: Platform


CASES = (
    Case("dev", "dev", PLATFORM),
    Case("prod", "prod", PLATFORM),
    Case("sample-dev", "dev", SAMPLE_PLATFORM),
)
CASE_KEYS = [case.key for case in CASES]
REAL_KEYS = [case.key for case in CASES if case.platform is PLATFORM]


def cfn_lint_executable() -> str:
    """cfn-lint of the interpreter running the tests (the venv's), else the one on PATH."""
    local = Path(sys.executable).with_name("cfn-lint")
    if local.is_file():
        return str(local)
    found = shutil.which("cfn-lint")
    if found is None:
        pytest.fail("cfn-lint is not installed: run `make setup` (it is in the infra group)")
    return found


@dataclass(frozen=True)
class LintResult:
    returncode: int
    findings: list[dict[str, Any]]
    stderr: str


class Synthesis:
    """The synthesized app of one case: stacks, templates, nag report, cfn-lint run."""

    def __init__(self, case: Case, outdir: Path) -> None:
        self.case = case
        self.outdir = outdir
        self.error: Exception | None = None
        self._lint: subprocess.Popen[bytes] | None = None
        try:
            app, config, data, api = build_app(
                {"stage": case.stage}, outdir=str(outdir), platform=case.platform
            )
        except Exception as e:  # reported once by test_synthesis, not as a hundred errors
            self.error = e
            return
        self._built: tuple[App, StageConfig, DataStack, ApiStack] = (app, config, data, api)
        try:
            app.synth()
        except RuntimeError as e:  # jsii raises nag findings ("ValidationFailed") as RuntimeError
            self.error = e
        if self.template_files:
            self._start_lint()

    def _require_built(self) -> None:
        """Fail the calling test when the app itself could not be built (no stack at all)."""
        if not hasattr(self, "_built"):
            first = str(self.error).strip().splitlines()[0][:300]
            pytest.fail(
                f"{self.case.key}: the app could not be built (see test_synthesis): {first}"
            )

    def _part(self, index: int) -> Any:
        self._require_built()
        return self._built[index]

    @property
    def app(self) -> App:
        return self._part(0)  # type: ignore[no-any-return]

    @property
    def config(self) -> StageConfig:
        return self._part(1)  # type: ignore[no-any-return]

    @property
    def data(self) -> DataStack:
        return self._part(2)  # type: ignore[no-any-return]

    @property
    def api(self) -> ApiStack:
        return self._part(3)  # type: ignore[no-any-return]

    @property
    def stage(self) -> str:
        return self.case.stage

    @property
    def platform(self) -> Platform:
        return self.case.platform

    @property
    def stacks(self) -> tuple[Stack, ...]:
        return (self.data, self.api)

    @property
    def template_files(self) -> list[Path]:
        return sorted(self.outdir.glob("*.template.json"))

    def require_synthesized(self) -> None:
        """Fail the calling test, briefly, when this case did not synthesize."""
        if self.error is not None:
            first = str(self.error).strip().splitlines()[0][:300]
            pytest.fail(f"{self.case.key} did not synthesize (see test_synthesis): {first}")

    @cached_property
    def data_template(self) -> Template:
        self.require_synthesized()
        return Template.from_stack(self.data)

    @cached_property
    def api_template(self) -> Template:
        self.require_synthesized()
        return Template.from_stack(self.api)

    @cached_property
    def data_json(self) -> dict[str, Any]:
        return dict(self.data_template.to_json())

    @cached_property
    def api_json(self) -> dict[str, Any]:
        return dict(self.api_template.to_json())

    def template_of(self, stack: Stack) -> dict[str, Any]:
        return self.data_json if stack is self.data else self.api_json

    @cached_property
    def report(self) -> dict[str, Any]:
        self._require_built()
        path = self.outdir / "validation-report.json"
        if not path.is_file():
            pytest.fail(f"{self.case.key}: no {path.name}: did the cdk-nag plugin run?")
        return dict(json.loads(path.read_text(encoding="utf-8")))

    @cached_property
    def manifest(self) -> dict[str, Any]:
        self._require_built()
        return dict(json.loads((self.outdir / "manifest.json").read_text(encoding="utf-8")))

    def asset_dir(self, stack: Stack, s3_key: str) -> Path:
        """The staged folder of the asset published under ``s3_key`` (``<hash>.zip``)."""
        assets = json.loads((self.outdir / f"{stack.artifact_id}.assets.json").read_text())
        source = assets["files"][s3_key.removesuffix(".zip")]["source"]
        return self.outdir / source["path"]

    def _start_lint(self) -> None:
        self._lint_out = self.outdir.with_name(f"{self.outdir.name}.cfn-lint.json")
        self._lint_err = self.outdir.with_name(f"{self.outdir.name}.cfn-lint.stderr")
        with self._lint_out.open("wb") as out, self._lint_err.open("wb") as err:
            self._lint = subprocess.Popen(
                [
                    cfn_lint_executable(),
                    "--config-file",
                    str(CFN_LINT_CONFIG),
                    "--format",
                    "json",
                    "--",
                    *map(str, self.template_files),
                ],
                cwd=REPO_ROOT,
                stdout=out,
                stderr=err,
            )

    def lint(self) -> LintResult:
        """cfn-lint's findings on this case's templates (waits for the background run)."""
        self._require_built()
        if self._lint is None:
            pytest.fail(f"{self.case.key}: no template was written, nothing to lint")
        returncode = self._lint.wait(timeout=CFN_LINT_TIMEOUT_S)
        text = self._lint_out.read_text(encoding="utf-8").strip()
        stderr = self._lint_err.read_text(encoding="utf-8", errors="replace")
        try:
            findings = json.loads(text) if text else []
        except ValueError:
            pytest.fail(f"cfn-lint printed no JSON (exit {returncode}):\n{text}\n{stderr}")
        return LintResult(returncode, findings, stderr)

    def stop_lint(self) -> None:
        if self._lint is not None and self._lint.poll() is None:
            self._lint.kill()
            self._lint.wait()


@pytest.fixture(scope="session")
def synths(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Synthesis]]:
    """Every case, synthesized once per session into its own cloud assembly."""
    built: dict[str, Synthesis] = {}
    try:
        for case in CASES:
            built[case.key] = Synthesis(case, tmp_path_factory.mktemp(f"cdk-{case.key}"))
        yield built
    finally:
        for synthesis in built.values():
            synthesis.stop_lint()


@pytest.fixture(params=CASE_KEYS)
def synth(request: pytest.FixtureRequest, synths: dict[str, Synthesis]) -> Synthesis:
    """Each case in turn: dev and prod of the platform, dev of the sample platform."""
    return synths[request.param]


@pytest.fixture(params=REAL_KEYS)
def real(request: pytest.FixtureRequest, synths: dict[str, Synthesis]) -> Synthesis:
    """dev and prod of the real platform."""
    return synths[request.param]


@pytest.fixture
def dev(synths: dict[str, Synthesis]) -> Synthesis:
    return synths["dev"]


@pytest.fixture
def prod(synths: dict[str, Synthesis]) -> Synthesis:
    return synths["prod"]


@pytest.fixture
def sample(synths: dict[str, Synthesis]) -> Synthesis:
    return synths["sample-dev"]

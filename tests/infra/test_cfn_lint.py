"""cfn-lint passes on every synthesized template, with the project's config file."""

from __future__ import annotations

import re

import pytest
import yaml

from .conftest import CFN_LINT_CONFIG, Synthesis

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]


def _describe(finding: dict[str, object]) -> str:
    rule = finding.get("Rule") or {}
    location = finding.get("Location") or {}
    start = location.get("Start", {}) if isinstance(location, dict) else {}
    path = "/".join(map(str, location.get("Path", []))) if isinstance(location, dict) else ""
    rule_id = rule.get("Id") if isinstance(rule, dict) else rule
    return (
        f"{finding.get('Level')} {rule_id} {finding.get('Filename')}:{start.get('LineNumber')} "
        f"{path}\n    {finding.get('Message')}"
    )


def test_templates_pass_cfn_lint(synth: Synthesis) -> None:
    # Given both templates of one stage
    # When cfn-lint runs with --config-file infra_cdk/cfnlintrc.yaml (in the background since
    # synthesis)
    result = synth.lint()
    assert len(synth.template_files) == 2, synth.template_files
    # Then it reports nothing, at any level (errors, warnings, informational)
    assert result.findings == [], "\n".join(map(_describe, result.findings))
    assert result.returncode == 0, result.stderr


def test_lint_config_silences_no_error_rule() -> None:
    # Given the cfn-lint config the templates are linted with
    config = yaml.safe_load(CFN_LINT_CONFIG.read_text(encoding="utf-8"))
    ignored = config.get("ignore_checks", [])
    # Then it ignores only named warning or informational rules, never errors or whole classes
    assert all(re.fullmatch(r"[WI]\d{4}", str(rule)) for rule in ignored), ignored
    assert not config.get("ignore_templates"), "every synthesized template must be linted"

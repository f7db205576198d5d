"""Each stage synthesizes offline, and cdk-nag's AwsSolutions checks leave nothing unexplained."""

from __future__ import annotations

import re

import pytest

from infra_cdk.app_factory import build_app

from .conftest import Synthesis

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]

NAG_PLUGIN = "AwsSolutions"
# Words that make an acknowledgment an excuse rather than a reason.
_PLACEHOLDER = re.compile(r"\b(todo|tbd|fixme|later|n/?a|ok|suppress(ed)?|ignore[d]?)\b", re.I)


def test_synthesis_succeeds_offline(synth: Synthesis) -> None:
    # Given the app of one stage, built without AWS credentials or lookups
    # When it was synthesized (once per session, in the synths fixture)
    # Then synthesis raised nothing
    assert synth.error is None, f"{synth.case.key}: {synth.error}"
    # and the assembly holds both stacks of the stage, environment-agnostic
    prefix = f"Lwm-{synth.stage}-"
    stacks = {
        name: artifact
        for name, artifact in synth.manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    assert set(stacks) == {f"{prefix}Data", f"{prefix}Api"}
    assert {a["environment"] for a in stacks.values()} == {"aws://unknown-account/unknown-region"}
    # and it needed no context lookup (which would call AWS at synth time)
    assert "missing" not in synth.manifest, synth.manifest.get("missing")


def test_stage_context_drives_the_stage(synth: Synthesis) -> None:
    # Given the `stage` context value the app was built with (what `-c stage=...` sets)
    # Then the stage config, stack names and removal policy follow it
    assert synth.config.stage == synth.stage
    assert synth.data.stack_name == f"Lwm-{synth.stage}-Data"
    assert synth.api.stack_name == f"Lwm-{synth.stage}-Api"
    assert synth.config.is_prod is (synth.stage == "prod")


def test_unknown_stage_is_refused() -> None:
    # Given a stage that does not exist
    # When the app is built
    # Then it fails before any stack is created, naming the allowed stages
    with pytest.raises(ValueError, match=r"'stage' must be one of \('dev', 'prod'\)"):
        build_app({"stage": "staging"}, outdir=None)


def test_nag_reports_no_unacknowledged_finding(synth: Synthesis) -> None:
    # Given the validation report cdk-nag wrote during synthesis
    reports = synth.report["pluginReports"]
    # Then the AwsSolutions pack ran
    assert NAG_PLUGIN in {r["pluginName"] for r in reports}
    # and every plugin concluded success with no open violation
    open_findings = [
        f"{v['ruleName']} on {c['constructPath']}: {v['description']}"
        for r in reports
        for v in r["violations"]
        for c in v["violatingConstructs"]
    ]
    assert open_findings == [], "\n".join(open_findings)
    assert {r["pluginName"]: r["conclusion"] for r in reports} == {
        r["pluginName"]: "success" for r in reports
    }


def test_every_acknowledged_finding_has_a_reason(synth: Synthesis) -> None:
    # Given every finding cdk-nag reported as acknowledged
    suppressed = [s for r in synth.report["pluginReports"] for s in r["suppressedViolations"]]
    assert suppressed, "no acknowledged finding at all: did the acknowledgments stop reaching nag?"
    problems = []
    for s in suppressed:
        reason = (s.get("reason") or "").strip()
        where = f"{s['ruleName']} at {s.get('acknowledgedAt')}"
        # Then each names the exact finding it acknowledges
        if s.get("acknowledgedId") != f"{NAG_PLUGIN}::{s['ruleName']}":
            problems.append(f"{where}: acknowledged as {s.get('acknowledgedId')!r}")
        # and says why in a sentence, not a placeholder or the rule's own words
        if len(reason) < 30 or len(reason.split()) < 6 or _PLACEHOLDER.search(reason):
            problems.append(f"{where}: reason {reason!r} is not a reason")
        if reason.lower() == s["description"].strip().lower():
            problems.append(f"{where}: the reason repeats the rule description")
        # and is scoped below the stack, never a blanket acknowledgment of a whole stack
        if "/" not in (s.get("acknowledgedAt") or ""):
            problems.append(f"{where}: acknowledged on a whole stack or the app")
    assert problems == [], "\n".join(problems)

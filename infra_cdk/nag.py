"""cdk-nag acknowledgments: one helper so every suppression carries a reason and a narrow scope."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct

AWS_SOLUTIONS = "AwsSolutions"


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one AwsSolutions finding (e.g. ``IAM5[Resource::*]``) on ``scope`` and below.

    Args:
        scope: the narrowest construct the finding is reported on.
        rule: the rule id without the pack prefix, with the finding in brackets when
            the rule reports several (``L1``, ``IAM4[Policy::...]``,
            ``IAM5[Action::kms:ReEncrypt*]``).
        reason: why the finding is acceptable here; it lands in the synth report.
    """
    if len(reason) < 20:
        raise ValueError(f"acknowledgment of {rule} needs a real reason, got {reason!r}")
    Validations.of(scope).acknowledge(
        Acknowledgment(id=f"{AWS_SOLUTIONS}::{AWS_SOLUTIONS}-{rule}", reason=reason)
    )

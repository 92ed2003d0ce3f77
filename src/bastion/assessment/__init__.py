"""Assessments: plans of probes run against a target, judged into findings."""

from bastion.assessment.evasion import (
    EvasionPlan,
    evasion_findings,
    run_evasion_sweep,
    severity_for_drop,
)
from bastion.assessment.run import assess
from bastion.assessment.standard import (
    StandardEvaluation,
    monotonicity_warnings,
    standard_evaluation,
)
from bastion.assessment.targets import DEFAULT_MODEL, Target, resolve_target

__all__ = [
    "DEFAULT_MODEL",
    "EvasionPlan",
    "StandardEvaluation",
    "Target",
    "assess",
    "evasion_findings",
    "monotonicity_warnings",
    "resolve_target",
    "run_evasion_sweep",
    "severity_for_drop",
    "standard_evaluation",
]

"""`assess`: attack a model with every applicable technique and collect the findings."""

from __future__ import annotations

import datetime as _dt
import platform
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from bastion._version import __version__
from bastion.assessment.evasion import EvasionPlan, Progress, evasion_findings, run_evasion_sweep
from bastion.assessment.standard import monotonicity_warnings, standard_evaluation
from bastion.core.assessment import AssessmentResult
from bastion.core.errors import ValidationError
from bastion.core.results import Finding
from bastion.core.threat_model import Goal, Norm, Severity
from bastion.data import Dataset
from bastion.models.base import Model

__all__ = ["assess"]


def assess(
    model: Model,
    data: Dataset,
    *,
    plan: EvasionPlan | None = None,
    model_name: str = "model",
    standard: Sequence[Norm | str] = (),
    standard_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Progress | None = None,
) -> AssessmentResult:
    """Run the evasion sweep of ``plan`` against ``model`` on ``data`` and judge the findings.

    ``standard`` names the norms in which to also run the standard ensemble evaluation
    (`standard_evaluation`) at the plan's reference budget. Accuracy that rises with the
    budget anywhere in the sweep becomes a gradient-masking finding. ``standard_overrides``
    replaces the paper's hyperparameters per attack id (then it is no longer the standard).
    Returns an `AssessmentResult` that `bastion.reports.write_report` renders.
    """
    plan = plan or EvasionPlan()
    started = time.perf_counter()
    x = torch.from_numpy(data.x)
    y = torch.from_numpy(data.y)
    points, skipped = run_evasion_sweep(model, x, y, plan, progress=progress)
    findings = evasion_findings(points, plan)
    for i, text in enumerate(monotonicity_warnings(points)):
        findings.append(
            Finding(
                id=f"evasion.non-monotonic-{i}",
                title="Accuracy rises with the budget: the attack or the gradients are unreliable",
                goal=Goal.EVASION,
                leaf="evasion.adaptive",
                severity=Severity.MEDIUM,
                evidence={"warning": text},
                description=text + " A larger budget contains every smaller one; evaluate with "
                "adaptive attacks (EOT, BPDA) before trusting these numbers.",
            )
        )
    for norm in dict.fromkeys(Norm.parse(n) for n in standard):
        epsilon = plan.reference_epsilon.get(norm)
        if epsilon is None:
            raise ValidationError(f"No reference epsilon for the {norm.value} norm in the plan")
        evaluation = standard_evaluation(
            model,
            x,
            y,
            epsilon=epsilon,
            norm=norm,
            batch_size=plan.batch_size,
            seed=plan.seed,
            overrides=standard_overrides,
            progress=progress,
        )
        findings.extend(evaluation.findings())
    return AssessmentResult(
        target={
            "model": model_name,
            "data": data.name,
            "samples": len(data),
            "input_shape": list(model.input_shape),
            "num_classes": model.num_classes,
            "bounds": list(model.bounds),
            "access": model.access.value,
            "skipped_attacks": skipped,
        },
        sweep=points,
        findings=findings,
        seconds=time.perf_counter() - started,
        metadata={
            "bastion_version": __version__,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "machine": platform.machine(),
            "seed": plan.seed,
            "pgd_steps": plan.pgd_steps,
        },
    )

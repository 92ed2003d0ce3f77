"""`assess`: attack a model with every applicable technique and collect the findings."""

from __future__ import annotations

import datetime as _dt
import platform
import time

import torch

from bastion._version import __version__
from bastion.assessment.evasion import EvasionPlan, Progress, evasion_findings, run_evasion_sweep
from bastion.core.assessment import AssessmentResult
from bastion.data import Dataset
from bastion.models.base import Model

__all__ = ["assess"]


def assess(
    model: Model,
    data: Dataset,
    *,
    plan: EvasionPlan | None = None,
    model_name: str = "model",
    progress: Progress | None = None,
) -> AssessmentResult:
    """Run the evasion sweep of ``plan`` against ``model`` on ``data`` and judge the findings.

    Returns an `AssessmentResult` that `bastion.reports.write_report` renders.
    """
    plan = plan or EvasionPlan()
    started = time.perf_counter()
    x = torch.from_numpy(data.x)
    y = torch.from_numpy(data.y)
    points, skipped = run_evasion_sweep(model, x, y, plan, progress=progress)
    findings = evasion_findings(points, plan)
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

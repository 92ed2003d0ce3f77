"""The evasion part of an assessment: attacks over an epsilon sweep, turned into findings."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from bastion.attacks.base import Attack
from bastion.attacks.registry import get_attack
from bastion.core.assessment import SweepPoint
from bastion.core.errors import ValidationError
from bastion.core.results import Finding
from bastion.core.threat_model import Goal, Norm, Severity
from bastion.core.validation import check_int, check_number, fail
from bastion.models.base import Model

__all__ = ["EvasionPlan", "Progress", "evasion_findings", "run_evasion_sweep", "severity_for_drop"]

#: Called as ``progress(label, done, total)`` after each batch.
Progress = Callable[[str, int, int], None]

DEFAULT_EPSILONS: Mapping[Norm, tuple[float, ...]] = {
    Norm.LINF: (0.02, 0.05, 0.1, 0.2, 0.3),
    Norm.L2: (0.25, 0.5, 1.0, 2.0, 3.0),
}
# The budget a finding's severity is judged at, for inputs in [0, 1]: the common benchmark
# budgets are 0.3 (MNIST) and 8/255 (CIFAR-10) in linf; 0.1 sits between them.
DEFAULT_REFERENCE: Mapping[Norm, float] = {Norm.LINF: 0.1, Norm.L2: 1.0}


@dataclass(frozen=True)
class EvasionPlan:
    """Which evasion attacks to run, at which budgets.

    Attributes:
        attacks: registry ids, e.g. ``("fgsm-linf", "pgd-linf")``.
        epsilons: budgets per norm; attacks in a norm run at each of its budgets.
        reference_epsilon: per norm, the budget severity is judged at (the closest swept one).
        pgd_steps: iterations for the iterative attacks.
        batch_size: samples attacked at once.
        seed: seeds every attack's random start.
    """

    attacks: tuple[str, ...] = ("fgsm-linf", "pgd-linf", "pgd-l2")
    epsilons: Mapping[Norm, tuple[float, ...]] = field(
        default_factory=lambda: dict(DEFAULT_EPSILONS)
    )
    reference_epsilon: Mapping[Norm, float] = field(default_factory=lambda: dict(DEFAULT_REFERENCE))
    pgd_steps: int = 40
    batch_size: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.attacks:
            raise fail("attacks", "at least one attack id", self.attacks)
        for attack_id in self.attacks:
            get_attack(attack_id)
        epsilons = {Norm.parse(k): tuple(v) for k, v in self.epsilons.items()}
        for norm, values in epsilons.items():
            if not values:
                raise fail(f"epsilons[{norm.value}]", "at least one budget", values)
            for eps in values:
                check_number(f"epsilons[{norm.value}]", eps, low=0.0, low_open=True)
        for attack_id in self.attacks:
            norm = get_attack(attack_id).norm
            if norm not in epsilons:
                raise fail(
                    f"epsilons[{norm.value}]",
                    f"budgets for the {norm.value} attack {attack_id}",
                    None,
                )
        object.__setattr__(self, "epsilons", epsilons)
        object.__setattr__(
            self, "reference_epsilon", {Norm.parse(k): v for k, v in self.reference_epsilon.items()}
        )
        check_int("pgd_steps", self.pgd_steps, low=1)
        check_int("batch_size", self.batch_size, low=1)
        check_int("seed", self.seed, low=0)

    def build(self, attack_id: str, epsilon: float) -> Attack:
        """Instantiate one attack at one budget."""
        cls = get_attack(attack_id)
        kwargs: dict[str, Any] = {
            "epsilon": epsilon,
            "batch_size": self.batch_size,
            "seed": self.seed,
        }
        if "steps" in inspect.signature(cls).parameters:
            kwargs["steps"] = self.pgd_steps
        return cls(**kwargs)

    def budgets(self, attack_id: str) -> tuple[float, ...]:
        """The budgets ``attack_id`` is run at."""
        norm = get_attack(attack_id).norm
        if norm not in self.epsilons:
            raise ValidationError(f"No epsilons given for the {norm.value} norm of {attack_id}")
        return self.epsilons[norm]


def run_evasion_sweep(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    plan: EvasionPlan,
    *,
    progress: Progress | None = None,
) -> tuple[list[SweepPoint], list[str]]:
    """Run every applicable attack of ``plan`` at each budget over ``(x, y)``.

    Returns the measured points and the ids of attacks skipped because the model does not
    grant the access they need.
    """
    points: list[SweepPoint] = []
    skipped: list[str] = []
    n = x.shape[0]
    for attack_id in plan.attacks:
        cls = get_attack(attack_id)
        if not model.access.grants(cls.requires):
            skipped.append(attack_id)
            continue
        budgets = plan.budgets(attack_id)
        total = len(budgets) * n
        done = 0
        for eps in budgets:
            attack = plan.build(attack_id, eps)
            success = clean = kept = 0
            norm_sum = seconds = 0.0
            queries = 0
            for start in range(0, n, plan.batch_size):
                xb, yb = x[start : start + plan.batch_size], y[start : start + plan.batch_size]
                result = attack(model, xb, yb)
                success += int(result.success.sum())
                clean += int(result.clean_correct.sum())
                kept += int((result.clean_correct & ~result.success).sum())
                norm_sum += float(result.norms.sum())
                queries += result.queries
                seconds += result.seconds
                done += len(result)
                if progress is not None:
                    progress(attack_id, done, total)
            points.append(
                SweepPoint(
                    attack=attack_id,
                    norm=cls.norm,
                    epsilon=eps,
                    samples=n,
                    clean_accuracy=clean / n,
                    robust_accuracy=kept / n,
                    success_rate=success / n,
                    mean_norm=norm_sum / n,
                    queries=queries,
                    seconds=seconds,
                )
            )
    return points, skipped


def severity_for_drop(relative_drop: float) -> Severity:
    """Severity from the relative accuracy loss at the reference budget.

    >= 90 % lost: critical; >= 50 %: high; >= 20 %: medium; >= 5 %: low; else info.
    """
    for threshold, severity in (
        (0.9, Severity.CRITICAL),
        (0.5, Severity.HIGH),
        (0.2, Severity.MEDIUM),
        (0.05, Severity.LOW),
    ):
        if relative_drop >= threshold:
            return severity
    return Severity.INFO


def _closest(points: Sequence[SweepPoint], epsilon: float) -> SweepPoint:
    return min(points, key=lambda p: (abs(p.epsilon - epsilon), p.epsilon))


def evasion_findings(points: Sequence[SweepPoint], plan: EvasionPlan) -> list[Finding]:
    """One finding per attack, judged at the plan's reference budget for its norm."""
    by_attack: dict[str, list[SweepPoint]] = {}
    for p in points:
        by_attack.setdefault(p.attack, []).append(p)
    findings = []
    for attack_id, curve in by_attack.items():
        curve.sort(key=lambda p: p.epsilon)
        cls = get_attack(attack_id)
        ref = _closest(curve, plan.reference_epsilon.get(cls.norm, curve[len(curve) // 2].epsilon))
        clean = ref.clean_accuracy
        drop = 0.0 if clean == 0 else max(0.0, (clean - ref.robust_accuracy) / clean)
        effective = next(
            (p.epsilon for p in curve if clean and (clean - p.robust_accuracy) / clean >= 0.5),
            None,
        )
        metrics = {
            "epsilon": ref.epsilon,
            "clean_accuracy": clean,
            "robust_accuracy": ref.robust_accuracy,
            "relative_drop": drop,
            "queries": float(ref.queries),
            "seconds": ref.seconds,
        }
        if effective is not None:
            metrics["epsilon_at_half_accuracy"] = effective
        findings.append(
            Finding(
                id=f"evasion.{attack_id}",
                title=(
                    f"{cls.title} ({cls.norm.value}) at epsilon={ref.epsilon:g} lowers accuracy "
                    f"from {clean:.1%} to {ref.robust_accuracy:.1%}"
                ),
                goal=Goal.EVASION,
                leaf=cls.leaf,
                severity=severity_for_drop(drop),
                metrics=metrics,
                evidence={
                    "attack": attack_id,
                    "params": dict(plan.build(attack_id, ref.epsilon).params()),
                    "curve": [
                        {"epsilon": p.epsilon, "robust_accuracy": p.robust_accuracy} for p in curve
                    ],
                },
                description=(
                    f"An attacker with {cls.requires.value} access changes each input by at most "
                    f"{ref.epsilon:g} in {cls.norm.value} and the model misclassifies "
                    f"{drop:.0%} of the inputs it got right. "
                    + (
                        f"Half of its accuracy is gone by epsilon={effective:g}. "
                        if effective is not None
                        else "It keeps over half of its accuracy across the sweep. "
                    )
                    + "Adversarial training or a certified defense raises this budget; "
                    "withholding gradients alone does not (transfer and black-box attacks remain)."
                ),
            )
        )
    return findings

"""The standard robustness evaluation: an ensemble of attacks, per-sample worst case.

The protocol of Croce and Hein, "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks" (ICML 2020): APGD-CE, then targeted APGD-T,
FAB-T and Square Attack, each run only on the points that every earlier attack failed on;
a point counts as robust only if all of them fail. bastion runs the members that are
registered and that the model's access allows, and says which ran.

It also looks for the signs of gradient masking that Athalye, Carlini and Wagner
("Obfuscated Gradients Give a False Sense of Security", ICML 2018) list: a black-box attack
succeeding where the white-box ones failed, and accuracy that does not fall as the budget
grows (`monotonicity_warnings`).
"""

from __future__ import annotations

import inspect
import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from bastion.assessment.evasion import Progress, severity_for_drop
from bastion.attacks.registry import ATTACKS
from bastion.core.assessment import SweepPoint
from bastion.core.errors import ValidationError
from bastion.core.results import Finding
from bastion.core.threat_model import Access, Goal, Norm, Severity
from bastion.core.validation import check_bool, check_int, check_number
from bastion.models.base import Model

__all__ = ["StandardEvaluation", "monotonicity_warnings", "standard_evaluation"]

#: The ensemble, in order; ``{norm}`` is filled in. Members not registered are skipped.
STANDARD_ATTACKS: tuple[str, ...] = (
    "apgd-ce-{norm}",
    "apgd-t-{norm}",
    "fab-t-{norm}",
    "square-{norm}",
)
#: The transfer attack ``transfer=True`` appends, per norm.
TRANSFER_ATTACKS: dict[Norm, str] = {Norm.LINF: "transfer-mifgsm-linf", Norm.L2: "transfer-pgd-l2"}
#: A black-box member breaking more than this fraction of the points the white-box members
#: could not (and at least `MASKING_MIN_POINTS` of them) is reported as gradient masking.
MASKING_FRACTION = 0.02
MASKING_MIN_POINTS = 2


@dataclass(frozen=True)
class StandardEvaluation:
    """The outcome of `standard_evaluation`.

    Attributes:
        norm, epsilon: the threat model.
        samples: points evaluated.
        clean_accuracy: accuracy before any attack.
        robust_accuracy: points no member broke, over all points.
        stages: per member in order: ``attack``, ``attacked`` (points it ran on),
            ``broken`` (of those), ``robust_after``, ``queries``, ``seconds``.
        skipped: members not run, with the reason.
        warnings: signs of gradient masking, in words.
        x_adv: per point, the adversarial input of the first member that broke it, else the
            clean input (on the CPU).
    """

    norm: Norm
    epsilon: float
    samples: int
    clean_accuracy: float
    robust_accuracy: float
    stages: tuple[dict[str, Any], ...]
    skipped: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    x_adv: torch.Tensor | None = field(default=None, repr=False)

    def findings(self) -> list[Finding]:
        """One finding for the evaluation, one more per gradient-masking warning."""
        clean = self.clean_accuracy
        drop = 0.0 if clean == 0 else max(0.0, (clean - self.robust_accuracy) / clean)
        ran = [s["attack"] for s in self.stages]
        out = [
            Finding(
                id=f"evasion.standard-{self.norm.value}",
                title=(
                    f"Standard evaluation ({self.norm.value}, epsilon={self.epsilon:g}): robust "
                    f"accuracy {self.robust_accuracy:.1%} of {clean:.1%} clean"
                ),
                goal=Goal.EVASION,
                leaf="evasion.white-box",
                severity=severity_for_drop(drop),
                metrics={
                    "epsilon": self.epsilon,
                    "clean_accuracy": clean,
                    "robust_accuracy": self.robust_accuracy,
                    "relative_drop": drop,
                    "queries": float(sum(s["queries"] for s in self.stages)),
                },
                evidence={"stages": list(self.stages), "skipped": list(self.skipped)},
                description=(
                    f"The ensemble {', '.join(ran)} ran in turn on the points still robust; a "
                    "point counts as robust only if every attack failed on it (per-sample worst "
                    "case, the AutoAttack protocol of Croce and Hein, 2020)."
                    + (f" Not run: {'; '.join(self.skipped)}." if self.skipped else "")
                ),
            )
        ]
        for i, text in enumerate(self.warnings):
            out.append(
                Finding(
                    id=f"evasion.gradient-masking-{self.norm.value}-{i}",
                    title="Possible gradient masking: white-box results overstate robustness",
                    goal=Goal.EVASION,
                    leaf="evasion.adaptive",
                    severity=Severity.MEDIUM,
                    metrics={"epsilon": self.epsilon},
                    evidence={"warning": text},
                    description=text
                    + " Evaluate with adaptive attacks (EOT, BPDA) before trusting the numbers.",
                )
            )
        return out


def _build(
    attack_id: str,
    epsilon: float,
    num_classes: int,
    batch_size: int,
    seed: int,
    overrides: Mapping[str, Any],
) -> Any:
    cls = ATTACKS[attack_id]
    params = inspect.signature(cls).parameters
    kwargs: dict[str, Any] = {"epsilon": epsilon, "batch_size": batch_size, "seed": seed}
    if "target_classes" in params:
        kwargs["target_classes"] = min(9, num_classes - 1)
    kwargs.update(overrides)
    return cls(**kwargs)


def standard_evaluation(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epsilon: float,
    norm: Norm | str = Norm.LINF,
    attacks: Sequence[str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    batch_size: int = 256,
    seed: int = 0,
    progress: Progress | None = None,
    transfer: bool = False,
) -> StandardEvaluation:
    """Run the ensemble on ``(x, y)`` at ``epsilon`` in ``norm``; per-sample worst case.

    ``attacks`` overrides the ensemble (registry ids, run in the given order);
    ``overrides`` maps an attack id to hyperparameters replacing the paper's defaults (then
    the evaluation is no longer the standard one, and the stages record what ran).
    ``transfer=True`` appends the transfer attack of `TRANSFER_ATTACKS` (a substitute
    trained on the model's labels, Papernot et al. 2017) as a last member: when it breaks
    points the gradient attacks could not, that is reported as gradient masking.
    """
    overrides = overrides or {}
    norm = Norm.parse(norm)
    epsilon = check_number("epsilon", epsilon, low=0.0, low_open=True)
    check_int("batch_size", batch_size, low=1)
    wanted = (
        list(attacks)
        if attacks is not None
        else [a.format(norm=norm.value) for a in STANDARD_ATTACKS]
    )
    if check_bool("transfer", transfer):
        wanted.append(TRANSFER_ATTACKS.get(norm, f"transfer-{norm.value}"))
    if not wanted:
        raise ValidationError("Expected attacks to name at least one attack, but got none")
    if attacks is None and not any(a in ATTACKS for a in wanted):
        raise ValidationError(
            f"The standard evaluation has no attack for the {norm.value} norm (its ensemble "
            "exists in linf and l2); pass attacks=... to evaluate with others"
        )
    # Bookkeeping lives on the CPU, where the model's labels and the attacks' results are,
    # whatever device the caller's tensors are on.
    x, y = x.detach().cpu(), y.cpu()
    with model.counter.paused():
        clean_pred = model.labels(x)
    robust = clean_pred == y
    x_adv = x.clone()
    n = int(y.shape[0])
    clean_accuracy = float(robust.float().mean())
    stages: list[dict[str, Any]] = []
    skipped: list[str] = []
    white_box_done = False
    warnings: list[str] = []
    for attack_id in wanted:
        if attack_id not in ATTACKS:
            skipped.append(f"{attack_id} (not available in this version)")
            continue
        cls = ATTACKS[attack_id]
        if cls.norm is not norm:
            raise ValidationError(
                f"Expected attacks in the {norm.value} norm, but {attack_id} is {cls.norm.value}"
            )
        if not model.access.grants(cls.requires):
            skipped.append(f"{attack_id} (needs {cls.requires.value} access)")
            continue
        index = robust.nonzero().flatten()
        attack = _build(
            attack_id, epsilon, model.num_classes, batch_size, seed, overrides.get(attack_id, {})
        )
        started = time.perf_counter()
        broken = 0
        queries = 0
        if index.numel():
            result = attack(model, x[index], y[index])
            hit = result.success
            x_adv[index[hit]] = result.x_adv[hit]
            robust[index[hit]] = False
            broken = int(hit.sum())
            queries = result.queries
        stages.append(
            {
                "attack": attack_id,
                "params": attack.params(),
                "attacked": int(index.numel()),
                "broken": broken,
                "robust_after": float(robust.float().mean()),
                "queries": queries,
                "seconds": time.perf_counter() - started,
            }
        )
        if progress is not None:
            progress("standard", len(stages), len(wanted))
        if cls.requires is Access.GRADIENTS:
            white_box_done = True
        elif white_box_done and broken > max(MASKING_FRACTION * n, MASKING_MIN_POINTS - 1):
            warnings.append(
                f"{attack_id}, which needs only {cls.requires.value} access, broke {broken} of "
                f"{n} points ({broken / n:.1%}) on which the gradient attacks had failed."
            )
    return StandardEvaluation(
        norm=norm,
        epsilon=epsilon,
        samples=n,
        clean_accuracy=clean_accuracy,
        robust_accuracy=float(robust.float().mean()),
        stages=tuple(stages),
        skipped=tuple(skipped),
        warnings=tuple(warnings),
        x_adv=x_adv,
    )


def monotonicity_warnings(points: Sequence[SweepPoint], tolerance: float = 0.02) -> list[str]:
    """Attacks whose accuracy rises by more than ``tolerance`` as epsilon grows.

    A larger budget contains every smaller one, so a real attack cannot do worse with it;
    when it does, its gradients are likely masked or the attack is misconfigured.
    """
    by_attack: dict[str, list[SweepPoint]] = {}
    for p in points:
        by_attack.setdefault(p.attack, []).append(p)
    out = []
    for attack_id, curve in by_attack.items():
        curve = sorted(curve, key=lambda p: p.epsilon)
        for small, large in itertools.pairwise(curve):
            if large.robust_accuracy > small.robust_accuracy + tolerance:
                out.append(
                    f"{attack_id}: robust accuracy rose from {small.robust_accuracy:.1%} at "
                    f"epsilon={small.epsilon:g} to {large.robust_accuracy:.1%} at "
                    f"epsilon={large.epsilon:g}."
                )
    return out

"""Auto-PGD (APGD-CE, APGD-DLR, APGD-T): projected gradient ascent that tunes its own step.

Croce and Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020 (Algorithm 1 and Section 3). The step size starts at
``2 * epsilon`` and is halved at checkpoints ``w_j`` (``p_0 = 0, p_1 = 0.22,
p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``) whenever fewer than ``rho`` of the steps
since the last checkpoint raised the loss, or the step was not halved at the last checkpoint
and the best loss did not improve; after a halving the iterate restarts from the best point.
Each update mixes the new projected step with the previous move (``alpha = 0.75``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F

from bastion.attacks import norms
from bastion.attacks.base import Attack
from bastion.attacks.losses import dlr_loss, targeted_dlr_loss
from bastion.core.errors import ValidationError
from bastion.core.threat_model import Access, Norm
from bastion.core.validation import check_int, check_number
from bastion.models.base import Model

__all__ = [
    "L2APGDCEAttack",
    "L2APGDDLRAttack",
    "L2APGDTargetedAttack",
    "LinfAPGDCEAttack",
    "LinfAPGDDLRAttack",
    "LinfAPGDTargetedAttack",
    "apgd",
    "checkpoints",
    "dlr_loss",
    "targeted_dlr_loss",
]

# A per-sample objective to maximise, computed from a batch of logits and its active rows.
_Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def checkpoints(steps: int) -> list[int]:
    """The iterations after which APGD may halve its step, for a run of ``steps`` iterations.

    ``w_j = ceil(p_j * steps)`` with ``p_0 = 0, p_1 = 0.22`` and
    ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``; for 100 steps: 22, 41, 57, 70, 80,
    87, 93, 99.
    """
    marks: list[int] = []
    p, gap = 0.0, 0.22
    while True:
        p += gap
        mark = math.ceil(round(p * steps, 9))
        if mark > steps:
            return marks
        if not marks or mark > marks[-1]:
            marks.append(mark)
        gap = max(gap - 0.03, 0.06)


def apgd(
    model: Model,
    x: torch.Tensor,
    objective: _Objective,
    succeeded: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    norm: Norm,
    epsilon: float,
    steps: int,
    rho: float,
    alpha: float,
    generator: torch.Generator,
    project_step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    free_gradient: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One APGD run from a random start inside the ball; returns ``(x_adv, success)``.

    ``objective(logits, rows)`` gives the per-sample loss to maximise for the samples ``rows``
    (indices into ``x``); ``succeeded(logits, rows)`` says which of them already reach the
    attacker's goal. A sample stops as soon as it succeeds (its run cannot change that); the
    others return the point of highest loss, as in the paper.

    ``project_step(base, z)``, when given, replaces the projection onto the ball and the
    bounds (an attack passes `Attack._project_step`, which adds tabular constraints);
    ``free_gradient`` filters each gradient before the step (zeroing immutable features).
    """
    low, high = model.bounds
    n = x.shape[0]
    out = x.clone()
    success = torch.zeros(n, dtype=torch.bool, device=x.device)
    rows = torch.arange(n, device=x.device)
    orig = x

    def project(z: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        if project_step is not None:
            return project_step(base, z)
        return (base + norms.project(z - base, norm, epsilon)).clamp(low, high)

    def evaluate(z: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        z = z.detach().requires_grad_(True)
        logits = model.logits(z)
        loss = objective(logits, idx)
        (grad,) = torch.autograd.grad(loss.sum(), z)
        if free_gradient is not None:
            grad = free_gradient(grad)
        return loss.detach(), grad, succeeded(logits.detach(), idx)

    cur = project(x + norms.random_start(x.shape, norm, epsilon, generator, x.device), x)
    loss, grad, hit = evaluate(cur, rows)
    prev = cur
    best, best_grad, best_loss = cur.clone(), grad.clone(), loss.clone()
    step = torch.full((n,), 2.0 * epsilon, device=x.device, dtype=x.dtype)
    best_at_check = best_loss.clone()
    halved_at_check = torch.ones(n, dtype=torch.bool, device=x.device)
    rises = torch.zeros(n, device=x.device)
    marks = checkpoints(steps)
    last_mark = 0

    for k in range(steps):
        # Freeze the samples that reached the goal: record them and drop them from the batch.
        if bool(hit.any()):
            out[rows[hit]] = cur[hit]
            success[rows[hit]] = True
            state = (rows, orig, cur, prev, grad, loss, best, best_grad, best_loss, step)
            rows, orig, cur, prev, grad, loss, best, best_grad, best_loss, step = (
                t[~hit] for t in state
            )
            best_at_check, halved_at_check, rises = (
                t[~hit] for t in (best_at_check, halved_at_check, rises)
            )
            if rows.numel() == 0:
                return out, success
        shape = (-1,) + (1,) * (x.dim() - 1)
        z = project(cur + step.view(shape) * norms.normalize_gradient(grad, norm), orig)
        a = 1.0 if k == 0 else alpha
        nxt = project(cur + a * (z - cur) + (1.0 - a) * (cur - prev), orig)
        prev, cur = cur, nxt
        new_loss, grad, hit = evaluate(cur, rows)
        rises += (new_loss > loss).to(rises.dtype)
        loss = new_loss
        better = loss > best_loss
        best[better], best_grad[better], best_loss[better] = cur[better], grad[better], loss[better]

        if marks and k + 1 == marks[0]:
            interval = marks.pop(0) - last_mark
            last_mark += interval
            # Condition 1: the loss rose in fewer than rho of the steps since the checkpoint.
            # Condition 2: no halving last time and no better point since then (skipped at the
            # first checkpoint, as in the authors' implementation).
            halve = (rises < rho * interval) | (~halved_at_check & (best_at_check >= best_loss))
            halved_at_check = halve
            best_at_check = best_loss.clone()
            step[halve] /= 2.0
            cur[halve], grad[halve] = best[halve], best_grad[halve]
            rises.zero_()

    out[rows[hit]] = cur[hit]
    success[rows[hit]] = True
    out[rows[~hit]] = best[~hit]
    return out, success


class _APGD(Attack):
    requires: ClassVar[Access] = Access.GRADIENTS
    leaf: ClassVar[str] = "evasion.white-box"

    def __init__(
        self,
        *,
        epsilon: float,
        steps: int = 100,
        restarts: int = 1,
        rho: float = 0.75,
        alpha: float = 0.75,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(epsilon=epsilon, batch_size=batch_size, seed=seed)
        self.steps = check_int("steps", steps, low=1)
        self.restarts = check_int("restarts", restarts, low=1)
        self.rho = check_number("rho", rho, low=0.0, high=1.0)
        self.alpha = check_number("alpha", alpha, low=0.0, high=1.0, low_open=True)

    def _objective(
        self, y: torch.Tensor, target: torch.Tensor | None, num_classes: int
    ) -> _Objective:
        raise NotImplementedError  # pragma: no cover - the concrete classes override it

    def _runs(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        objective: _Objective,
        generator: torch.Generator,
        adv: torch.Tensor,
        done: torch.Tensor,
    ) -> None:
        """Run ``restarts`` times on the samples not yet ``done``; fill ``adv`` in place."""

        def succeeded(logits: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            pred = logits.argmax(dim=1)
            return pred == target[idx] if target is not None else pred != y[idx]

        for _ in range(self.restarts):
            todo = (~done).nonzero().squeeze(1)
            if todo.numel() == 0:
                return

            def sub_objective(
                logits: torch.Tensor, idx: torch.Tensor, todo: torch.Tensor = todo
            ) -> torch.Tensor:
                return objective(logits, todo[idx])

            def sub_succeeded(
                logits: torch.Tensor, idx: torch.Tensor, todo: torch.Tensor = todo
            ) -> torch.Tensor:
                return succeeded(logits, todo[idx])

            found, hit = apgd(
                model,
                x[todo],
                sub_objective,
                sub_succeeded,
                norm=self.norm,
                epsilon=self.epsilon,
                steps=self.steps,
                rho=self.rho,
                alpha=self.alpha,
                generator=generator,
                project_step=lambda base, z: self._project_step(base, z, model.bounds),
                free_gradient=self._free_gradient,
            )
            adv[todo] = found
            done[todo] |= hit

    def run(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        objective = self._objective(y, target, model.num_classes)
        adv = x.clone()
        done = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        self._runs(model, x, y, target, objective, generator, adv, done)
        return adv


class _APGDCE(_APGD):
    def _objective(
        self, y: torch.Tensor, target: torch.Tensor | None, num_classes: int
    ) -> _Objective:
        if target is None:
            return lambda logits, idx: F.cross_entropy(logits, y[idx], reduction="none")
        return lambda logits, idx: -F.cross_entropy(logits, target[idx], reduction="none")


class _APGDDLR(_APGD):
    def _objective(
        self, y: torch.Tensor, target: torch.Tensor | None, num_classes: int
    ) -> _Objective:
        _need_classes(type(self).__name__, num_classes, 3 if target is None else 4)
        if target is None:
            return lambda logits, idx: dlr_loss(logits, y[idx])
        return lambda logits, idx: targeted_dlr_loss(logits, y[idx], target[idx])


def _need_classes(name: str, num_classes: int, least: int) -> None:
    if num_classes < least:
        raise ValidationError(
            f"{name} needs a model with at least {least} classes for its DLR loss, but the model "
            f"has {num_classes}; use the cross-entropy variant (APGD-CE)"
        )


class LinfAPGDCEAttack(_APGDCE):
    """APGD-CE in linf: Auto-PGD on the cross-entropy loss (Croce & Hein, ICML 2020).

    Defaults are the paper's: 100 iterations, ``rho = 0.75``, momentum ``alpha = 0.75``,
    initial step ``2 * epsilon``, one run from a random start (``restarts`` adds more, each
    only on samples still robust). Targeted: minimises the cross-entropy of the target.
    """

    id = "apgd-ce-linf"
    title = "APGD-CE"
    norm = Norm.LINF


class L2APGDCEAttack(_APGDCE):
    """APGD-CE in l2 (Croce & Hein, ICML 2020): as `LinfAPGDCEAttack` with l2-normalised steps."""

    id = "apgd-ce-l2"
    title = "APGD-CE"
    norm = Norm.L2


class LinfAPGDDLRAttack(_APGDDLR):
    """APGD-DLR in linf: Auto-PGD on the Difference of Logits Ratio (Croce & Hein, ICML 2020).

    Same schedule as APGD-CE; the DLR loss is scale-invariant, so it still attacks models whose
    cross-entropy gradients vanish. Targeted: the targeted DLR loss (eq. 6).
    """

    id = "apgd-dlr-linf"
    title = "APGD-DLR"
    norm = Norm.LINF


class L2APGDDLRAttack(_APGDDLR):
    """APGD-DLR in l2 (Croce & Hein, ICML 2020)."""

    id = "apgd-dlr-l2"
    title = "APGD-DLR"
    norm = Norm.L2


class _APGDTargeted(_APGD):
    def __init__(
        self,
        *,
        epsilon: float,
        steps: int = 100,
        target_classes: int = 9,
        restarts: int = 1,
        rho: float = 0.75,
        alpha: float = 0.75,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(
            epsilon=epsilon,
            steps=steps,
            restarts=restarts,
            rho=rho,
            alpha=alpha,
            batch_size=batch_size,
            seed=seed,
        )
        self.target_classes = check_int("target_classes", target_classes, low=1)

    def run(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        _need_classes(type(self).__name__, model.num_classes, 4)
        adv = x.clone()
        done = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        if target is not None:
            # A target named by the user: one targeted-DLR run towards it.
            objective = self._targeted(y, target)
            self._runs(model, x, y, target, objective, generator, adv, done)
            return adv
        # Untargeted goal, reached through the top classes other than the true one, in turn.
        with torch.no_grad():
            clean = model.logits(x)
        ranked = clean.scatter(1, y[:, None], float("-inf")).argsort(dim=1, descending=True)
        for rank in range(min(self.target_classes, model.num_classes - 1)):
            objective = self._targeted(y, ranked[:, rank])
            self._runs(model, x, y, None, objective, generator, adv, done)
        return adv

    @staticmethod
    def _targeted(y: torch.Tensor, target: torch.Tensor) -> _Objective:
        return lambda logits, idx: targeted_dlr_loss(logits, y[idx], target[idx])


class LinfAPGDTargetedAttack(_APGDTargeted):
    """APGD-T in linf: targeted-DLR APGD towards each of the top ``target_classes`` classes.

    Croce & Hein, ICML 2020, Section 4 (the version in AutoAttack): for each sample, one
    100-iteration run per target class, taken in the order of the clean logits (9 by default,
    at most ``num_classes - 1``), each run only on samples still correctly classified; the goal
    stays untargeted. Given explicit ``target`` labels it runs once towards them instead.
    """

    id = "apgd-t-linf"
    title = "APGD-T"
    norm = Norm.LINF


class L2APGDTargetedAttack(_APGDTargeted):
    """APGD-T in l2 (Croce & Hein, ICML 2020); see `LinfAPGDTargetedAttack`."""

    id = "apgd-t-l2"
    title = "APGD-T"
    norm = Norm.L2

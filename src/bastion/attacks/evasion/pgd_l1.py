"""PGD in the l1 norm with the sparse l1 descent direction (SLIDE) of Tramer & Boneh 2019."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from bastion.attacks import norms
from bastion.attacks.base import Attack
from bastion.core.threat_model import Access, Norm
from bastion.core.validation import check_bool, check_int, check_number
from bastion.models.base import Model

__all__ = ["L1ProjectedGradientDescentAttack"]


class L1ProjectedGradientDescentAttack(Attack):
    """PGD in l1: sparse l1 descent steps, each projected exactly onto the l1 ball and the box.

    Tramer & Boneh, "Adversarial Training and Robustness for Multiple Perturbations",
    NeurIPS 2019 (Sparse L1 Descent, SLIDE): each step moves along ``e / |e|_1``, where
    ``e_i = sign(g_i)`` on the coordinates whose ``|g_i|`` reaches the ``percentile``-th
    percentile of ``|g|`` (99 in the paper) and 0 elsewhere, ``g`` being the loss gradient
    (cross-entropy of ``y``, or minus that of the target). The iterate is then projected onto
    ``{|delta|_1 <= epsilon} ∩ {low <= x + delta <= high}`` exactly, with the sorting
    algorithm of Duchi et al., ICML 2008 (the problem is separable, so the soft threshold
    clipped to the box is the projection; see `bastion.attacks.norms.project_l1_box`).

    A coordinate that sits on a bound of the box with its gradient pointing out of the box
    cannot move; with ``box_aware=True`` (default) its gradient is zeroed before the
    percentile is taken, so the step spends its budget on coordinates that can move (the
    failure of plain SLIDE at the box that Croce & Hein, ICCV 2021, point out). Set
    ``box_aware=False`` for the paper's rule as written.

    As for `LinfProjectedGradientDescentAttack`: a uniform random start in the l1 ball
    (Barthe et al. 2005 sampling) when ``random_start``; ``restarts`` reruns from fresh starts
    the samples not yet successful, keeping each sample's first success; ``early_stop``
    freezes a sample at its first successful iterate; default step size
    ``2.5 * epsilon / steps``.
    """

    id = "pgd-l1"
    title = "PGD"
    norm = Norm.L1
    requires: ClassVar[Access] = Access.GRADIENTS
    leaf: ClassVar[str] = "evasion.white-box"

    def __init__(
        self,
        *,
        epsilon: float,
        steps: int = 40,
        stepsize: float | None = None,
        percentile: float = 99.0,
        box_aware: bool = True,
        random_start: bool = True,
        restarts: int = 1,
        early_stop: bool = False,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(epsilon=epsilon, batch_size=batch_size, seed=seed)
        self.steps = check_int("steps", steps, low=1)
        if stepsize is None:
            stepsize = 2.5 * self.epsilon / self.steps
        self.stepsize = check_number("stepsize", stepsize, low=0.0)
        self.percentile = check_number("percentile", percentile, low=0.0, high=100.0)
        self.box_aware = check_bool("box_aware", box_aware)
        self.random_start = check_bool("random_start", random_start)
        self.restarts = check_int("restarts", restarts, low=1)
        self.early_stop = check_bool("early_stop", early_stop)

    def run(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        low, high = model.bounds
        best = x.clone()
        done = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for restart in range(self.restarts):
            rows = (~done).nonzero().squeeze(1)
            if rows.numel() == 0:
                break
            x0 = x[rows]
            adv = x0
            if self.random_start:
                start = norms.random_start(x0.shape, self.norm, self.epsilon, generator, x.device)
                adv = x0 + norms.project_l1_box(start, self.epsilon, low - x0, high - x0)
                if self._constraints is not None:
                    adv = self._project_step(x0, adv, (low, high))
            t0 = None if target is None else target[rows]
            adv, hit = self._descend(model, x0, adv, y[rows], t0, check=self.restarts > 1)
            last = restart == self.restarts - 1
            take = hit | last
            best[rows[take]] = adv[take]
            done[rows[hit]] = True
        return best

    def _descend(
        self,
        model: Model,
        x: torch.Tensor,
        adv: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        *,
        check: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``steps`` SLIDE steps from ``adv``; returns the iterates and which reached the goal
        (known only for frozen samples, plus a final check when ``check``)."""
        low, high = model.bounds
        out = adv.clone()
        reached = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        rows = torch.arange(x.shape[0], device=x.device)
        for _ in range(self.steps):
            z = adv.detach().requires_grad_(True)
            logits = model.logits(z)
            if self.early_stop:
                pred = logits.detach().argmax(dim=1)
                hit = pred == target[rows] if target is not None else pred != y[rows]
                if bool(hit.any()):
                    out[rows[hit]] = adv[hit].detach()
                    reached[rows[hit]] = True
                    live = ~hit
                    if not bool(live.any()):
                        return out, reached
                    # The graph holds every row; only the live rows' loss is differentiated.
                    rows, adv, logits, z_rows = rows[live], adv[live], logits[live], live
                else:
                    z_rows = None
            else:
                z_rows = None
            if target is None:
                loss = F.cross_entropy(logits, y[rows], reduction="sum")
            else:
                loss = -F.cross_entropy(logits, target[rows], reduction="sum")
            (grad,) = torch.autograd.grad(loss, z)
            if z_rows is not None:
                grad = grad[z_rows]
            grad = self._free_gradient(grad)
            adv = self._step(x[rows], adv.detach(), grad, low, high)
        out[rows] = adv.detach()
        if check:
            with torch.no_grad():
                pred = model.logits(out[rows]).argmax(dim=1)
            hit = pred == target[rows] if target is not None else pred != y[rows]
            reached[rows[hit]] = True
        return out, reached

    def _step(
        self, x: torch.Tensor, adv: torch.Tensor, grad: torch.Tensor, low: float, high: float
    ) -> torch.Tensor:
        """One SLIDE step from ``adv`` and the exact projection onto the l1 ball and box."""
        allowed = None
        if self.box_aware:
            blocked = ((adv <= low) & (grad < 0)) | ((adv >= high) & (grad > 0))
            allowed = ~blocked
        direction = norms.sparse_l1_direction(grad, self.percentile, allowed)
        moved = adv + self.stepsize * direction
        adv = x + norms.project_l1_box(moved - x, self.epsilon, low - x, high - x)
        if self._constraints is not None:  # tabular inputs: the base class's repair too
            adv = self._project_step(x, adv, (low, high))
        return adv

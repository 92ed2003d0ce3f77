"""FAB-T: the targeted Fast Adaptive Boundary attack, a minimal-perturbation white-box attack.

Croce and Hein, "Minimally distorted Adversarial Examples with a Fast Adaptive Boundary
Attack", ICML 2020 (Algorithm 1); the targeted version with one run per top class is the
one in AutoAttack (Croce & Hein, ICML 2020, "Reliable evaluation ...").
"""

from __future__ import annotations

from typing import ClassVar

import torch

from bastion.attacks import norms
from bastion.attacks.base import Attack
from bastion.core.errors import ValidationError
from bastion.core.threat_model import Access, Norm
from bastion.core.validation import check_int, check_number
from bastion.models.base import Model

__all__ = ["L2FABTargetedAttack", "LinfFABTargetedAttack", "project_on_hyperplane"]

_BISECTIONS = 25


def _dot(w: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return (w * z).sum(dim=1)


def project_on_hyperplane(
    z: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor,
    norm: Norm,
    bounds: tuple[float, float],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The point of ``{v : w.v + b = 0, low <= v <= high}`` closest to ``z`` in ``norm``.

    Batched over rows of the flat ``(n, d)`` tensors ``z`` and ``w``. Solved by bisection on
    the one scalar each problem reduces to (the linf radius; the l2 multiplier, whose
    minimiser is ``clip(z - lam * w)``), which the paper solves exactly by sorting.
    Returns ``(v, feasible)``; where the hyperplane misses the box, ``v`` is ``z``.
    """
    low, high = bounds
    goal = -b
    if norm is Norm.LINF:

        def extremes(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            lo = (z - t[:, None]).clamp_min(low)
            hi = (z + t[:, None]).clamp_max(high)
            return torch.where(w > 0, lo, hi), torch.where(w > 0, hi, lo)

        t_lo = torch.zeros_like(goal)
        t_hi = torch.full_like(goal, high - low)
        small, large = extremes(t_hi)
        feasible = (_dot(w, small) <= goal) & (goal <= _dot(w, large))
        for _ in range(_BISECTIONS):
            mid = (t_lo + t_hi) / 2
            small, large = extremes(mid)
            ok = (_dot(w, small) <= goal) & (goal <= _dot(w, large))
            t_hi = torch.where(ok, mid, t_hi)
            t_lo = torch.where(ok, t_lo, mid)
        small, large = extremes(t_hi)
        lo_val, hi_val = _dot(w, small), _dot(w, large)
        lam = ((goal - lo_val) / (hi_val - lo_val).clamp_min(1e-12)).clamp(0, 1)
        v = small + lam[:, None] * (large - small)
    else:

        def level(lam: torch.Tensor) -> torch.Tensor:
            return _dot(w, (z - lam[:, None] * w).clamp(low, high)) + b

        sign = torch.where(level(torch.zeros_like(b)) > 0, 1.0, -1.0)
        # Bracket the root on the side it lies: level is non-increasing in lam.
        reach = ((_dot(w, z) + b).abs() / (w * w).sum(dim=1).clamp_min(1e-12)).clamp_min(1e-6)
        for _ in range(_BISECTIONS):
            past = sign * level(sign * reach) <= 0
            if bool(past.all()):
                break
            reach = torch.where(past, reach, 2 * reach)
        feasible = sign * level(sign * reach) <= 0
        lam_lo, lam_hi = torch.zeros_like(b), reach
        for _ in range(_BISECTIONS):
            mid = (lam_lo + lam_hi) / 2
            past = sign * level(sign * mid) <= 0
            lam_hi = torch.where(past, mid, lam_hi)
            lam_lo = torch.where(past, lam_lo, mid)
        v = (z - (sign * lam_hi)[:, None] * w).clamp(low, high)
    return torch.where(feasible[:, None], v, z), feasible


class _FABTargeted(Attack):
    requires: ClassVar[Access] = Access.GRADIENTS
    leaf: ClassVar[str] = "evasion.white-box"

    def __init__(
        self,
        *,
        epsilon: float,
        steps: int = 100,
        target_classes: int = 9,
        alpha_max: float = 0.1,
        eta: float = 1.05,
        beta: float = 0.9,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(epsilon=epsilon, batch_size=batch_size, seed=seed)
        self.steps = check_int("steps", steps, low=1)
        self.target_classes = check_int("target_classes", target_classes, low=1)
        self.alpha_max = check_number("alpha_max", alpha_max, low=0.0, high=1.0)
        self.eta = check_number("eta", eta, low=1.0)
        self.beta = check_number("beta", beta, low=0.0, high=1.0, high_open=True)

    def run(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        if target is not None:
            raise ValidationError(
                f"{type(self).__name__} uses target classes only to steer an untargeted search "
                "(Croce & Hein 2020); for a targeted attack use apgd-ce, apgd-dlr, pgd or cw-l2"
            )
        best = x.clone()
        best_size = torch.full((x.shape[0],), float("inf"), device=x.device)
        with torch.no_grad():
            clean = model.logits(x)
        best_size[clean.argmax(dim=1) != y] = 0.0  # already adversarial: nothing to do
        ranked = clean.scatter(1, y[:, None], float("-inf")).argsort(dim=1, descending=True)
        for rank in range(min(self.target_classes, model.num_classes - 1)):
            # As in AutoAttack, each target class runs only on points not yet broken within
            # the budget.
            todo = (best_size > self.epsilon).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            sub_best, sub_size = best[todo], best_size[todo]
            self._fab(model, x[todo], y[todo], ranked[todo, rank], sub_best, sub_size)
            best[todo], best_size[todo] = sub_best, sub_size
        return best

    def _fab(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        toward: torch.Tensor,
        best: torch.Tensor,
        best_size: torch.Tensor,
    ) -> None:
        """One FAB run across the boundary between ``y`` and ``toward``; improves
        ``best``/``best_size`` (the smallest misclassified point found) in place."""
        n = x.shape[0]
        flat = x.flatten(1)
        cur = flat.clone()
        pick = torch.arange(n, device=x.device)
        for _ in range(self.steps):
            z = cur.view_as(x).detach().requires_grad_(True)
            logits = model.logits(z)
            gap = logits[pick, toward] - logits[pick, y]
            (grad,) = torch.autograd.grad(gap.sum(), z)
            with torch.no_grad():
                # The linearised boundary between y and the target at the current point,
                # and the steps onto it from there and from the original input.
                w = grad.flatten(1)
                b = gap.detach() - _dot(w, cur)
                both = torch.cat([cur, flat])
                onto = project_on_hyperplane(
                    both, torch.cat([w, w]), torch.cat([b, b]), self.norm, model.bounds
                )[0]
                d_cur, d_orig = (onto - both).split(n)
                size_cur = norms.lp_norm(d_cur, self.norm)
                size_orig = norms.lp_norm(d_orig, self.norm)
                alpha = (size_cur / (size_cur + size_orig).clamp_min(1e-12)).clamp(
                    max=self.alpha_max
                )[:, None]
                cur = (1 - alpha) * (cur + self.eta * d_cur) + alpha * (flat + self.eta * d_orig)
                cur = cur.clamp(*model.bounds)
                # An adversarial iterate is kept if smaller than the best so far, then pulled
                # back towards the original (the "backward step") to search for a smaller one.
                hit = model.logits(cur.view_as(x)).argmax(dim=1) != y
                size = norms.lp_norm(cur - flat, self.norm)
                better = hit & (size < best_size)
                best[better] = cur[better].view_as(x[better])
                best_size[better] = size[better]
                cur = torch.where(hit[:, None], (1 - self.beta) * flat + self.beta * cur, cur)


class LinfFABTargetedAttack(_FABTargeted):
    """FAB-T in linf (Croce & Hein, "Minimally distorted Adversarial Examples with a Fast
    Adaptive Boundary Attack", ICML 2020, Algorithm 1, targeted as in AutoAttack).

    Each step linearises the boundary between the true class and the target class at the
    current point, projects both the current point and the original input onto it (within the
    input bounds), and moves to the mix ``(1 - a)(x_i + eta d_i) + a(x + eta d_orig)`` with
    ``a = min(|d_i| / (|d_i| + |d_orig|), alpha_max)``; an iterate that is adversarial is kept
    when smaller than the best so far and pulled back, ``(1 - beta) x + beta x_i``. Defaults
    are the paper's and AutoAttack's: 100 steps, ``alpha_max = 0.1``, ``eta = 1.05``,
    ``beta = 0.9``, one run from the clean input per each of the top 9 classes (at most
    ``num_classes - 1``), each only on points not yet broken within ``epsilon``. Two queries
    per step (the linearisation and the check). The goal stays untargeted (any wrong label),
    so ``target`` labels are refused. A minimal-perturbation attack: ``epsilon`` caps the
    result (the base class projects onto the ball).
    """

    id = "fab-t-linf"
    title = "FAB-T"
    norm = Norm.LINF


class L2FABTargetedAttack(_FABTargeted):
    """FAB-T in l2 (Croce & Hein, ICML 2020); see `LinfFABTargetedAttack`."""

    id = "fab-t-l2"
    title = "FAB-T"
    norm = Norm.L2

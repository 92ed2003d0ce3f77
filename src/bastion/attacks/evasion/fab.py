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

__all__ = [
    "L2FABAttack",
    "L2FABTargetedAttack",
    "LinfFABAttack",
    "LinfFABTargetedAttack",
    "project_on_hyperplane",
]

_BISECTIONS = 25


def _dot(w: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return (w * z).sum(dim=1)


def _project_linf(
    z: torch.Tensor, w: torch.Tensor, goal: torch.Tensor, bounds: tuple[float, float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact linf projection onto ``{v : w.v = goal, low <= v <= high}``, by one sort.

    To close the residual ``r = goal - w.z`` each coordinate moves by at most ``t`` (the
    linf radius) in the direction ``sign(r w_i)``, as far as its room ``c_i`` to the bound
    allows, which changes ``w.v`` by ``f(t) = sum_i |w_i| min(t, c_i)``. ``f`` is piecewise
    linear and non-decreasing with breakpoints at the sorted rooms, so the smallest ``t``
    with ``f(t) = |r|`` lies on the first segment whose end reaches ``|r|``: the exact
    projection by sorting that Croce & Hein (ICML 2020) use.
    """
    low, high = bounds
    r = goal - _dot(w, z)
    step = torch.where(r[:, None] >= 0, w.sign(), -w.sign())  # direction of each coordinate
    room = torch.where(step > 0, high - z, z - low).clamp_min(0.0)
    need = r.abs()
    rooms, order = room.sort(dim=1)
    weights = w.abs().gather(1, order)
    used = weights * rooms
    before = used.cumsum(dim=1) - used  # from the coordinates already at their bound
    rest = weights.flip(1).cumsum(dim=1).flip(1)  # weight of the coordinates still moving
    reach = before + rooms * rest  # f at each breakpoint
    feasible = reach[:, -1] >= need
    k = (reach < need[:, None]).sum(dim=1).clamp(max=z.shape[1] - 1)[:, None]
    t = ((need[:, None] - before.gather(1, k)) / rest.gather(1, k).clamp_min(1e-12)).clamp_min(0.0)
    v = (z + step * torch.minimum(t, room)).clamp(low, high)
    return v, feasible


def project_on_hyperplane(
    z: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor,
    norm: Norm,
    bounds: tuple[float, float],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The point of ``{v : w.v + b = 0, low <= v <= high}`` closest to ``z`` in ``norm``.

    Batched over rows of the flat ``(n, d)`` tensors ``z`` and ``w``. In linf it is solved
    exactly by one sort (`_project_linf`); in l2 by bisection on the multiplier, whose
    minimiser is ``clip(z - lam * w)`` (the paper solves it exactly by sorting).
    Returns ``(v, feasible)``; where the hyperplane misses the box, ``v`` is ``z``.
    """
    low, high = bounds
    if norm is Norm.LINF:
        v, feasible = _project_linf(z, w, -b, bounds)
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


class _FAB(Attack):
    """What FAB and FAB-T share: the paper's step hyperparameters and one FAB run."""

    requires: ClassVar[Access] = Access.GRADIENTS
    leaf: ClassVar[str] = "evasion.white-box"

    def __init__(
        self,
        *,
        epsilon: float,
        steps: int = 100,
        alpha_max: float = 0.1,
        eta: float = 1.05,
        beta: float = 0.9,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(epsilon=epsilon, batch_size=batch_size, seed=seed)
        self.steps = check_int("steps", steps, low=1)
        self.alpha_max = check_number("alpha_max", alpha_max, low=0.0, high=1.0)
        self.eta = check_number("eta", eta, low=1.0)
        self.beta = check_number("beta", beta, low=0.0, high=1.0, high_open=True)

    def _refuse_target(self, target: torch.Tensor | None) -> None:
        if target is not None:
            raise ValidationError(
                f"{type(self).__name__} is an untargeted attack (Croce & Hein 2020); for a "
                "targeted attack use apgd-ce, apgd-dlr, pgd or cw-l2"
            )

    def _linearise(
        self, model: Model, z: torch.Tensor, y: torch.Tensor, toward: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The logit gap ``f_l - f_y`` at ``z`` and its gradient (flat), for ``l = toward``,
        or (``toward`` None) for the class whose linearised boundary is closest in ``norm``:
        ``argmin_l |f_l - f_y| / |grad (f_l - f_y)|_q``, ``q`` the dual norm (eq. 7)."""
        z = z.detach().requires_grad_(True)
        logits = model.logits(z)
        m = z.shape[0]
        pick = torch.arange(m, device=z.device)
        if toward is not None:
            gap = logits[pick, toward] - logits[pick, y]
            (grad,) = torch.autograd.grad(gap.sum(), z)
            return gap.detach(), grad.flatten(1)
        k = logits.shape[1]
        rows = [
            torch.autograd.grad(logits[:, c].sum(), z, retain_graph=c < k - 1)[0].flatten(1)
            for c in range(k)
        ]
        jac = torch.stack(rows, dim=1)  # (m, classes, d)
        gaps = (logits - logits[pick, y][:, None]).detach()
        ws = jac - jac[pick, y][:, None]
        dual = 1.0 if self.norm is Norm.LINF else 2.0
        size = torch.linalg.vector_norm(ws, ord=dual, dim=2)
        dist = gaps.abs() / (size + 1e-12)
        dist[pick, y] = float("inf")
        s = dist.argmin(dim=1)
        return gaps[pick, s], ws[pick, s]

    def _fab(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        toward: torch.Tensor | None,
        best: torch.Tensor,
        best_size: torch.Tensor,
        best_label: torch.Tensor,
        start: torch.Tensor | None = None,
    ) -> None:
        """One FAB run across the boundary between ``y`` and ``toward`` (or, when None, the
        closest linearised boundary at each step), from ``start`` (default ``x``); improves
        ``best``/``best_size`` (the smallest misclassified point found) and ``best_label``
        (the model's label there) in place."""
        n = x.shape[0]
        flat = x.flatten(1)
        cur = flat.clone() if start is None else start.flatten(1).clone()
        for _ in range(self.steps):
            gap, w = self._linearise(model, cur.view_as(x), y, toward)
            with torch.no_grad():
                # The linearised boundary at the current point, and the steps onto it from
                # there and from the original input.
                b = gap - _dot(w, cur)
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
                label = model.logits(cur.view_as(x)).argmax(dim=1)
                hit = label != y
                size = norms.lp_norm(cur - flat, self.norm)
                better = hit & (size < best_size)
                best[better] = cur[better].view_as(x[better])
                best_size[better] = size[better]
                best_label[better] = label[better]
                cur = torch.where(hit[:, None], (1 - self.beta) * flat + self.beta * cur, cur)


class _FABTargeted(_FAB):
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
        super().__init__(
            epsilon=epsilon,
            steps=steps,
            alpha_max=alpha_max,
            eta=eta,
            beta=beta,
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
        if target is not None:
            raise ValidationError(
                f"{type(self).__name__} uses target classes only to steer an untargeted search "
                "(Croce & Hein 2020); for a targeted attack use apgd-ce, apgd-dlr, pgd or cw-l2"
            )
        best = x.clone()
        best_size = torch.full((x.shape[0],), float("inf"), device=x.device)
        with torch.no_grad():
            clean = model.logits(x)
        best_label = clean.argmax(dim=1)
        self._note_labels(x, best_label)
        best_size[best_label != y] = 0.0  # already adversarial: nothing to do
        ranked = clean.scatter(1, y[:, None], float("-inf")).argsort(dim=1, descending=True)
        for rank in range(min(self.target_classes, model.num_classes - 1)):
            # As in AutoAttack, each target class runs only on points not yet broken within
            # the budget.
            todo = (best_size > self.epsilon).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            sub_best, sub_size, sub_label = best[todo], best_size[todo], best_label[todo]
            self._fab(model, x[todo], y[todo], ranked[todo, rank], sub_best, sub_size, sub_label)
            best[todo], best_size[todo], best_label[todo] = sub_best, sub_size, sub_label
        self._note_labels(best, best_label)
        return best


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


class _FABUntargeted(_FAB):
    def __init__(
        self,
        *,
        epsilon: float,
        steps: int = 100,
        restarts: int = 1,
        alpha_max: float = 0.1,
        eta: float = 1.05,
        beta: float = 0.9,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(
            epsilon=epsilon,
            steps=steps,
            alpha_max=alpha_max,
            eta=eta,
            beta=beta,
            batch_size=batch_size,
            seed=seed,
        )
        self.restarts = check_int("restarts", restarts, low=1)

    def run(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        self._refuse_target(target)
        best = x.clone()
        best_size = torch.full((x.shape[0],), float("inf"), device=x.device)
        with torch.no_grad():
            best_label = model.logits(x).argmax(dim=1)
        self._note_labels(x, best_label)
        best_size[best_label != y] = 0.0  # already adversarial
        for restart in range(self.restarts):
            todo = (best_size > 0).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            start = None
            if restart > 0:
                # Later runs start at random in the ball of radius min(best, epsilon) / 2.
                radius = best_size[todo].clamp(max=self.epsilon) / 2
                unit = norms.random_start(x[todo].shape, self.norm, 1.0, generator, x.device)
                shift = unit * radius.view(-1, *([1] * (x.dim() - 1)))
                start = (x[todo] + shift).clamp(*model.bounds)
            sub_best, sub_size, sub_label = best[todo], best_size[todo], best_label[todo]
            self._fab(model, x[todo], y[todo], None, sub_best, sub_size, sub_label, start)
            best[todo], best_size[todo], best_label[todo] = sub_best, sub_size, sub_label
        self._note_labels(best, best_label)
        return best


class LinfFABAttack(_FABUntargeted):
    """FAB in linf, untargeted (Croce & Hein, "Minimally distorted Adversarial Examples with a
    Fast Adaptive Boundary Attack", ICML 2020, Algorithm 1).

    As `LinfFABTargetedAttack`, except that each step linearises the boundary closest to the
    current point: the class ``s = argmin_{l != y} |f_l - f_y| / |grad(f_l - f_y)|_1`` (eq. 7,
    with the dual norm), which costs the whole Jacobian (one backward pass per class) each
    step. The first run starts from the input; each of the ``restarts - 1`` further runs from
    a random point in the ball of radius ``min(best, epsilon) / 2`` around it, as in the
    paper. Defaults are the paper's (100 steps, ``alpha_max`` 0.1, ``eta`` 1.05, ``beta``
    0.9). Untargeted only; ``epsilon`` caps the result.
    """

    id = "fab-linf"
    title = "FAB"
    norm = Norm.LINF


class L2FABAttack(_FABUntargeted):
    """FAB in l2, untargeted (Croce & Hein, ICML 2020); see `LinfFABAttack` (dual norm l2)."""

    id = "fab-l2"
    title = "FAB"
    norm = Norm.L2

"""HopSkipJump: a decision-based (label-only) minimal-perturbation attack, l2 and linf.

Chen, Jordan, Wainwright, "HopSkipJumpAttack: A Query-Efficient Decision-Based Attack",
IEEE S&P 2020.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from bastion.attacks.base import Attack
from bastion.attacks.evasion._blackbox import QueryTracker
from bastion.attacks.evasion._decision import Oracle, boundary_search, starting_points
from bastion.core.threat_model import Access, Norm
from bastion.core.validation import check_bool, check_int, check_number
from bastion.models.base import Model

__all__ = ["L2HopSkipJumpAttack", "LinfHopSkipJumpAttack"]

_CHUNK = 1 << 22  # floats per block of gradient-estimation probes held at once


def _view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


class _HopSkipJump(Attack):
    requires: ClassVar[Access] = Access.LABELS
    leaf: ClassVar[str] = "evasion.decision-based"
    title: ClassVar[str] = "HopSkipJump"

    def __init__(
        self,
        *,
        epsilon: float,
        max_queries: int = 1000,
        init_evals: int = 100,
        max_evals: int = 10000,
        gamma: float = 1.0,
        init_tries: int = 100,
        stop_at_budget: bool = True,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(epsilon=epsilon, batch_size=batch_size, seed=seed)
        self.max_queries = check_int("max_queries", max_queries, low=1)
        self.init_evals = check_int("init_evals", init_evals, low=1)
        self.max_evals = check_int("max_evals", max_evals, low=self.init_evals)
        self.gamma = check_number("gamma", gamma, low=0.0, low_open=True)
        self.init_tries = check_int("init_tries", init_tries, low=0)
        self.stop_at_budget = check_bool("stop_at_budget", stop_at_budget)

    # --- geometry per norm ---------------------------------------------------------------
    def _dist(self, delta: torch.Tensor) -> torch.Tensor:
        flat = delta.flatten(1)
        return flat.abs().amax(dim=1) if self.norm is Norm.LINF else flat.norm(dim=1)

    # --- the algorithm -------------------------------------------------------------------
    def run(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        n = x.shape[0]
        d = x[0].numel()
        low, high = model.bounds
        tracker = QueryTracker(model, n, self.max_queries, stop_at_budget=self.stop_at_budget)
        theta = self.gamma / (d**2 if self.norm is Norm.LINF else d**1.5)
        dev = x.device

        is_adv = Oracle(tracker, y, target, x=x, constraints=self._constraints)
        best, work = starting_points(x, y, target, is_adv, self.init_tries, generator, (low, high))
        if work.numel() == 0:
            return best
        best[work] = self._boundary(x[work], best[work], work, theta, is_adv)
        dist = torch.zeros(n, device=dev)
        dist[work] = self._dist(best[work] - x[work])
        for t in range(1, 1 << 30):
            work = work[tracker.left(work).to(dev) >= 2]
            if work.numel() == 0 or tracker.exhausted:
                break
            xs, xt = x[work], best[work]
            if t == 1:
                delta = torch.full((work.numel(),), 0.1 * (high - low), device=dev)
            else:
                scale = d if self.norm is Norm.LINF else math.sqrt(d)
                delta = scale * theta * dist[work]
            evals = min(int(self.init_evals * math.sqrt(t)), self.max_evals)
            k = torch.clamp(tracker.left(work), max=evals).to(dev)
            kept = tracker.afford(work, k)
            keep = torch.isin(work, kept)
            work, xs, xt, delta, k = kept, xs[keep], xt[keep], delta[keep], k[keep]
            if work.numel() == 0:
                break
            grad = self._estimate(xt, work, delta, k, generator, (low, high), is_adv)
            if self.norm is Norm.LINF:
                direction = grad.sign()
            else:
                direction = grad / _view(grad.flatten(1).norm(dim=1).clamp_min(1e-12), grad)
            stepped = self._jump(xs, xt, direction, work, t, (low, high), is_adv)
            best[work] = self._boundary(xs, stepped, work, theta, is_adv)
            dist[work] = self._dist(best[work] - xs)
        return best

    def _jump(
        self,
        xs: torch.Tensor,
        xt: torch.Tensor,
        direction: torch.Tensor,
        idx: torch.Tensor,
        t: int,
        bounds: tuple[float, float],
        is_adv: Oracle,
    ) -> torch.Tensor:
        """Geometric step search: from ``dist / sqrt(t)``, halve until the step stays adversarial.

        A sample whose queries run out, or that fails 30 halvings, stays at ``xt``.
        """
        size = self._dist(xt - xs) / math.sqrt(t)
        out = xt.clone()
        pending = torch.arange(xt.shape[0], device=xt.device)
        for _ in range(30):
            sel = is_adv.tracker.afford(idx[pending])
            if sel.numel() == 0:
                break
            rows = pending[torch.isin(idx[pending], sel)]
            cand = (xt[rows] + _view(size[rows], xt) * direction[rows]).clamp(*bounds)
            hit = is_adv(cand, sel)
            out[rows[hit]] = cand[hit]
            size[rows[~hit]] /= 2
            pending = rows[~hit]
            if pending.numel() == 0:
                break
        return out

    def _boundary(
        self, x: torch.Tensor, adv: torch.Tensor, idx: torch.Tensor, theta: float, oracle: Oracle
    ) -> torch.Tensor:
        """The paper's binary search: tolerance ``theta`` on the blend (l2), or
        ``min(dist * theta, theta)`` on the linf radius."""
        if self.norm is Norm.LINF:
            high = self._dist(adv - x)
            tol = torch.clamp(high * theta, max=theta)
        else:
            high = torch.ones(x.shape[0], device=x.device)
            tol = torch.full_like(high, theta)
        return boundary_search(x, adv, idx, high, tol, oracle, linf=self.norm is Norm.LINF)

    def _estimate(
        self,
        xt: torch.Tensor,
        idx: torch.Tensor,
        delta: torch.Tensor,
        k: torch.Tensor,
        generator: torch.Generator,
        bounds: tuple[float, float],
        is_adv: Oracle,
    ) -> torch.Tensor:
        """Monte Carlo estimate of the boundary's normal at ``xt`` from ``k`` label queries each,
        with the paper's baseline (the mean decision) subtracted to reduce variance."""
        m = xt.shape[0]
        d = xt[0].numel()
        total = int(k.max())
        sum_phi_u = torch.zeros_like(xt)
        sum_u = torch.zeros_like(xt)
        sum_phi = torch.zeros(m, device=xt.device)
        block = max(1, _CHUNK // max(1, m * d))
        for start in range(0, total, block):
            b = min(block, total - start)
            shape = (m, b, *xt.shape[1:])
            if self.norm is Norm.LINF:
                u = torch.rand(shape, generator=generator, device=xt.device) * 2 - 1
            else:
                u = torch.randn(shape, generator=generator, device=xt.device)
            u = u / u.flatten(2).norm(dim=2).clamp_min(1e-12).view(m, b, *([1] * (xt.dim() - 1)))
            probe = (xt[:, None] + _view(delta, xt)[:, None] * u).clamp(*bounds)
            u = (probe - xt[:, None]) / _view(delta, xt)[:, None]
            valid = torch.arange(start, start + b, device=xt.device)[None, :] < k[:, None]
            owner = torch.arange(m, device=xt.device)[:, None].expand(m, b)[valid]
            per = valid.sum(dim=1)
            hit = is_adv.many(probe[valid], idx[owner], idx, per.cpu())
            phi = torch.zeros(m, b, device=xt.device)
            phi[valid] = hit.float() * 2 - 1
            sum_phi += phi.sum(dim=1)
            sum_phi_u += (phi.view(m, b, *([1] * (xt.dim() - 1))) * u).sum(dim=1)
            sum_u += (valid.float().view(m, b, *([1] * (xt.dim() - 1))) * u).sum(dim=1)
        kf = k.float()
        mean = sum_phi / kf
        # With all decisions alike the baseline would cancel everything; the paper then uses
        # the raw decisions.
        base = torch.where(mean.abs() == 1, torch.zeros_like(mean), mean)
        return (sum_phi_u - _view(base, xt) * sum_u) / _view(kf, xt)


class L2HopSkipJumpAttack(_HopSkipJump):
    """HopSkipJump in l2: label queries only, minimising the l2 distance to the boundary.

    Chen, Jordan, Wainwright, IEEE S&P 2020 (Algorithm 2). From an adversarial start
    (uniform noise, or for a targeted attack a batch sample the model puts in the target
    class), a binary search finds the boundary (tolerance ``theta = gamma / d^1.5``); each
    iteration ``t`` estimates the boundary's normal from ``init_evals * sqrt(t)`` (at most
    ``max_evals``) label queries at probe radius ``sqrt(d) * theta * dist`` (0.1 of the input
    range at ``t = 1``), steps along it with the geometric step size ``dist / sqrt(t)``
    (halved until adversarial), and binary-searches back to the boundary. Defaults are the
    paper's (100 initial evaluations, at most 10,000, ``gamma`` 1).

    A minimal-perturbation attack: it runs until each sample has used ``max_queries``
    queries, and the base class then projects its result onto the epsilon-ball, so a
    sample counts as a success only if the boundary point found lies within epsilon (set a
    large epsilon to read off the minimal perturbations themselves). ``stop_at_budget``
    as for the Square Attack.
    """

    id = "hsj-l2"
    norm = Norm.L2


class LinfHopSkipJumpAttack(_HopSkipJump):
    """HopSkipJump in linf: as `L2HopSkipJumpAttack`, with the paper's linf choices.

    Chen, Jordan, Wainwright, IEEE S&P 2020: probes drawn uniformly from the cube, the update
    along the sign of the estimate, the binary search over the linf radius (clipping towards
    the original, tolerance ``min(dist * theta, theta)``, ``theta = gamma / d^2``) and probe
    radius ``d * theta * dist``. Minimal-perturbation, projected onto epsilon by the base.
    """

    id = "hsj-linf"
    norm = Norm.LINF

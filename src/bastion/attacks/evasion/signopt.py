"""Sign-OPT: a decision-based (label-only) l2 attack that optimises the direction to the
boundary with sign estimates of its directional derivative.

Cheng, Singh, Chen, Chen, Liu, Hsieh, "Sign-OPT: A Query-Efficient Hard-label Adversarial
Attack", ICLR 2020; on the OPT formulation of Cheng et al., "Query-Efficient Hard-label
Black-box Attack: An Optimization-based Approach", ICLR 2019.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from bastion.attacks.base import Attack
from bastion.attacks.evasion._blackbox import QueryTracker
from bastion.attacks.evasion._decision import Oracle, boundary_search, starting_points
from bastion.core.threat_model import Access, Norm
from bastion.core.validation import check_bool, check_int, check_number
from bastion.models.base import Model

__all__ = ["L2SignOPTAttack"]

_CHUNK = 1 << 22  # floats per block of sign probes held at once
_LINE_TRIES = 15  # step-size trials per phase of the line search, as in the authors' code
_SHRINK_TRIES = 200  # 0.99-shrinks of the local search before it falls back to bisection


def _view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def _unit(t: torch.Tensor) -> torch.Tensor:
    return t / _view(t.flatten(1).norm(dim=1).clamp_min(1e-12), t)


class L2SignOPTAttack(Attack):
    """Sign-OPT in l2: minimise ``g(theta)``, the distance to the boundary along the
    direction ``theta``, from label queries only.

    Cheng et al., ICLR 2020 (Algorithm 1). ``g(theta)`` is found by a search along the ray
    ``x + lam * theta``. Each iteration estimates the gradient of ``g`` from ``k`` single-query
    signs: for Gaussian ``u_j``, ``sign(g(theta + beta u_j) - g(theta))`` is +1 exactly when
    ``x + g(theta) * unit(theta + beta u_j)`` does not meet the goal, and the estimate is
    ``mean_j sign_j u_j``. It then line-searches the step as the authors' implementation
    does: from the step ``alpha``, doubling while ``g`` keeps falling, else quartering until
    it falls (15 tries each); when ``alpha`` drops below 1e-4 it resets to 1 and ``beta``
    shrinks tenfold, and a sample whose ``beta`` falls below 1e-8 has converged. A candidate
    direction is scored by the authors' local search: rejected after one query when it is
    not adversarial at the best distance so far (its ``g`` cannot be smaller), otherwise
    shrunk by factors of 0.99 until it stops being adversarial and bisected to ``beta / 500``.
    Defaults are the paper's (``k`` 200, ``alpha`` 0.2, ``beta`` 0.001).

    Starts from uniform noise (untargeted), or a batch sample the model puts in the target
    class (targeted, as the paper starts from target-class examples), bisected towards the
    input. Every probe is clipped to the input bounds. Untargeted and targeted.

    A minimal-perturbation attack: each sample runs until it has used ``max_queries``
    queries or converged. Once a full estimate of ``k`` signs no longer fits, each further
    estimate takes half of the queries left (the same estimator over fewer directions) and
    the line search the rest, until at most one query is left. The base class projects the
    result onto the epsilon-ball, so a sample succeeds only if the boundary point found lies
    within epsilon. With ``stop_at_budget`` a model's exhausted query budget ends
    the attack cleanly with the best points found so far.
    """

    id = "sign-opt-l2"
    title = "Sign-OPT"
    norm = Norm.L2
    requires: ClassVar[Access] = Access.LABELS
    leaf: ClassVar[str] = "evasion.decision-based"

    def __init__(
        self,
        *,
        epsilon: float,
        max_queries: int = 4000,
        k: int = 200,
        alpha: float = 0.2,
        beta: float = 0.001,
        init_tries: int = 100,
        stop_at_budget: bool = True,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(epsilon=epsilon, batch_size=batch_size, seed=seed)
        self.max_queries = check_int("max_queries", max_queries, low=1)
        self.k = check_int("k", k, low=1)
        self.alpha = check_number("alpha", alpha, low=0.0, low_open=True)
        self.beta = check_number("beta", beta, low=0.0, low_open=True)
        self.init_tries = check_int("init_tries", init_tries, low=0)
        self.stop_at_budget = check_bool("stop_at_budget", stop_at_budget)

    def run(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        n = x.shape[0]
        dev = x.device
        tracker = QueryTracker(model, n, self.max_queries, stop_at_budget=self.stop_at_budget)
        oracle = Oracle(tracker, y, target, x=x, constraints=self._constraints)
        best, work = starting_points(x, y, target, oracle, self.init_tries, generator, model.bounds)
        if work.numel() == 0:
            return best
        span = (best[work] - x[work]).flatten(1).norm(dim=1).clamp_min(1e-12)
        ones = torch.ones(work.numel(), device=dev)
        tol = (self.beta / 500) / span
        best[work] = boundary_search(x[work], best[work], work, ones, tol, oracle, linf=False)
        theta = torch.zeros_like(x)
        theta[work] = _unit(best[work] - x[work])
        g = torch.full((n,), float("inf"), device=dev)
        g[work] = (best[work] - x[work]).flatten(1).norm(dim=1)
        alpha = torch.full((n,), self.alpha, device=dev)
        beta = torch.full((n,), self.beta, device=dev)
        while True:
            # A full estimate of k signs; once fewer than k + 1 queries are left, a last,
            # smaller one of half of them, so the line search keeps the other half.
            left = tracker.left(work)
            size = torch.where(left > self.k, self.k, left // 2)
            keep = size > 0
            work, size = work[keep.to(dev)], size[keep]
            fits = torch.isin(work, tracker.afford(work, size))
            work, size = work[fits], size[fits.cpu()]
            if work.numel() == 0:
                break
            grad = self._sign_gradient(
                x[work],
                theta[work],
                g[work],
                beta[work],
                size,
                work,
                oracle,
                generator,
                model.bounds,
            )
            new_theta, new_g, new_alpha = self._line_search(
                x[work],
                theta[work],
                g[work],
                grad,
                alpha[work],
                beta[work],
                work,
                oracle,
                model.bounds,
            )
            small = new_alpha < 1e-4
            new_alpha[small] = 1.0
            beta[work[small]] *= 0.1
            theta[work], g[work], alpha[work] = new_theta, new_g, new_alpha
            work = work[beta[work] >= 1e-8]
        done = torch.isfinite(g)
        best[done] = self._point(x[done], theta[done], g[done], model.bounds)
        return best

    @staticmethod
    def _point(
        x: torch.Tensor, theta: torch.Tensor, lam: torch.Tensor, bounds: tuple[float, float]
    ) -> torch.Tensor:
        return (x + _view(lam, x) * theta).clamp(*bounds)

    def _sign_gradient(
        self,
        x: torch.Tensor,
        theta: torch.Tensor,
        g: torch.Tensor,
        beta: torch.Tensor,
        size: torch.Tensor,
        idx: torch.Tensor,
        oracle: Oracle,
        generator: torch.Generator,
        bounds: tuple[float, float],
    ) -> torch.Tensor:
        """``mean_j sign_j u_j`` over ``size`` (per sample, at most ``k``) Gaussian ``u_j``,
        one query per sign (eq. 4)."""
        m = x.shape[0]
        d = x[0].numel()
        total = torch.zeros_like(x)
        block = max(1, _CHUNK // max(1, m * d))
        trail = [1] * (x.dim() - 1)
        size_dev = size.to(x.device)
        most = int(size.max())
        for start in range(0, most, block):
            b = min(block, most - start)
            u = torch.randn((m, b, *x.shape[1:]), generator=generator, device=x.device)
            u = u / u.flatten(2).norm(dim=2).clamp_min(1e-12).view(m, b, *trail)
            turned = theta[:, None] + beta.view(m, 1, *trail) * u
            turned = turned / turned.flatten(2).norm(dim=2).clamp_min(1e-12).view(m, b, *trail)
            probe = (x[:, None] + g.view(m, 1, *trail) * turned).clamp(*bounds)
            used = torch.arange(start, start + b, device=x.device)[None, :] < size_dev[:, None]
            owner = torch.arange(m, device=x.device)[:, None].expand(m, b)[used]
            count = used.sum(dim=1)
            asked = count > 0
            hit = torch.zeros(m, b, dtype=torch.bool, device=x.device)
            hit[used] = oracle.many(probe[used], idx[owner], idx[asked], count[asked].cpu())
            sign = torch.where(hit, -1.0, 1.0) * used
            total += (sign.view(m, b, *trail) * u).sum(dim=1)
        return total / _view(size_dev.to(x.dtype), x)

    def _line_search(
        self,
        x: torch.Tensor,
        theta: torch.Tensor,
        g: torch.Tensor,
        grad: torch.Tensor,
        alpha: torch.Tensor,
        beta: torch.Tensor,
        idx: torch.Tensor,
        oracle: Oracle,
        bounds: tuple[float, float],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The authors' step-size search; returns the new directions, distances and steps."""
        alpha = alpha.clone()
        best_theta, best_g = theta.clone(), g.clone()
        tol = beta / 500
        rows = torch.arange(x.shape[0], device=x.device)
        for _ in range(_LINE_TRIES):  # grow while g keeps falling
            if rows.numel() == 0:
                break
            cand = _unit(theta[rows] - _view(alpha[rows], x) * grad[rows])
            cand_g = self._local_search(
                x[rows], cand, best_g[rows], tol[rows], idx[rows], oracle, bounds
            )
            alpha[rows] *= 2
            better = cand_g < best_g[rows]
            best_theta[rows[better]], best_g[rows[better]] = cand[better], cand_g[better]
            rows = rows[better]
        rows = (best_g >= g).nonzero().squeeze(1)
        for _ in range(_LINE_TRIES):  # else shrink until g falls
            if rows.numel() == 0:
                break
            alpha[rows] *= 0.25
            cand = _unit(theta[rows] - _view(alpha[rows], x) * grad[rows])
            cand_g = self._local_search(
                x[rows], cand, g[rows], tol[rows], idx[rows], oracle, bounds
            )
            better = cand_g < g[rows]
            best_theta[rows[better]], best_g[rows[better]] = cand[better], cand_g[better]
            rows = rows[~better]
        return best_theta, best_g, alpha

    def _local_search(
        self,
        x: torch.Tensor,
        theta: torch.Tensor,
        ref: torch.Tensor,
        tol: torch.Tensor,
        idx: torch.Tensor,
        oracle: Oracle,
        bounds: tuple[float, float],
    ) -> torch.Tensor:
        """``g`` along each ``theta`` if it is below ``ref`` (else inf): one query at ``ref``,
        shrinks by 0.99 while adversarial, then bisection to ``tol``. A sample whose queries
        run out keeps the smallest adversarial distance it has seen."""
        out = torch.full_like(ref, float("inf"))
        sel = oracle.tracker.afford(idx)
        rows = torch.isin(idx, sel).nonzero().squeeze(1)
        if rows.numel() == 0:
            return out
        hit = oracle(self._point(x[rows], theta[rows], ref[rows], bounds), idx[rows])
        rows = rows[hit]
        hi = ref.clone()
        lo = ref * 0.99
        live = rows
        for _ in range(_SHRINK_TRIES):
            sel = oracle.tracker.afford(idx[live])
            live = live[torch.isin(idx[live], sel)]
            if live.numel() == 0:
                break
            still = oracle(self._point(x[live], theta[live], lo[live], bounds), idx[live])
            hi[live[still]] = lo[live[still]]
            lo[live[still]] *= 0.99
            live = live[still]
        while rows.numel() > 0:
            live = rows[(hi[rows] - lo[rows]) > tol[rows]]
            sel = oracle.tracker.afford(idx[live])
            live = live[torch.isin(idx[live], sel)]
            if live.numel() == 0:
                break
            mid = (hi[live] + lo[live]) / 2
            still = oracle(self._point(x[live], theta[live], mid, bounds), idx[live])
            hi[live] = torch.where(still, mid, hi[live])
            lo[live] = torch.where(still, lo[live], mid)
        out[rows] = hi[rows]
        return out

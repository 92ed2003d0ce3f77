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
from bastion.attacks.evasion._blackbox import QueryTracker, goal_met
from bastion.attacks.evasion._decision import Oracle
from bastion.attacks.evasion._signopt_start import DirectionSearch, bisect, point, view
from bastion.core.threat_model import Access, Norm
from bastion.core.validation import check_bool, check_int, check_number
from bastion.models.base import Model

__all__ = ["L2SignOPTAttack"]

_CHUNK = 1 << 22  # floats per block of sign probes held at once
_LINE_TRIES = 15  # step-size trials per phase of the line search, as in the authors' code
_SHRINK_TRIES = 200  # 0.99-shrinks of the local search before it falls back to bisection
# Tolerances of the initial search for g, in units of the input range, as in the authors' code
# (untargeted 1e-3, targeted 1e-5, on inputs in [0, 1]).
_INIT_TOL = 1e-3
_INIT_TOL_TARGETED = 1e-5


def _unit(t: torch.Tensor) -> torch.Tensor:
    return t / view(t.flatten(1).norm(dim=1).clamp_min(1e-12), t)


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
    direction is scored by the authors' local search: shrunk by factors of 0.99 from the best
    distance so far until it stops being adversarial, then bisected to ``beta / 500``; a
    candidate not adversarial at the best distance is rejected after that one query (the
    authors' search would go on to grow the distance, which can only end in the same
    rejection). Defaults are the paper's (``k`` 200, ``alpha`` 0.2, ``beta`` 0.001).

    The start is the best of many directions, as in the OPT attack (Cheng et al., ICLR 2019)
    that Sign-OPT starts from and in the authors' code: ``init_directions`` Gaussian
    directions (standard normal, scaled by the width of the input range) untargeted; for a
    targeted attack, up to ``init_directions`` batch samples that the model puts in the
    target class, in random order, taken as directions ``x_i - x`` (the authors start from
    target-class training examples). Each direction is probed with one query at the smaller
    of its own length and the best ``g`` so far; if adversarial there, ``g`` along it is
    bisected from 0 to 1e-3 (targeted 1e-5) of the input range, and the smallest ``g`` is
    kept. The authors' code probes each direction at its own length first, and one that is
    adversarial there but longer than the best ``g`` again at the best ``g``; the single
    probe here rejects what that second probe rejects, costs one query instead of two, and
    also searches a direction adversarial at the best ``g`` but not at its own length. Not
    in the reference, as fallbacks: a targeted sample without a target-class batch sample
    (or whose candidates all failed) tries Gaussian directions, and an untargeted one
    without a start the batch samples of other predicted classes; a sample still without a
    start is not attacked. The start spends the same per-sample budget as the rest and
    stops early, with the best direction so far, when that budget runs out. One query per
    sample classifies the clean batch first; a sample that already meets the goal is left
    as it is. Every probe is clipped to the input bounds.

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
        init_directions: int = 100,
        stop_at_budget: bool = True,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(epsilon=epsilon, batch_size=batch_size, seed=seed)
        self.max_queries = check_int("max_queries", max_queries, low=1)
        self.k = check_int("k", k, low=1)
        self.alpha = check_number("alpha", alpha, low=0.0, low_open=True)
        self.beta = check_number("beta", beta, low=0.0, low_open=True)
        self.init_directions = check_int("init_directions", init_directions, low=1)
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
        theta, g, work = self._start(x, y, target, oracle, generator, model.bounds)
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
        best = x.clone()
        done = torch.isfinite(g)
        best[done] = point(x[done], theta[done], g[done], model.bounds)
        return best

    def _start(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        oracle: Oracle,
        generator: torch.Generator,
        bounds: tuple[float, float],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The initial unit directions, their ``g`` (inf where none was found), and the
        samples to attack."""
        n, dev = x.shape[0], x.device
        tol = (_INIT_TOL if target is None else _INIT_TOL_TARGETED) * (bounds[1] - bounds[0])
        search = DirectionSearch(x, oracle, generator, bounds, self.init_directions, tol)
        asked = oracle.tracker.afford(torch.arange(n, device=dev))
        if asked.numel() == 0:
            return search.theta, search.g, asked
        pred = torch.full((n,), -1, dtype=torch.long, device=dev)
        pred[asked] = oracle.tracker.labels(x[asked], asked)
        todo = asked[~goal_met(pred[asked], asked, y, target)]
        if target is not None:
            search.pool(todo, pred[None, :] == target[:, None])
            search.noise(todo[search.g[todo].isinf()])
        else:
            search.noise(todo)
            other = (pred[None, :] != y[:, None]) & (pred[None, :] >= 0)
            search.pool(todo[search.g[todo].isinf()], other)
        return search.theta, search.g, todo[search.g[todo].isfinite()]

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
        return total / view(size_dev.to(x.dtype), x)

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
            cand = _unit(theta[rows] - view(alpha[rows], x) * grad[rows])
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
            cand = _unit(theta[rows] - view(alpha[rows], x) * grad[rows])
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
        hit = oracle(point(x[rows], theta[rows], ref[rows], bounds), idx[rows])
        rows = rows[hit]
        hi = ref.clone()
        lo = ref * 0.99
        live = rows
        for _ in range(_SHRINK_TRIES):
            sel = oracle.tracker.afford(idx[live])
            live = live[torch.isin(idx[live], sel)]
            if live.numel() == 0:
                break
            still = oracle(point(x[live], theta[live], lo[live], bounds), idx[live])
            hi[live[still]] = lo[live[still]]
            lo[live[still]] *= 0.99
            live = live[still]
        out[rows] = bisect(
            x[rows], theta[rows], lo[rows], hi[rows], tol[rows], idx[rows], oracle, bounds
        )
        return out

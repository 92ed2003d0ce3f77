"""Boundary Attack: a decision-based random walk along the boundary towards the input (l2).

Brendel, Rauber, Bethge, "Decision-Based Adversarial Attacks: Reliable Attacks Against
Black-Box Machine Learning Models", ICLR 2018.
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

__all__ = ["L2BoundaryAttack"]


def _view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def _l2(t: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = t.flatten(1).norm(dim=1)
    return out


class L2BoundaryAttack(Attack):
    """Boundary Attack: from an adversarial start, random steps that stay adversarial while
    the l2 distance to the input shrinks; labels only.

    Brendel, Rauber, Bethge, ICLR 2018 (Algorithm 1). Each step draws a Gaussian direction of
    length ``spherical_step`` times the current distance, projects it onto the sphere around
    the input (an orthogonal step that keeps the distance), then moves ``source_step`` of
    the distance towards the input; the candidate is kept if it is still adversarial. Both
    steps adapt as in the paper, over windows of ``window`` steps: the orthogonal step grows
    by ``step_adaptation`` when more than half of the orthogonal candidates stay adversarial
    and shrinks below 20 %; the step towards the input grows above 25 % and shrinks below
    10 % success. Each step costs two queries (the orthogonal and the full candidate).
    Defaults are those of the authors' Foolbox implementation (both steps 0.01, adaptation
    1.5). Starts from uniform noise (a target-class batch sample when targeted), blended
    towards the input by binary search, as that implementation does.

    A minimal-perturbation attack: it runs until each sample has used ``max_queries``
    queries, and the base class projects its result onto the epsilon-ball (set a large
    epsilon to read off the minimal perturbations). ``stop_at_budget`` as for the Square
    Attack.
    """

    id = "boundary-l2"
    title = "Boundary Attack"
    norm = Norm.L2
    requires: ClassVar[Access] = Access.LABELS
    leaf: ClassVar[str] = "evasion.decision-based"

    def __init__(
        self,
        *,
        epsilon: float,
        max_queries: int = 5000,
        spherical_step: float = 0.01,
        source_step: float = 0.01,
        step_adaptation: float = 1.5,
        window: int = 30,
        init_tries: int = 100,
        stop_at_budget: bool = True,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(epsilon=epsilon, batch_size=batch_size, seed=seed)
        self.max_queries = check_int("max_queries", max_queries, low=1)
        self.spherical_step = check_number("spherical_step", spherical_step, low=0.0, low_open=True)
        self.source_step = check_number(
            "source_step", source_step, low=0.0, high=1.0, low_open=True
        )
        self.step_adaptation = check_number(
            "step_adaptation", step_adaptation, low=1.0, low_open=True
        )
        self.window = check_int("window", window, low=1)
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
        bounds = model.bounds
        tracker = QueryTracker(model, n, self.max_queries, stop_at_budget=self.stop_at_budget)
        oracle = Oracle(tracker, y, target, x=x, constraints=self._constraints)
        best, work = starting_points(x, y, target, oracle, self.init_tries, generator, bounds)
        if work.numel() == 0:
            return best
        ones = torch.ones(work.numel(), device=dev)
        best[work] = boundary_search(
            x[work], best[work], work, ones, ones * 1e-3, oracle, linf=False
        )
        sph = torch.full((n,), self.spherical_step, device=dev)
        src = torch.full((n,), self.source_step, device=dev)
        sph_hits = torch.zeros(n, device=dev)
        src_hits = torch.zeros(n, device=dev)
        adapt = self.step_adaptation
        for step in range(1, 1 << 30):
            work = tracker.afford(work, 2)
            if work.numel() == 0:
                break
            o, cur = x[work], best[work]
            dist = _l2(cur - o)
            eta = torch.randn(cur.shape, generator=generator, device=dev)
            eta = eta / _view(_l2(eta).clamp_min(1e-12), eta) * _view(sph[work] * dist, eta)
            moved = cur + eta - o
            spherical = (o + moved * _view(dist / _l2(moved).clamp_min(1e-12), o)).clamp(*bounds)
            cand = (o + (spherical - o) * _view(1 - src[work], o)).clamp(*bounds)
            owners = torch.cat([work, work])
            hits = oracle.many(torch.cat([spherical, cand]), owners, work, 2)
            sph_ok, cand_ok = hits[: work.numel()], hits[work.numel() :]
            take = cand_ok & (_l2(cand - o) < dist)
            best[work[take]] = cand[take]
            sph_hits[work] += sph_ok.float()
            src_hits[work] += cand_ok.float()
            if step % self.window == 0:
                rate = sph_hits[work] / self.window
                scale = torch.where(rate > 0.5, adapt, torch.where(rate < 0.2, 1 / adapt, 1.0))
                sph[work] *= scale
                src[work] *= scale
                rate = src_hits[work] / self.window
                src[work] *= torch.where(
                    rate > 0.25, adapt, torch.where(rate < 0.1, 1 / adapt, 1.0)
                )
                src[work] = src[work].clamp(max=0.5)
                sph_hits[work] = 0
                src_hits[work] = 0
        return best

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

_CHUNK = 1 << 22  # floats per block of candidates held at once


class _Window:
    """Per-sample sliding windows of the last ``length`` outcomes (a deque per sample)."""

    def __init__(self, n: int, length: int, device: torch.device) -> None:
        self.length = length
        self.hits = torch.zeros(n, length, device=device)
        self.next = torch.zeros(n, dtype=torch.int64, device=device)
        self.fill = torch.zeros(n, dtype=torch.int64, device=device)

    def push(self, rows: torch.Tensor, outcome: torch.Tensor) -> None:
        """Append each row's outcomes ``outcome[r, :]`` (only the newest ``length`` fit)."""
        outcome = outcome[:, -self.length :]
        count = outcome.shape[1]
        slot = (self.next[rows, None] + torch.arange(count, device=rows.device)) % self.length
        self.hits[rows[:, None], slot] = outcome.float()
        self.next[rows] += count
        self.fill[rows] = (self.fill[rows] + count).clamp(max=self.length)

    def full_rate(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Whether each row's window is full, and its success rate."""
        return self.fill[rows] == self.length, self.hits[rows].mean(dim=1)

    def clear(self, rows: torch.Tensor) -> None:
        """Empty the windows of ``rows``."""
        self.hits[rows] = 0
        self.fill[rows] = 0


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = t.flatten(2).norm(dim=2)
    return out


class L2BoundaryAttack(Attack):
    """Boundary Attack: from an adversarial start, random steps that stay adversarial while
    the l2 distance to the input shrinks; labels only.

    Brendel, Rauber, Bethge, ICLR 2018 (Algorithm 1). Each step draws ``directions``
    Gaussian directions per sample, removes their component along the line to the input,
    scales them to ``spherical_step`` times the current distance ``d`` and projects each
    result back onto the sphere of radius ``d`` around the input (the orthogonal step, as in
    the authors' reference implementation, Foolbox 1.x), and queries these points in one
    batch. Then the step towards the input: from every orthogonal point that stayed
    adversarial, a candidate at distance ``(1 - source_step) d`` (the length corrected for
    what clipping to the bounds changed, as in the reference), all queried in one batch; the
    closest adversarial candidate replaces the current point if it is closer than ``d``.
    Without one, the step towards the input is tried again from the same orthogonal points
    with the adapted (smaller) ``source_step``, up to ``trials`` times in all.

    Step sizes adapt on success rates as in the paper. Once a sample's window of its last
    ``window`` orthogonal outcomes is full, a success rate above 50 % multiplies both steps
    by ``step_adaptation`` and one below 20 % divides both (the reference's rule), and a
    window that changed the steps is emptied. After each try of the step towards the input,
    more than 50 % adversarial candidates (of those queried in that try) multiplies
    ``source_step`` by ``step_adaptation`` and fewer than 20 % divides it. A try is made
    only while the sample can pay for its candidates. Defaults: both steps 0.01,
    adaptation 1.5, thresholds 50 % / 20 % (the reference's); 20 directions a step, a
    window of 20 (so the orthogonal rate is re-measured after every step) and up to 25
    tries of the step towards the input (the Adversarial Robustness Toolbox's
    ``sample_size`` and ``num_trial``, which adapts after every batch the same way). Each
    orthogonal point and each candidate costs one query. Starts from uniform noise (a
    target-class batch sample when targeted), blended towards the input by binary search.

    A minimal-perturbation attack: it runs until a sample can no longer pay for its
    orthogonal points (at most ``max_queries`` queries each), and the base class projects
    its result onto the epsilon-ball (set a large epsilon to read off the minimal
    perturbations). ``stop_at_budget`` as for the Square Attack.
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
        directions: int = 20,
        trials: int = 25,
        spherical_step: float = 0.01,
        source_step: float = 0.01,
        step_adaptation: float = 1.5,
        window: int = 20,
        init_tries: int = 100,
        stop_at_budget: bool = True,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(epsilon=epsilon, batch_size=batch_size, seed=seed)
        self.max_queries = check_int("max_queries", max_queries, low=1)
        self.directions = check_int("directions", directions, low=1)
        self.trials = check_int("trials", trials, low=1)
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
        steps = _Steps(
            torch.full((n,), self.spherical_step, device=dev),
            torch.full((n,), self.source_step, device=dev),
            _Window(n, self.window, dev),
        )
        group = max(1, _CHUNK // (self.directions * x[0].numel()))
        while True:
            work = tracker.afford(work, self.directions)
            if work.numel() == 0:
                break
            for start in range(0, work.numel(), group):
                idx = work[start : start + group]
                if start:  # the groups before spent queries on their tries: check again
                    idx = tracker.afford(idx, self.directions)
                if idx.numel():
                    self._step(x, best, idx, steps, generator, bounds, oracle)
        return best

    def _step(
        self,
        x: torch.Tensor,
        best: torch.Tensor,
        idx: torch.Tensor,
        steps: _Steps,
        generator: torch.Generator,
        bounds: tuple[float, float],
        oracle: Oracle,
    ) -> None:
        """One step for the samples ``idx`` (each can pay for its orthogonal points)."""
        m, k = idx.numel(), self.directions
        ones = (1,) * (x.dim() - 1)
        o = x[idx].unsqueeze(1)
        to_input = o - best[idx].unsqueeze(1)  # (m, 1, ...)
        dist = _flat_norm(to_input)  # (m, 1)
        unit = to_input / dist.clamp_min(1e-12).view(m, 1, *ones)
        eta = torch.randn((m, k, *x.shape[1:]), generator=generator, device=x.device)
        eta = eta - (eta * unit).flatten(2).sum(dim=2).view(m, k, *ones) * unit
        sph = steps.spherical[idx]
        eta = eta * (sph[:, None] * dist / _flat_norm(eta).clamp_min(1e-12)).view(m, k, *ones)
        shrink = (sph**2 + 1).rsqrt().view(m, 1, *ones)
        spherical = (o + (eta - to_input) * shrink).clamp(*bounds)
        owners = idx[:, None].expand(m, k)
        ok = oracle.many(spherical.flatten(0, 1), owners.flatten(), idx, k).view(m, k)
        steps.orthogonal(idx, ok, self.step_adaptation)

        back = o - spherical
        back_norm = _flat_norm(back).clamp_min(1e-12)
        live = torch.nonzero(ok.any(dim=1)).squeeze(1)
        for _ in range(self.trials):
            if live.numel() == 0:
                break
            paid = oracle.tracker.afford(idx[live], ok[live].sum(dim=1))
            live = live[torch.isin(idx[live], paid)]
            if live.numel() == 0:
                break
            rows, asked = idx[live], ok[live]
            src = steps.source[rows, None]
            length = (src * dist[live] + back_norm[live] - dist[live]).clamp_min(0)
            length = (length / back_norm[live]).view(-1, k, *ones)
            cand = (spherical[live] + length * back[live]).clamp(*bounds)
            hit = torch.zeros_like(asked)
            hit[asked] = oracle.many(cand[asked], owners[live][asked], rows, asked.sum(dim=1))
            steps.towards(rows, hit.sum(dim=1) / asked.sum(dim=1), self.step_adaptation)
            gap = torch.where(hit, _flat_norm(o[live] - cand), torch.inf)
            closest, pick = gap.min(dim=1)
            take = closest < dist[live].squeeze(1)
            at = torch.arange(live.numel(), device=x.device)[take]
            best[rows[take]] = cand[at, pick[take]]
            live = live[~hit.any(dim=1)]


class _Steps:
    """Per-sample step sizes and the success-rate rules that adapt them."""

    def __init__(self, spherical: torch.Tensor, source: torch.Tensor, window: _Window) -> None:
        self.spherical = spherical
        self.source = source
        self.window = window

    def orthogonal(self, rows: torch.Tensor, ok: torch.Tensor, adapt: float) -> None:
        """Record whether each orthogonal point stayed adversarial; on a full window, grow
        both steps above 50 % success and shrink them below 20 %, then empty the window."""
        self.window.push(rows, ok)
        full, rate = self.window.full_rate(rows)
        up, down = full & (rate > 0.5), full & (rate < 0.2)
        scale = _scale(up, down, adapt)
        self.spherical[rows] *= scale
        self.source[rows] *= scale
        self.window.clear(rows[up | down])

    def towards(self, rows: torch.Tensor, rate: torch.Tensor, adapt: float) -> None:
        """Grow the step towards the input above 50 % success of a try, shrink it below 20 %."""
        self.source[rows] *= _scale(rate > 0.5, rate < 0.2, adapt)


def _scale(up: torch.Tensor, down: torch.Tensor, adapt: float) -> torch.Tensor:
    """``adapt`` where ``up``, ``1 / adapt`` where ``down``, else 1: the step-size update."""
    return torch.where(up, adapt, torch.where(down, 1 / adapt, 1.0))

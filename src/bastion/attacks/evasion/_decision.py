"""Shared machinery of the decision-based (label-only) attacks: the label oracle, starting
points, and the binary search towards the decision boundary."""

from __future__ import annotations

import torch

from bastion.attacks.constraints import ActiveConstraints
from bastion.attacks.evasion._blackbox import QueryTracker, adversarial

__all__ = ["Oracle", "between", "boundary_search", "starting_points"]


class Oracle:
    """Label queries, charged per sample, that say whether each point meets the goal.

    With ``constraints`` (the attack call's tabular constraints) and the clean batch ``x``,
    every point is first moved onto what the constraints allow (immutable features reset to
    the clean sample, per-feature bounds), so the attack learns the decisions of points it may
    really return; the final repair applies the same projection.
    """

    def __init__(
        self,
        tracker: QueryTracker,
        y: torch.Tensor,
        target: torch.Tensor | None,
        *,
        x: torch.Tensor | None = None,
        constraints: ActiveConstraints | None = None,
    ) -> None:
        self.tracker = tracker
        self.y = y
        self.target = target
        self.x = x
        self.constraints = constraints if x is not None else None

    def many(
        self, cand: torch.Tensor, owner: torch.Tensor, idx: torch.Tensor, per: torch.Tensor | int
    ) -> torch.Tensor:
        """Decisions for rows ``cand`` of samples ``owner``; ``per`` queries for each of ``idx``."""
        if self.constraints is not None and self.x is not None:
            cand = self.constraints.project_step(self.x[owner], cand)
        pred = self.tracker.labels(cand, idx, per_sample=per)
        return adversarial(pred, self.y[owner], None if self.target is None else self.target[owner])

    def __call__(self, cand: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """One decision for each sample of ``idx`` at its row of ``cand``."""
        return self.many(cand, idx, idx, 1)


def _borrow(
    x: torch.Tensor,
    lacking: torch.Tensor,
    have: torch.Tensor,
    best: torch.Tensor,
    fits: torch.Tensor,
    generator: torch.Generator,
) -> None:
    """Start each ``lacking`` sample from a random batch sample that ``fits`` it."""
    fits = fits & lacking[:, None]
    pick = (torch.rand(fits.shape, generator=generator, device=x.device) + 1) * fits
    got = fits.any(dim=1)
    src = pick.argmax(dim=1)
    best[got] = x[src[got]]
    have |= got


def starting_points(
    x: torch.Tensor,
    y: torch.Tensor,
    target: torch.Tensor | None,
    oracle: Oracle,
    tries: int,
    generator: torch.Generator,
    bounds: tuple[float, float],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adversarial starting points, and the indices of the samples that need attacking.

    One query per sample classifies the clean batch; a sample already misclassified (or in its
    target class) stays as it is. A targeted attack starts from a random batch sample the
    model puts in the target class; otherwise (and as a fallback) up to ``tries`` draws of
    uniform noise, one query each; an untargeted sample still without a start borrows a batch
    sample of another predicted class. Samples without any start are left out.
    """
    n = x.shape[0]
    dev = x.device
    low, high = bounds
    tracker = oracle.tracker
    best = x.clone()
    have = torch.zeros(n, dtype=torch.bool, device=dev)
    asked = tracker.afford(torch.arange(n, device=dev))
    if asked.numel() == 0:
        return best, asked
    pred0 = torch.full((n,), -1, dtype=torch.long, device=dev)
    pred0[asked] = tracker.labels(x[asked], asked)
    need = torch.zeros(n, dtype=torch.bool, device=dev)
    goal = None if target is None else target[asked]
    need[asked] = ~adversarial(pred0[asked], y[asked], goal)
    if target is not None:
        _borrow(x, need & ~have, have, best, target[:, None] == pred0[None, :], generator)
    for _ in range(tries):
        idx = tracker.afford(torch.nonzero(need & ~have).squeeze(1))
        if idx.numel() == 0:
            break
        noise = torch.rand(x[idx].shape, generator=generator, device=dev) * (high - low) + low
        hit = oracle(noise, idx)
        best[idx[hit]] = noise[hit]
        have[idx[hit]] = True
    if target is None:
        other = (pred0[None, :] != y[:, None]) & (pred0[None, :] >= 0)
        _borrow(x, need & ~have, have, best, other, generator)
    return best, torch.nonzero(need & have).squeeze(1)


def between(x: torch.Tensor, adv: torch.Tensor, a: torch.Tensor, linf: bool) -> torch.Tensor:
    """The point at position ``a`` from ``x`` towards ``adv``: the blend ``x + a (adv - x)``
    (l2), or ``adv`` clipped to the linf box of radius ``a`` around ``x``."""
    a = a.view(-1, *([1] * (x.dim() - 1)))
    if linf:
        return torch.minimum(torch.maximum(adv, x - a), x + a)
    return x + a * (adv - x)


def boundary_search(
    x: torch.Tensor,
    adv: torch.Tensor,
    idx: torch.Tensor,
    high: torch.Tensor,
    tol: torch.Tensor,
    oracle: Oracle,
    *,
    linf: bool,
) -> torch.Tensor:
    """Binary search from ``x`` towards the adversarial ``adv`` (positions ``0..high``, see
    `between`) down to ``tol`` per sample, or until its queries run out; returns the
    adversarial end of each interval."""
    hi = high.clone()
    lo = torch.zeros_like(hi)
    pos = torch.arange(x.shape[0], device=x.device)
    while True:
        open_ = pos[(hi - lo) > tol]
        sel = oracle.tracker.afford(idx[open_])
        if sel.numel() == 0:
            break
        rows = open_[torch.isin(idx[open_], sel)]
        mid = (hi[rows] + lo[rows]) / 2
        hit = oracle(between(x[rows], adv[rows], mid, linf), sel)
        hi[rows] = torch.where(hit, mid, hi[rows])
        lo[rows] = torch.where(hit, lo[rows], mid)
    return between(x, adv, hi, linf)

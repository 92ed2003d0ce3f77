"""Sign-OPT's start: the search for the best initial direction of each sample, and the
bisection along a ray that it shares with the attack's local search (`signopt`)."""

from __future__ import annotations

import torch

from bastion.attacks.evasion._decision import Oracle

__all__ = ["DirectionSearch", "bisect", "point", "view"]


def view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``v`` (one value per sample) shaped to broadcast against ``like``."""
    return v.view(-1, *([1] * (like.dim() - 1)))


def point(
    x: torch.Tensor, theta: torch.Tensor, lam: torch.Tensor, bounds: tuple[float, float]
) -> torch.Tensor:
    """The point ``x + lam * theta`` of each sample's ray, clipped to ``bounds``."""
    return (x + view(lam, x) * theta).clamp(*bounds)


def bisect(
    x: torch.Tensor,
    theta: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    tol: torch.Tensor | float,
    idx: torch.Tensor,
    oracle: Oracle,
    bounds: tuple[float, float],
) -> torch.Tensor:
    """Bisect each ray ``x + lam * theta`` between ``lo`` (not adversarial) and ``hi``
    (adversarial) until ``hi - lo <= tol`` or the sample's queries run out; returns ``hi``."""
    lo, hi = lo.clone(), hi.clone()
    rows = torch.arange(x.shape[0], device=x.device)
    while True:
        live = rows[(hi - lo) > tol]
        live = live[torch.isin(idx[live], oracle.tracker.afford(idx[live]))]
        if live.numel() == 0:
            return hi
        mid = (hi[live] + lo[live]) / 2
        still = oracle(point(x[live], theta[live], mid, bounds), idx[live])
        hi[live] = torch.where(still, mid, hi[live])
        lo[live] = torch.where(still, lo[live], mid)


class DirectionSearch:
    """The search for the initial directions of one batch (see `L2SignOPTAttack`): the best
    unit direction ``theta`` of each sample so far and its ``g`` (inf while none is found)."""

    def __init__(
        self,
        x: torch.Tensor,
        oracle: Oracle,
        generator: torch.Generator,
        bounds: tuple[float, float],
        directions: int,
        tol: float,
    ) -> None:
        self.x, self.oracle, self.generator, self.bounds = x, oracle, generator, bounds
        self.directions, self.tol = directions, tol
        self.theta = torch.zeros_like(x)
        self.g = torch.full((x.shape[0],), float("inf"), device=x.device)

    def noise(self, rows: torch.Tensor) -> None:
        """Offer the samples ``rows`` Gaussian directions, ``directions`` each."""
        low, high = self.bounds
        for _ in range(self.directions):
            if rows.numel() == 0:
                break
            shape = (rows.numel(), *self.x.shape[1:])
            d = torch.randn(shape, generator=self.generator, device=self.x.device)
            rows = self.offer(rows, d * (high - low))

    def pool(self, rows: torch.Tensor, fits: torch.Tensor) -> None:
        """Offer each sample of ``rows`` the directions to up to ``directions`` batch samples
        ``j`` with ``fits[row, j]``, in random order."""
        if rows.numel() == 0:
            return
        fits = fits[rows]
        noise = torch.rand(fits.shape, generator=self.generator, device=self.x.device)
        order = (noise + fits).argsort(dim=1, descending=True)
        left = fits.sum(dim=1)
        for j in range(min(self.directions, int(left.max()))):
            have = left > j
            live = rows[have]
            paid = self.offer(live, self.x[order[have, j]] - self.x[live])
            left[have & ~torch.isin(rows, paid)] = 0  # out of queries for good

    def offer(self, rows: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """Offer each sample of ``rows`` (batch indices) its row of ``d``: one query at
        ``min(|d|, g)``; if adversarial, bisection from 0 to ``tol``, kept where the result
        is below ``g``. Returns the rows that could pay for the probe."""
        x, bounds = self.x, self.bounds
        length = d.flatten(1).norm(dim=1).clamp_min(1e-12)
        paid = self.oracle.tracker.afford(rows)
        keep = torch.isin(rows, paid)
        if not bool(keep.any()):
            return paid
        rows, unit = rows[keep], d[keep] / view(length[keep], d)
        lam = torch.minimum(length[keep], self.g[rows])
        hit = self.oracle(point(x[rows], unit, lam, bounds), rows)
        rows, unit, lam = rows[hit], unit[hit], lam[hit]
        zero = torch.zeros_like(lam)
        found = bisect(x[rows], unit, zero, lam, self.tol, rows, self.oracle, bounds)
        better = found < self.g[rows]
        self.theta[rows[better]], self.g[rows[better]] = unit[better], found[better]
        return paid

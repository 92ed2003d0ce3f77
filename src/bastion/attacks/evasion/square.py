"""Square Attack: random search with square-shaped updates on the scores (linf and l2).

Andriushchenko, Croce, Flammarion, Hein, "Square Attack: a query-efficient black-box
adversarial attack via random search", ECCV 2020.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import ClassVar

import torch

from bastion.attacks.base import Attack
from bastion.attacks.evasion._blackbox import QueryTracker, image_shape, log_scores, margin
from bastion.core.threat_model import Access, Norm
from bastion.core.validation import check_bool, check_int, check_number
from bastion.models.base import Model

__all__ = ["L2SquareAttack", "LinfSquareAttack"]

# The paper's schedule for p (the fraction of pixels a square covers), halved at these
# iterations of a 10,000-query run and rescaled to other budgets.
_SCHEDULE = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_selection(p_init: float, iteration: int, budget: int) -> float:
    """The square's pixel fraction at ``iteration`` of a ``budget``-query run (the paper's)."""
    scaled = int(iteration / budget * 10000)
    halvings = sum(scaled > t for t in _SCHEDULE)
    return p_init * 0.5**halvings


def _pseudo_gaussian(rows: int, cols: int, device: torch.device) -> torch.Tensor:
    """Concentric rectangles weighted 1/(r+1)^2 around the centre, unit l2 norm."""
    out = torch.zeros(rows, cols, device=device)
    if rows == 0 or cols == 0:
        return out
    r0, c0 = rows // 2, cols // 2
    for k in range(max(r0, c0) + 1):
        top, left = r0 - k, c0 - k
        out[
            max(top, 0) : min(top + 2 * k + 1, rows), max(left, 0) : min(left + 2 * k + 1, cols)
        ] += 1.0 / (k + 1) ** 2
    unit: torch.Tensor = out / out.norm()
    return unit


def meta_pattern(size: int, device: torch.device) -> torch.Tensor:
    """The l2 update pattern: two pseudo-Gaussian halves of opposite sign, unit l2 norm."""
    out = torch.zeros(size, size, device=device)
    half = size // 2
    out[:half] = _pseudo_gaussian(half, size, device)
    out[half:] = -_pseudo_gaussian(size - half, size, device)
    unit: torch.Tensor = out / out.norm()
    return unit


def _window(
    starts_h: torch.Tensor, starts_w: torch.Tensor, size: int, h: int, w: int
) -> torch.Tensor:
    """Per-sample boolean masks ``(m, 1, h, w)`` of a ``size`` square at the given corners."""
    ar_h = torch.arange(h, device=starts_h.device)
    ar_w = torch.arange(w, device=starts_w.device)
    rows = (ar_h >= starts_h[:, None]) & (ar_h < starts_h[:, None] + size)
    cols = (ar_w >= starts_w[:, None]) & (ar_w < starts_w[:, None] + size)
    return (rows[:, None, :, None] & cols[:, None, None, :]).contiguous()


def _corners(
    m: int, size: int, h: int, w: int, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    rh = torch.randint(0, h - size + 1, (m,), generator=generator, device=device)
    rw = torch.randint(0, w - size + 1, (m,), generator=generator, device=device)
    return rh, rw


def _signs(
    shape: tuple[int, ...], generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    return torch.randint(0, 2, shape, generator=generator, device=device).float() * 2 - 1


def _flips(m: int, c: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Per row, -1/+1 factors ``(m, c, 1, 1)`` flipping a uniformly drawn nonempty channel set.

    Drawn as a uniform integer in ``[1, 2^c)`` read bit by bit; beyond 62 channels the extra
    channels flip independently with probability 1/2 (a deviation of order 2^-62).
    """
    bits = min(c, 62)
    code = torch.randint(1, 2**bits, (m, 1), generator=generator, device=device)
    powers = 2 ** torch.arange(bits, device=device)
    flip = (code & powers) != 0
    if c > bits:
        extra = torch.randint(0, 2, (m, c - bits), generator=generator, device=device) == 1
        flip = torch.cat([flip, extra], dim=1)
    return torch.where(flip, -1.0, 1.0).view(m, c, 1, 1)


class _Square(Attack):
    requires: ClassVar[Access] = Access.SCORES
    leaf: ClassVar[str] = "evasion.score-based"
    title: ClassVar[str] = "Square Attack"
    default_p_init: ClassVar[float]

    def __init__(
        self,
        *,
        epsilon: float,
        max_queries: int = 5000,
        p_init: float | None = None,
        stop_at_budget: bool = True,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(epsilon=epsilon, batch_size=batch_size, seed=seed)
        self.max_queries = check_int("max_queries", max_queries, low=1)
        if p_init is None:
            p_init = self.default_p_init
        self.p_init = check_number("p_init", p_init, low=0.0, high=1.0, low_open=True)
        self.stop_at_budget = check_bool("stop_at_budget", stop_at_budget)

    def run(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        c, h, w = image_shape(self.id, x.shape)
        n = x.shape[0]
        xi = x.reshape(n, c, h, w)
        targeted = target is not None
        label = target if target is not None else y
        tracker = QueryTracker(model, n, self.max_queries, stop_at_budget=self.stop_at_budget)

        def evaluate(cand: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits = log_scores(model, tracker.scores(cand.reshape(-1, *x.shape[1:]), idx))
            marg = margin(logits, label[idx], targeted)
            if targeted:  # the paper's targeted loss: cross-entropy of the target
                loss = -torch.log_softmax(logits, dim=1).gather(1, label[idx, None]).squeeze(1)
            else:
                loss = marg
            return marg, loss

        best = self._initial(xi, generator, model.bounds)
        first = tracker.afford(torch.arange(n, device=x.device))
        fresh = torch.ones(n, dtype=torch.bool, device=x.device)
        fresh[first] = False
        best[fresh] = xi[fresh]  # samples the budget could not even start stay clean
        marg = torch.full((n,), float("inf"), device=x.device)
        loss = torch.full((n,), float("inf"), device=x.device)
        if first.numel():
            marg[first], loss[first] = evaluate(best[first], first)

        for it in range(self.max_queries - 1):
            idx = tracker.afford(torch.nonzero((marg > 0) & ~fresh).squeeze(1))
            if idx.numel() == 0:
                break
            p = p_selection(self.p_init, it, self.max_queries)
            cand = self._propose(xi[idx], best[idx], p, generator, model.bounds)
            new_marg, new_loss = evaluate(cand, idx)
            better = new_loss < loss[idx]
            won = idx[better]
            best[won] = cand[better]
            loss[won] = new_loss[better]
            marg[won] = new_marg[better]
        return best.reshape(x.shape)

    @abstractmethod
    def _initial(
        self, x: torch.Tensor, generator: torch.Generator, bounds: tuple[float, float]
    ) -> torch.Tensor:
        """The starting point of each sample."""

    @abstractmethod
    def _propose(
        self,
        x: torch.Tensor,
        best: torch.Tensor,
        p: float,
        generator: torch.Generator,
        bounds: tuple[float, float],
    ) -> torch.Tensor:
        """One candidate per sample: ``best`` with one square redrawn."""


class LinfSquareAttack(_Square):
    """Square Attack in linf: random +-epsilon squares, kept when the margin loss falls.

    Andriushchenko, Croce, Flammarion, Hein, ECCV 2020 (Algorithm 1 with the linf sampling
    distribution). Starts from vertical stripes of +-epsilon; each iteration redraws one
    square (side ``round(sqrt(p * h * w))``, one random sign per channel) at a random place
    and keeps it if the loss falls: the margin loss untargeted, the target's cross-entropy
    targeted. ``p`` follows the paper's schedule from ``p_init`` (the paper's ImageNet default
    0.05). Each sample stops as soon as it is misclassified (or reaches the target) and
    never uses more than ``max_queries`` queries (the initial query included; default
    5000, the budget of AutoAttack's standard evaluation). With
    ``stop_at_budget`` it stops cleanly, keeping what it found, before the model's query
    budget would be exceeded; otherwise the model raises `QueryBudgetExceeded`.
    """

    id = "square-linf"
    norm = Norm.LINF
    default_p_init = 0.05

    def _initial(
        self, x: torch.Tensor, generator: torch.Generator, bounds: tuple[float, float]
    ) -> torch.Tensor:
        n, c, _, w = x.shape
        stripes = _signs((n, c, 1, w), generator, x.device) * self.epsilon
        return (x + stripes).clamp(*bounds)

    def _propose(
        self,
        x: torch.Tensor,
        best: torch.Tensor,
        p: float,
        generator: torch.Generator,
        bounds: tuple[float, float],
    ) -> torch.Tensor:
        m, c, h, w = x.shape
        size = min(max(round(math.sqrt(p * h * w)), 1), min(h, w) - 1)
        rh, rw = _corners(m, size, h, w, generator, x.device)
        mask = _window(rh, rw, size, h, w)
        delta = best - x
        signs = _signs((m, c, 1, 1), generator, x.device)
        # The paper's implementation redraws the signs of a square that would leave the image
        # unchanged until it does not, so no query is spent on a point already evaluated. For
        # epsilon > 0 at most one sign vector leaves a square unchanged (a channel is
        # unchanged only when its pixels already sit at clip(x + sign * epsilon), which holds
        # for one sign at most), so that rejection loop draws uniformly from the other
        # 2^c - 1 sign vectors: done here in one step by flipping a uniformly drawn nonempty
        # set of channels of the rows that would not change.
        window = mask.expand(m, c, h, w)
        same = (
            ((x + signs * self.epsilon).clamp(*bounds).sub(best).abs().lt(1e-7) | ~window)
            .flatten(1)
            .all(dim=1)
        )
        signs = torch.where(
            same[:, None, None, None], signs * _flips(m, c, generator, x.device), signs
        )
        cand: torch.Tensor = (x + torch.where(mask, signs * self.epsilon, delta)).clamp(*bounds)
        return cand


class L2SquareAttack(_Square):
    """Square Attack in l2: pseudo-Gaussian square updates that keep the l2 norm at epsilon.

    Andriushchenko, Croce, Flammarion, Hein, ECCV 2020 (Algorithm 1 with the l2 sampling
    distribution, Algorithm 3). Starts from a grid of squares of side ``h // 5``, each
    holding the paper's pattern (two halves of concentric rectangles weighted
    ``1/(r+1)^2`` with opposite signs) with a random sign, rescaled to l2 norm epsilon.
    Each iteration moves the mass of a second random square into a first one, adds a
    fresh pattern there, rescales so the total stays at epsilon, and keeps the candidate
    if the loss falls. Default ``p_init`` 0.1 (the paper's ImageNet l2 value). Query
    accounting and stopping as for `LinfSquareAttack`.
    """

    id = "square-l2"
    norm = Norm.L2
    default_p_init = 0.1

    def _initial(
        self, x: torch.Tensor, generator: torch.Generator, bounds: tuple[float, float]
    ) -> torch.Tensor:
        n, c, h, w = x.shape
        size = max(min(h, w) // 5, 1)
        pattern = meta_pattern(size, x.device)
        delta = torch.zeros_like(x)
        for top in range((h - 5 * size) // 2, h, size):
            for left in range((w - 5 * size) // 2, w, size):
                rows, cols = min(size, h - top), min(size, w - left)
                sign = _signs((n, c, 1, 1), generator, x.device)
                delta[:, :, top : top + rows, left : left + cols] += pattern[:rows, :cols] * sign
        size_now = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        start: torch.Tensor = (x + delta / size_now * self.epsilon).clamp(*bounds)
        return start

    def _propose(
        self,
        x: torch.Tensor,
        best: torch.Tensor,
        p: float,
        generator: torch.Generator,
        bounds: tuple[float, float],
    ) -> torch.Tensor:
        m, c, h, w = x.shape
        size = max(round(math.sqrt(p * h * w)), 3)
        size += 1 - size % 2  # odd, as in the paper
        size = min(size, h, w)
        r1, c1 = _corners(m, size, h, w, generator, x.device)
        r2, c2 = _corners(m, size, h, w, generator, x.device)
        mask1 = _window(r1, c1, size, h, w)
        mask2 = _window(r2, c2, size, h, w) | mask1
        delta = best - x

        def spatial(t: torch.Tensor) -> torch.Tensor:
            return t.pow(2).sum(dim=(2, 3), keepdim=True).sqrt()

        norm_window = spatial(delta * mask1)
        norm_image = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        norm_both = spatial(delta * mask2)

        pattern = meta_pattern(size, x.device)
        flip = torch.rand(m, generator=generator, device=x.device) > 0.5
        patterns = torch.where(flip[:, None, None], pattern.t(), pattern)[:, None]
        fresh = patterns * _signs((m, c, 1, 1), generator, x.device)
        b = torch.arange(m, device=x.device).view(-1, 1, 1, 1)
        ch = torch.arange(c, device=x.device).view(1, -1, 1, 1)
        offs = torch.arange(size, device=x.device)
        rows = (r1[:, None] + offs).view(m, 1, size, 1)
        cols = (c1[:, None] + offs).view(m, 1, 1, size)
        update = fresh + delta[b, ch, rows, cols] / (norm_window + 1e-10)
        room = ((self.epsilon**2 - norm_image**2).clamp_min(0.0) / c + norm_both**2).sqrt()
        update = update / spatial(update).clamp_min(1e-12) * room
        delta = delta.masked_fill(mask2, 0.0)
        delta[b, ch, rows, cols] = update
        total = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        cand: torch.Tensor = (x + delta / total * self.epsilon).clamp(*bounds)
        return cand

"""Shared machinery of the query-based attacks: per-sample query accounting and score losses.

Every query goes through the model (``labels`` or ``scores``), so the shared counter sees it.
`QueryTracker` adds what the papers' budgets need on top: a per-sample cap (``max_queries``)
and, when the model's counter has a budget, a clean stop before that budget is exceeded, so an
attack returns the best inputs found so far instead of losing them to `QueryBudgetExceeded`.
"""

from __future__ import annotations

import torch

from bastion.attacks.base import watch_budget
from bastion.core.errors import ValidationError
from bastion.models.base import Model

__all__ = ["QueryTracker", "adversarial", "goal_met", "log_scores", "margin", "image_shape"]

_TINY = 1e-30


class QueryTracker:
    """Per-sample query counts for one batch, capped per sample and by the model's budget.

    The counts (``used``, ``refused``) live on the CPU whatever the model's device; ``idx``
    may be on either, and `afford` returns the affordable part of ``idx`` on its own device.

    Args:
        model: the model queried; its counter is charged by every query.
        n: the batch size.
        max_queries: the most queries any one sample may use.
        stop_at_budget: when True, a query the model's remaining budget cannot cover is not
            made and `exhausted` turns True; when False the model raises `QueryBudgetExceeded`.
    """

    def __init__(self, model: Model, n: int, max_queries: int, *, stop_at_budget: bool) -> None:
        self.model = model
        self.max_queries = max_queries
        self.stop_at_budget = stop_at_budget
        self.used = torch.zeros(n, dtype=torch.int64, device="cpu")
        self.refused = torch.zeros(n, dtype=torch.bool, device="cpu")
        self.exhausted = False
        watch_budget(self)

    def left(self, idx: torch.Tensor) -> torch.Tensor:
        """Queries each sample in ``idx`` may still make under its own cap."""
        return self.max_queries - self.used[idx.cpu()]

    def afford(self, idx: torch.Tensor, cost: torch.Tensor | int = 1) -> torch.Tensor:
        """The samples of ``idx`` (in order) that can pay ``cost`` queries each right now.

        A sample over its own cap is dropped; when the model's budget cannot pay for all the
        rest, only a prefix is kept and `exhausted` turns True (only with ``stop_at_budget``).
        """
        if not isinstance(cost, int):
            cost = cost.cpu()
        keep = self.left(idx) >= cost
        remaining = self.model.counter.remaining
        if self.stop_at_budget and remaining is not None and not self.exhausted:
            if isinstance(cost, int):
                cost = torch.full((idx.numel(),), cost, dtype=torch.int64, device="cpu")
            spent = torch.cumsum(torch.where(keep, cost, 0), dim=0)
            within = spent <= remaining
            if bool((keep & ~within).any()):
                self.exhausted = True
            keep &= within
        elif self.exhausted:
            keep[:] = False
        self.refused[idx.cpu()[~keep]] = True
        return idx[keep.to(idx.device)]

    def stopped_by_budget(self) -> torch.Tensor:
        """Per sample: was a query refused it, was its cap spent, or the model's budget?"""
        return self.refused | (self.used >= self.max_queries) | self.exhausted

    def charge(self, idx: torch.Tensor, count: torch.Tensor | int = 1) -> None:
        """Record ``count`` queries for each sample of ``idx`` (the model charged them)."""
        self.used.index_add_(0, idx.cpu(), torch.as_tensor(count, device="cpu").expand(idx.numel()))

    def scores(
        self, x: torch.Tensor, idx: torch.Tensor, per_sample: torch.Tensor | int = 1
    ) -> torch.Tensor:
        """Scores of ``x`` (``per_sample`` rows for each sample of ``idx``), on ``x``'s device."""
        out = self.model.scores(x).to(x.device)
        self.charge(idx, per_sample)
        return out

    def labels(
        self, x: torch.Tensor, idx: torch.Tensor, per_sample: torch.Tensor | int = 1
    ) -> torch.Tensor:
        """Labels of ``x`` (``per_sample`` rows for each sample of ``idx``), on ``x``'s device."""
        out = self.model.labels(x).to(x.device)
        self.charge(idx, per_sample)
        return out


def log_scores(model: Model, scores: torch.Tensor) -> torch.Tensor:
    """Scores as logits up to a per-sample constant: the log of probabilities, raw otherwise.

    For a model that returns softmax probabilities, ``log p_i - log p_j`` equals the logit
    difference, so margins computed on this are the papers' logit margins.
    """
    if getattr(model, "scores_are_probabilities", False):
        return scores.clamp_min(_TINY).log()
    return scores


def margin(logits: torch.Tensor, label: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Per-sample margin, negative exactly when the attack has succeeded.

    Untargeted (``label`` = true class): ``z_y - max_{k != y} z_k``. Targeted (``label`` =
    target): ``max_{k != t} z_k - z_t``.
    """
    own = logits.gather(1, label[:, None]).squeeze(1)
    others = logits.scatter(1, label[:, None], float("-inf")).amax(dim=1)
    return others - own if targeted else own - others


def adversarial(pred: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """Whether each prediction meets the attack's goal (misclassified, or the target)."""
    return pred == target if target is not None else pred != y


def goal_met(
    pred: torch.Tensor, idx: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
) -> torch.Tensor:
    """`adversarial` for the predictions ``pred`` of the batch samples ``idx``."""
    return adversarial(pred, y[idx], None if target is None else target[idx])


def image_shape(attack: str, shape: torch.Size) -> tuple[int, int, int]:
    """The ``(channels, height, width)`` an image attack works on; refuses other inputs."""
    dims = tuple(shape[1:])
    if len(dims) == 2:
        dims = (1, *dims)
    if len(dims) != 3 or dims[1] < 2 or dims[2] < 2:
        raise ValidationError(
            f"Expected {attack} inputs to be images shaped (channels, height, width) with height "
            f"and width >= 2, but got samples of shape {tuple(shape[1:])}; use an attack that "
            "does not assume an image layout, such as nes-linf or hsj-l2"
        )
    return (int(dims[0]), int(dims[1]), int(dims[2]))

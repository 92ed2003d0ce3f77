"""Query budgets seen by the attack call that is running: trackers register, the call reads.

`Attack.__call__` (bastion.attacks.base) reads every tracker registered while its ``run``
handled a batch, and sets `AttackResult.budget_exhausted` from them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

import torch

__all__ = ["BudgetWatched", "stopped_samples", "watch_budget", "watching"]


class BudgetWatched(Protocol):
    """Something that caps an attack's queries and can tell which samples the cap stopped."""

    def stopped_by_budget(self) -> torch.Tensor:
        """Per sample of the batch (bool, on the CPU): did a query budget stop its attack?"""
        ...


# The query trackers created while one batch of one call runs (None outside a call).
_WATCHED: ContextVar[list[BudgetWatched] | None] = ContextVar("bastion_watched", default=None)


def watch_budget(tracker: BudgetWatched) -> None:
    """Register ``tracker`` with the attack call now running, if any.

    `Attack.__call__` reads every registered tracker after its ``run`` returns a batch, and
    sets `AttackResult.budget_exhausted` when a sample the attack did not win was stopped by
    a budget. A query-limited attack gets this for free by using ``QueryTracker``.
    """
    watched = _WATCHED.get()
    if watched is not None:
        watched.append(tracker)


@contextmanager
def watching() -> Iterator[list[BudgetWatched]]:
    """Collect, into the yielded list, the trackers registered inside the block."""
    watched: list[BudgetWatched] = []
    token = _WATCHED.set(watched)
    try:
        yield watched
    finally:
        _WATCHED.reset(token)


def stopped_samples(watched: list[BudgetWatched], n: int) -> torch.Tensor:
    """Per sample of a batch of ``n``: did any registered tracker's budget stop it?"""
    out = torch.zeros(n, dtype=torch.bool, device="cpu")
    for tracker in watched:
        mask = tracker.stopped_by_budget().cpu()
        if mask.shape == out.shape:
            out |= mask
        elif bool(mask.any()):  # a tracker over some other set of rows: cannot map them
            out[:] = True
    return out

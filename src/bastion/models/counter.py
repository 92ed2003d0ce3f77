"""One query counter under every adapter, so black-box budgets are enforced and reported."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from bastion.core.errors import QueryBudgetExceeded
from bastion.core.validation import check_int

__all__ = ["QueryCounter"]


class QueryCounter:
    """Counts model queries (one per input sample per forward pass) against an optional budget.

    `charge` is called before a query is made, so an exceeded budget costs no query. Views
    of a model (`restricted`) share their parent's counter. Thread-safe.
    """

    def __init__(self, budget: int | None = None) -> None:
        self.budget = None if budget is None else check_int("budget", budget, low=0)
        self._count = 0
        self._paused = 0
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        """Queries charged so far."""
        return self._count

    @property
    def remaining(self) -> int | None:
        """Queries left in the budget, or None when there is no budget."""
        return None if self.budget is None else self.budget - self._count

    def charge(self, n: int) -> None:
        """Record ``n`` queries; raise `QueryBudgetExceeded` (recording none) if over budget."""
        n = check_int("n", n, low=0)
        with self._lock:
            if self._paused:
                return
            if self.budget is not None and self._count + n > self.budget:
                raise QueryBudgetExceeded(
                    f"Query budget exceeded: {n} more queries would make {self._count + n}, "
                    f"but the budget is {self.budget} ({self.budget - self._count} left)"
                )
            self._count += n

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Queries made inside this block are not charged (the assessor's own bookkeeping)."""
        with self._lock:
            self._paused += 1
        try:
            yield
        finally:
            with self._lock:
                self._paused -= 1

    def reset(self) -> None:
        """Set the count back to zero; the budget stays."""
        with self._lock:
            self._count = 0

    def __repr__(self) -> str:
        return f"QueryCounter(count={self._count}, budget={self.budget})"

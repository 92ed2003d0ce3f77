"""QueryCounter: counting, budgets that refuse before querying, pausing, thread safety."""

from __future__ import annotations

import threading

import pytest

from bastion.core.errors import QueryBudgetExceeded, ValidationError
from bastion.models import QueryCounter


def test_counts_and_remaining() -> None:
    counter = QueryCounter(budget=10)
    counter.charge(3)
    counter.charge(0)
    assert counter.count == 3
    assert counter.remaining == 7
    assert QueryCounter().remaining is None


def test_exceeding_the_budget_charges_nothing() -> None:
    counter = QueryCounter(budget=5)
    counter.charge(4)
    with pytest.raises(QueryBudgetExceeded, match="budget is 5"):
        counter.charge(2)
    assert counter.count == 4
    counter.charge(1)
    assert counter.remaining == 0


def test_paused_block_is_free_and_nests() -> None:
    counter = QueryCounter(budget=1)
    with counter.paused(), counter.paused():
        counter.charge(100)
    assert counter.count == 0
    counter.charge(1)
    with pytest.raises(QueryBudgetExceeded):
        counter.charge(1)


def test_reset_keeps_the_budget() -> None:
    counter = QueryCounter(budget=3)
    counter.charge(3)
    counter.reset()
    assert (counter.count, counter.budget) == (0, 3)
    assert "budget=3" in repr(counter)


@pytest.mark.parametrize("budget", [-1, 1.5, True, "10"])
def test_invalid_budget(budget: object) -> None:
    with pytest.raises(ValidationError, match="budget"):
        QueryCounter(budget)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [-1, 2.0, True])
def test_invalid_charge(n: object) -> None:
    with pytest.raises(ValidationError):
        QueryCounter().charge(n)  # type: ignore[arg-type]


def test_thread_safe() -> None:
    counter = QueryCounter(budget=4000)

    def work() -> None:
        for _ in range(500):
            counter.charge(1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.count == 4000
    with pytest.raises(QueryBudgetExceeded):
        counter.charge(1)

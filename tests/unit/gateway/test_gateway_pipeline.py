"""The pipeline ranks guard verdicts by `strongest`, whose ranks follow `Action`'s order."""

from __future__ import annotations

import itertools

from bastion.defenses.guards import Action, Verdict, strongest


def test_strongest_picks_the_latest_action_in_declaration_order() -> None:
    order = list(Action)
    assert [a.rank for a in order] == list(range(len(order)))
    for combo in itertools.product(order, repeat=3):
        verdicts = [Verdict(f"g{i}", a) for i, a in enumerate(combo)]
        assert strongest(verdicts) is max(combo, key=order.index)
    assert strongest([]) is Action.ALLOW

"""The pipeline's own shortcuts agree with the guards' definitions."""

from __future__ import annotations

import itertools

from bastion.defenses.guards import Action, Verdict, strongest
from bastion.gateway.pipeline import _strongest


def test_precomputed_ranks_pick_the_same_strongest_action() -> None:
    for combo in itertools.product(list(Action), repeat=3):
        verdicts = [Verdict(f"g{i}", a) for i, a in enumerate(combo)]
        assert _strongest(verdicts) is strongest(verdicts)
    assert _strongest([]) is Action.ALLOW

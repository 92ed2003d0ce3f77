"""bastion's own Square Attack and HopSkipJump, watched query by query by the guards.

Every sample an attack sends to the model is shown to the guards in order, as one query of
one of ``keys`` identities (round-robin). Margin: each guard below must flag the attack
within its first 50 queries on every one of the first 3 test digits, with one key and with
ten (Blacklight's index is shared; the nearest-neighbour guard is per identity, so it is
checked with one key only). Measured on the first 5 digits: Blacklight at query 1 (Square,
counting from 0) and 5-9 (HopSkipJump), with one key and with ten alike; nearest neighbours
at query 5 (Square) and 6-10 (HopSkipJump).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from bastion.attacks import ATTACKS
from bastion.data.zoo import ZooEntry
from bastion.defenses.guards import BlacklightGuard, Guard, NearestNeighbourGuard, Query
from bastion.models import Model, TorchModel, as_batch

pytestmark = pytest.mark.quality


class Watched:
    """A model view that shows every queried sample to guards before answering."""

    def __init__(self, inner: Model, guards: list[Guard], keys: int) -> None:
        self._inner = inner
        self.access = inner.access
        self.num_classes = inner.num_classes
        self.input_shape = inner.input_shape
        self.bounds = inner.bounds
        self.counter = inner.counter
        self.batch_size = inner.batch_size
        self.device = inner.device
        self.guards = guards
        self.keys = keys
        self.sent = 0
        self.first_flag: dict[str, int] = {}

    def _watch(self, x: Any) -> None:
        for sample in as_batch(x, self.input_shape):
            query = Query(identity=f"key-{self.sent % self.keys}", x=sample[None])
            for guard in self.guards:
                if guard.check(query).fired:
                    self.first_flag.setdefault(guard.name, self.sent)
            self.sent += 1

    def labels(self, x: Any) -> torch.Tensor:
        self._watch(x)
        return self._inner.labels(x)

    def scores(self, x: Any) -> torch.Tensor:
        self._watch(x)
        return self._inner.scores(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self._inner.logits(x)

    def restricted(self, access: Any) -> Watched:
        view = Watched(self._inner.restricted(access), self.guards, self.keys)
        view.sent, view.first_flag = self.sent, self.first_flag
        return view


ATTACK_SETUPS = {
    "square-linf": {"epsilon": 0.2, "max_queries": 60},
    "hsj-linf": {"epsilon": 0.2, "max_queries": 60, "init_evals": 20, "max_evals": 40},
}


@pytest.mark.parametrize("attack_id", sorted(ATTACK_SETUPS))
@pytest.mark.parametrize("keys", [1, 10])
def test_real_attacks_are_flagged_within_50_queries(
    digits_entry: ZooEntry, attack_id: str, keys: int
) -> None:
    if attack_id not in ATTACKS:
        pytest.skip(f"{attack_id} is not registered in bastion.attacks.ATTACKS")
    x, y = torch.from_numpy(digits_entry.test.x), torch.from_numpy(digits_entry.test.y)
    calibrating = NearestNeighbourGuard(k=5)
    threshold = calibrating.calibrate(torch.from_numpy(digits_entry.train.x), fpr=0.001)
    for i in range(3):
        model = TorchModel(
            digits_entry.model,
            input_shape=digits_entry.input_shape,
            num_classes=digits_entry.num_classes,
            bounds=digits_entry.bounds,
            mean=digits_entry.mean,
            std=digits_entry.std,
        )
        guards: list[Guard] = [BlacklightGuard.for_input_size(64, salt=b"%d" % i)]
        if keys == 1:
            guards.append(NearestNeighbourGuard(k=5, threshold=threshold))
        access = "scores" if attack_id.startswith("square") else "labels"
        watched = Watched(model.restricted(access), guards, keys)
        attack = ATTACKS[attack_id](**ATTACK_SETUPS[attack_id])  # type: ignore[arg-type]
        attack(watched, x[i : i + 1], y[i : i + 1])
        assert watched.sent >= 2
        for guard in guards:
            assert watched.first_flag.get(guard.name, watched.sent) < 50, (
                guard.name,
                watched.first_flag,
                watched.sent,
            )

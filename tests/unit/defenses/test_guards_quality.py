"""The stateful guards catch query attacks on the digits CNN and leave benign traffic alone.

Margins: every attack stream must be flagged within 50 queries (measured on 10 streams:
Blacklight at query 1-2 with one key or ten, the k-NN guard (k=5) at 8-37); the boundary guard
must catch the bisection within 20 queries (measured 5-8) and at least 8 of the 10 random
searches within 50 (measured 9, at 5-22: one search never nears the boundary); benign
streams must be flagged at most 1% of the time (measured: Blacklight 1/1797 = 0.06%, k-NN
0/450, boundary 0/450).
"""

from __future__ import annotations

import pytest
import torch

from bastion.data.zoo import ZooEntry
from bastion.defenses.guards import (
    BlacklightGuard,
    BoundaryGuard,
    NearestNeighbourGuard,
    Query,
)
from bastion.models import Model, TorchModel

pytestmark = pytest.mark.quality

SEEDS = range(10)


def random_search(
    model: Model, x0: torch.Tensor, label: int, queries: int, *, eps: float = 0.3, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A Square-Attack-like random search: flip a random 3x3 square by +-eps, keep improvements.

    Returns every (query, scores) pair the attack made, in order.
    """
    gen = torch.Generator().manual_seed(seed)

    def margin(scores: torch.Tensor) -> float:
        others = torch.cat([scores[:label], scores[label + 1 :]])
        return float(scores[label] - others.max())

    current, best = x0.clone(), margin(model.scores(x0[None])[0])
    made = []
    for _ in range(queries):
        row, col = torch.randint(0, 6, (2,), generator=gen).tolist()
        sign = 1.0 if torch.rand(1, generator=gen).item() < 0.5 else -1.0
        candidate = current.clone()
        patch = x0[:, row : row + 3, col : col + 3] + sign * eps
        candidate[:, row : row + 3, col : col + 3] = patch.clamp(0, 1)
        scores = model.scores(candidate[None])[0]
        made.append((candidate, scores))
        if margin(scores) < best:
            current, best = candidate, margin(scores)
    return made


def first_flag(guard: object, stream: list[tuple[torch.Tensor, torch.Tensor]], keys: int) -> int:
    """Index of the first query flagged when the stream is sent round-robin over ``keys``."""
    for i, (x, scores) in enumerate(stream):
        query = Query(identity=f"key-{i % keys}", x=x[None], scores=scores[None])
        if guard.check(query).fired:  # type: ignore[attr-defined]
            return i
    return len(stream)


@pytest.fixture(scope="module")
def streams(digits_entry: ZooEntry) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    model = TorchModel(
        digits_entry.model,
        input_shape=digits_entry.input_shape,
        num_classes=digits_entry.num_classes,
        bounds=digits_entry.bounds,
        mean=digits_entry.mean,
        std=digits_entry.std,
    ).restricted("scores")
    x, y = torch.from_numpy(digits_entry.test.x), torch.from_numpy(digits_entry.test.y)
    return [random_search(model, x[s], int(y[s]), 50, seed=s) for s in SEEDS]


@pytest.fixture(scope="module")
def benign(digits_entry: ZooEntry) -> torch.Tensor:
    """Every embedded digit with small Gaussian noise, train and test split alike."""
    x = torch.cat([torch.from_numpy(digits_entry.train.x), torch.from_numpy(digits_entry.test.x)])
    gen = torch.Generator().manual_seed(1)
    return (x + 0.02 * torch.randn(x.shape, generator=gen)).clamp(0, 1)


@pytest.mark.parametrize("keys", [1, 10])
def test_blacklight_flags_random_search_within_50_queries(
    streams: list[list[tuple[torch.Tensor, torch.Tensor]]], keys: int
) -> None:
    for seed, stream in zip(SEEDS, streams, strict=True):
        guard = BlacklightGuard.for_input_size(64, salt=b"seed-%d" % seed)
        assert first_flag(guard, stream, keys) < 50


def test_blacklight_benign_false_positives_at_most_one_percent(benign: torch.Tensor) -> None:
    guard = BlacklightGuard.for_input_size(64, salt=b"benign")
    flagged = sum(
        guard.check(Query(identity=f"user-{i % 7}", x=benign[i : i + 1])).fired
        for i in range(benign.shape[0])
    )
    assert flagged / benign.shape[0] <= 0.01, f"{flagged} of {benign.shape[0]} flagged"


def test_nearest_neighbour_flags_one_identity_and_spares_benign(
    digits_entry: ZooEntry,
    streams: list[list[tuple[torch.Tensor, torch.Tensor]]],
    benign: torch.Tensor,
) -> None:
    calibrating = NearestNeighbourGuard(k=5)
    threshold = calibrating.calibrate(torch.from_numpy(digits_entry.train.x), fpr=0.001)
    for stream in streams:
        assert first_flag(NearestNeighbourGuard(k=5, threshold=threshold), stream, 1) < 50
    guard = NearestNeighbourGuard(k=5, threshold=threshold)
    test_part = benign[-digits_entry.test.x.shape[0] :]
    flagged = sum(
        guard.check(Query(identity="user", x=test_part[i : i + 1])).fired
        for i in range(test_part.shape[0])
    )
    assert flagged / test_part.shape[0] <= 0.01


def test_boundary_guard_flags_attacks_near_the_boundary(
    digits_entry: ZooEntry,
    digits_model: TorchModel,
    streams: list[list[tuple[torch.Tensor, torch.Tensor]]],
    benign: torch.Tensor,
) -> None:
    calibrating = BoundaryGuard()
    near = calibrating.calibrate(digits_model.scores(torch.from_numpy(digits_entry.train.x)))
    caught = [first_flag(BoundaryGuard(near_margin=near), stream, 1) < 50 for stream in streams]
    assert sum(caught) >= 8, caught
    # a HopSkipJump-like bisection between two digits of different classes
    x, y = torch.from_numpy(digits_entry.test.x), torch.from_numpy(digits_entry.test.y)
    for s in SEEDS:
        guard = BoundaryGuard(near_margin=near)
        other = x[int((y != y[s]).nonzero()[0, 0])]
        low, high, flagged_at = 0.0, 1.0, None
        for i in range(30):
            mid = (low + high) / 2
            point = ((1 - mid) * x[s] + mid * other)[None]
            scores = digits_model.scores(point)
            if guard.check(Query("probe", x=point, scores=scores)).fired:
                flagged_at = i
                break
            low, high = (mid, high) if int(scores.argmax()) == int(y[s]) else (low, mid)
        assert flagged_at is not None and flagged_at < 20
    guard = BoundaryGuard(near_margin=near)
    test_part = benign[-digits_entry.test.x.shape[0] :]
    scores = digits_model.scores(test_part)
    flagged = sum(
        guard.check(Query("user", x=test_part[i : i + 1], scores=scores[i : i + 1])).fired
        for i in range(test_part.shape[0])
    )
    assert flagged / test_part.shape[0] <= 0.01

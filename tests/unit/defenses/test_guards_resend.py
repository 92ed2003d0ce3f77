"""Re-send tolerance: Blacklight's ``min_matches`` and the k-NN guard's ``skip_nearest``."""

from __future__ import annotations

import pytest
import torch

from bastion.core.errors import ValidationError
from bastion.defenses.guards import BlacklightGuard, NearestNeighbourGuard, Query


def noisy(x: torch.Tensor, seed: int, sigma: float = 0.002) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=gen)).clamp(0, 1)


def digit_like(seed: int) -> torch.Tensor:
    """A random 1x8x8 image, far from any other seed's."""
    return torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(1000 + seed))


@pytest.mark.parametrize("min_matches", [1, 3])
def test_blacklight_flags_once_an_input_has_min_matches_near_duplicates(min_matches: int) -> None:
    guard = BlacklightGuard.for_input_size(64, salt=b"resend", min_matches=min_matches)
    base = digit_like(0)
    fired = [guard.check(Query("client", x=noisy(base, i))).fired for i in range(5)]
    # copy i has i earlier near-duplicates: flagged from copy min_matches on
    assert fired == [i >= min_matches for i in range(5)]
    evidence = guard.check(Query("client", x=noisy(base, 9))).evidence
    assert evidence["matches"] == 5


def test_blacklight_matches_count_distinct_earlier_queries_across_identities() -> None:
    guard = BlacklightGuard.for_input_size(64, salt=b"resend", min_matches=2)
    base = digit_like(1)
    assert not guard.check(Query("a", x=noisy(base, 0))).fired
    assert not guard.check(Query("b", x=digit_like(2))).fired  # unrelated input
    assert not guard.check(Query("c", x=noisy(base, 1))).fired  # 1 near-duplicate
    verdict = guard.check(Query("d", x=noisy(base, 2)))  # 2, from identities a and c
    assert verdict.fired and verdict.evidence["matches"] == 2
    assert "2 earlier queries" in verdict.reason


def test_nearest_neighbour_skip_ignores_resends_but_not_a_cluster() -> None:
    others = torch.cat([digit_like(s) for s in range(10, 30)])
    probe = digit_like(99)
    spread = 1.5  # random images lie about 3.3 apart, copies 0.02
    for skip, flagged in ((0, True), (2, False)):
        guard = NearestNeighbourGuard(k=3, skip_nearest=skip, threshold=spread)
        for i in range(others.shape[0]):
            assert not guard.check(Query("client", x=others[i : i + 1])).fired
        guard.check(Query("client", x=noisy(probe, 0)))
        guard.check(Query("client", x=noisy(probe, 1)))
        # the third copy: two close neighbours, then the other inputs
        assert guard.check(Query("client", x=noisy(probe, 2))).fired is flagged
    # an attack-like cluster is flagged even when the two nearest are skipped
    guard = NearestNeighbourGuard(k=3, skip_nearest=2, threshold=spread)
    verdicts = [guard.check(Query("attacker", x=noisy(probe, i))).fired for i in range(8)]
    assert verdicts[:5] == [False] * 5 and all(verdicts[5:])


def test_nearest_neighbour_skip_calibration_scores_the_same_neighbours() -> None:
    benign = torch.rand(200, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    plain = NearestNeighbourGuard(k=4).calibrate(benign, fpr=0.5)
    skipping = NearestNeighbourGuard(k=4, skip_nearest=2).calibrate(benign, fpr=0.5)
    assert skipping > plain  # farther neighbours
    with pytest.raises(ValidationError, match="k=4 \\+ skip_nearest=2 benign"):
        NearestNeighbourGuard(k=4, skip_nearest=2).calibrate(benign[:6])


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: BlacklightGuard(min_matches=0), "min_matches"),
        (lambda: NearestNeighbourGuard(skip_nearest=-1), "skip_nearest"),
        (lambda: NearestNeighbourGuard(k=5, skip_nearest=3, buffer_size=7), "buffer_size"),
    ],
)
def test_invalid_resend_parameters(factory: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        factory()  # type: ignore[operator]

"""PRADA (Juuti et al. 2019): the algorithm's mechanics, and its quality on the digits model."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest
import torch

from bastion.core.errors import ValidationError
from bastion.data.zoo import ZooEntry
from bastion.defenses.guards import Action, PradaGuard, Query
from bastion.defenses.guards.prada import shapiro_w
from bastion.models import TorchModel

#: The detection threshold used on the digits model: inside the paper's 0.90-0.96 range.
DIGITS_DELTA = 0.95
#: The first test runs once more than 100 distances are known, at the 110th query or so.
FLAG_WITHIN = 130


def one_hot(labels: list[int], classes: int = 3) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(labels), classes).float()


def feed(guard: PradaGuard, x: torch.Tensor, labels: list[int], identity: str = "a") -> bool:
    return guard.check(Query(identity=identity, x=x, scores=one_hot(labels))).fired


# --- mechanics ----------------------------------------------------------------------------
def test_growing_set_threshold_and_distances_follow_algorithm_1() -> None:
    guard = PradaGuard(min_distances=3, every=1)
    feed(guard, torch.zeros(1, 2), [0])  # starts G_0, no distance yet
    state = guard._identities["a"]
    assert state.classes[0].size == 1 and not state.distances
    feed(guard, torch.tensor([[3.0, 4.0]]), [0])  # d = 5 > T_0 = 0: joins G_0
    cls = state.classes[0]
    assert list(state.distances) == [5.0] and cls.size == 2 and cls.threshold == 5.0
    feed(guard, torch.tensor([[3.0, 5.0]]), [0])  # d = 1 <= T_0: measured, not added
    assert list(state.distances) == [5.0, 1.0] and cls.size == 2
    feed(guard, torch.tensor([[3.0, 5.0]]), [1])  # another class has its own set
    assert state.classes[1].size == 1 and len(state.distances) == 2
    feed(guard, torch.tensor([[9.0, 4.0]]), [0])  # d = 6 > 5: joins, T = max(5, 5.5 - 0.5)
    assert cls.size == 3 and cls.threshold == pytest.approx(5.0)
    feed(guard, torch.tensor([[17.0, 4.0]]), [0])  # d = 8: T = mean - std of {5, 6, 8}
    kept = np.array([5.0, 6.0, 8.0])
    assert cls.threshold == pytest.approx(kept.mean() - kept.std()) and cls.threshold > 5
    assert list(state.distances) == [5.0, 1.0, 6.0, 8.0]


def test_resends_join_neither_the_distances_nor_the_growing_set() -> None:
    guard = PradaGuard(min_distances=3, every=1, duplicate_distance=0.5)
    feed(guard, torch.zeros(1, 2), [0])
    feed(guard, torch.tensor([[0.3, 0.0]]), [0])  # d = 0.3 < 0.5 (T_0 is still 0): a re-send
    state = guard._identities["a"]
    assert not state.distances and state.classes[0].size == 1
    feed(guard, torch.tensor([[0.5, 0.0]]), [0])  # d = 0.5: not below, counts and joins G_0
    assert list(state.distances) == [0.5] and state.classes[0].size == 2
    feed(guard, torch.tensor([[0.5, 0.1]]), [1])  # another class: starts its own set
    feed(guard, torch.tensor([[0.5, 0.2]]), [1])  # a re-send within class 1
    assert list(state.distances) == [0.5] and state.classes[1].size == 1
    paper = PradaGuard(min_distances=3, every=1, duplicate_distance=None)
    for _ in range(3):
        feed(paper, torch.zeros(1, 2), [0])
    assert list(paper._identities["a"].distances) == [0.0, 0.0]  # the paper counts them all
    assert paper.resend_distance(64) == 0.0 and guard.resend_distance(64) == 0.5
    auto = PradaGuard(bounds=(-1.0, 1.0))  # "auto": 5% of the range per feature (RMS)
    assert auto.resend_distance(100) == pytest.approx(0.05 * 10 * 2.0)


def test_identities_are_separate_and_can_be_forgotten() -> None:
    guard = PradaGuard(min_distances=3, every=1)
    for i in range(6):
        feed(guard, torch.full((1, 2), float(i)), [0], identity="a")
    feed(guard, torch.zeros(1, 2), [0], identity="b")
    assert len(guard._identities["a"].distances) == 5
    assert not guard._identities["b"].distances
    assert guard.statistic("a") is not None and guard.statistic("b") is None
    guard.forget("a")
    assert guard.statistic("a") is None and "a" not in guard._identities


def test_flags_a_non_normal_distance_set_and_passes_a_normal_one() -> None:
    gen = torch.Generator().manual_seed(0)
    # Queries on a line, each a fixed step from the last: every distance is the same.
    steps = torch.arange(150, dtype=torch.float32)[:, None] * torch.tensor([[0.6, 0.8]])
    guard = PradaGuard(delta=0.9)
    fired = [feed(guard, steps[i : i + 1], [0]) for i in range(150)]
    assert any(fired) and not any(fired[:100])
    w = guard.statistic("a")
    assert w is not None and w < 0.9
    verdict = guard.check(Query(identity="a", x=steps[:1] + 0.5, scores=one_hot([0])))
    assert verdict.action is Action.FLAG and "Shapiro-Wilk" in verdict.reason
    # Gaussian points in 20 dimensions: nearest distances are close to normal.
    normal = PradaGuard(delta=0.9)
    points = torch.randn(300, 20, generator=gen)
    assert not any(feed(normal, points[i : i + 10], [0] * 10) for i in range(0, 300, 10))
    assert (normal.statistic("a") or 0) > 0.9


def test_bounded_state_and_configuration() -> None:
    guard = PradaGuard(max_growing=4, max_distances=200, min_distances=100)
    for i in range(300):
        feed(guard, torch.full((1, 3), float(i)), [0])
    state = guard._identities["a"]
    assert state.classes[0].size == 4 and len(state.distances) == 200
    assert shapiro_w(np.ones(50)) == 1.0 and shapiro_w(np.array([1.0, 2.0])) == 1.0
    for kwargs, name in [
        ({"delta": 1.0}, "delta"),
        ({"every": 0}, "every"),
        ({"min_distances": 2}, "min_distances"),
        ({"max_distances": 50}, "max_distances"),
        ({"outlier_sigmas": 0}, "outlier_sigmas"),
        ({"duplicate_distance": -0.1}, "duplicate_distance"),
        ({"duplicate_distance": "always"}, "duplicate_distance"),
        ({"bounds": (1.0, 0.0)}, "bounds"),
        ({"action": "allow"}, "action"),
    ]:
        with pytest.raises(ValidationError, match=name):
            PradaGuard(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"query\.scores"):
        guard.check(Query(identity="a", x=torch.zeros(1, 3)))


# --- quality on the digits CNN ----------------------------------------------------------
def jacobian_augmentation(
    entry: ZooEntry, model: TorchModel, *, seeds: int, rounds: int, lam: float, seed: int
) -> torch.Tensor:
    """The queries of Papernot et al.'s (2017) Jacobian-based dataset augmentation.

    Each round trains a softmax-regression substitute on the labels the target gave so far,
    then queries every known point moved by ``lam * sign`` of the substitute's gradient for
    its label; the set doubles each round.
    """
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    known = torch.from_numpy(entry.test.x[rng.choice(len(entry.test.x), seeds, False)]).float()
    labels = model.labels(known)
    queries = [known]
    for _ in range(rounds):
        substitute = torch.nn.Linear(known[0].numel(), model.num_classes)
        optimiser = torch.optim.Adam(substitute.parameters(), lr=0.1)
        flat = known.reshape(len(known), -1)
        for _ in range(50):
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(substitute(flat), labels).backward()
            optimiser.step()
        x = known.clone().requires_grad_(True)
        chosen = substitute(x.reshape(len(x), -1)).gather(1, labels[:, None]).sum()
        (grad,) = torch.autograd.grad(chosen, x)
        new = (known + lam * grad.sign()).clamp(0, 1).detach()
        queries.append(new)
        known, labels = torch.cat([known, new]), torch.cat([labels, model.labels(new)])
    return torch.cat(queries)


def first_flag(guard: PradaGuard, model: TorchModel, stream: torch.Tensor, batch: int) -> int:
    """1-based index of the query whose request was first flagged, or 0."""
    for start in range(0, len(stream), batch):
        x = stream[start : start + batch]
        if guard.check(Query(identity="client", x=x, scores=model.scores(x))).fired:
            return start + len(x)
    return 0


def first_test(guard: PradaGuard, model: TorchModel, stream: torch.Tensor) -> tuple[int, int]:
    """(1-based query of the first Shapiro-Wilk test, of the first flag); 0 when none."""
    tested = flagged = 0
    for i in range(len(stream)):
        x = stream[i : i + 1]
        fired = guard.check(Query(identity="client", x=x, scores=model.scores(x))).fired
        if not tested and guard.statistic("client") is not None:
            tested = i + 1
        if fired and not flagged:
            flagged = i + 1
    return tested, flagged


# With the paper's rule the first test runs at query 110 and flags (W 0.83-0.94). 48-94 of
# these 160 queries repeat an earlier one exactly (the linear substitute's gradient sign
# repeats per class); the re-send rule leaves such repeats out of D, so D holds 100 distances
# later, at query 130-160, and the first test flags with a lower W (0.76-0.86).
@pytest.mark.parametrize(("duplicate_distance", "within"), [(None, FLAG_WITHIN), ("auto", 160)])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_jacobian_augmentation_is_flagged_at_the_first_test(
    digits_entry: ZooEntry,
    digits_model: TorchModel,
    seed: int,
    duplicate_distance: Literal["auto"] | None,
    within: int,
) -> None:
    stream = jacobian_augmentation(
        digits_entry, digits_model, seeds=10, rounds=4, lam=0.1, seed=seed
    )
    guard = PradaGuard(delta=DIGITS_DELTA, duplicate_distance=duplicate_distance)
    tested, flagged = first_test(guard, digits_model, stream)
    assert 0 < flagged <= within, f"first flag at query {flagged} of {len(stream)}"
    assert flagged == tested


def resend_stream(x: np.ndarray, clients: int, seed: int) -> list[tuple[int, torch.Tensor]]:
    """Every digit sent one to three times in a row by one client, each time with fresh noise
    (sigma 0.02), as bench/gateway_detection.py sends them."""
    rng = np.random.default_rng(seed)
    stream = []
    for i in rng.permutation(len(x)):
        client = int(rng.integers(clients))
        for _ in range(int(rng.integers(1, 4))):
            noisy = np.clip(x[i] + rng.normal(0.0, 0.02, x[i].shape), 0.0, 1.0)
            stream.append((client, torch.from_numpy(noisy.astype(np.float32))[None]))
    return stream


def test_resent_digits_are_not_flagged_unless_the_paper_rule_is_asked_for(
    digits_entry: ZooEntry, digits_model: TorchModel
) -> None:
    natural = np.concatenate([digits_entry.train.x, digits_entry.test.x])
    stream = resend_stream(natural, clients=8, seed=0)
    scores = digits_model.scores(torch.cat([x for _, x in stream]))
    guards = {dup: PradaGuard(duplicate_distance=dup) for dup in ("auto", None)}
    flagged = dict.fromkeys(guards, 0)
    for i, (client, x) in enumerate(stream):
        for dup, guard in guards.items():
            query = Query(identity=f"client-{client}", x=x, scores=scores[i : i + 1])
            flagged[dup] += guard.check(query).fired
    assert len(stream) >= 3000
    # the re-send distance (0.4 on 8x8 inputs) is about twice the largest distance between
    # two noisy copies of a digit (0.23)
    assert guards["auto"].resend_distance(64) == pytest.approx(0.4)
    assert flagged["auto"] <= len(stream) // 1000, flagged  # at most 0.1%; measured: none
    lowest = min(guards["auto"].statistic(f"client-{c}") or 1.0 for c in range(8))
    assert lowest > DIGITS_DELTA, lowest  # every client tested and clear (measured: 0.98)
    assert flagged[None] > len(stream) // 2, flagged  # the paper's rule: most of them


def test_natural_digit_streams_are_not_flagged(
    digits_entry: ZooEntry, digits_model: TorchModel
) -> None:
    natural = torch.from_numpy(np.concatenate([digits_entry.train.x, digits_entry.test.x]))
    rng = np.random.default_rng(7)
    for _ in range(3):
        stream = natural[rng.permutation(len(natural))[:1000]].float()
        guard = PradaGuard(delta=DIGITS_DELTA)
        assert first_flag(guard, digits_model, stream, batch=8) == 0
        assert (guard.statistic("client") or 0) > DIGITS_DELTA

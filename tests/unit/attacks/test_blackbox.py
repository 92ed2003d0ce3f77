"""Unit tests of the query-based attacks: Square, SimBA-DCT, NES and HopSkipJump."""

from typing import Any

import pytest
import torch
from torch import nn

from bastion.attacks import (
    L2BoundaryAttack,
    L2HopSkipJumpAttack,
    L2SimBADCTAttack,
    L2SquareAttack,
    LinfHopSkipJumpAttack,
    LinfNESAttack,
    LinfSquareAttack,
)
from bastion.attacks.base import Attack
from bastion.attacks.evasion.simba import dct_matrix, frequency_order
from bastion.attacks.evasion.square import meta_pattern, p_selection
from bastion.core import AccessError, QueryBudgetExceeded, ValidationError
from bastion.models import TorchModel
from bastion.models.counter import QueryCounter

Batch = tuple[torch.Tensor, torch.Tensor]

# Short settings per attack, strong enough to fool most digits at these budgets.
QUICK: list[tuple[type[Attack], dict[str, Any]]] = [
    (LinfSquareAttack, {"epsilon": 0.3, "max_queries": 300}),
    (L2SquareAttack, {"epsilon": 3.0, "max_queries": 300}),
    (L2SimBADCTAttack, {"epsilon": 3.0, "step_size": 0.5}),
    (LinfNESAttack, {"epsilon": 0.3, "max_queries": 500, "samples": 20, "sigma": 0.01}),
    (L2HopSkipJumpAttack, {"epsilon": 3.0, "max_queries": 300}),
    (LinfHopSkipJumpAttack, {"epsilon": 0.3, "max_queries": 300}),
    (L2BoundaryAttack, {"epsilon": 3.0, "max_queries": 300}),
]
IDS = [cls.id for cls, _ in QUICK]


@pytest.mark.parametrize(("cls", "kwargs"), QUICK, ids=IDS)
def test_attacks_work_through_the_outsiders_view(
    cls: type[Attack], kwargs: dict[str, Any], digits_model: TorchModel, digits_batch: Batch
) -> None:
    x, y = digits_batch
    view = digits_model.restricted(cls.requires)
    result = cls(**kwargs)(view, x[:32], y[:32])
    assert result.success_rate >= 0.8
    assert 0 < result.queries == digits_model.counter.count
    assert result.queries <= 32 * kwargs.get("max_queries", 10000)
    assert float(result.norms.max()) <= kwargs["epsilon"] * (1 + 1e-5)


@pytest.mark.parametrize("cls", [LinfSquareAttack, L2SquareAttack, L2SimBADCTAttack, LinfNESAttack])
def test_score_attacks_refuse_a_label_only_model(
    cls: type[Attack], digits_model: TorchModel, digits_batch: Batch
) -> None:
    x, y = digits_batch
    with pytest.raises(AccessError, match="needs 'scores' access"):
        cls(epsilon=0.1)(digits_model.restricted("labels"), x, y)
    assert digits_model.counter.count == 0


@pytest.mark.parametrize(("cls", "kwargs"), QUICK, ids=IDS)
def test_targeted_attacks_reach_the_target(
    cls: type[Attack], kwargs: dict[str, Any], digits_model: TorchModel, digits_batch: Batch
) -> None:
    x, y = digits_batch
    target = (y[:32] + 1) % 10
    view = digits_model.restricted(cls.requires)
    settings = dict(kwargs, max_queries=1000) if "max_queries" in kwargs else kwargs
    result = cls(**settings)(view, x[:32], y[:32], target=target)
    assert result.threat_model.targeted
    assert result.success_rate >= 0.5
    with digits_model.counter.paused():
        assert torch.equal(result.success, digits_model.labels(result.x_adv) == target)


@pytest.mark.parametrize(("cls", "kwargs"), QUICK, ids=IDS)
def test_a_short_budget_gives_a_clean_partial_result(
    cls: type[Attack], kwargs: dict[str, Any], digits_model: TorchModel, digits_batch: Batch
) -> None:
    x, y = digits_batch
    digits_model.counter = QueryCounter(budget=600)
    result = cls(**kwargs, batch_size=8)(digits_model, x[:32], y[:32])
    assert result.queries <= 600
    assert result.queries == digits_model.counter.count
    assert result.x_adv.shape == x[:32].shape
    # Work finished before the budget ran out is kept: the first batch was attacked.
    assert bool(result.success[:8].any())


@pytest.mark.parametrize(("cls", "kwargs"), QUICK, ids=IDS)
def test_without_stop_at_budget_the_budget_error_propagates(
    cls: type[Attack], kwargs: dict[str, Any], digits_model: TorchModel, digits_batch: Batch
) -> None:
    x, y = digits_batch
    digits_model.counter = QueryCounter(budget=50)
    with pytest.raises(QueryBudgetExceeded):
        cls(**dict(kwargs, stop_at_budget=False))(digits_model, x[:32], y[:32])


@pytest.mark.parametrize(("cls", "kwargs"), QUICK, ids=IDS)
def test_an_exhausted_budget_returns_the_clean_inputs(
    cls: type[Attack], kwargs: dict[str, Any], digits_model: TorchModel, digits_batch: Batch
) -> None:
    x, y = digits_batch
    digits_model.counter = QueryCounter(budget=0)
    result = cls(**kwargs)(digits_model, x[:8], y[:8])
    assert result.queries == 0
    assert torch.equal(result.x_adv, x[:8])


def test_square_stops_each_sample_once_it_succeeds(
    digits_model: TorchModel, digits_batch: Batch
) -> None:
    x, y = digits_batch
    result = LinfSquareAttack(epsilon=0.3, max_queries=1000)(digits_model, x, y)
    assert result.success_rate >= 0.95
    # Every sample may use 1000; succeeding ones stop early, so far fewer are spent.
    assert result.queries <= 0.2 * 1000 * len(y)


@pytest.mark.parametrize("cls", [LinfSquareAttack, L2SquareAttack, L2SimBADCTAttack, LinfNESAttack])
def test_per_sample_query_cap(
    cls: type[Attack], digits_model: TorchModel, digits_batch: Batch
) -> None:
    x, y = digits_batch
    kwargs: dict[str, Any] = {"epsilon": 0.01, "max_queries": 7}
    if cls is LinfNESAttack:
        kwargs["samples"] = 4
    result = cls(**kwargs)(digits_model, x[:16], y[:16])
    assert 0 < result.queries <= 16 * 7


def test_image_attacks_refuse_flat_inputs() -> None:
    model = TorchModel(nn.Linear(4, 3), input_shape=(4,), num_classes=3)
    x, y = torch.rand(5, 4), torch.zeros(5, dtype=torch.long)
    with pytest.raises(ValidationError, match=r"images shaped.*nes-linf"):
        LinfSquareAttack(epsilon=0.1)(model, x, y)
    result = LinfNESAttack(epsilon=0.1, max_queries=30, samples=4)(model, x, y)
    assert result.x_adv.shape == x.shape


@pytest.mark.parametrize(
    ("cls", "kwargs", "fragment"),
    [
        (LinfSquareAttack, {"max_queries": 0}, "max_queries"),
        (LinfSquareAttack, {"p_init": 0.0}, "p_init"),
        (L2SquareAttack, {"p_init": 1.5}, "p_init"),
        (L2SquareAttack, {"stop_at_budget": 1}, "stop_at_budget"),
        (L2SimBADCTAttack, {"step_size": 0.0}, "step_size"),
        (L2SimBADCTAttack, {"freq_dims": 0}, "freq_dims"),
        (L2SimBADCTAttack, {"stride": 0}, "stride"),
        (LinfNESAttack, {"samples": 5}, "samples"),
        (LinfNESAttack, {"sigma": 0.0}, "sigma"),
        (LinfNESAttack, {"stepsize": -0.1}, "stepsize"),
        (L2HopSkipJumpAttack, {"init_evals": 0}, "init_evals"),
        (L2HopSkipJumpAttack, {"init_evals": 100, "max_evals": 50}, "max_evals"),
        (LinfHopSkipJumpAttack, {"gamma": 0.0}, "gamma"),
        (LinfHopSkipJumpAttack, {"init_tries": -1}, "init_tries"),
        (L2BoundaryAttack, {"spherical_step": 0.0}, "spherical_step"),
        (L2BoundaryAttack, {"source_step": 1.5}, "source_step"),
        (L2BoundaryAttack, {"step_adaptation": 1.0}, "step_adaptation"),
        (L2BoundaryAttack, {"window": 0}, "window"),
        (L2BoundaryAttack, {"directions": 0}, "directions"),
        (L2BoundaryAttack, {"trials": 0}, "trials"),
    ],
)
def test_hyperparameters_are_validated(
    cls: type[Attack], kwargs: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ValidationError, match=fragment):
        cls(epsilon=0.1, **kwargs)


def test_p_schedule_halves_at_the_papers_iterations() -> None:
    assert p_selection(0.8, 0, 10000) == 0.8
    assert p_selection(0.8, 10, 10000) == 0.8
    assert p_selection(0.8, 11, 10000) == 0.4
    assert p_selection(0.8, 51, 10000) == 0.2
    assert p_selection(0.8, 9000, 10000) == pytest.approx(0.8 / 512)
    # Rescaled to the budget: 1 % of a 1000-query run is the 100th of 10,000.
    assert p_selection(0.8, 10, 1000) == p_selection(0.8, 100, 10000)


def test_meta_pattern_has_unit_norm_and_opposite_halves() -> None:
    pattern = meta_pattern(5, torch.device("cpu"))
    assert float(pattern.norm()) == pytest.approx(1.0)
    assert bool((pattern[:2] >= 0).all()) and bool((pattern[2:] <= 0).all())
    assert float(pattern[:2].sum()) > 0 > float(pattern[2:].sum())


def test_dct_basis_is_orthonormal_and_order_is_low_frequency_first() -> None:
    basis = dct_matrix(8, torch.device("cpu"))
    assert torch.allclose(basis @ basis.T, torch.eye(8), atol=1e-5)
    gen = torch.Generator().manual_seed(0)
    order = frequency_order((1, 8, 8), 2, 2, gen, torch.device("cpu"))
    assert sorted(order.tolist()) == list(range(64))
    bands = [max(i // 8, i % 8) for i in order.tolist()]
    assert max(bands[:4]) < 2  # the 2x2 lowest frequencies first
    assert bands == sorted(bands, key=lambda b: 0 if b < 2 else 1 + (b - 2) // 2)


def test_hopskipjump_returns_boundary_points_that_shrink_with_queries(
    digits_model: TorchModel, digits_batch: Batch
) -> None:
    x, y = digits_batch
    view = digits_model.restricted("labels")
    short = L2HopSkipJumpAttack(epsilon=50.0, max_queries=150)(view, x[:32], y[:32])
    long = L2HopSkipJumpAttack(epsilon=50.0, max_queries=1000)(view, x[:32], y[:32])
    assert bool(short.success.all()) and bool(long.success.all())
    assert float(long.norms.median()) < 0.8 * float(short.norms.median())


def test_hopskipjump_leaves_misclassified_samples_alone(
    digits_model: TorchModel, digits_batch: Batch
) -> None:
    x, _ = digits_batch
    wrong = (digits_model.labels(x[:4]) + 1) % 10  # labels the model disagrees with
    result = LinfHopSkipJumpAttack(epsilon=0.3, max_queries=100)(digits_model, x[:4], wrong)
    assert torch.equal(result.x_adv, x[:4])
    assert result.queries == 4


def test_boundary_attack_walks_towards_the_input(
    digits_model: TorchModel, digits_batch: Batch
) -> None:
    x, y = digits_batch
    view = digits_model.restricted("labels")
    short = L2BoundaryAttack(epsilon=50.0, max_queries=100)(view, x[:32], y[:32])
    long = L2BoundaryAttack(epsilon=50.0, max_queries=1000)(view, x[:32], y[:32])
    assert bool(short.success.all()) and bool(long.success.all())
    assert float(long.norms.median()) < 0.8 * float(short.norms.median())

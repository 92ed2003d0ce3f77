"""Bad input to the transfer and adaptive attacks, and the contracts they share with PGD."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from bastion.attacks.evasion.adaptive import (
    LinfBPDAProjectedGradientDescentAttack,
    LinfEOTProjectedGradientDescentAttack,
)
from bastion.attacks.evasion.gradient import LinfProjectedGradientDescentAttack
from bastion.attacks.evasion.transfer import (
    LinfTransferMomentumAttack,
    LinfTransferPGDAttack,
    default_surrogate,
)
from bastion.core.errors import (
    AccessError,
    BoundsError,
    QueryBudgetExceeded,
    ShapeError,
    ValidationError,
)
from bastion.models import QueryCounter, TorchModel
from bastion.models.preprocessed import PreprocessedModel
from bastion.testing import check_adapter

FAST: dict[str, Any] = {"substitute_epochs": 2, "train_epochs": 1}


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"substitute_epochs": 0}, "substitute_epochs"),
        ({"augmentation_step": 0.0}, "augmentation_step"),
        ({"augmentation_step": float("nan")}, "augmentation_step"),
        ({"flip_every": 0}, "flip_every"),
        ({"reservoir_after": 0}, "reservoir_after"),
        ({"reservoir_size": 0}, "reservoir_size"),
        ({"train_epochs": 0}, "train_epochs"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"surrogate": "cnn"}, "surrogate"),
        ({"seed_data": [[float("nan"), 0.0]]}, "seed_data"),
        ({"seed_data": torch.zeros(0, 1, 8, 8)}, "seed_data"),
        ({"seed_data": "digits"}, "seed_data"),
        ({"max_queries": 0}, "max_queries"),
        ({"stop_at_budget": 1}, "stop_at_budget"),
        ({"steps": 0}, "steps"),
        ({"epsilon": -0.1}, "epsilon"),
    ],
)
@pytest.mark.parametrize("cls", [LinfTransferMomentumAttack, LinfTransferPGDAttack])
def test_transfer_hyperparameters_are_validated(
    cls: type[LinfTransferPGDAttack], kwargs: dict[str, Any], name: str
) -> None:
    args = {"epsilon": 0.1, **kwargs}
    with pytest.raises(ValidationError, match=f"Expected {name}"):
        cls(**args)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"eot_samples": 0}, "eot_samples"),
        ({"steps": 0}, "steps"),
        ({"stepsize": -1.0}, "stepsize"),
        ({"random_start": "yes"}, "random_start"),
        ({"epsilon": float("inf")}, "epsilon"),
    ],
)
@pytest.mark.parametrize(
    "cls", [LinfEOTProjectedGradientDescentAttack, LinfBPDAProjectedGradientDescentAttack]
)
def test_adaptive_hyperparameters_are_validated(
    cls: type[LinfEOTProjectedGradientDescentAttack], kwargs: dict[str, Any], name: str
) -> None:
    with pytest.raises(ValidationError, match=f"Expected {name}"):
        cls(**{"epsilon": 0.1, **kwargs})


def test_seed_data_of_the_wrong_shape_or_range_is_refused_before_any_query(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    wrong = LinfTransferMomentumAttack(epsilon=0.1, seed_data=torch.zeros(4, 64), **FAST)
    with pytest.raises(ShapeError, match="seed_data"):
        wrong(digits_model, x[:4], y[:4])
    outside = LinfTransferMomentumAttack(epsilon=0.1, seed_data=x[:4] + 5, **FAST)
    with pytest.raises(BoundsError, match="seed_data"):
        outside(digits_model, x[:4], y[:4])
    assert digits_model.counter.count == 0


def test_adaptive_attacks_name_the_access_they_need(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    with pytest.raises(AccessError, match="gradients"):
        LinfEOTProjectedGradientDescentAttack(epsilon=0.1)(digits_model.restricted("scores"), x, y)
    with pytest.raises(AccessError, match="gradients"):
        LinfBPDAProjectedGradientDescentAttack(epsilon=0.1)(digits_model.restricted("labels"), x, y)


def test_transfer_raises_at_the_budget_when_asked_not_to_stop(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    digits_model.counter = QueryCounter(budget=20)
    attack = LinfTransferMomentumAttack(epsilon=0.1, stop_at_budget=False, **FAST)
    with pytest.raises(QueryBudgetExceeded):
        attack(digits_model.restricted("labels"), x[:16], y[:16])
    assert digits_model.counter.count == 16  # the seeds; the refused 16 were not charged


def test_max_queries_caps_the_labels_bought(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    attack = LinfTransferPGDAttack(epsilon=0.1, steps=3, max_queries=20, **FAST)
    result = attack(digits_model.restricted("labels"), x[:16], y[:16])
    assert result.queries == 20  # 16 seeds, then 4 of the 16 augmented points
    assert result.budget_exhausted


def test_reservoir_sampling_limits_each_later_augmentation(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    attack = LinfTransferPGDAttack(
        epsilon=0.1,
        steps=3,
        substitute_epochs=4,
        train_epochs=1,
        reservoir_after=2,
        reservoir_size=5,
    )
    result = attack(digits_model, x[:16], y[:16])
    assert result.queries == 16 + 16 + 32 + 5  # doubling twice, then 5 per round


def test_a_user_surrogate_factory_is_used(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    calls: list[tuple[tuple[int, ...], int]] = []

    def linear(shape: tuple[int, ...], classes: int) -> nn.Module:
        calls.append((shape, classes))
        return nn.Sequential(nn.Flatten(), nn.Linear(64, classes))

    attack = LinfTransferMomentumAttack(epsilon=0.1, surrogate=linear, **FAST)
    attack(digits_model, x[:8], y[:8])
    assert calls == [((1, 8, 8), 10)]
    assert attack.params()["surrogate"] == "linear"


def test_default_surrogate_fits_images_and_flat_inputs() -> None:
    cnn = default_surrogate((3, 5, 7), 4)
    assert any(isinstance(m, nn.Conv2d) for m in cnn.modules())
    assert cnn(torch.zeros(2, 3, 5, 7)).shape == (2, 4)
    mlp = default_surrogate((6,), 3)
    assert not any(isinstance(m, nn.Conv2d) for m in mlp.modules())
    assert mlp(torch.zeros(2, 6)).shape == (2, 3)


def test_on_a_deterministic_model_eot_and_bpda_are_pgd(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    pgd = LinfProjectedGradientDescentAttack(epsilon=0.1, steps=5)(digits_model, x, y)
    eot = LinfEOTProjectedGradientDescentAttack(epsilon=0.1, steps=5, eot_samples=1)
    bpda = LinfBPDAProjectedGradientDescentAttack(epsilon=0.1, steps=5)
    assert torch.allclose(eot(digits_model, x, y).x_adv, pgd.x_adv, atol=1e-6)
    assert torch.allclose(bpda(digits_model, x, y).x_adv, pgd.x_adv, atol=1e-6)


def test_preprocessed_model_keeps_the_adapter_contract(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, _ = digits_batch
    model = PreprocessedModel(digits_model, lambda z: torch.round(z * 3) / 3)
    check_adapter(model, x[:8])
    before = digits_model.counter.count
    model.labels(x[:5])
    assert digits_model.counter.count == before + 5  # one query per sample, one counter


def test_approximate_logits_differentiate_the_approximation(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, _ = digits_batch
    model = PreprocessedModel(digits_model, lambda z: torch.round(z * 3) / 3)
    z = x[:4].clone().requires_grad_(True)
    out = model.approximate_logits(z)
    assert torch.allclose(out, model.logits(x[:4]))  # same forward value
    out.sum().backward()
    assert z.grad is not None and float(z.grad.abs().max()) > 0  # a gradient comes through
    halved = PreprocessedModel(
        digits_model, lambda z: torch.round(z * 3) / 3, approximation=lambda z: z / 2
    )
    w = x[:4].clone().requires_grad_(True)
    halved.approximate_logits(w).sum().backward()
    assert w.grad is not None and torch.allclose(w.grad, z.grad / 2, atol=1e-6)


def test_preprocessed_model_refuses_bad_arguments(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, _ = digits_batch
    with pytest.raises(ValidationError, match="Expected model"):
        PreprocessedModel(object(), torch.round)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="Expected preprocess"):
        PreprocessedModel(digits_model, "round")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="Expected approximation"):
        PreprocessedModel(digits_model, torch.round, approximation=3)  # type: ignore[arg-type]
    shrink = PreprocessedModel(digits_model, lambda z: z[:, :, :4])
    with pytest.raises(ValidationError, match="preprocess to return"):
        shrink.labels(x[:2])
    assert digits_model.counter.count == 0
    with pytest.raises(AccessError, match="gradients"):
        PreprocessedModel(digits_model.restricted("labels"), torch.round).approximate_logits(x[:2])


@pytest.mark.parametrize(
    "factory",
    [
        lambda shape, k: "a network",
        lambda shape, k: nn.Flatten(),  # no parameters to train
        lambda shape, k: nn.Linear(3, k),  # cannot take the input
        lambda shape, k: nn.Sequential(nn.Flatten(), nn.Linear(64, k + 1)),  # wrong classes
    ],
)
def test_a_broken_surrogate_factory_is_refused_before_any_query(
    factory: Any, digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    attack = LinfTransferMomentumAttack(epsilon=0.1, surrogate=factory, **FAST)
    with pytest.raises(ValidationError, match="Expected surrogate"):
        attack(digits_model.restricted("labels"), x[:4], y[:4])
    assert digits_model.counter.count == 0


def test_targeted_transfer_aims_at_the_target(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    target = (y + 1) % 10
    attack = LinfTransferPGDAttack(epsilon=0.3, steps=10, substitute_epochs=3, train_epochs=5)
    result = attack(digits_model.restricted("labels"), x, y, target=target)
    with digits_model.counter.paused():
        hit = digits_model.labels(result.x_adv) == target
    assert torch.equal(result.success, hit)
    assert float(hit.float().mean()) >= 0.3  # measured 0.58; random +-0.3 signs hit 0.02


def test_transfer_on_flat_inputs_uses_an_mlp_substitute() -> None:
    generator = torch.Generator().manual_seed(1)
    net = nn.Linear(4, 3)
    with torch.no_grad():
        net.weight.copy_(torch.randn(3, 4, generator=generator))
        net.bias.zero_()
    model = TorchModel(net, input_shape=(4,), num_classes=3)
    x = torch.rand(32, 4, generator=generator)
    with model.counter.paused():
        y = model.labels(x)
    result = LinfTransferMomentumAttack(epsilon=0.2, **FAST)(model.restricted("labels"), x, y)
    assert result.queries == model.counter.count == 32 * 2  # the seeds, then their augmentation
    assert result.x_adv.shape == (32, 4)
    assert not result.budget_exhausted

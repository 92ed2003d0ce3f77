import pytest
import torch
from torch import nn

from bastion.attacks import (
    L2APGDCEAttack,
    LinfAPGDCEAttack,
    LinfAPGDDLRAttack,
    LinfAPGDTargetedAttack,
)
from bastion.attacks.evasion.apgd import checkpoints, dlr_loss, targeted_dlr_loss
from bastion.core import ValidationError
from bastion.models import TorchModel


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"steps": 0}, "steps"),
        ({"restarts": 0}, "restarts"),
        ({"rho": 1.5}, "rho"),
        ({"rho": "0.75"}, "rho"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.2}, "alpha"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_apgd_validates_hyperparameters(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        LinfAPGDCEAttack(epsilon=0.1, **kwargs)  # type: ignore[arg-type]


def test_apgd_t_validates_target_classes() -> None:
    with pytest.raises(ValidationError, match="target_classes"):
        LinfAPGDTargetedAttack(epsilon=0.1, target_classes=0)


def test_defaults_are_the_papers() -> None:
    attack = LinfAPGDCEAttack(epsilon=0.1)
    assert (attack.steps, attack.rho, attack.alpha, attack.restarts) == (100, 0.75, 0.75, 1)
    assert LinfAPGDTargetedAttack(epsilon=0.1).target_classes == 9


def test_checkpoints_follow_the_papers_schedule() -> None:
    # p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 (Croce & Hein 2020, Section 3.2)
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(1) == [1]
    marks = checkpoints(37)
    assert marks == sorted(set(marks)) and marks[-1] <= 37


def test_dlr_is_invariant_to_shifting_and_scaling_the_logits() -> None:
    logits = torch.randn(20, 10, generator=torch.Generator().manual_seed(0))
    y = torch.arange(20) % 10
    t = (y + 3) % 10
    assert torch.allclose(dlr_loss(logits, y), dlr_loss(3.0 * logits + 7.0, y), atol=1e-5)
    assert torch.allclose(
        targeted_dlr_loss(logits, y, t), targeted_dlr_loss(2.0 * logits - 1.0, y, t), atol=1e-5
    )
    # Positive exactly when the sample is misclassified.
    wrong = logits.argmax(dim=1) != y
    assert torch.equal(dlr_loss(logits, y) > 0, wrong)


def test_dlr_needs_three_classes() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    model = TorchModel(net, input_shape=(4,), num_classes=2)
    x = torch.rand(4, 4)
    y = torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValidationError, match="at least 3 classes"):
        LinfAPGDDLRAttack(epsilon=0.1, steps=2)(model, x, y)
    with pytest.raises(ValidationError, match="at least 4 classes"):
        LinfAPGDTargetedAttack(epsilon=0.1, steps=2)(model, x, y)
    # The cross-entropy variant works on two classes.
    assert LinfAPGDCEAttack(epsilon=0.1, steps=2)(model, x, y).x_adv.shape == x.shape


@pytest.mark.parametrize("cls", [LinfAPGDCEAttack, LinfAPGDDLRAttack, LinfAPGDTargetedAttack])
def test_targeted_apgd_reaches_the_target(
    cls: type[LinfAPGDCEAttack],
    digits_model: TorchModel,
    digits_batch: tuple[torch.Tensor, torch.Tensor],
) -> None:
    x, y = digits_batch
    target = (y + 1) % 10
    result = cls(epsilon=0.3, steps=20)(digits_model, x, y, target=target)
    assert result.threat_model.targeted
    assert result.success_rate >= 0.8
    assert torch.equal(result.success, digits_model.labels(result.x_adv) == target)


def test_apgd_stays_in_the_budget_and_is_seeded(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    x, y = x[:32], y[:32]
    one = L2APGDCEAttack(epsilon=0.5, steps=5, seed=1)(digits_model, x, y)
    two = L2APGDCEAttack(epsilon=0.5, steps=5, seed=1)(digits_model, x, y)
    other = L2APGDCEAttack(epsilon=0.5, steps=5, seed=2)(digits_model, x, y)
    assert torch.equal(one.x_adv, two.x_adv)
    assert not torch.equal(one.x_adv, other.x_adv)
    assert float(one.norms.max()) <= 0.5 + 1e-5


def test_restarts_only_add_successes(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    one = LinfAPGDCEAttack(epsilon=0.08, steps=10, seed=3)(digits_model, x, y)
    three = LinfAPGDCEAttack(epsilon=0.08, steps=10, restarts=3, seed=3)(digits_model, x, y)
    assert bool((three.success | ~one.success).all())
    assert three.queries > one.queries


def test_apgd_t_spends_more_runs_than_apgd_ce_only_on_robust_points(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """Each target class runs only on the samples no earlier run broke."""
    x, y = digits_batch
    steps, n = 10, x.shape[0]
    result = LinfAPGDTargetedAttack(epsilon=0.3, steps=steps, target_classes=9)(digits_model, x, y)
    # All points fall within the first runs at this budget, far below 9 full runs.
    assert result.success_rate == 1.0
    assert result.queries < 2 * n * (steps + 1) + n

import pytest
import torch

from bastion.attacks import L2DeepFoolAttack, LinfDeepFoolAttack
from bastion.core import ValidationError
from bastion.models import TorchModel


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"steps": 0}, "steps"),
        ({"overshoot": -0.1}, "overshoot"),
        ({"classes": 1}, "classes"),
    ],
)
def test_deepfool_validates_hyperparameters(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        L2DeepFoolAttack(epsilon=1.0, **kwargs)  # type: ignore[arg-type]


def test_defaults_are_the_papers() -> None:
    attack = L2DeepFoolAttack(epsilon=1.0)
    assert (attack.steps, attack.overshoot, attack.classes) == (50, 0.02, 10)


def test_deepfool_refuses_a_target(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    with pytest.raises(ValidationError, match="untargeted"):
        L2DeepFoolAttack(epsilon=1.0)(digits_model, x, y, target=(y + 1) % 10)


@pytest.mark.parametrize("cls", [L2DeepFoolAttack, LinfDeepFoolAttack])
def test_deepfool_finds_minimal_adversarials_with_a_loose_budget(
    cls: type[L2DeepFoolAttack],
    digits_model: TorchModel,
    digits_batch: tuple[torch.Tensor, torch.Tensor],
) -> None:
    x, y = digits_batch
    result = cls(epsilon=100.0)(digits_model, x, y)
    assert result.success_rate == 1.0
    # Samples the model already gets wrong are left alone.
    wrong = ~result.clean_correct
    assert torch.equal(result.x_adv[wrong], x[wrong])
    # Shrinking each perturbation by a third undoes most successes: they sit near the boundary.
    shrunk = x + (result.x_adv - x) * (2 / 3)
    undone = (digits_model.labels(shrunk) == y) & result.clean_correct
    assert float(undone.float().mean()) >= 0.7


def test_epsilon_caps_the_minimal_perturbation(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    x, y = x[:32], y[:32]
    loose = L2DeepFoolAttack(epsilon=100.0)(digits_model, x, y)
    tight = L2DeepFoolAttack(epsilon=0.3)(digits_model, x, y)
    assert float(tight.norms.max()) <= 0.3 + 1e-5
    assert tight.success_rate < loose.success_rate


def test_more_overshoot_means_larger_perturbations(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    x, y = x[:32], y[:32]
    small = L2DeepFoolAttack(epsilon=100.0, overshoot=0.02)(digits_model, x, y)
    large = L2DeepFoolAttack(epsilon=100.0, overshoot=0.5)(digits_model, x, y)
    assert float(large.norms.median()) > float(small.norms.median())

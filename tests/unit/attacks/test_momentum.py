import pytest
import torch
import torch.nn.functional as F

from bastion.attacks import LinfMomentumIterativeAttack
from bastion.core import ValidationError
from bastion.models import TorchModel


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"steps": 0}, "steps"),
        ({"decay": -0.1}, "decay"),
        ({"decay": True}, "decay"),
        ({"stepsize": -1.0}, "stepsize"),
    ],
)
def test_mifgsm_validates_hyperparameters(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        LinfMomentumIterativeAttack(epsilon=0.1, **kwargs)  # type: ignore[arg-type]


def test_defaults_are_the_papers() -> None:
    attack = LinfMomentumIterativeAttack(epsilon=0.3)
    assert (attack.steps, attack.decay) == (10, 1.0)
    assert attack.stepsize == pytest.approx(0.03)


def test_zero_decay_is_iterative_fgsm(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """With mu = 0 the update is I-FGSM (Kurakin et al. 2017), which we write out by hand."""
    x, y = digits_batch
    eps, steps = 0.1, 4
    result = LinfMomentumIterativeAttack(epsilon=eps, steps=steps, decay=0.0)(digits_model, x, y)
    adv = x.clone()
    for _ in range(steps):
        z = adv.clone().requires_grad_(True)
        loss = F.cross_entropy(digits_model.logits(z), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, z)
        adv = (x + (adv + eps / steps * grad.sign() - x).clamp(-eps, eps)).clamp(0, 1)
    assert torch.allclose(result.x_adv, adv, atol=1e-6)


def test_momentum_changes_the_path(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    plain = LinfMomentumIterativeAttack(epsilon=0.1, steps=5, decay=0.0)(digits_model, x, y)
    momentum = LinfMomentumIterativeAttack(epsilon=0.1, steps=5)(digits_model, x, y)
    assert not torch.equal(plain.x_adv, momentum.x_adv)
    assert momentum.queries == 5 * x.shape[0]


def test_targeted_mifgsm_reaches_the_target(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    target = (y + 1) % 10
    result = LinfMomentumIterativeAttack(epsilon=0.3, steps=10)(digits_model, x, y, target=target)
    assert result.success_rate >= 0.8
    assert torch.equal(result.success, digits_model.labels(result.x_adv) == target)

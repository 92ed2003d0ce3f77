import pytest
import torch

from bastion.attacks import L2CarliniWagnerAttack
from bastion.core import ValidationError
from bastion.models import TorchModel

QUICK = {"steps": 50, "binary_search_steps": 3, "lr": 0.1, "initial_const": 1.0}


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"binary_search_steps": 0}, "binary_search_steps"),
        ({"steps": 0}, "steps"),
        ({"lr": 0.0}, "lr"),
        ({"initial_const": 0.0}, "initial_const"),
        ({"confidence": -1.0}, "confidence"),
        ({"abort_early": 1}, "abort_early"),
    ],
)
def test_cw_validates_hyperparameters(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        L2CarliniWagnerAttack(epsilon=1.0, **kwargs)  # type: ignore[arg-type]


def test_defaults_are_the_authors() -> None:
    attack = L2CarliniWagnerAttack(epsilon=1.0)
    assert (attack.binary_search_steps, attack.steps, attack.lr) == (9, 10_000, 0.01)
    assert (attack.initial_const, attack.confidence, attack.abort_early) == (1e-3, 0.0, True)


def test_targeted_cw_reaches_the_target(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    x, y = x[:32], y[:32]
    target = (y + 1) % 10
    result = L2CarliniWagnerAttack(epsilon=5.0, **QUICK)(digits_model, x, y, target=target)  # type: ignore[arg-type]
    assert result.threat_model.targeted
    assert result.success_rate >= 0.9
    assert torch.equal(result.success, digits_model.labels(result.x_adv) == target)


def test_confidence_is_kept(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """With confidence kappa, every adversarial beats the true logit by at least kappa."""
    x, y = digits_batch
    x, y = x[:32], y[:32]
    kappa = 2.0
    result = L2CarliniWagnerAttack(epsilon=10.0, confidence=kappa, **QUICK)(digits_model, x, y)  # type: ignore[arg-type]
    plain = L2CarliniWagnerAttack(epsilon=10.0, **QUICK)(digits_model, x, y)  # type: ignore[arg-type]
    logits = digits_model.logits(result.x_adv).detach()
    true = logits.gather(1, y[:, None]).squeeze(1)
    best_other = logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    hit = result.success & result.clean_correct
    assert float(hit.float().mean()) >= 0.8
    assert bool((best_other[hit] - true[hit] >= kappa - 1e-3).all())
    # Demanding confidence costs distance.
    both = hit & plain.success
    assert float(result.norms[both].median()) > float(plain.norms[both].median())


def test_unbroken_samples_come_back_unchanged(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    x, y = x[:16], y[:16]
    # One step with a tiny constant cannot break anything.
    result = L2CarliniWagnerAttack(epsilon=1.0, steps=1, binary_search_steps=1)(digits_model, x, y)
    failed = ~result.success
    assert bool(failed[result.clean_correct].all())
    assert torch.equal(result.x_adv[failed], x[failed])


def test_cw_leaves_the_models_parameter_gradients_alone(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    for p in digits_model.module.parameters():
        p.grad = None
    L2CarliniWagnerAttack(epsilon=1.0, binary_search_steps=1, steps=3)(digits_model, x[:8], y[:8])
    assert all(p.grad is None for p in digits_model.module.parameters())

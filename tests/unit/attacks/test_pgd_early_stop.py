import pytest
import torch

from bastion.attacks import L2PGD, PGD
from bastion.core import ValidationError
from bastion.models import TorchModel


def test_early_stop_is_validated_and_off_by_default() -> None:
    assert PGD(epsilon=0.1).early_stop is False
    with pytest.raises(ValidationError, match="early_stop"):
        PGD(epsilon=0.1, early_stop=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", [PGD, L2PGD])
def test_early_stop_keeps_every_success_and_saves_queries(
    cls: type[PGD], digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    x, y = x[:32], y[:32]
    eps = 0.15 if cls is PGD else 1.0
    plain = cls(epsilon=eps, steps=10, seed=4)(digits_model, x, y)
    early = cls(epsilon=eps, steps=10, seed=4, early_stop=True)(digits_model, x, y)
    # Same path until a sample first succeeds, then frozen there: no success is lost.
    assert bool((early.success | ~plain.success).all())
    assert early.queries < plain.queries
    assert float(early.norms.max()) <= eps + 1e-5


def test_targeted_early_stop_freezes_at_the_target(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    target = (y + 1) % 10
    result = PGD(epsilon=0.3, steps=20, early_stop=True)(digits_model, x, y, target=target)
    assert result.success_rate >= 0.8
    assert torch.equal(result.success, digits_model.labels(result.x_adv) == target)

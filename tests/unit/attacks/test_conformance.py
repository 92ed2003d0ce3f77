"""Every registered attack keeps the attack contract (bastion.testing.check_attack)."""

import pytest
import torch

from bastion.attacks import ATTACKS
from bastion.models import TorchModel
from bastion.testing import ConformanceError, check_attack


@pytest.mark.parametrize("attack_id", sorted(ATTACKS))
def test_registered_attack_conforms(
    attack_id: str, digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    cls = ATTACKS[attack_id]
    epsilon = 0.1 if cls.norm.value == "linf" else 1.0
    kwargs = {"steps": 5} if "pgd" in attack_id else {}
    result = check_attack(cls(epsilon=epsilon, **kwargs), digits_model, x[:16], y[:16])
    assert result.attack == attack_id


def test_check_attack_catches_an_attack_that_breaks_the_budget(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """The kit must fail for a broken attack, or it proves nothing."""
    from bastion.attacks import FGSM

    class Sloppy(FGSM):
        def run(self, model, x, y, target, generator):  # type: ignore[no-untyped-def]
            torch.rand(1)  # consumes the global RNG: a determinism leak
            return super().run(model, x, y, target, generator)

    x, y = digits_batch
    with pytest.raises(ConformanceError, match="global torch RNG"):
        check_attack(Sloppy(epsilon=0.1), digits_model, x[:8], y[:8])

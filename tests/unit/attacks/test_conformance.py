"""Every registered attack keeps the attack contract (bastion.testing.check_attack)."""

import pytest
import torch

from bastion.attacks import ATTACKS
from bastion.models import TorchModel
from bastion.testing import ConformanceError, check_attack

# Fast settings per attack for the contract check (the quality tests use real settings).
# Every registered attack needs an entry: epsilon plus whatever keeps it quick.
FAST: dict[str, dict[str, object]] = {
    "fgsm-linf": {"epsilon": 0.1},
    "fgm-l2": {"epsilon": 1.0},
    "pgd-linf": {"epsilon": 0.1, "steps": 5},
    "pgd-l2": {"epsilon": 1.0, "steps": 5},
    "apgd-ce-linf": {"epsilon": 0.1, "steps": 5},
    "apgd-ce-l2": {"epsilon": 1.0, "steps": 5},
    "apgd-dlr-linf": {"epsilon": 0.1, "steps": 5},
    "apgd-dlr-l2": {"epsilon": 1.0, "steps": 5},
    "apgd-t-linf": {"epsilon": 0.1, "steps": 5, "target_classes": 2},
    "apgd-t-l2": {"epsilon": 1.0, "steps": 5, "target_classes": 2},
    "mifgsm-linf": {"epsilon": 0.1, "steps": 5},
    "deepfool-l2": {"epsilon": 1.0, "steps": 5},
    "deepfool-linf": {"epsilon": 0.1, "steps": 5},
    "fab-t-linf": {"epsilon": 0.1, "steps": 3, "target_classes": 2},
    "fab-t-l2": {"epsilon": 1.0, "steps": 3, "target_classes": 2},
    "cw-l2": {"epsilon": 1.0, "steps": 10, "binary_search_steps": 2},
    # Query-based attacks: a short budget gives a clean partial result (the kit checks it).
    "square-linf": {"epsilon": 0.1, "max_queries": 20},
    "square-l2": {"epsilon": 1.0, "max_queries": 20},
    "simba-dct-l2": {"epsilon": 1.0, "max_queries": 20},
    "nes-linf": {"epsilon": 0.1, "max_queries": 50, "samples": 10},
    "hsj-l2": {"epsilon": 1.0, "max_queries": 60, "init_evals": 10},
    "hsj-linf": {"epsilon": 0.1, "max_queries": 60, "init_evals": 10},
    "boundary-l2": {"epsilon": 1.0, "max_queries": 60},
    "jsma-l0": {"epsilon": 8, "gamma": 0.15},
    "pgd-l1": {"epsilon": 3.0, "steps": 5},
    "sign-opt-l2": {"epsilon": 1.0, "max_queries": 300, "k": 20},
    "fab-linf": {"epsilon": 0.1, "steps": 3},
    "fab-l2": {"epsilon": 1.0, "steps": 3},
    "transfer-mifgsm-linf": {"epsilon": 0.1, "substitute_epochs": 2, "train_epochs": 2},
    "transfer-pgd-linf": {"epsilon": 0.1, "steps": 5, "substitute_epochs": 2, "train_epochs": 2},
    "eot-pgd-linf": {"epsilon": 0.1, "steps": 3, "eot_samples": 2},
    "bpda-pgd-linf": {"epsilon": 0.1, "steps": 5},
    "eot-pgd-l2": {"epsilon": 1.0, "steps": 3, "eot_samples": 2},
    "bpda-pgd-l2": {"epsilon": 1.0, "steps": 5},
    "transfer-pgd-l2": {"epsilon": 1.0, "steps": 5, "substitute_epochs": 2, "train_epochs": 2},
}


def test_every_registered_attack_has_fast_settings() -> None:
    assert set(FAST) == set(ATTACKS)


@pytest.mark.parametrize("attack_id", sorted(ATTACKS))
def test_registered_attack_conforms(
    attack_id: str, digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    attack = ATTACKS[attack_id](**FAST.get(attack_id, {"epsilon": 0.1}))  # type: ignore[arg-type]
    result = check_attack(attack, digits_model, x[:16], y[:16])
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

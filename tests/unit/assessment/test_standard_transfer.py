"""The standard evaluation's optional transfer member and its gradient-masking alarm."""

import pytest
import torch

from bastion.assessment.standard import standard_evaluation
from bastion.core import ValidationError
from bastion.models import TorchModel
from bastion.models.preprocessed import PreprocessedModel

FAST = {"apgd-ce-linf": {"steps": 10}, "transfer-mifgsm-linf": {"substitute_epochs": 3}}


def test_a_transfer_attack_that_beats_the_gradient_attacks_is_flagged(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """Rounding zeroes the gradients: APGD-CE breaks (almost) nothing, the transfer attack
    trained on the labels breaks many (measured: 2 and 33 of 64 at epsilon 0.2)."""
    x, y = digits_batch
    masked = PreprocessedModel(digits_model, lambda z: torch.round(z * 4) / 4)
    result = standard_evaluation(
        masked, x, y, epsilon=0.2, attacks=("apgd-ce-linf",), overrides=FAST, transfer=True
    )
    white, transfer = result.stages
    assert transfer["attack"] == "transfer-mifgsm-linf"
    assert white["broken"] <= 3  # rounding alone flips a point or two; gradients are all zero
    assert transfer["broken"] >= 0.25 * len(y)
    assert transfer["queries"] > 0
    assert len(result.warnings) == 1 and "transfer-mifgsm-linf" in result.warnings[0]
    assert any(f.leaf == "evasion.adaptive" for f in result.findings())


def test_transfer_is_off_by_default_validated_and_l2_uses_transfer_pgd(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    plain = standard_evaluation(
        digits_model, x[:8], y[:8], epsilon=0.1, attacks=("fgsm-linf",), overrides=FAST
    )
    assert [s["attack"] for s in plain.stages] == ["fgsm-linf"]
    with pytest.raises(ValidationError, match="transfer"):
        standard_evaluation(digits_model, x, y, epsilon=0.1, transfer=1)  # type: ignore[arg-type]
    l2 = standard_evaluation(
        digits_model,
        x[:8],
        y[:8],
        epsilon=1.0,
        norm="l2",
        attacks=("fgm-l2",),
        transfer=True,
        overrides={"transfer-pgd-l2": {"steps": 5, "substitute_epochs": 1, "train_epochs": 2}},
    )
    assert [s["attack"] for s in l2.stages] == ["fgm-l2", "transfer-pgd-l2"]

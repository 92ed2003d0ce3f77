"""The standard evaluation: cascade, per-sample worst case, and the gradient-masking alarms."""

import pytest
import torch

from bastion.assessment.standard import monotonicity_warnings, standard_evaluation
from bastion.core import Goal, SweepPoint, ValidationError
from bastion.models import TorchModel

FAST = {"apgd-ce-linf": {"steps": 10}, "square-linf": {"max_queries": 200}}
PAPER_APGD = {"square-linf": {"max_queries": 200}}  # APGD-CE with the paper's 100 steps


class _Quantised(torch.nn.Module):
    """A 'defense' that rounds its input: zero gradients everywhere (gradient masking)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x * 4) / 4)


def test_cascade_is_per_sample_worst_case(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    result = standard_evaluation(
        digits_model,
        x,
        y,
        epsilon=0.15,
        attacks=("apgd-ce-linf", "square-linf"),
        overrides=PAPER_APGD,
    )
    first, second = result.stages
    assert first["attacked"] == round(result.clean_accuracy * len(y))
    assert second["attacked"] == first["attacked"] - first["broken"]  # only the survivors
    assert result.robust_accuracy == pytest.approx(second["robust_after"])
    assert result.robust_accuracy <= result.clean_accuracy - first["broken"] / len(y) + 1e-9
    # each point's stored input is the one that broke it: the model gets those wrong
    broken = digits_model.labels(result.x_adv) != y
    assert float(1 - broken.float().mean()) == pytest.approx(result.robust_accuracy)
    assert result.warnings == ()
    finding = result.findings()[0]
    assert finding.goal is Goal.EVASION and finding.id == "evasion.standard-linf"


def test_members_the_model_cannot_serve_are_skipped_with_a_reason(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    result = standard_evaluation(
        digits_model.restricted("scores"),
        x[:16],
        y[:16],
        epsilon=0.1,
        attacks=("apgd-ce-linf", "square-linf", "fab-t-nope"),
        overrides=FAST,
    )
    assert [s["attack"] for s in result.stages] == ["square-linf"]
    assert any("needs gradients access" in s for s in result.skipped)
    assert any("not available" in s for s in result.skipped)


def test_gradient_masking_is_flagged_when_black_box_beats_white_box(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """A rounding 'defense' zeroes the gradients: APGD-CE breaks nothing, Square does."""
    x, y = digits_batch
    masked = TorchModel(
        _Quantised(digits_model.module),
        input_shape=digits_model.input_shape,
        mean=digits_model._mean.flatten().tolist(),
        std=digits_model._std.flatten().tolist(),  # type: ignore[union-attr]
    )
    result = standard_evaluation(
        masked, x, y, epsilon=0.2, attacks=("apgd-ce-linf", "square-linf"), overrides=FAST
    )
    white, black = result.stages
    assert white["broken"] <= 1  # rounding alone may flip a point; gradients are all zero
    assert black["broken"] >= 0.1 * len(y)
    assert len(result.warnings) == 1 and "square-linf" in result.warnings[0]
    assert any(f.leaf == "evasion.adaptive" for f in result.findings())


def test_epsilon_and_norm_are_validated(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    with pytest.raises(ValidationError, match="epsilon"):
        standard_evaluation(digits_model, x, y, epsilon=0.0)
    with pytest.raises(ValidationError, match="l2"):
        standard_evaluation(digits_model, x, y, epsilon=0.1, attacks=("pgd-l2",))


def _point(eps: float, acc: float) -> SweepPoint:
    return SweepPoint(
        attack="pgd-linf",
        norm="linf",
        epsilon=eps,
        samples=10,
        clean_accuracy=1.0,  # type: ignore[arg-type]
        robust_accuracy=acc,
        success_rate=1 - acc,
        mean_norm=eps,
        queries=1,
        seconds=0.1,
    )


def test_accuracy_that_rises_with_epsilon_is_reported() -> None:
    assert monotonicity_warnings([_point(0.1, 0.5), _point(0.2, 0.3)]) == []
    warnings = monotonicity_warnings([_point(0.1, 0.3), _point(0.2, 0.5)])
    assert len(warnings) == 1 and "rose from 30.0%" in warnings[0]

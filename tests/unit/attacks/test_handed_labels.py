"""The labels an attack hands to its base class (`Attack._note_labels`) spare forward passes
without changing what the result reports."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import pytest
import torch

from bastion.attacks import (
    L2CarliniWagnerAttack,
    LinfFABTargetedAttack,
    LinfFastGradientAttack,
    LinfMomentumIterativeAttack,
    LinfProjectedGradientDescentAttack,
)
from bastion.attacks.base import Attack
from bastion.core import Access, Norm
from bastion.models import TorchModel
from bastion.models.base import Model


@contextmanager
def _forwards(model: TorchModel) -> Iterator[list[int]]:
    """Counts the rows that go through the module, charged or not."""
    rows: list[int] = []
    handle = model.module.register_forward_hook(lambda _m, args, _o: rows.append(args[0].shape[0]))
    try:
        yield rows
    finally:
        handle.remove()


class _Noting(Attack):
    """Moves every input by ``shift`` and hands over ``labels`` for the chosen points."""

    id = "test-noting"
    title = "test"
    norm = Norm.LINF
    requires: ClassVar[Access] = Access.GRADIENTS
    leaf: ClassVar[str] = "evasion.white-box"

    def __init__(self, *, epsilon: float, shift: float, lie: bool, mutate: bool = False) -> None:
        super().__init__(epsilon=epsilon)
        self.shift, self.lie, self.mutate = shift, lie, mutate

    def run(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        adv = (x + self.shift).clamp(*model.bounds)
        # Deliberately wrong labels where a note must not be trusted.
        wrong = (y + 1) % model.num_classes
        self._note_labels(x, wrong if self.lie else y)
        self._note_labels(adv, wrong)
        if self.mutate:
            x.add_(0.0)  # an in-place change: the note on x no longer counts
        return adv


def _truth(model: TorchModel, x: torch.Tensor, x_adv: torch.Tensor) -> tuple[torch.Tensor, ...]:
    with model.counter.paused():
        return model.labels(x), model.labels(x_adv)


def test_labels_for_points_the_repair_changed_are_not_trusted(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    # The shift overshoots the budget, so the repair changes every row the note named.
    attack = _Noting(epsilon=0.05, shift=0.3, lie=False)
    with _forwards(digits_model) as rows:
        result = attack(digits_model, x.clone(), y)
    _, adv = _truth(digits_model, x, result.x_adv)
    assert torch.equal(result.success, adv != y)
    assert sum(rows) == x.shape[0]  # only the adversarial rows were measured


def test_clean_labels_are_reused_and_an_in_place_change_voids_them(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    honest = _Noting(epsilon=0.05, shift=0.3, lie=False)
    assert bool(honest(digits_model, x.clone(), y).clean_correct.all())  # took the note
    lying = _Noting(epsilon=0.05, shift=0.3, lie=True, mutate=True)
    result = lying(digits_model, x.clone(), y)
    clean, _ = _truth(digits_model, x, result.x_adv)
    assert torch.equal(result.clean_correct, clean == y)


def test_notes_are_ignored_on_a_model_that_is_not_a_plain_torch_model(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    view = digits_model.restricted("gradients")
    result = _Noting(epsilon=0.05, shift=0.3, lie=True)(view, x.clone(), y)
    clean, adv = _truth(digits_model, x, result.x_adv)
    assert torch.equal(result.clean_correct, clean == y)
    assert torch.equal(result.success, adv != y)


@pytest.mark.parametrize(
    "attack",
    [
        LinfFastGradientAttack(epsilon=0.1, batch_size=24),
        LinfMomentumIterativeAttack(epsilon=0.1, steps=3, batch_size=24),
        LinfProjectedGradientDescentAttack(epsilon=0.1, steps=3, random_start=False),
        LinfProjectedGradientDescentAttack(epsilon=0.1, steps=5, early_stop=True, restarts=2),
        LinfFABTargetedAttack(epsilon=0.1, steps=5, target_classes=2, batch_size=24),
        L2CarliniWagnerAttack(
            epsilon=1.0, binary_search_steps=2, steps=10, lr=0.5, initial_const=1.0, batch_size=24
        ),
    ],
    ids=["fgsm", "mifgsm", "pgd", "pgd-early-stop", "fab-t", "cw"],
)
def test_attacks_that_hand_over_labels_report_what_the_model_says(
    attack: Attack,
    digits_model: TorchModel,
    digits_batch: tuple[torch.Tensor, torch.Tensor],
) -> None:
    x, y = digits_batch
    with _forwards(digits_model) as rows:
        result = attack(digits_model, x, y)
        spent = result.queries
    clean, adv = _truth(digits_model, x, result.x_adv)
    assert torch.equal(result.clean_correct, clean == y)
    assert torch.equal(result.success, adv != y)
    # Fewer than the two full uncharged passes the base class would otherwise make.
    assert sum(rows) - spent < 2 * x.shape[0]

"""`Attack.generate`: the call's examples, bit for bit, without the success measurement."""

from __future__ import annotations

import pytest
import torch

from bastion.attacks import get_attack
from bastion.core.errors import AccessError, BoundsError, ValidationError
from bastion.models import TorchModel


class _Counting(torch.nn.Module):
    """Counts forward passes (rows) through the wrapped network, charged or not."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.rows = 0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.rows += z.shape[0]
        out: torch.Tensor = self.inner(z)
        return out


@pytest.fixture
def counted(digits_entry):  # type: ignore[no-untyped-def]
    net = _Counting(digits_entry.model)
    return net, TorchModel(net, **digits_entry.adapter_options())


@pytest.mark.parametrize(
    ("attack_id", "options"),
    [("fgsm-linf", {}), ("pgd-linf", {"steps": 5}), ("pgd-l2", {"steps": 5, "epsilon": 1.0})],
)
def test_generate_matches_the_call_and_skips_the_success_pass(
    counted, digits_batch, attack_id, options
):  # type: ignore[no-untyped-def]
    net, model = counted
    x, y = digits_batch
    attack = get_attack(attack_id)(**{"epsilon": 0.1, **options})
    net.rows = 0
    result = attack(model, x, y)
    call_rows = net.rows
    net.rows = 0
    before = model.counter.count
    adv = attack.generate(model, x, y)
    assert torch.equal(adv, result.x_adv)
    assert adv.dtype == torch.float32 and adv.device.type == "cpu"
    assert model.counter.count - before == result.queries
    # The attack's own passes are charged; generate makes no uncharged pass on top of them,
    # where the call measured at least the returned examples once more.
    assert net.rows == result.queries
    assert call_rows >= result.queries + x.shape[0]


def test_generate_validates_like_the_call(digits_model, digits_batch):  # type: ignore[no-untyped-def]
    x, y = digits_batch
    attack = get_attack("fgsm-linf")(epsilon=0.1)
    with pytest.raises(BoundsError):
        attack.generate(digits_model, x + 2.0, y)
    with pytest.raises(ValidationError, match="target"):
        attack.generate(digits_model, x, y, target=y)
    with pytest.raises(AccessError, match="gradients"):
        attack.generate(digits_model.restricted("labels"), x, y)


def test_a_budget_that_runs_out_keeps_the_finished_batches(digits_entry, digits_batch):  # type: ignore[no-untyped-def]
    x, y = digits_batch  # 64 digits, attacked in batches of 16
    attack = get_attack("pgd-linf")(epsilon=0.1, steps=5, batch_size=16)
    free = attack(TorchModel(digits_entry.model, **digits_entry.adapter_options()), x, y)
    per_batch = free.queries // 4
    budget = 2 * per_batch + per_batch // 2  # two batches, and half of the third
    model = TorchModel(digits_entry.model, budget=budget, **digits_entry.adapter_options())
    result = attack(model, x, y)
    assert result.unattacked == 32
    assert result.budget_exhausted
    assert torch.equal(result.x_adv[:32], free.x_adv[:32])  # the finished work, kept
    assert torch.equal(result.x_adv[32:], x[32:])  # the rest returned as it came
    assert result.queries == model.counter.count <= budget
    assert result.summary()["unattacked"] == 32
    # The success of the kept rows is measured as usual; the clean rows are judged as inputs.
    assert torch.equal(result.success[:32], free.success[:32])


def test_a_budget_too_small_for_the_first_batch_raises(digits_entry, digits_batch):  # type: ignore[no-untyped-def]
    from bastion.core.errors import QueryBudgetExceeded

    x, y = digits_batch
    model = TorchModel(digits_entry.model, budget=10, **digits_entry.adapter_options())
    with pytest.raises(QueryBudgetExceeded):
        get_attack("pgd-linf")(epsilon=0.1, steps=5, batch_size=16)(model, x, y)
    assert model.counter.count <= 10

"""Every registered attack creates its tensors where its data lives (CPU or CUDA alike).

No GPU is needed: the attacks run on a CPU model and CPU data while the default device is
``meta``. A tensor created without ``device=`` then lands on the meta device, and the first op
that mixes it with the real data raises, exactly where on CUDA the same bug would put a CPU
tensor next to CUDA data. Query bookkeeping meant for the CPU must say ``device="cpu"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import pytest
import torch
from test_conformance import FAST
from test_constraints import _inputs, _spec
from torch import nn

from bastion.assessment.standard import TRANSFER_ATTACKS, standard_evaluation
from bastion.attacks import ATTACKS, norms
from bastion.attacks.base import Attack
from bastion.attacks.evasion._blackbox import QueryTracker
from bastion.core import AttackResult, ValidationError
from bastion.core.constraints import FeatureConstraints
from bastion.core.threat_model import Access, Norm
from bastion.models import TorchModel
from bastion.models.base import Model

# Attacks that refuse inputs that are not images (checked under the harness all the same).
IMAGE_ONLY = frozenset({"square-linf", "square-l2", "simba-dct-l2"})
# What the harness raises when a tensor lands on the default (meta) device by mistake.
DEVICE_BUG = (RuntimeError, NotImplementedError)


@contextmanager
def stray_tensors_on_meta() -> Iterator[None]:
    """Make every tensor created without ``device=`` a meta tensor inside the block."""
    previous = torch.get_default_device()
    torch.set_default_device("meta")
    try:
        yield
    finally:
        torch.set_default_device(None if previous.type == "cpu" else previous)


def _check_result(result: AttackResult, x: torch.Tensor, model: Model, epsilon: float) -> None:
    """On the CPU, finite, within the model's bounds and the attack's epsilon-ball."""
    for name in ("x_adv", "success", "clean_correct", "norms"):
        assert getattr(result, name).device.type == "cpu", name
    adv = result.x_adv
    assert adv.shape == x.shape
    assert bool(torch.isfinite(adv).all())
    low, high = model.bounds
    assert bool((adv >= low - 1e-6).all() and (adv <= high + 1e-6).all())
    size = norms.lp_norm(adv - x, result.threat_model.norm)
    assert bool((size <= epsilon * (1 + 1e-5) + 1e-6).all())


def test_the_harness_is_active_and_reset() -> None:
    with stray_tensors_on_meta():
        assert torch.zeros(1).device.type == "meta"
    assert torch.zeros(1).device.type == "cpu"


# --- every registered attack, on the digits CNN ----------------------------------------------
@pytest.mark.parametrize("attack_id", sorted(ATTACKS))
def test_attack_creates_no_tensor_off_its_data_device(
    attack_id: str, digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch[0][:8], digits_batch[1][:8]
    settings = FAST[attack_id]
    attack = ATTACKS[attack_id](**settings)  # type: ignore[arg-type]
    epsilon = float(settings["epsilon"])  # type: ignore[arg-type]
    target = (y + 1) % digits_model.num_classes
    targeted: AttackResult | None = None
    with stray_tensors_on_meta():
        result = attack(digits_model, x, y)
        examples = attack.generate(digits_model, x.numpy(), y.numpy())  # numpy in: CPU too
        try:
            targeted = attack(digits_model, x, y, target=target)
        except ValidationError as exc:  # an untargeted-only attack refuses, and says why
            assert "target" in str(exc)
    _check_result(result, x, digits_model, epsilon)
    assert examples.device.type == "cpu"
    assert torch.equal(examples, result.x_adv)  # same seed, same examples
    if targeted is not None:
        _check_result(targeted, x, digits_model, epsilon)


# --- tabular inputs under FeatureConstraints --------------------------------------------------
def _tabular() -> tuple[TorchModel, torch.Tensor, FeatureConstraints]:
    """An untrained 7-feature, 4-class MLP on [0, 5], 8 inputs and the rules they obey (the
    inputs and rules of test_constraints)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(7, 16), nn.ReLU(), nn.Linear(16, 4))
    model = TorchModel(net.eval(), input_shape=(7,), num_classes=4, bounds=(0.0, 5.0))
    return model, _inputs(8), _spec()


@pytest.mark.parametrize("attack_id", sorted(ATTACKS))
def test_attack_with_constraints_creates_no_tensor_off_its_data_device(attack_id: str) -> None:
    model, x, spec = _tabular()
    y = model.labels(x)
    settings = FAST[attack_id]
    attack = ATTACKS[attack_id](**settings)  # type: ignore[arg-type]
    if attack_id in IMAGE_ONLY:
        with stray_tensors_on_meta(), pytest.raises(ValidationError, match="images"):
            attack(model, x, y, constraints=spec)
        return
    with stray_tensors_on_meta():
        result = attack(model, x, y, constraints=spec)
    _check_result(result, x, model, float(settings["epsilon"]))  # type: ignore[arg-type]
    adv = result.x_adv
    assert torch.equal(adv[:, 0], x[:, 0])  # immutable
    assert torch.equal(adv[:, 1], adv[:, 1].round())  # integer
    assert bool((adv[:, 2] >= 1.0).all() and (adv[:, 2] <= 4.0).all())  # per-feature bounds
    assert bool(torch.isin(adv[:, 6], torch.tensor([0.0, 1.5, 3.0, 4.5])).all())  # categorical
    hot = adv[:, 3:6]
    assert bool((((hot == 0) | (hot == 1)).all(dim=1) & (hot.sum(dim=1) == 1)).all())  # one-hot


# --- the pieces the attacks share ------------------------------------------------------------
def test_query_bookkeeping_lives_on_the_cpu(digits_model: TorchModel) -> None:
    with stray_tensors_on_meta():
        tracker = QueryTracker(digits_model, 3, 2, stop_at_budget=True)
        idx = torch.arange(3, device=digits_model.device)
        kept = tracker.afford(idx, 2)
        tracker.charge(kept, 2)
        stopped = tracker.stopped_by_budget()
    assert kept.tolist() == [0, 1, 2]
    assert tracker.used.device.type == "cpu" and tracker.used.tolist() == [2, 2, 2]
    assert stopped.device.type == "cpu" and stopped.tolist() == [True, True, True]


def test_substitute_is_built_on_the_model_device(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    attack = ATTACKS["transfer-pgd-linf"](**FAST["transfer-pgd-linf"])  # type: ignore[arg-type]
    generator = torch.Generator(device=digits_model.device).manual_seed(0)
    with stray_tensors_on_meta():
        substitute, _ = attack.train_substitute(  # type: ignore[attr-defined]
            digits_model, digits_batch[0][:8], generator
        )
    assert substitute is not None
    devices = {t.device for t in (*substitute.module.parameters(), *substitute.module.buffers())}
    assert devices == {digits_model.device}


def test_standard_evaluation_creates_no_tensor_off_its_data_device(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch[0][:8], digits_batch[1][:8]
    members = ["apgd-ce-linf", "apgd-t-linf", "fab-t-linf", "square-linf"]
    members.append(TRANSFER_ATTACKS[Norm.LINF])
    fast = {a: {k: v for k, v in FAST[a].items() if k != "epsilon"} for a in members}
    with stray_tensors_on_meta():
        evaluation = standard_evaluation(
            digits_model, x, y, epsilon=0.05, overrides=fast, transfer=True
        )
    assert [s["attack"] for s in evaluation.stages] == members
    assert all(s["attacked"] > 0 for s in evaluation.stages)  # every member really ran
    assert evaluation.x_adv is not None and evaluation.x_adv.device.type == "cpu"
    assert bool((evaluation.x_adv - x).abs().max() <= 0.05 + 1e-6)


# --- the check itself can fail ---------------------------------------------------------------
class _Careless(Attack):
    """Adds noise built without ``device=``: fine on a CPU-only run, a crash on CUDA."""

    id = "test-careless"
    title = "careless"
    norm: ClassVar[Norm] = Norm.LINF
    requires: ClassVar[Access] = Access.LABELS
    leaf: ClassVar[str] = "evasion.decision-based"

    def run(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        return x + torch.full(x.shape, self.epsilon)


def test_harness_catches_a_tensor_created_without_a_device(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch[0][:8], digits_batch[1][:8]
    attack = _Careless(epsilon=0.1)
    _check_result(attack(digits_model, x, y), x, digits_model, 0.1)  # passes on the CPU alone
    with stray_tensors_on_meta(), pytest.raises(DEVICE_BUG, match="meta"):
        attack(digits_model, x, y)

"""`FeatureConstraints`: validation, the input check, per-step projection, the final repair,
and the `budget_exhausted` flag, on tiny untrained models (no zoo training)."""

from __future__ import annotations

import json
import math
from typing import ClassVar

import pytest
import torch
from torch import nn

from bastion.attacks import (
    L2ProjectedGradientDescentAttack,
    LinfAPGDCEAttack,
    LinfFastGradientAttack,
    LinfMomentumIterativeAttack,
    LinfNESAttack,
    LinfProjectedGradientDescentAttack,
)
from bastion.attacks.base import Attack
from bastion.attacks.constraints import ActiveConstraints
from bastion.attacks.evasion._blackbox import QueryTracker
from bastion.core import AttackResult, ShapeError, ThreatModel, ValidationError
from bastion.core.constraints import FeatureConstraints
from bastion.core.threat_model import Access, Norm
from bastion.models import TorchModel
from bastion.models.base import Model

NAMES = ("age", "count", "score", "cat_a", "cat_b", "cat_c", "level")


def _model(features: int = 7, bounds: tuple[float, float] = (0.0, 5.0)) -> TorchModel:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(features, 16), nn.ReLU(), nn.Linear(16, 3))
    return TorchModel(net.eval(), input_shape=(features,), num_classes=3, bounds=bounds)


def _spec(**overrides: object) -> FeatureConstraints:
    kwargs: dict[str, object] = {
        "num_features": 7,
        "immutable": [0],
        "integer": [1],
        "lower": {2: 1.0},
        "upper": {2: 4.0},
        "one_hot": [[3, 4, 5]],
        "categorical": {6: [0.0, 1.5, 3.0, 4.5]},
        "feature_names": NAMES,
    }
    kwargs.update(overrides)
    return FeatureConstraints(**kwargs)  # type: ignore[arg-type]


def _inputs(n: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 7, generator=g) * 5
    x[:, 1] = torch.randint(0, 6, (n,), generator=g).float()
    x[:, 2] = 1.0 + torch.rand(n, generator=g) * 3
    x[:, 3:6] = 0.0
    x[torch.arange(n), 3 + torch.randint(0, 3, (n,), generator=g)] = 1.0
    x[:, 6] = torch.tensor([0.0, 1.5, 3.0, 4.5])[torch.randint(0, 4, (n,), generator=g)]
    return x


def _violations(x: torch.Tensor, adv: torch.Tensor, spec: FeatureConstraints) -> list[str]:
    """Every broken rule, checked directly from the spec (independent of the code under test)."""
    bad = []
    for r in range(x.shape[0]):
        a, c = adv[r].tolist(), x[r].tolist()
        bad += [f"{r}: immutable {i}" for i in spec.immutable if a[i] != c[i]]
        bad += [f"{r}: integer {i}" for i in spec.integer if a[i] != math.floor(a[i])]
        bad += [
            f"{r}: bounds {i}"
            for i in range(spec.num_features)
            if not spec.lower[i] <= a[i] <= spec.upper[i]
        ]
        bad += [
            f"{r}: categorical {i}" for i, values in spec.categorical if float(a[i]) not in values
        ]
        for group in spec.one_hot:
            values = sorted(a[i] for i in group)
            if values != [0.0] * (len(group) - 1) + [1.0]:
                bad.append(f"{r}: one-hot {group}")
    return bad


class _Noise(Attack):
    """Returns large random noise: the repair alone must make it satisfy the constraints."""

    id = "test-noise"
    title = "noise"
    requires: ClassVar[Access] = Access.LABELS
    leaf: ClassVar[str] = "evasion.decision-based"
    norm: ClassVar[Norm] = Norm.L2

    def __init__(self, *, epsilon: float, fail: bool = False) -> None:
        super().__init__(epsilon=epsilon)
        self.fail = fail

    def run(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        if self._constraints is None:
            raise RuntimeError("the call did not expose the constraints to run")
        if self.fail:
            raise RuntimeError("run failed")
        noise = torch.randn(x.shape, generator=generator, device=x.device)
        return x + 3 * noise


# --- validation ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"num_features": 0}, "num_features"),
        ({"immutable": [7]}, r"immutable\[0\]"),
        ({"immutable": [-1]}, "immutable"),
        ({"immutable": [True]}, "immutable"),
        ({"immutable": [0, 0]}, "without repeats"),
        ({"integer": "1"}, "integer"),
        ({"lower": {2: 5.0}}, r"lower\[2\]"),
        ({"lower": {2: float("nan")}}, r"lower\[2\]"),
        ({"upper": {9: 1.0}}, "upper key"),
        ({"upper": [1.0, 2.0]}, "num_features=7"),
        ({"one_hot": [[3, 4], [4, 5]]}, "disjoint groups"),
        ({"one_hot": [[3]]}, "at least 2"),
        ({"immutable": [3]}, "disjoint from one_hot"),
        ({"integer": [6]}, "disjoint from categorical"),
        ({"categorical": {6: []}}, "non-empty"),
        ({"categorical": {6: [0.0, float("inf")]}}, "finite"),
        ({"categorical": {2: [0.0, 2.0]}}, r"categorical\[2\]"),
        ({"feature_names": ("a", "b")}, "feature_names"),
        ({"lower": {3: 2.0, 4: 2.0, 5: 2.0}}, r"one_hot\[0\]"),
    ],
)
def test_constraints_validate(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        _spec(**kwargs)


def test_constraints_are_normalised_and_json_ready() -> None:
    spec = _spec(integer=[1], immutable=(0,))
    assert spec.lower[2] == 1.0 and spec.lower[0] == -math.inf and len(spec.upper) == 7
    assert spec.one_hot == ((3, 4, 5),)
    assert spec.categorical == ((6, (0.0, 1.5, 3.0, 4.5)),)
    assert spec.name(0) == "feature 0 ('age')"
    data = json.loads(json.dumps(spec.to_dict(), allow_nan=False))
    assert data["lower"][0] is None and data["upper"][2] == 4.0
    with pytest.raises(AttributeError):
        spec.num_features = 3  # type: ignore[misc]


def test_constraints_must_fit_the_model() -> None:
    model = _model()
    with pytest.raises(ShapeError, match="num_features"):
        ActiveConstraints.compile(_spec(num_features=8, feature_names=None), model)
    with pytest.raises(ValidationError, match="FeatureConstraints"):
        ActiveConstraints.compile({"immutable": [0]}, model)
    spec = FeatureConstraints(num_features=7, lower={2: 6.0}, upper={2: 7.0})
    with pytest.raises(ValidationError, match="feature 2"):
        ActiveConstraints.compile(spec, model)


@pytest.mark.parametrize(
    ("column", "value", "fragment"),
    [
        (1, 2.5, "integer feature 1 \\('count'\\) = 2.5"),
        (2, 0.5, "'score'\\) = 0.5 below its lower bound"),
        (6, 2.0, "categorical feature 6 \\('level'\\)"),
        (4, 1.0, r"not one-hot on group one_hot\[0\]"),
    ],
)
def test_inputs_must_satisfy_the_constraints(column: int, value: float, fragment: str) -> None:
    x = _inputs(4)
    x[2, column] = value
    with pytest.raises(ValidationError, match=r"x\[2\] .*" + fragment):
        attack = LinfFastGradientAttack(epsilon=0.1)
        attack(_model(), x, torch.zeros(4, dtype=torch.long), constraints=_spec())


# --- the final repair ------------------------------------------------------------------------
def test_repair_rounds_towards_the_clean_value() -> None:
    active = ActiveConstraints.compile(_spec(), _model())
    x = torch.tensor([[1.0, 1.0, 2.0, 1.0, 0.0, 0.0, 1.5], [1.0, 3.0, 2.0, 0.0, 1.0, 0.0, 3.0]])
    adv = x.clone()
    adv[0, 1], adv[1, 1] = 2.7, 1.2  # deltas +1.7 and -1.8 truncate to +1 and -1
    adv[0, 6], adv[1, 6] = 4.4, 0.1  # allowed values between clean and adv nearest adv
    adv[:, 2] = torch.tensor([0.5, 4.5])  # outside the per-feature bounds [1, 4]
    out = active.repair(x, adv, Norm.LINF, 10.0)
    assert out[:, 1].tolist() == [2.0, 2.0]
    assert out[:, 6].tolist() == [3.0, 1.5]
    assert out[:, 2].tolist() == [1.0, 4.0]


def test_one_hot_changes_only_within_the_budget() -> None:
    active = ActiveConstraints.compile(_spec(), _model())
    x = torch.tensor([[1.0, 1.0, 2.0, 1.0, 0.0, 0.0, 1.5]] * 2)
    adv = x.clone()
    adv[:, 3:6] = torch.tensor([0.4, 0.9, 0.2])
    wide = active.repair(x, adv, Norm.L2, 1.5)  # sqrt(2) <= 1.5: the change fits
    assert wide[:, 3:6].tolist() == [[0.0, 1.0, 0.0]] * 2
    narrow = active.repair(x, adv, Norm.L2, 1.0)  # sqrt(2) > 1.0: back to the clean category
    assert narrow[:, 3:6].tolist() == [[1.0, 0.0, 0.0]] * 2
    capped = ActiveConstraints.compile(_spec(upper={2: 4.0, 4: 0.0}), _model())
    adv[:, 3:6] = torch.tensor([0.1, 0.9, 0.2])  # cat_b may not be 1: cat_c is next
    assert capped.repair(x, adv, Norm.L2, 1.5)[:, 3:6].tolist() == [[0.0, 0.0, 1.0]] * 2


def test_any_attack_output_is_repaired() -> None:
    x, spec = _inputs(), _spec()
    model = _model()
    attack = _Noise(epsilon=4.0)
    result = attack(model, x, torch.zeros(len(x), dtype=torch.long), constraints=spec)
    assert _violations(x, result.x_adv, spec) == []
    assert bool((result.norms <= 4.0 + 1e-5).all())
    assert bool((result.x_adv[:, 3:6] != x[:, 3:6]).any())  # some category did change
    assert attack._constraints is None


def test_constraints_reset_after_a_failing_call() -> None:
    attack = _Noise(epsilon=1.0, fail=True)
    with pytest.raises(RuntimeError, match="run failed"):
        attack(_model(), _inputs(), torch.zeros(32, dtype=torch.long), constraints=_spec())
    assert attack._constraints is None


# --- per iteration -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "attack",
    [
        LinfFastGradientAttack(epsilon=1.0),
        LinfProjectedGradientDescentAttack(epsilon=1.0, steps=5),
        LinfProjectedGradientDescentAttack(epsilon=1.0, steps=5, early_stop=True),
        L2ProjectedGradientDescentAttack(epsilon=2.0, steps=5, restarts=2),
        LinfAPGDCEAttack(epsilon=1.0, steps=5),
        LinfMomentumIterativeAttack(epsilon=1.0, steps=5),
    ],
    ids=lambda a: a.id,
)
def test_gradient_attacks_keep_immutable_features_and_bounds_every_step(attack: Attack) -> None:
    model, x, spec = _model(), _inputs(), _spec()
    y = model.labels(x)
    attack._constraints = ActiveConstraints.compile(spec, model)
    try:
        raw = attack.run(model, x, y, None, torch.Generator().manual_seed(0))
    finally:
        attack._constraints = None
    assert torch.equal(raw[:, 0], x[:, 0])
    assert bool((raw[:, 2] >= 1.0).all() and (raw[:, 2] <= 4.0).all())
    assert bool((raw[:, 1:] != x[:, 1:]).any())  # the other features did move
    result = attack(model, x, y, constraints=spec)
    assert _violations(x, result.x_adv, spec) == []


def test_nes_probes_and_steps_leave_immutable_features_alone() -> None:
    """NES (score-based) enforces the continuous constraints at every query, not only in the
    final repair: no query it sends changes an immutable feature."""
    seen: list[torch.Tensor] = []

    class Recording(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            seen.append(z.detach().clone())
            out: torch.Tensor = self.inner(z)
            return out

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(7, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    model = TorchModel(Recording(net), input_shape=(7,), num_classes=3, bounds=(0.0, 5.0))
    x, spec = _inputs(), _spec()
    x[:, 0] = 2.5  # one immutable value for all: every query must keep it
    y = model.labels(x)
    seen.clear()
    attack = LinfNESAttack(epsilon=1.0, max_queries=200, samples=10, sigma=0.1)
    result = attack(model.restricted("scores"), x, y, constraints=spec)
    rows = torch.cat(seen)
    assert rows.shape[0] >= result.queries > 0
    assert bool((rows[:, 0] == 2.5).all())
    assert _violations(x, result.x_adv, spec) == []
    # Without constraints the same attack does probe that feature.
    seen.clear()
    attack(model.restricted("scores"), x, y)
    assert bool((torch.cat(seen)[:, 0] != 2.5).any())


def test_unconstrained_pgd_is_unchanged() -> None:
    """Without constraints the step helpers are the plain projection: same result as before."""
    model, x = _model(), _inputs()
    y = model.labels(x)
    attack = L2ProjectedGradientDescentAttack(epsilon=1.0, steps=3, random_start=False)
    adv = x.clone()
    for _ in range(3):
        z = adv.clone().requires_grad_(True)
        loss = nn.functional.cross_entropy(model.logits(z), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, z)
        adv = adv + attack.stepsize * grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-12)
        delta = adv - x
        delta = delta * (1.0 / delta.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
        adv = (x + delta).clamp(0, 5)
    assert torch.allclose(attack(model, x, y).x_adv, adv, atol=1e-5)


# --- the budget flag ---------------------------------------------------------------------
def test_budget_flag_defaults_and_serialises() -> None:
    one = torch.ones(2, dtype=torch.bool)
    result = AttackResult(
        attack="x",
        threat_model=ThreatModel(norm=Norm.LINF, epsilon=0.1),
        x_adv=torch.zeros(2, 1),
        success=one,
        clean_correct=one,
        norms=torch.zeros(2),
        queries=0,
        seconds=0.0,
    )
    assert result.budget_exhausted is False
    assert json.loads(json.dumps(result.summary()))["budget_exhausted"] is False


def test_query_tracker_reports_the_samples_its_budget_stopped() -> None:
    model = _model()
    tracker = QueryTracker(model, 3, 2, stop_at_budget=True)
    idx = torch.arange(3)
    tracker.scores(_inputs(3), idx)
    assert tracker.stopped_by_budget().tolist() == [False, False, False]
    assert tracker.afford(idx, torch.tensor([1, 2, 1])).tolist() == [0, 2]
    assert tracker.stopped_by_budget().tolist() == [False, True, False]
    tracker.charge(torch.tensor([0]))
    assert tracker.stopped_by_budget().tolist() == [True, True, False]

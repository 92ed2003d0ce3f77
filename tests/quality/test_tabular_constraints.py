"""Tabular constraints hold for every attack on the embedded breast-cancer MLP (zoo
``cancer-mlp``), and the query-limited attacks say when their budget ran out.

The 143 held-out tumours (30 features in [0, 1]) are made to carry every kind of rule: features
0-2 (mean radius, texture, perimeter) immutable, 14 and 19 rounded to integers, 18 coded on
{0, 0.25, 0.5, 0.75, 1}, 15-17 replaced by a one-hot group, 3-4 clipped to [0.1, 0.6] with
those bounds. The model stays 93 % accurate on them (95 % on the original data). The Square
Attack assumes an image layout, so it runs on the same MLP seen as a 1x5x6 "image".

Measured (seed 0; ``OMP_NUM_THREADS=1 pytest tests/quality/test_tabular_constraints.py``),
success on the clean-correct samples:

==========================  ===============  =============  ==========
attack                      unconstrained    constrained    asserted
==========================  ===============  =============  ==========
PGD linf 0.1, 20 steps      82 %             72 %           >= 65 %
APGD-CE linf 0.1, 20 steps  82 %             70 %           >= 62 %
PGD l2 2.0, 20 steps        87 %             88 %           >= 80 %
==========================  ===============  =============  ==========

Budget flag: Square linf 0.1 with 5 queries/sample 16 % success, flag set; linf 0.3 with 1000
queries 100 %, flag clear. HopSkipJump l2 0.5 with 20 queries 37 %, set; l2 3.0 with 300
queries 100 %, clear. A model budget of 100 queries stops Square: flag set.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from bastion.attacks import (
    L2BoundaryAttack,
    L2HopSkipJumpAttack,
    L2ProjectedGradientDescentAttack,
    L2SignOPTAttack,
    LinfAPGDCEAttack,
    LinfMomentumIterativeAttack,
    LinfProjectedGradientDescentAttack,
    LinfSquareAttack,
)
from bastion.attacks.base import Attack
from bastion.core import ShapeError, ValidationError
from bastion.core.constraints import FeatureConstraints
from bastion.data import load_zoo_model
from bastion.data.zoo import ZooEntry
from bastion.models import TorchModel

_CODES = (0.0, 0.25, 0.5, 0.75, 1.0)


@pytest.fixture(scope="module")
def cancer_entry(zoo_cache: Path) -> ZooEntry:
    """The embedded breast-cancer MLP, trained once into the session's zoo cache."""
    return load_zoo_model("cancer-mlp", cache_dir=zoo_cache)


@pytest.fixture()
def cancer_model(cancer_entry: ZooEntry) -> TorchModel:
    """A fresh adapter (fresh query counter) over the MLP."""
    return TorchModel(cancer_entry.model, **cancer_entry.adapter_options())


class _Grid(nn.Module):
    """The MLP on inputs laid out as 1x5x6, normalisation folded in."""

    def __init__(self, entry: ZooEntry) -> None:
        super().__init__()
        self.mlp = entry.model
        self.mean = nn.Buffer(torch.tensor(entry.mean))
        self.std = nn.Buffer(torch.tensor(entry.std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x.flatten(1) - self.mean) / self.std
        return self.mlp(z)  # type: ignore[no-any-return]


def _grid_model(entry: ZooEntry, budget: int | None = None) -> TorchModel:
    return TorchModel(
        _Grid(entry), input_shape=(1, 5, 6), bounds=(0.0, 1.0), num_classes=2, budget=budget
    )


@pytest.fixture(scope="module")
def tabular(cancer_entry: ZooEntry) -> tuple[torch.Tensor, torch.Tensor, FeatureConstraints]:
    """The held-out tumours reshaped to obey the rules, their labels, and the rules."""
    x = torch.from_numpy(cancer_entry.test.x).clone()
    n = x.shape[0]
    x[:, [14, 19]] = x[:, [14, 19]].round()
    x[:, 18] = (x[:, 18] * 4).round() / 4
    hot = x[:, 15:18].argmax(dim=1)
    x[:, 15:18] = 0.0
    x[torch.arange(n), 15 + hot] = 1.0
    x[:, 3:5] = x[:, 3:5].clamp(0.1, 0.6)
    spec = FeatureConstraints(
        num_features=30,
        immutable=[0, 1, 2],
        integer=[14, 19],
        categorical={18: _CODES},
        one_hot=[[15, 16, 17]],
        lower={3: 0.1, 4: 0.1},
        upper={3: 0.6, 4: 0.6},
        feature_names=cancer_entry.test.feature_names,
    )
    return x, torch.from_numpy(cancer_entry.test.y), spec


def _violations(x: torch.Tensor, adv: torch.Tensor, spec: FeatureConstraints) -> list[str]:
    """Every broken rule, checked straight from the spec."""
    bad = []
    x, adv = x.flatten(1), adv.flatten(1)
    for r in range(x.shape[0]):
        a, c = adv[r].tolist(), x[r].tolist()
        bad += [f"{r}: immutable {i}" for i in spec.immutable if a[i] != c[i]]
        bad += [f"{r}: integer {i}" for i in spec.integer if a[i] != math.floor(a[i])]
        bad += [f"{r}: bounds {i}" for i in range(30) if not spec.lower[i] <= a[i] <= spec.upper[i]]
        bad += [f"{r}: code {i}" for i, v in spec.categorical if a[i] not in v]
        bad += [
            f"{r}: one-hot {g}"
            for g in spec.one_hot
            if sorted(a[i] for i in g) != [0.0] * (len(g) - 1) + [1.0]
        ]
    return bad


_ATTACKS = [
    LinfProjectedGradientDescentAttack(epsilon=0.1, steps=20),
    L2ProjectedGradientDescentAttack(epsilon=2.0, steps=20),
    LinfAPGDCEAttack(epsilon=0.1, steps=20),
    LinfMomentumIterativeAttack(epsilon=0.1),
    L2HopSkipJumpAttack(epsilon=0.5, max_queries=300),
    LinfSquareAttack(epsilon=0.1, max_queries=300),
]


@pytest.mark.parametrize("attack", _ATTACKS, ids=lambda a: a.id)
def test_every_example_satisfies_every_constraint(
    attack: Attack,
    cancer_entry: ZooEntry,
    cancer_model: TorchModel,
    tabular: tuple[torch.Tensor, torch.Tensor, FeatureConstraints],
) -> None:
    x, y, spec = tabular
    model = cancer_model
    if isinstance(attack, LinfSquareAttack):
        model, x = _grid_model(cancer_entry), x.view(-1, 1, 5, 6)
    result = attack(model, x, y, constraints=spec)
    assert _violations(x, result.x_adv, spec) == []
    assert bool((result.norms <= attack.epsilon * (1 + 1e-5)).all())
    with torch.no_grad():  # success is the model's verdict on the repaired examples
        assert torch.equal(result.success, model.labels(result.x_adv) != y)
    assert result.success_rate > 0.1


def test_constrained_pgd_still_succeeds(
    cancer_model: TorchModel, tabular: tuple[torch.Tensor, torch.Tensor, FeatureConstraints]
) -> None:
    x, y, spec = tabular
    for attack, floor in (
        (LinfProjectedGradientDescentAttack(epsilon=0.1, steps=20), 0.65),
        (LinfAPGDCEAttack(epsilon=0.1, steps=20), 0.62),
    ):
        result = attack(cancer_model, x, y, constraints=spec)
        hit = float(result.success[result.clean_correct].float().mean())
        assert hit >= floor, f"{attack.id}: {hit:.3f} < {floor}"


def test_decision_based_attacks_query_only_points_the_constraints_allow(
    cancer_model: TorchModel, tabular: tuple[torch.Tensor, torch.Tensor, FeatureConstraints]
) -> None:
    """The label oracle projects every query onto the constraints, so the attack learns the
    decisions of points it may return. Measured on the clean-correct tumours, l2 0.5:
    HopSkipJump (300 queries) 34 % (12 % when the constraints were applied only at the final
    repair; 75 % unconstrained), Boundary (1000) 19 % (6 %; 80 %), Sign-OPT (1000) 15 % (0 %
    with its former single-noise start; 82 %)."""
    x, y, spec = tabular
    for attack, floor in (
        (L2HopSkipJumpAttack(epsilon=0.5, max_queries=300), 0.25),
        (L2BoundaryAttack(epsilon=0.5, max_queries=1000), 0.14),
        (L2SignOPTAttack(epsilon=0.5, max_queries=1000), 0.03),
    ):
        result = attack(cancer_model, x, y, constraints=spec)
        assert _violations(x, result.x_adv, spec) == []
        hit = float(result.success[result.clean_correct].float().mean())
        assert hit >= floor, f"{attack.id}: {hit:.3f} < {floor}"


def test_a_large_l2_budget_changes_discrete_features_validly(
    cancer_model: TorchModel, tabular: tuple[torch.Tensor, torch.Tensor, FeatureConstraints]
) -> None:
    """The repair moves integer, coded and one-hot features when the budget allows it."""
    x, y, spec = tabular
    result = L2ProjectedGradientDescentAttack(epsilon=2.0, steps=20)(
        cancer_model, x, y, constraints=spec
    )
    changed = result.x_adv != x
    assert int(changed[:, 18].sum()) >= 20  # measured 41
    assert bool(changed[:, 15:18].any())  # measured 4 samples
    assert float(result.success[result.clean_correct].float().mean()) >= 0.8


def test_constraints_are_checked_against_model_and_inputs(
    cancer_model: TorchModel,
    tabular: tuple[torch.Tensor, torch.Tensor, FeatureConstraints],
) -> None:
    x, y, spec = tabular
    attack = LinfProjectedGradientDescentAttack(epsilon=0.1, steps=2)
    with pytest.raises(ShapeError, match="30 input features"):
        attack(cancer_model, x, y, constraints=FeatureConstraints(num_features=31))
    bad = x.clone()
    bad[5, 14] = 0.5
    with pytest.raises(
        ValidationError, match=r"x\[5\] has integer feature 14 \('smoothness error'\)"
    ):
        attack(cancer_model, bad, y, constraints=spec)


@pytest.mark.parametrize(
    ("attack", "exhausted"),
    [
        (LinfSquareAttack(epsilon=0.1, max_queries=5), True),
        (LinfSquareAttack(epsilon=0.3, max_queries=1000), False),
        (L2HopSkipJumpAttack(epsilon=0.5, max_queries=20), True),
        (L2HopSkipJumpAttack(epsilon=3.0, max_queries=300), False),
    ],
    ids=["square-tiny", "square-generous", "hsj-tiny", "hsj-generous"],
)
def test_budget_flag(
    attack: Attack,
    exhausted: bool,
    cancer_entry: ZooEntry,
    tabular: tuple[torch.Tensor, torch.Tensor, FeatureConstraints],
) -> None:
    x, y, _ = tabular
    result = attack(_grid_model(cancer_entry), x.view(-1, 1, 5, 6), y)
    assert result.budget_exhausted is exhausted
    assert result.summary()["budget_exhausted"] is exhausted
    assert (result.success_rate == 1.0) is not exhausted


def test_budget_flag_when_the_model_budget_runs_out(
    cancer_entry: ZooEntry, tabular: tuple[torch.Tensor, torch.Tensor, FeatureConstraints]
) -> None:
    x, y, _ = tabular
    model = _grid_model(cancer_entry, budget=100)
    result = LinfSquareAttack(epsilon=0.3, max_queries=1000)(model, x.view(-1, 1, 5, 6), y)
    assert result.queries == 100
    assert result.budget_exhausted

"""Unit checks for JSMA, l1 PGD (and the l1 geometry), Sign-OPT and untargeted FAB."""

import pytest
import torch

from bastion.attacks import norms
from bastion.attacks.evasion import (
    L0JacobianSaliencyMapAttack,
    L1ProjectedGradientDescentAttack,
    L2FABAttack,
    L2SignOPTAttack,
    LinfFABAttack,
)
from bastion.core import AccessError, Norm, ThreatModel, ValidationError
from bastion.models import TorchModel

Batch = tuple[torch.Tensor, torch.Tensor]


@pytest.mark.parametrize(
    ("cls", "kwargs", "fragment"),
    [
        (L0JacobianSaliencyMapAttack, {"epsilon": 2.5}, "epsilon"),
        (L0JacobianSaliencyMapAttack, {"epsilon": 8, "theta": 0.0}, "theta"),
        (L0JacobianSaliencyMapAttack, {"epsilon": 8, "theta": 1.5}, "theta"),
        (L0JacobianSaliencyMapAttack, {"epsilon": 8, "gamma": 0.0}, "gamma"),
        (L0JacobianSaliencyMapAttack, {"epsilon": 8, "gamma": 1.2}, "gamma"),
        (L0JacobianSaliencyMapAttack, {"epsilon": 8, "use_probabilities": 1}, "use_probab"),
        (L1ProjectedGradientDescentAttack, {"epsilon": 1.0, "steps": 0}, "steps"),
        (L1ProjectedGradientDescentAttack, {"epsilon": 1.0, "percentile": 101.0}, "percentile"),
        (L1ProjectedGradientDescentAttack, {"epsilon": 1.0, "restarts": 0}, "restarts"),
        (L1ProjectedGradientDescentAttack, {"epsilon": 1.0, "box_aware": 1}, "box_aware"),
        (L2SignOPTAttack, {"epsilon": 1.0, "max_queries": 0}, "max_queries"),
        (L2SignOPTAttack, {"epsilon": 1.0, "k": 0}, "k"),
        (L2SignOPTAttack, {"epsilon": 1.0, "alpha": 0.0}, "alpha"),
        (L2SignOPTAttack, {"epsilon": 1.0, "beta": -1.0}, "beta"),
        (L2FABAttack, {"epsilon": 1.0, "restarts": 0}, "restarts"),
        (LinfFABAttack, {"epsilon": 0.1, "beta": 1.0}, "beta"),
    ],
)
def test_hyperparameters_are_validated(cls: type, kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        cls(**kwargs)


def test_l1_is_a_norm_of_the_threat_model() -> None:
    assert Norm.parse("l1") is Norm.L1
    assert ThreatModel(norm="l1", epsilon=2.5).norm is Norm.L1


def _reference_l1_box(
    v: torch.Tensor, eps: float, lo: torch.Tensor | None, hi: torch.Tensor | None
) -> torch.Tensor:
    """The same projection by bisection on the threshold, for comparison."""
    a = torch.zeros(v.shape[0], dtype=torch.float64)
    b = v.abs().amax(dim=1).double() + 1

    def shrink(lam: torch.Tensor) -> torch.Tensor:
        out = (v.abs().double() - lam[:, None]).clamp_min(0)
        if lo is not None and hi is not None:
            out = torch.minimum(out, torch.where(v >= 0, hi, -lo).double())
        return out

    for _ in range(100):
        mid = (a + b) / 2
        over = shrink(mid).sum(dim=1) > eps
        a, b = torch.where(over, mid, a), torch.where(over, b, mid)
    return (v.sign().double() * shrink(b)).float()


@pytest.mark.parametrize("box", [False, True])
def test_l1_projection_is_exact(box: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    for d in (1, 7, 64):
        v = 2 * torch.randn(30, d, generator=gen)
        x = torch.rand(30, d, generator=gen)
        for eps in (0.0, 0.3, 2.0, 50.0):
            lo, hi = (-x, 1 - x) if box else (None, None)
            got = norms.project_l1_box(v, eps, lo, hi)
            want = _reference_l1_box(v, eps, lo, hi)
            assert torch.allclose(got, want, atol=1e-5)
            assert bool((got.abs().sum(dim=1) <= eps + 1e-5).all())
    inside = torch.tensor([[0.1, -0.2, 0.3]])
    assert torch.equal(norms.project(inside, Norm.L1, 1.0), inside)  # identity in the ball


def test_l1_helpers() -> None:
    gen = torch.Generator().manual_seed(0)
    start = norms.random_start(torch.Size([4000, 3]), Norm.L1, 2.0, gen, torch.device("cpu"))
    size = norms.lp_norm(start, Norm.L1)
    assert float(size.max()) <= 2.0 + 1e-5
    # Uniform in the 3-d l1 ball: P(|delta|_1 <= r) = (r / eps)^3, so the mean of that is 1/2.
    assert abs(float((size / 2.0).pow(3).mean()) - 0.5) < 0.03
    step = norms.normalize_gradient(torch.tensor([[1.0, -3.0, 2.0]]), Norm.L1)
    assert torch.equal(step, torch.tensor([[0.0, -1.0, 0.0]]))
    grad = torch.randn(2, 100, generator=gen)
    sparse = norms.sparse_l1_direction(grad, 90.0)
    assert torch.allclose(sparse.abs().sum(dim=1), torch.ones(2))
    assert (sparse != 0).sum(dim=1).tolist() == [10, 10]
    blocked = torch.ones_like(grad, dtype=torch.bool)
    blocked[:, :50] = False
    assert bool((norms.sparse_l1_direction(grad, 90.0, blocked)[:, :50] == 0).all())


def test_jsma_changes_few_features_towards_the_bound(
    digits_model: TorchModel, digits_batch: Batch
) -> None:
    x, y = digits_batch
    result = L0JacobianSaliencyMapAttack(epsilon=6, gamma=0.5)(digits_model, x[:8], y[:8])
    assert float(result.norms.max()) <= 6
    changed = result.x_adv != x[:8]
    assert bool((result.x_adv[changed] == 1.0).all())  # theta = +1 saturates


def test_white_box_attacks_refuse_label_only_models(
    digits_model: TorchModel, digits_batch: Batch
) -> None:
    x, y = digits_batch
    view = digits_model.restricted("labels")
    for attack in (
        L0JacobianSaliencyMapAttack(epsilon=4),
        L1ProjectedGradientDescentAttack(epsilon=1.0),
    ):
        with pytest.raises(AccessError, match="gradients"):
            attack(view, x[:4], y[:4])


def test_untargeted_fab_refuses_targets(digits_model: TorchModel, digits_batch: Batch) -> None:
    x, y = digits_batch
    with pytest.raises(ValidationError, match="untargeted"):
        L2FABAttack(epsilon=1.0, steps=2)(digits_model, x[:4], y[:4], target=(y[:4] + 1) % 10)


def test_fab_restarts_never_worsen_the_result(
    digits_model: TorchModel, digits_batch: Batch
) -> None:
    x, y = digits_batch
    one = L2FABAttack(epsilon=10.0, steps=5)(digits_model, x[:8], y[:8])
    three = L2FABAttack(epsilon=10.0, steps=5, restarts=3)(digits_model, x[:8], y[:8])
    assert bool((three.norms <= one.norms + 1e-6).all())


def test_sign_opt_keeps_each_samples_query_cap(
    digits_model: TorchModel, digits_batch: Batch
) -> None:
    x, y = digits_batch
    attack = L2SignOPTAttack(epsilon=100.0, max_queries=150, k=20)
    result = attack(digits_model, x[:6], y[:6])
    assert 0 < result.queries <= 150 * 6
    assert bool(result.success[result.clean_correct].all())  # each got an adversarial start


def test_l1_pgd_restarts_and_early_stop_keep_the_budget(
    digits_model: TorchModel, digits_batch: Batch
) -> None:
    x, y = digits_batch
    plain = L1ProjectedGradientDescentAttack(epsilon=2.0, steps=10)(digits_model, x, y)
    more = L1ProjectedGradientDescentAttack(epsilon=2.0, steps=10, restarts=3, early_stop=True)(
        digits_model, x, y
    )
    assert float(more.norms.max()) <= 2.0 + 1e-4
    assert more.robust_accuracy <= plain.robust_accuracy

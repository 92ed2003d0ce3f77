import pytest
import torch

from bastion.attacks import L2FABTargetedAttack, LinfFABTargetedAttack
from bastion.attacks.evasion.fab import project_on_hyperplane
from bastion.core import Norm, ValidationError
from bastion.models import TorchModel


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"steps": 0}, "steps"),
        ({"target_classes": 0}, "target_classes"),
        ({"alpha_max": 1.5}, "alpha_max"),
        ({"eta": 0.5}, "eta"),
        ({"beta": 1.0}, "beta"),
    ],
)
def test_fab_validates_hyperparameters(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        LinfFABTargetedAttack(epsilon=0.1, **kwargs)  # type: ignore[arg-type]


def test_defaults_are_the_papers() -> None:
    attack = L2FABTargetedAttack(epsilon=1.0)
    assert (attack.steps, attack.target_classes) == (100, 9)
    assert (attack.alpha_max, attack.eta, attack.beta) == (0.1, 1.05, 0.9)


def _problem(n: int = 40, d: int = 16) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(0)
    z = 0.25 + 0.5 * torch.rand(n, d, generator=gen)
    w = torch.randn(n, d, generator=gen)
    b = -(w * z).sum(dim=1) + 0.1 * torch.randn(n, generator=gen)
    return z, w, b


def test_l2_projection_matches_the_closed_form_when_the_box_is_not_in_the_way() -> None:
    z, w, b = _problem()
    v, ok = project_on_hyperplane(z, w, b, Norm.L2, (0.0, 1.0))
    exact = z - (((w * z).sum(1) + b) / (w * w).sum(1))[:, None] * w
    assert bool(ok.all())
    assert torch.allclose(v, exact, atol=1e-5)


@pytest.mark.parametrize("norm", [Norm.LINF, Norm.L2])
def test_projection_lands_on_the_plane_inside_the_box_and_is_closest(norm: Norm) -> None:
    gen = torch.Generator().manual_seed(1)
    z = torch.rand(40, 16, generator=gen)
    w = torch.randn(40, 16, generator=gen)
    b = torch.randn(40, generator=gen)
    v, ok = project_on_hyperplane(z, w, b, norm, (0.0, 1.0))
    assert bool(ok.any())
    assert float(((w * v).sum(1) + b)[ok].abs().max()) < 1e-4
    assert float(v.min()) >= 0.0 and float(v.max()) <= 1.0
    # No feasible point is closer: the other norm's projection is one such point.
    other = Norm.L2 if norm is Norm.LINF else Norm.LINF
    u, _ = project_on_hyperplane(z, w, b, other, (0.0, 1.0))
    ord_ = float("inf") if norm is Norm.LINF else 2.0
    mine = torch.linalg.vector_norm(v - z, ord=ord_, dim=1)
    theirs = torch.linalg.vector_norm(u - z, ord=ord_, dim=1)
    assert bool((mine[ok] <= theirs[ok] + 1e-4).all())


def test_a_plane_that_misses_the_box_is_reported() -> None:
    z = torch.full((1, 4), 0.5)
    w = torch.ones(1, 4)
    b = torch.tensor([10.0])  # w.v = -10 is impossible for v in [0, 1]^4
    for norm in (Norm.LINF, Norm.L2):
        v, ok = project_on_hyperplane(z, w, b, norm, (0.0, 1.0))
        assert not bool(ok.any())
        assert torch.equal(v, z)


def test_fab_refuses_a_target(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    with pytest.raises(ValidationError, match="untargeted"):
        LinfFABTargetedAttack(epsilon=0.1, steps=2)(digits_model, x, y, target=(y + 1) % 10)


def test_fab_finds_small_adversarials_and_leaves_misclassified_points_alone(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    x, y = x[:32], y[:32]
    result = L2FABTargetedAttack(epsilon=5.0, steps=20)(digits_model, x, y)
    assert result.success_rate == 1.0
    wrong = ~result.clean_correct
    assert torch.equal(result.x_adv[wrong], x[wrong])
    # Minimal: halving the perturbation undoes most successes.
    half = digits_model.labels(x + (result.x_adv - x) / 2) == y
    assert float(half[result.clean_correct].float().mean()) >= 0.8

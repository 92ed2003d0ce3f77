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


def _bisection_linf(
    z: torch.Tensor, w: torch.Tensor, b: torch.Tensor, low: float, high: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: the smallest linf radius whose box around z (within bounds) reaches the
    plane, by bisection on the radius (a slow, independent way to the same optimum)."""
    goal = -b

    def reach(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lo = (z - t[:, None]).clamp_min(low)
        hi = (z + t[:, None]).clamp_max(high)
        small = (w * torch.where(w > 0, lo, hi)).sum(1)
        large = (w * torch.where(w > 0, hi, lo)).sum(1)
        return (small <= goal) & (goal <= large), small

    t_lo, t_hi = torch.zeros_like(goal), torch.full_like(goal, high - low)
    feasible, _ = reach(t_hi)
    for _ in range(60):
        mid = (t_lo + t_hi) / 2
        ok, _ = reach(mid)
        t_hi, t_lo = torch.where(ok, mid, t_hi), torch.where(ok, t_lo, mid)
    return t_hi, feasible


@pytest.mark.parametrize("seed", range(4))
def test_linf_projection_matches_a_bisection_reference(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    n, d = 64, 5 + 60 * seed
    low, high = (-1.0, 2.0) if seed % 2 else (0.0, 1.0)
    z = low + (high - low) * torch.rand(n, d, generator=gen, dtype=torch.float64)
    keep = torch.rand(n, d, generator=gen) > 0.2  # some zero weights
    w = torch.randn(n, d, generator=gen, dtype=torch.float64) * keep
    b = torch.randn(n, generator=gen, dtype=torch.float64) * (1 + seed)
    b[:8] = w[:8].abs().sum(1) * (abs(low) + abs(high)) + 1.0  # out of reach of the box
    v, ok = project_on_hyperplane(z, w, b, Norm.LINF, (low, high))
    radius, feasible = _bisection_linf(z, w, b, low, high)
    assert torch.equal(ok, feasible)
    assert not bool(ok[:8].any()) and bool(ok[8:].any())
    dist = (v - z).abs().amax(dim=1)
    assert torch.allclose(dist[ok], radius[ok], atol=1e-9)
    assert float(((w * v).sum(1) + b)[ok].abs().max()) < 1e-9
    assert float(v.min()) >= low and float(v.max()) <= high
    assert torch.equal(v[~ok], z[~ok])

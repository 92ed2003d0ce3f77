import pytest
import torch

from bastion.attacks import FGSM, L2PGD, PGD, get_attack
from bastion.attacks.norms import lp_norm, project, random_start
from bastion.core import AccessError, Norm, ValidationError
from bastion.models import TorchModel


def test_label_only_model_is_refused_naming_the_access_pgd_needs(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    with pytest.raises(AccessError, match=r"needs 'gradients' access.*grants only 'labels'"):
        PGD(epsilon=0.1)(digits_model.restricted("labels"), x, y)
    assert digits_model.counter.count == 0  # refused before any query


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"epsilon": 0.1, "steps": 0}, "steps"),
        ({"epsilon": 0.1, "restarts": 0}, "restarts"),
        ({"epsilon": 0.1, "random_start": 1}, "random_start"),
        ({"epsilon": 0.1, "stepsize": -1.0}, "stepsize"),
        ({"epsilon": 0.1, "batch_size": 0}, "batch_size"),
    ],
)
def test_pgd_validates_hyperparameters(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        PGD(**kwargs)  # type: ignore[arg-type]


def test_hyperparameters_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        PGD(0.1)  # type: ignore[misc]


def test_pgd_default_stepsize_crosses_the_ball() -> None:
    attack = PGD(epsilon=0.2, steps=10)
    assert attack.stepsize == pytest.approx(2.5 * 0.2 / 10)


def test_targeted_pgd_reaches_the_target(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    target = (y + 1) % 10
    result = PGD(epsilon=0.3, steps=40)(digits_model, x, y, target=target)
    assert result.threat_model.targeted
    assert result.success_rate >= 0.8
    assert torch.equal(result.success, digits_model.labels(result.x_adv) == target)


def test_target_equal_to_label_is_refused(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    with pytest.raises(ValidationError, match="target to differ from y"):
        PGD(epsilon=0.1)(digits_model, x, y, target=y)


def test_restarts_never_do_worse_than_one_run(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    one = PGD(epsilon=0.05, steps=10, seed=1)(digits_model, x, y)
    three = PGD(epsilon=0.05, steps=10, restarts=3, seed=1)(digits_model, x, y)
    assert three.success_rate >= one.success_rate
    assert bool((three.success | ~one.success).all())  # what one run found, three keep


def test_batching_does_not_change_the_result(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    whole = FGSM(epsilon=0.1)(digits_model, x, y)
    pieces = FGSM(epsilon=0.1, batch_size=7)(digits_model, x, y)
    assert torch.allclose(whole.x_adv, pieces.x_adv, atol=1e-6)


def test_numpy_inputs_are_accepted(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    result = FGSM(epsilon=0.1)(digits_model, x.numpy(), y.numpy())
    assert result.x_adv.shape == x.shape


def test_train_mode_module_is_attacked_in_eval_and_restored(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    digits_model.module.train()
    try:
        PGD(epsilon=0.1, steps=2)(digits_model, x, y)
        assert digits_model.module.training
    finally:
        digits_model.module.eval()


def test_registry_lookup_names_the_choices() -> None:
    assert get_attack("pgd-l2") is L2PGD
    with pytest.raises(ValidationError, match="'fgm-l2'"):
        get_attack("no-such-attack")


@pytest.mark.parametrize("norm", [Norm.LINF, Norm.L2, Norm.L0])
def test_projection_lands_inside_the_ball(norm: Norm) -> None:
    delta = torch.randn(32, 1, 8, 8) * 3
    eps = 5.0 if norm is Norm.L0 else 0.4
    projected = project(delta, norm, eps)
    assert bool((lp_norm(projected, norm) <= eps + 1e-5).all())
    inside = project(delta, norm, 1e9 if norm is not Norm.L0 else 64)
    assert torch.allclose(inside, delta)


@pytest.mark.parametrize("norm", [Norm.LINF, Norm.L2])
def test_random_start_is_inside_the_ball_and_seeded(norm: Norm) -> None:
    gen = torch.Generator().manual_seed(3)
    start = random_start(torch.Size((100, 64)), norm, 0.5, gen, torch.device("cpu"))
    assert bool((lp_norm(start, norm) <= 0.5 + 1e-6).all())
    again = random_start(
        torch.Size((100, 64)), norm, 0.5, torch.Generator().manual_seed(3), torch.device("cpu")
    )
    assert torch.equal(start, again)

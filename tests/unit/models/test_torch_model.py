"""TorchModel: normalisation, eval mode restored per submodule, parameters never touched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bastion.core.errors import AccessError, ValidationError
from bastion.core.threat_model import Access
from bastion.models import TorchModel, eval_mode


class MeanOut(nn.Module):
    """Logits [m, -m] with m the mean of the (already normalised) input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.flatten(1).mean(dim=1)
        return torch.stack([m, -m], dim=1)


def test_normalisation_is_applied_per_channel() -> None:
    model = TorchModel(MeanOut(), input_shape=(2, 1, 1), mean=[0.5, 0.25], std=[0.5, 0.25])
    x = torch.tensor([[[[1.0]], [[0.5]]]])  # channel 0: (1-0.5)/0.5 = 1; channel 1: 1
    assert model.logits(x)[0, 0].item() == pytest.approx(1.0)
    scalar = TorchModel(MeanOut(), input_shape=(2, 1, 1), mean=np.float32(0.5), std=2)
    assert scalar.logits(x)[0, 0].item() == pytest.approx(((1 - 0.5) + (0.5 - 0.5)) / 2 / 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"std": [1.0, 0.0]}, "positive"),
        ({"mean": [0.1, 0.2, 0.3]}, "one per channel"),
        ({"mean": "zero"}, "mean"),
        ({"device": "not-a-device"}, "device"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TorchModel(MeanOut(), input_shape=(2, 1, 1), **kwargs)  # type: ignore[arg-type]


def test_infers_num_classes_and_grants_gradients(net: nn.Module) -> None:
    model = TorchModel(net, input_shape=(4,))
    assert (model.num_classes, model.access) == (3, Access.GRADIENTS)
    x = torch.rand(5, 4, requires_grad=True)
    model.logits(x).sum().backward()
    assert x.grad is not None
    assert model.counter.count == 5
    scores = model.scores(x)
    assert torch.allclose(scores.sum(dim=1), torch.ones(5))
    assert torch.equal(model.labels(x), scores.argmax(dim=1))


def test_bad_module_or_shape(net: nn.Module) -> None:
    with pytest.raises(ValidationError, match="check input_shape"):
        TorchModel(net, input_shape=(5,))
    with pytest.raises(ValidationError, match="logits of shape"):
        TorchModel(nn.Flatten(0), input_shape=(4,))
    with pytest.raises(ValidationError, match=r"nn\.Module"):
        TorchModel(lambda x: x, input_shape=(4,))  # type: ignore[arg-type]
    model = TorchModel(net, input_shape=(4,))
    with pytest.raises(ValidationError, match=r"shape \(n, 4\)"):
        model.logits(torch.zeros(2, 5))


def test_train_mode_restored_per_submodule() -> None:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.BatchNorm1d(4), nn.Linear(4, 2))
    module.train()
    module[2].eval()  # a frozen batch-norm inside a training model
    model = TorchModel(module, input_shape=(4,))
    x = torch.rand(8, 4)
    first = model.scores(x)
    assert torch.equal(first, model.scores(x))  # eval mode inside: dropout off
    model.logits(x)
    assert module.training and module[1].training
    assert not module[2].training


def test_eval_mode_leaves_eval_modules_alone() -> None:
    module = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
    module.eval()
    with eval_mode(module):
        assert not module.training
    assert not module.training and not module[1].training


def test_parameters_and_buffers_untouched(net: nn.Module) -> None:
    net = nn.Sequential(net, nn.BatchNorm1d(3))
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    model = TorchModel(net, input_shape=(4,))
    x = torch.rand(6, 4, requires_grad=True)
    model.scores(x)
    model.labels(x)
    model.logits(x).sum().backward()
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_restricted_torch_model_refuses_logits(net: nn.Module) -> None:
    view = TorchModel(net, input_shape=(4,)).restricted("scores")
    assert view.scores_are_probabilities
    with pytest.raises(AccessError):
        view.logits(torch.zeros(1, 4))

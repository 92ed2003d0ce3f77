"""Substitute training for transfer attacks (Papernot et al., ASIA CCS 2017, Algorithm 1).

The attacker labels a seed set by querying the target, trains a substitute on it, and grows
the set by Jacobian-based dataset augmentation; every label bought is a query on the target.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bastion.core.validation import fail
from bastion.models.base import Model
from bastion.models.torch_model import TorchModel

__all__ = ["SubstituteTraining", "SurrogateFactory", "default_surrogate", "seed_tensor"]

SurrogateFactory = Callable[[tuple[int, ...], int], nn.Module]
"""Builds an untrained network from ``(input_shape, num_classes)``; it must return logits."""


def default_surrogate(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A small network for ``input_shape``: a two-layer CNN for images, an MLP otherwise.

    Images are ``(channels, height, width)`` with height and width at least 4; the CNN has
    3x3 convolutions of 32 and 64 channels (the second with stride 2) and a 128-unit hidden
    layer. Anything else is flattened into an MLP with two hidden layers of 128 units.
    """
    if len(input_shape) == 3 and min(input_shape[1:]) >= 4:
        c, h, w = input_shape
        flat = 64 * ((h + 1) // 2) * ((w + 1) // 2)
        return nn.Sequential(
            nn.Conv2d(c, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(flat, 128),
            nn.ReLU(),
            nn.Linear(128, num_classes),
        )
    size = math.prod(input_shape)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(size, 128),
        nn.ReLU(),
        nn.Linear(128, 128),
        nn.ReLU(),
        nn.Linear(128, num_classes),
    )


class _Rescale(nn.Module):
    """Maps inputs from ``[low, high]`` to ``[-1, 1]`` before the surrogate sees them."""

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        self.low, self.span = low, high - low

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * (x - self.low) / self.span - 1


class _Budget:
    """The labels the attacker may still buy: ``max_queries`` and the model's own budget."""

    def __init__(self, model: Model, max_queries: int | None, stop_at_budget: bool) -> None:
        self.model = model
        self.left = max_queries
        self.stop_at_budget = stop_at_budget
        self.exhausted = False

    def buy(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Query the target's labels of a prefix of ``points`` as long as the budgets allow."""
        n = points.shape[0]
        can = n if self.left is None else min(n, self.left)
        remaining = self.model.counter.remaining
        if self.stop_at_budget and remaining is not None:
            can = min(can, remaining)
        if can < n:
            self.exhausted = True
        points = points[:can]
        if can == 0:
            return points, torch.empty(0, dtype=torch.int64, device=points.device)
        labels = self.model.labels(points).to(points.device)
        if self.left is not None:
            self.left -= can
        return points, labels


@dataclass(frozen=True)
class SubstituteTraining:
    """One substitute-training schedule; the transfer attacks validate and document the fields."""

    substitute_epochs: int
    augmentation_step: float
    flip_every: int | None
    reservoir_after: int | None
    reservoir_size: int
    train_epochs: int
    learning_rate: float
    factory: SurrogateFactory
    max_queries: int | None
    stop_at_budget: bool
    batch_size: int

    def train(
        self, model: Model, seed: torch.Tensor, generator: torch.Generator
    ) -> tuple[TorchModel | None, bool]:
        """Train a substitute on ``model``'s labels of ``seed`` and its augmentations.

        Returns the substitute as a `TorchModel` with its own query counter (None when the
        budget left no label to buy) and whether a budget cut the schedule short.
        Deterministic given ``generator``; the global RNG is left as it was.
        """
        device = model.device
        low, high = model.bounds
        budget = _Budget(model, self.max_queries, self.stop_at_budget)
        draw = int(torch.randint(2**31 - 1, (1,), generator=generator, device=generator.device))
        forked = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=forked):
            torch.manual_seed(draw)
            net = nn.Sequential(_Rescale(low, high), self._build(model))
            data, labels = budget.buy(seed.to(device))
            if data.shape[0] == 0:
                return None, True
            optimizer = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
            for rho in range(self.substitute_epochs):
                self._fit(net, optimizer, data, labels)
                if rho == self.substitute_epochs - 1 or budget.exhausted:
                    break
                new, new_labels = budget.buy(self._augment(net, data, labels, rho, model.bounds))
                data = torch.cat([data, new])
                labels = torch.cat([labels, new_labels])
                if budget.exhausted:  # no more rounds: learn the last labels bought, then stop
                    if new.shape[0]:
                        self._fit(net, optimizer, data, labels)
                    break
        net.eval()
        substitute = TorchModel(
            net, input_shape=model.input_shape, num_classes=model.num_classes, bounds=model.bounds
        )
        return substitute, budget.exhausted

    def _build(self, model: Model) -> nn.Module:
        """The untrained network from the factory on ``model.device``, checked before any
        label is bought.

        The factory runs with ``model.device`` as the default device, so its parameters are
        created (and initialised) there rather than wherever the caller's default points.
        """
        with torch.device(model.device):
            net = self.factory(model.input_shape, model.num_classes)
        expected = (
            "a factory returning a torch.nn.Module with parameters that maps "
            f"(n, {', '.join(map(str, model.input_shape))}) to (n, {model.num_classes}) logits"
        )
        if not isinstance(net, nn.Module) or next(net.parameters(), None) is None:
            raise fail("surrogate", expected, self.factory)
        net = net.to(model.device)
        try:
            with torch.no_grad():
                out = net(torch.zeros((2, *model.input_shape), device=model.device))
        except Exception as exc:
            raise fail("surrogate", expected, self.factory) from exc
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, model.num_classes):
            raise fail("surrogate", expected, self.factory)
        return net

    def _fit(
        self,
        net: nn.Module,
        optimizer: torch.optim.Optimizer,
        data: torch.Tensor,
        labels: torch.Tensor,
    ) -> None:
        net.train()
        n = data.shape[0]
        size = min(n, 128)
        for _ in range(self.train_epochs):
            order = torch.randperm(n, device=data.device)
            for start in range(0, n, size):
                idx = order[start : start + size]
                if idx.numel() == 1 < n:  # a lone leftover would break batch-norm layers
                    continue
                optimizer.zero_grad()
                F.cross_entropy(net(data[idx]), labels[idx]).backward()
                optimizer.step()
        net.eval()

    def _augment(
        self,
        net: nn.Module,
        data: torch.Tensor,
        labels: torch.Tensor,
        rho: int,
        bounds: tuple[float, float],
    ) -> torch.Tensor:
        """Jacobian-based augmentation ``x + lambda_rho * sign(dF_{O(x)}/dx)``.

        ``lambda_rho = lambda * (-1) ** ceil(rho / tau)`` with ``tau = flip_every`` (the
        periodic step size); after ``reservoir_after`` substitute epochs only
        ``reservoir_size`` points, drawn at random from the set, are augmented.
        """
        step = self.augmentation_step
        if self.flip_every is not None:
            step *= (-1) ** math.ceil(rho / self.flip_every)
        if self.reservoir_after is not None and rho >= self.reservoir_after:
            pick = torch.randperm(data.shape[0], device=data.device)[: self.reservoir_size]
            data, labels = data[pick], labels[pick]
        grads = []
        for start in range(0, data.shape[0], self.batch_size):
            z = data[start : start + self.batch_size].detach().requires_grad_(True)
            probs = torch.softmax(net(z), dim=1)
            own = probs.gather(1, labels[start : start + self.batch_size, None]).sum()
            (grad,) = torch.autograd.grad(own, z)
            grads.append(grad)
        return (data + step * torch.cat(grads).sign()).clamp(*bounds).detach()


def seed_tensor(value: Any) -> torch.Tensor:
    """``seed_data`` as a float tensor on the CPU: a non-empty, finite batch, copied."""
    try:
        tensor = torch.as_tensor(value, dtype=torch.float32, device="cpu")
    except (TypeError, ValueError, RuntimeError) as exc:
        raise fail("seed_data", "a tensor or array of inputs", value) from exc
    if tensor.dim() < 2 or tensor.shape[0] == 0 or not bool(torch.isfinite(tensor).all()):
        raise fail("seed_data", "a non-empty, finite batch of inputs (n, *input_shape)", value)
    return tensor.detach().clone()

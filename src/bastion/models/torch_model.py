"""Adapter for a torch ``nn.Module`` that returns logits; grants gradients."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from bastion.core.errors import ValidationError
from bastion.core.threat_model import Access
from bastion.core.validation import check_number, check_type, fail
from bastion.models.base import BaseModel
from bastion.models.counter import QueryCounter

__all__ = ["TorchModel"]


class TorchModel(BaseModel):
    """Wrap an ``nn.Module`` whose forward returns logits of shape ``(n, num_classes)``.

    Attacks work in input space (``bounds``, typically ``[0, 1]``); the adapter applies the
    per-channel normalisation ``(x - mean) / std`` the network expects, so nobody rescales by
    hand. The module is run in eval mode for each call and put back as it was afterwards;
    its parameters are never changed.

    Args:
        module: the network; its forward must return logits.
        input_shape: one sample's shape, e.g. ``(1, 8, 8)``.
        num_classes: number of classes; inferred from one dry forward when omitted.
        bounds: valid input range.
        mean, std: per-channel (first axis of ``input_shape``) or scalar normalisation.
        device: where to run; defaults to the device of the module's first parameter.
        batch_size, budget, counter: see `BaseModel`.
    """

    access = Access.GRADIENTS
    scores_are_probabilities = True

    def __init__(
        self,
        module: nn.Module,
        *,
        input_shape: Sequence[int],
        num_classes: int | None = None,
        bounds: tuple[float, float] = (0.0, 1.0),
        mean: float | Sequence[float] | None = None,
        std: float | Sequence[float] | None = None,
        device: str | torch.device | None = None,
        batch_size: int = 256,
        budget: int | None = None,
        counter: QueryCounter | None = None,
    ) -> None:
        check_type("module", module, nn.Module, "a torch.nn.Module")
        self.module = module
        if device is None:
            first = next(module.parameters(), None)
            device = first.device if first is not None else torch.device("cpu")
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise fail("device", "a torch device such as 'cpu' or 'cuda:0'", device) from exc
        shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else input_shape
        if num_classes is None:
            num_classes = self._infer_classes(module, shape, dev)
        super().__init__(
            input_shape=shape,  # type: ignore[arg-type]
            num_classes=num_classes,
            bounds=bounds,
            batch_size=batch_size,
            budget=budget,
            counter=counter,
        )
        self.device = dev
        self._mean = self._channel_stat("mean", mean, dev)
        self._std = self._channel_stat("std", std, dev)
        if self._std is not None and bool((self._std <= 0).any()):
            raise fail("std", "positive numbers", std)

    @staticmethod
    def _infer_classes(module: nn.Module, shape: Any, device: torch.device) -> int:
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and d > 0 for d in shape):
            raise fail("input_shape", "a non-empty tuple of positive ints", shape)
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                out = module(torch.zeros((1, *shape), device=device))
        except Exception as exc:
            raise ValidationError(
                f"The module failed on an input of shape (1, {', '.join(map(str, shape))}): {exc}; "
                "check input_shape"
            ) from exc
        finally:
            module.train(was_training)
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            raise ValidationError(
                "Expected the module to return logits of shape (n, num_classes), but it returned "
                f"{type(out).__name__} {tuple(out.shape) if isinstance(out, torch.Tensor) else ''}"
            )
        return int(out.shape[1])

    def _channel_stat(
        self, name: str, value: float | Sequence[float] | None, device: torch.device
    ) -> torch.Tensor | None:
        if value is None:
            return None
        values = [value] if isinstance(value, (int, float)) else list(value)
        numbers = [check_number(f"{name}[{i}]", v) for i, v in enumerate(values)]
        channels = self.input_shape[0]
        if len(numbers) not in (1, channels):
            raise fail(name, f"a number or {channels} numbers (one per channel)", value)
        stat = torch.tensor(numbers, dtype=torch.float32, device=device)
        return stat.view(-1, *([1] * (len(self.input_shape) - 1)))

    @contextmanager
    def _eval(self) -> Iterator[None]:
        was_training = self.module.training
        if was_training:
            self.module.eval()
        try:
            yield
        finally:
            if was_training:
                self.module.train(True)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._mean is not None:
            x = x - self._mean
        if self._std is not None:
            x = x / self._std
        with self._eval():
            return self.module(x)  # type: ignore[no-any-return]

    def _scores_batch(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self._forward(x.to(self.device)), dim=1)

    def _labels_batch(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x.to(self.device)).argmax(dim=1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable logits for one batch already on `device`; charged to the counter.

        This is the attacks' hot path, so it checks only the batch shape; the attack base
        validated values and bounds on the way in.
        """
        if x.shape[1:] != self.input_shape:
            raise ValidationError(
                f"Expected x to have shape (n, {', '.join(map(str, self.input_shape))}), "
                f"but got shape {tuple(x.shape)}"
            )
        self.counter.charge(x.shape[0])
        return self._forward(x)

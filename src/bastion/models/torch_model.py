"""Adapter for a torch ``nn.Module`` that returns logits; grants gradients."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from bastion.core.errors import ValidationError
from bastion.core.threat_model import Access
from bastion.core.validation import check_type, fail
from bastion.models._common import channel_stat, normalize
from bastion.models.base import BaseModel
from bastion.models.counter import QueryCounter

__all__ = ["TorchModel", "eval_mode"]


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Run ``module`` in eval mode inside the block, then restore every submodule's own mode.

    Restoring per submodule matters: a model in train mode with a frozen (eval-mode)
    batch-norm must come back exactly so, not with everything switched to train.
    """
    modes = [(m, m.training) for m in module.modules()]
    if not any(training for _, training in modes):
        yield
        return
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


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
        stat = channel_stat("mean", mean, self.input_shape)
        self._mean = None if stat is None else stat.to(dev)
        stat = channel_stat("std", std, self.input_shape, positive=True)
        self._std = None if stat is None else stat.to(dev)

    @staticmethod
    def _infer_classes(module: nn.Module, shape: Any, device: torch.device) -> int:
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and d > 0 for d in shape):
            raise fail("input_shape", "a non-empty tuple of positive ints", shape)
        try:
            with eval_mode(module), torch.no_grad():
                out = module(torch.zeros((1, *shape), device=device))
        except Exception as exc:
            raise ValidationError(
                f"The module failed on an input of shape (1, {', '.join(map(str, shape))}): {exc}; "
                "check input_shape"
            ) from exc
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            raise ValidationError(
                "Expected the module to return logits of shape (n, num_classes), but it returned "
                f"{type(out).__name__} {tuple(out.shape) if isinstance(out, torch.Tensor) else ''}"
            )
        return int(out.shape[1])

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = normalize(x, self._mean, self._std)
        with eval_mode(self.module):
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

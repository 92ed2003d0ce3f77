"""The `Model` protocol every adapter satisfies, and the base class that implements its rules.

Inputs are always in the attacker's space: unnormalised, inside ``bounds``, shaped
``(n, *input_shape)``. Outputs are torch tensors on the CPU unless stated otherwise.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol, runtime_checkable

import torch

from bastion.core.errors import AccessError, ValidationError
from bastion.core.threat_model import Access
from bastion.core.validation import check_bounds, check_int, fail
from bastion.models.counter import QueryCounter
from bastion.models.tensors import as_batch

__all__ = ["BaseModel", "Model", "RestrictedModel", "require_access"]


@runtime_checkable
class Model(Protocol):
    """What attacks, defenses and the gateway need from a model, whatever its framework.

    Attributes:
        access: the most an attacker can read: ``labels``, ``scores`` or ``gradients``.
        num_classes: how many classes the model tells apart.
        input_shape: the shape of one sample, without the batch dimension.
        bounds: the valid input range ``(low, high)``.
        counter: the query counter every prediction is charged to.
        batch_size: how many samples go through the model at once.
        device: where `logits` expects its input (``cpu`` for every non-torch adapter).
    """

    access: Access
    num_classes: int
    input_shape: tuple[int, ...]
    bounds: tuple[float, float]
    counter: QueryCounter
    batch_size: int
    device: torch.device

    def labels(self, x: Any) -> torch.Tensor:
        """Predicted class index per sample, int64 of shape ``(n,)``."""
        ...

    def scores(self, x: Any) -> torch.Tensor:
        """Per-class scores, float of shape ``(n, num_classes)``; needs ``scores`` access."""
        ...

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable per-class logits for one batch on `device`; needs ``gradients``."""
        ...

    def restricted(self, access: Access | str) -> Model:
        """A view of this model that grants at most ``access``, sharing the query counter."""
        ...


def require_access(granted: Access, needed: Access, what: str) -> None:
    """Raise `AccessError` naming ``what`` and the access it needs unless ``granted`` covers it."""
    if not granted.grants(needed):
        raise AccessError(
            f"{what} needs '{needed.value}' access, but this model grants only '{granted.value}'"
        )


class BaseModel(ABC):
    """Shared machinery: validation, batching, query counting, access checks, restricted views.

    A subclass implements `_scores_batch` (and `_labels_batch` when it can only give labels,
    `logits` when it grants gradients). Every public call validates its input, charges the
    counter before querying, and walks the input in chunks of `batch_size`.
    """

    access: Access
    scores_are_probabilities: bool = False

    def __init__(
        self,
        *,
        input_shape: tuple[int, ...],
        num_classes: int,
        bounds: tuple[float, float] = (0.0, 1.0),
        batch_size: int = 256,
        budget: int | None = None,
        counter: QueryCounter | None = None,
    ) -> None:
        if not isinstance(input_shape, (tuple, list)) or not input_shape:
            raise fail("input_shape", "a non-empty tuple of positive ints", input_shape)
        self.input_shape = tuple(
            check_int(f"input_shape[{i}]", d, low=1) for i, d in enumerate(input_shape)
        )
        self.num_classes = check_int("num_classes", num_classes, low=2)
        self.bounds = check_bounds("bounds", bounds)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        if counter is not None and budget is not None:
            raise ValidationError("Expected either budget or counter, not both")
        self.counter = counter if counter is not None else QueryCounter(budget)
        self.device = torch.device("cpu")

    # --- what subclasses provide -------------------------------------------------------
    @abstractmethod
    def _scores_batch(self, x: torch.Tensor) -> torch.Tensor:
        """Scores for one chunk (at most `batch_size` samples) on the CPU, already charged."""

    def _labels_batch(self, x: torch.Tensor) -> torch.Tensor:
        return self._scores_batch(x).argmax(dim=1)

    # --- public API ----------------------------------------------------------------------
    def _chunks(self, x: Any, fn: Any) -> torch.Tensor:
        batch = as_batch(x, self.input_shape, allow_single=False)
        # Charge the whole call up front: a call the budget cannot cover makes no query at all,
        # rather than answering some chunks and then failing.
        self.counter.charge(batch.shape[0])
        outs = []
        for start in range(0, batch.shape[0], self.batch_size):
            chunk = batch[start : start + self.batch_size]
            with torch.no_grad():
                outs.append(fn(chunk).detach().cpu())
        return torch.cat(outs)

    def labels(self, x: Any) -> torch.Tensor:
        """Predicted class index per sample, int64 of shape ``(n,)``."""
        return self._chunks(x, self._labels_batch).to(torch.int64)

    def scores(self, x: Any) -> torch.Tensor:
        """Per-class scores of shape ``(n, num_classes)``; raises `AccessError` for label-only."""
        self._require(Access.SCORES, "scores")
        return self._chunks(x, self._scores_batch).to(torch.float32)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable logits; only adapters that grant gradients override this."""
        self._require(Access.GRADIENTS, "logits")
        raise NotImplementedError  # pragma: no cover - unreachable: _require raised

    def restricted(self, access: Access | str) -> RestrictedModel:
        """A view granting at most ``access`` (e.g. ``"labels"``), sharing the query counter."""
        return RestrictedModel(self, access)

    def _require(self, needed: Access, what: str) -> None:
        require_access(self.access, needed, what)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(access={self.access.value!r}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes}, bounds={self.bounds})"
        )


class RestrictedModel:
    """A view of a model that hides more than the model itself would (an outsider's view).

    Queries pass through to the wrapped model and are charged to its counter.
    """

    def __init__(self, inner: Model, access: Access | str) -> None:
        wanted = Access.parse(access)
        if not inner.access.grants(wanted):
            raise AccessError(
                f"Cannot widen access: the model grants '{inner.access.value}', "
                f"but '{wanted.value}' was asked for"
            )
        self._inner = inner
        self.access = wanted
        self.num_classes = inner.num_classes
        self.input_shape = inner.input_shape
        self.bounds = inner.bounds
        self.counter = inner.counter
        self.batch_size = inner.batch_size
        self.device = inner.device
        self.scores_are_probabilities = getattr(inner, "scores_are_probabilities", False)

    def _require(self, needed: Access, what: str) -> None:
        require_access(self.access, needed, what)

    def labels(self, x: Any) -> torch.Tensor:
        """Predicted class index per sample."""
        return self._inner.labels(x)

    def scores(self, x: Any) -> torch.Tensor:
        """Per-class scores; raises `AccessError` when this view grants only labels."""
        self._require(Access.SCORES, "scores")
        return self._inner.scores(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable logits; raises `AccessError` unless this view grants gradients."""
        self._require(Access.GRADIENTS, "logits")
        return self._inner.logits(x)

    def restricted(self, access: Access | str) -> RestrictedModel:
        """A narrower view still; widening is refused."""
        wanted = Access.parse(access)
        if not self.access.grants(wanted):
            raise AccessError(
                f"Cannot widen access: this view grants '{self.access.value}', "
                f"but '{wanted.value}' was asked for"
            )
        return RestrictedModel(self._inner, wanted)

    def __repr__(self) -> str:
        return f"RestrictedModel({self._inner!r}, access={self.access.value!r})"

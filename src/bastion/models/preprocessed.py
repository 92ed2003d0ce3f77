"""A model behind an input transformation, such as a quantising "defense", with a BPDA hook.

Many defenses put a transformation in front of a classifier: bit-depth reduction, JPEG
compression, rounding. When the transformation is not differentiable (or its gradient is zero
almost everywhere) the composed model's gradient is useless, and a gradient attack fails for
the wrong reason. `PreprocessedModel` answers every query through the real composition and
offers `approximate_logits`, whose forward pass is the same but whose backward pass goes
through a differentiable approximation of the transformation: the Backward Pass
Differentiable Approximation of Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False
Sense of Security", ICML 2018.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from bastion.core.errors import ValidationError
from bastion.core.threat_model import Access
from bastion.core.validation import fail
from bastion.models.base import Model, RestrictedModel, require_access
from bastion.models.tensors import as_batch

__all__ = ["PreprocessedModel"]

Transform = Callable[[torch.Tensor], torch.Tensor]
"""A batch-to-batch function that keeps the batch's shape, e.g. ``lambda x: x.round()``."""


class PreprocessedModel:
    """The model ``model(preprocess(x))``, queried and charged as one model.

    Every query runs ``preprocess`` and then ``model``; the query is charged once, to
    ``model``'s counter, which this model shares (see `_query` for a replaced counter).
    `logits` is the true composition, so its gradient is whatever ``preprocess`` lets through
    (nothing, for rounding).
    `approximate_logits` has the same value but differentiates ``approximation`` in place
    of ``preprocess`` (the identity when not given, the straight-through choice Athalye et
    al. use for quantisation, where ``preprocess(x) ~ x``).

    Args:
        model: the classifier behind the transformation.
        preprocess: the transformation; it must keep the batch's shape and device.
        approximation: a differentiable stand-in for ``preprocess`` on the backward pass;
            ``None`` means the identity.
    """

    def __init__(
        self,
        model: Model,
        preprocess: Transform,
        *,
        approximation: Transform | None = None,
    ) -> None:
        if not isinstance(model, Model):
            raise ValidationError(
                "Expected model to be a bastion Model (wrap it with an adapter such as "
                f"TorchModel), but got model of type {type(model).__name__}"
            )
        self.model = model
        if not callable(preprocess):
            raise fail("preprocess", "a callable mapping a batch to a batch", preprocess)
        if approximation is not None and not callable(approximation):
            raise fail(
                "approximation", "None or a callable mapping a batch to a batch", approximation
            )
        self.preprocess = preprocess
        self.approximation = approximation
        self.access: Access = model.access
        self.num_classes = model.num_classes
        self.input_shape = model.input_shape
        self.bounds = model.bounds
        self.counter = model.counter
        self.batch_size = model.batch_size
        self.device = model.device
        self.scores_are_probabilities = getattr(model, "scores_are_probabilities", False)

    def _apply(self, fn: Transform, x: torch.Tensor, what: str) -> torch.Tensor:
        out = fn(x)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValidationError(
                f"Expected {what} to return a tensor of the input's shape {tuple(x.shape)}, "
                f"but it returned {got}"
            )
        return out

    def _query(self, call: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Ask the inner model; the query is charged once, to `counter`.

        Normally `counter` is the inner model's own, which charges it. When `counter` was
        replaced (a copy given a fresh counter, say), that counter is charged and the inner
        model answers uncharged.
        """
        if self.counter is self.model.counter:
            return call(x)
        self.counter.charge(x.shape[0])
        with self.model.counter.paused():
            return call(x)

    def labels(self, x: Any) -> torch.Tensor:
        """Predicted class index per sample of ``preprocess(x)``."""
        batch = as_batch(x, self.input_shape)
        with torch.no_grad():
            inputs = self._apply(self.preprocess, batch, "preprocess")
        return self._query(self.model.labels, inputs)

    def scores(self, x: Any) -> torch.Tensor:
        """Per-class scores of ``preprocess(x)``; needs ``scores`` access."""
        require_access(self.access, Access.SCORES, "scores")
        batch = as_batch(x, self.input_shape)
        with torch.no_grad():
            inputs = self._apply(self.preprocess, batch, "preprocess")
        return self._query(self.model.scores, inputs)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``preprocess(x)``, differentiated through ``preprocess`` itself."""
        require_access(self.access, Access.GRADIENTS, "logits")
        return self._query(self.model.logits, self._apply(self.preprocess, x, "preprocess"))

    def approximate_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``preprocess(x)`` whose gradient is taken through ``approximation``.

        The forward value is exactly `logits`' (the model sees ``preprocess(x)``); on the
        backward pass ``preprocess`` is replaced by ``approximation`` (BPDA).
        """
        require_access(self.access, Access.GRADIENTS, "approximate_logits")
        with torch.no_grad():
            exact = self._apply(self.preprocess, x, "preprocess")
        approx = (
            x if self.approximation is None else self._apply(self.approximation, x, "approximation")
        )
        return self._query(self.model.logits, approx + (exact - approx).detach())

    def restricted(self, access: Access | str) -> RestrictedModel:
        """A view granting at most ``access``, sharing the query counter."""
        return RestrictedModel(self, access)

    def __repr__(self) -> str:
        name = getattr(self.preprocess, "__name__", type(self.preprocess).__name__)
        return f"PreprocessedModel({self.model!r}, preprocess={name})"

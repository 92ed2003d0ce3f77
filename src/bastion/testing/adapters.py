"""`check_adapter`: the contract every `Model` adapter must keep, checked on real inputs.

In the spirit of scikit-learn's ``check_estimator``: one call runs every property over an
adapter and reports each one it breaks. The checks run on shallow copies of the model with
fresh query counters, so the caller's counter is left as it was.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch

from bastion.core.errors import (
    AccessError,
    BastionError,
    QueryBudgetExceeded,
    ValidationError,
)
from bastion.core.threat_model import Access
from bastion.models.base import Model, RestrictedModel
from bastion.models.counter import QueryCounter
from bastion.models.tensors import as_batch

__all__ = ["ConformanceError", "check_adapter"]

_LEVELS = (Access.LABELS, Access.SCORES, Access.GRADIENTS)


class ConformanceError(BastionError):
    """A component breaks the contract its family promises; the message names each property.

    ``ConformanceError(message)`` works as for any exception; `check_adapter` also passes
    the broken properties as ``failures``.

    Attributes:
        failures: ``(property, what went wrong)`` pairs, in the order they were checked.
    """

    def __init__(self, message: str, failures: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.failures = tuple(failures)

    @property
    def failed(self) -> tuple[str, ...]:
        """The names of the broken properties."""
        return tuple(name for name, _ in self.failures)


def _conformance_error(subject: str, failures: Sequence[tuple[str, str]]) -> ConformanceError:
    lines = "\n".join(f"  - {name}: {detail}" for name, detail in failures)
    plural = "property" if len(failures) == 1 else "properties"
    return ConformanceError(
        f"{subject} breaks {len(failures)} adapter {plural}:\n{lines}", failures
    )


class _PropertyBrokenError(Exception):
    """One property does not hold; raised inside a check, collected by `check_adapter`."""


def _clone(model: Any, *, budget: int | None = None, batch_size: int | None = None) -> Any:
    """A shallow copy of ``model`` with a fresh counter (and optionally another batch size)."""
    if isinstance(model, RestrictedModel):
        # a view charges its parent, so the parent is what gets the fresh counter
        return RestrictedModel(
            _clone(model._inner, budget=budget, batch_size=batch_size), model.access
        )
    clone = copy.copy(model)
    clone.counter = QueryCounter(budget)
    if batch_size is not None:
        clone.batch_size = batch_size
    return clone


def _charged(model: Any, call: Callable[..., Any], *args: Any) -> tuple[Any, int]:
    before = model.counter.count
    result = call(*args)
    return result, model.counter.count - before


def _expect_charge(what: str, charged: int, n: int) -> None:
    if charged != n:
        raise _PropertyBrokenError(
            f"{what} on {n} samples charged the counter {charged}, expected {n}"
        )


def _refuses(
    what: str, error: type[BaseException], model: Any, call: Callable[..., Any], *args: Any
) -> None:
    before = model.counter.count
    try:
        call(*args)
    except error:
        pass
    except Exception as exc:
        raise _PropertyBrokenError(
            f"{what} raised {type(exc).__name__} ({exc}), expected {error.__name__}"
        ) from exc
    else:
        raise _PropertyBrokenError(f"{what} did not raise, expected {error.__name__}")
    if model.counter.count != before:
        raise _PropertyBrokenError(
            f"{what} was refused but charged {model.counter.count - before} queries"
        )


def _grants(model: Any, level: Access) -> bool:
    return bool(model.access.grants(level))


# --- the properties -------------------------------------------------------------------------
def _protocol(model: Any, expected: Access | None) -> None:
    if not isinstance(model, Model):
        raise _PropertyBrokenError(
            f"{type(model).__name__} does not have every member of the Model protocol"
        )
    if not isinstance(model.access, Access):
        raise _PropertyBrokenError(f"access is {model.access!r}, expected an Access")
    if expected is not None and model.access is not expected:
        raise _PropertyBrokenError(f"access is '{model.access.value}', expected '{expected.value}'")
    if isinstance(model.num_classes, bool) or not isinstance(model.num_classes, int):
        raise _PropertyBrokenError(f"num_classes is {model.num_classes!r}, expected an int")
    if model.num_classes < 2:
        raise _PropertyBrokenError(f"num_classes is {model.num_classes}, expected at least 2")
    shape = model.input_shape
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d > 0 for d in shape):
        raise _PropertyBrokenError(f"input_shape is {shape!r}, expected a tuple of positive ints")
    low, high = model.bounds
    if not (isinstance(low, float) and isinstance(high, float) and low < high):
        raise _PropertyBrokenError(
            f"bounds is {model.bounds!r}, expected floats (low, high) with low < high"
        )
    if not isinstance(model.batch_size, int) or model.batch_size < 1:
        raise _PropertyBrokenError(f"batch_size is {model.batch_size!r}, expected a positive int")
    if not isinstance(repr(model), str):
        raise _PropertyBrokenError("repr() did not return a string")


def _labels(model: Any, x: torch.Tensor) -> None:
    n = x.shape[0]
    labels, charged = _charged(model, lambda: model.labels(x))
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64:
        raise _PropertyBrokenError(
            f"labels() returned {type(labels).__name__} "
            f"{getattr(labels, 'dtype', '')}, expected an int64 tensor"
        )
    if tuple(labels.shape) != (n,):
        raise _PropertyBrokenError(
            f"labels() returned shape {tuple(labels.shape)}, expected ({n},)"
        )
    if int(labels.min()) < 0 or int(labels.max()) >= model.num_classes:
        raise _PropertyBrokenError(
            f"labels() returned values from {int(labels.min())} to "
            f"{int(labels.max())}, expected [0, {model.num_classes - 1}]"
        )
    _expect_charge("labels()", charged, n)
    again = model.labels(x.numpy())
    if not torch.equal(again, labels):
        raise _PropertyBrokenError(
            "labels() of the same batch as a numpy array differ from the tensor's"
        )


def _scores(model: Any, x: torch.Tensor) -> None:
    n, k = x.shape[0], model.num_classes
    if not _grants(model, Access.SCORES):
        _refuses("scores() on a label-only model", AccessError, model, lambda: model.scores(x))
        return
    scores, charged = _charged(model, lambda: model.scores(x))
    if not isinstance(scores, torch.Tensor) or not scores.is_floating_point():
        raise _PropertyBrokenError(
            f"scores() returned {type(scores).__name__}, expected a float tensor"
        )
    if tuple(scores.shape) != (n, k):
        raise _PropertyBrokenError(
            f"scores() returned shape {tuple(scores.shape)}, expected ({n}, {k})"
        )
    if not bool(torch.isfinite(scores).all()):
        raise _PropertyBrokenError("scores() returned NaN or infinity")
    _expect_charge("scores()", charged, n)
    if getattr(model, "scores_are_probabilities", False):
        sums = scores.double().sum(dim=1)
        if bool((scores < -1e-6).any()) or not torch.allclose(
            sums, torch.ones_like(sums), atol=1e-4
        ):
            raise _PropertyBrokenError(
                "scores_are_probabilities is True, but rows are not probabilities"
            )


def _logits(model: Any, x: torch.Tensor) -> None:
    n, k = x.shape[0], model.num_classes
    xg = x.to(model.device).clone().requires_grad_(True)
    if not _grants(model, Access.GRADIENTS):
        _refuses("logits() without gradient access", AccessError, model, lambda: model.logits(xg))
        return
    out, charged = _charged(model, lambda: model.logits(xg))
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (n, k):
        raise _PropertyBrokenError(
            f"logits() returned {tuple(getattr(out, 'shape', ()))}, expected ({n}, {k})"
        )
    if not out.requires_grad:
        raise _PropertyBrokenError("logits() returned a tensor that does not require grad")
    out.sum().backward()
    if xg.grad is None or not bool(torch.isfinite(xg.grad).all()):
        raise _PropertyBrokenError("logits() gave no finite gradient with respect to the input")
    _expect_charge("logits()", charged, n)


def _deterministic(model: Any, x: torch.Tensor) -> None:
    if not torch.equal(model.labels(x), model.labels(x)):
        raise _PropertyBrokenError("labels() of the same batch differ between two calls")
    if _grants(model, Access.SCORES) and not torch.allclose(
        model.scores(x), model.scores(x), rtol=1e-6, atol=1e-7
    ):
        raise _PropertyBrokenError("scores() of the same batch differ between two calls")


def _restricted(model: Any, x: torch.Tensor) -> None:
    n = x.shape[0]
    expected = model.labels(x)
    for level in _LEVELS:
        if not _grants(model, level):
            _refuses(
                f"restricted('{level.value}') (widening)",
                AccessError,
                model,
                model.restricted,
                level,
            )
            continue
        view = model.restricted(level)
        if view.access is not level:
            raise _PropertyBrokenError(f"restricted('{level.value}') grants '{view.access.value}'")
        if view.counter is not model.counter:
            raise _PropertyBrokenError(
                f"restricted('{level.value}') does not share the model's counter"
            )
        labels, charged = _charged(model, view.labels, x)
        if not torch.equal(labels, expected):
            raise _PropertyBrokenError(
                f"restricted('{level.value}').labels() differ from the model's"
            )
        _expect_charge(f"restricted('{level.value}').labels()", charged, n)
    view = model.restricted(Access.LABELS)
    _refuses("restricted('labels').scores()", AccessError, model, lambda: view.scores(x))
    _refuses(
        "restricted('labels').logits()", AccessError, model, lambda: view.logits(x.to(model.device))
    )
    _refuses(
        "restricted('labels').restricted('scores')",
        AccessError,
        model,
        lambda: view.restricted(Access.SCORES),
    )


def _budget(model: Any, x: torch.Tensor) -> None:
    n = x.shape[0]
    methods = ["labels"] + (["scores"] if _grants(model, Access.SCORES) else [])
    for method in methods:
        what = f"{method}()"
        for batch_size in (None, 1):
            tight = _clone(model, budget=n - 1, batch_size=batch_size)
            where = f"{what} with budget {n - 1}" + (" and batch_size=1" if batch_size else "")
            _refuses(where, QueryBudgetExceeded, tight, getattr(tight, method), x)
        exact = _clone(model, budget=n)
        try:
            _, charged = _charged(exact, getattr(exact, method), x)
        except QueryBudgetExceeded as exc:
            raise _PropertyBrokenError(
                f"{what} on {n} samples with a budget of {n} was refused: {exc}"
            ) from exc
        _expect_charge(f"{what} with budget {n}", charged, n)
        _refuses(
            f"{what} after the budget of {n} was spent",
            QueryBudgetExceeded,
            exact,
            getattr(exact, method),
            x,
        )


def _batching(model: Any, x: torch.Tensor) -> None:
    n = x.shape[0]
    single = _clone(model, batch_size=1)
    labels, charged = _charged(single, lambda: single.labels(x))
    _expect_charge("labels() with batch_size=1", charged, n)
    if not torch.equal(labels, model.labels(x)):
        raise _PropertyBrokenError(
            "labels() differ between batch_size=1 and the default batch size"
        )
    if _grants(model, Access.SCORES) and not torch.allclose(
        single.scores(x), model.scores(x), rtol=1e-4, atol=1e-6
    ):
        raise _PropertyBrokenError(
            "scores() differ between batch_size=1 and the default batch size"
        )


def _bad_inputs(model: Any, x: torch.Tensor) -> None:
    nan = x.clone()
    nan.view(-1)[0] = float("nan")
    cases: list[tuple[str, Any]] = [
        ("a NaN input", nan),
        ("an infinite input", nan.nan_to_num(nan=float("inf"))),
        ("an input with an extra axis", x.unsqueeze(1)),
        ("one sample without its batch axis", x[0]),
        ("an empty batch", x[:0]),
        ("a string", "not an array"),
        ("a dict", {"x": x}),
    ]
    methods = [("labels", model.labels)]
    if _grants(model, Access.SCORES):
        methods.append(("scores", model.scores))
    for name, method in methods:
        for label, bad in cases:
            _refuses(
                f"{name}() on {label}",
                ValidationError,
                model,
                method,
                bad,
            )


_CHECKS: tuple[tuple[str, Callable[[Any, torch.Tensor], None]], ...] = (
    ("labels", _labels),
    ("scores", _scores),
    ("logits", _logits),
    ("deterministic", _deterministic),
    ("restricted", _restricted),
    ("budget", _budget),
    ("batching", _batching),
    ("bad-input", _bad_inputs),
)


def check_adapter(model: Any, x: Any, *, expected_access: Access | str | None = None) -> None:
    """Check that ``model`` keeps the `Model` contract on the valid batch ``x``.

    Properties checked (each named in a failure): ``protocol`` (members and their types,
    ``expected_access``), ``labels`` (int64, shape ``(n,)``, in range, charged ``n``),
    ``scores`` (``(n, num_classes)``, finite, charged ``n``; `AccessError` without scores
    access), ``logits`` (differentiable with gradient access, else `AccessError`),
    ``deterministic``, ``restricted`` (narrowing works and shares the counter, widening and
    scores through a label view are refused), ``budget`` (a refused call charges nothing),
    ``batching`` (``batch_size=1`` gives the same answers), ``bad-input`` (NaN, infinity,
    wrong shape, wrong type and an empty batch raise `ValidationError` and charge nothing).

    Args:
        model: the adapter under test; it is copied, never changed, and its counter is not
            charged.
        x: at least two valid samples, shape ``(n, *model.input_shape)``, inside bounds.
        expected_access: the access the adapter should grant, if known.

    Raises:
        ConformanceError: one or more properties do not hold; all are listed.
        ValidationError: ``x`` or ``expected_access`` is not valid.
    """
    expected = None if expected_access is None else Access.parse(expected_access, "expected_access")
    subject = type(model).__name__
    try:
        _protocol(model, expected)
    except _PropertyBrokenError as exc:
        raise _conformance_error(subject, [("protocol", str(exc))]) from None
    batch = as_batch(x, model.input_shape)
    if batch.shape[0] < 2:
        raise ValidationError(
            f"Expected x to hold at least 2 samples, but it holds {batch.shape[0]}"
        )
    failures: list[tuple[str, str]] = []
    for name, check in _CHECKS:
        try:
            fresh = _clone(model)
            check(fresh, batch.clone())
        except _PropertyBrokenError as exc:
            failures.append((name, str(exc)))
        except Exception as exc:
            failures.append((name, f"unexpected {type(exc).__name__}: {exc}"))
    if failures:
        raise _conformance_error(subject, failures)

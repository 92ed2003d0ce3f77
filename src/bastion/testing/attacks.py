"""`check_attack`: the contract every attack must keep, runnable against any registered attack.

In the spirit of scikit-learn's ``check_estimator``: one call exercises input validation,
bounds and budget, determinism under a seed, `Attack.generate` agreeing with the call,
access and query-budget enforcement, and that neither the inputs nor the model are changed.
Failures raise `ConformanceError` naming the property that broke.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from bastion.attacks.base import Attack
from bastion.core.errors import (
    AccessError,
    BoundsError,
    NonFiniteError,
    QueryBudgetExceeded,
    ShapeError,
    ValidationError,
)
from bastion.core.results import AttackResult
from bastion.core.threat_model import Access
from bastion.models.base import Model
from bastion.models.counter import QueryCounter
from bastion.testing.adapters import ConformanceError

__all__ = ["ConformanceError", "check_attack"]

_TOL = 1e-5


def _expect(error: type[Exception], what: str, fn: Callable[[], Any]) -> None:
    try:
        fn()
    except error:
        return
    except Exception as exc:
        raise ConformanceError(
            f"{what}: expected {error.__name__}, got {type(exc).__name__}: {exc}"
        ) from exc
    raise ConformanceError(f"{what}: expected {error.__name__}, but nothing was raised")


def _state(model: Model) -> list[torch.Tensor]:
    module = getattr(model, "module", None)
    if isinstance(module, torch.nn.Module):
        return [p.detach().clone() for p in module.state_dict().values()]
    return []


def check_attack(attack: Attack, model: Model, x: torch.Tensor, y: torch.Tensor) -> AttackResult:
    """Check ``attack`` against ``model`` on a small batch ``(x, y)``; returns the clean run.

    ``model`` must grant the access the attack needs. Raises `ConformanceError` on the first
    property that fails.
    """
    cls = type(attack)
    for name in ("id", "norm", "requires", "leaf", "title"):
        if not hasattr(cls, name):
            raise ConformanceError(f"{cls.__name__} does not declare the class attribute {name!r}")

    # Hyperparameters are validated at construction.
    _expect(ValidationError, "epsilon=-1 at construction", lambda: cls(epsilon=-1.0))
    _expect(ValidationError, "epsilon='0.1' at construction", lambda: cls(epsilon="0.1"))  # type: ignore[arg-type]

    # Bad inputs get the right error, before any query.
    bad = x.clone()
    bad.view(-1)[0] = float("nan")
    _expect(NonFiniteError, "x holding NaN", lambda: attack(model, bad, y))
    _expect(
        ShapeError,
        "x of the wrong shape",
        lambda: attack(model, x.reshape(x.shape[0], -1)[:, :-1], y),
    )
    low, high = model.bounds
    _expect(BoundsError, "x outside the bounds", lambda: attack(model, x + (high - low) * 2, y))
    _expect(ValidationError, "labels out of range", lambda: attack(model, x, y + model.num_classes))
    _expect(ShapeError, "labels of the wrong length", lambda: attack(model, x, y[:-1]))
    _expect(ValidationError, "a model that is not a Model", lambda: attack(object(), x, y))  # type: ignore[arg-type]
    _expect(ValidationError, "x of the wrong type", lambda: attack(model, "pixels", y))

    # Access: a view below the attack's requirement is refused, naming the access needed.
    if attack.requires is not Access.LABELS:
        lower = Access.SCORES if attack.requires is Access.GRADIENTS else Access.LABELS
        view = model.restricted(Access.LABELS if lower is Access.SCORES else lower)
        try:
            attack(view, x, y)
        except AccessError as exc:
            if attack.requires.value not in str(exc):
                raise ConformanceError(
                    f"AccessError does not name the access needed: {exc}"
                ) from exc
        else:
            raise ConformanceError("a label-only view was accepted by an attack that needs more")

    # A clean run: inputs and model unchanged, outputs inside bounds and budget, counted.
    x_before, y_before, params_before = x.clone(), y.clone(), _state(model)
    count_before = model.counter.count
    result = attack(model, x, y)
    if not (torch.equal(x, x_before) and torch.equal(y, y_before)):
        raise ConformanceError("the attack changed its input tensors")
    after = _state(model)
    if any(not torch.equal(a, b) for a, b in zip(params_before, after, strict=True)):
        raise ConformanceError("the attack changed the model's parameters")
    if result.x_adv.shape != x.shape:
        raise ConformanceError(
            f"x_adv has shape {tuple(result.x_adv.shape)}, expected {tuple(x.shape)}"
        )
    if float(result.x_adv.min()) < low - _TOL or float(result.x_adv.max()) > high + _TOL:
        raise ConformanceError("x_adv leaves the input bounds")
    limit = attack.epsilon * (1 + 1e-4) + _TOL
    if float(result.norms.max()) > limit:
        raise ConformanceError(
            f"a perturbation of size {float(result.norms.max()):g} "
            f"exceeds epsilon={attack.epsilon:g}"
        )
    if result.queries != model.counter.count - count_before or result.queries <= 0:
        raise ConformanceError(
            f"reported {result.queries} queries, "
            f"the counter saw {model.counter.count - count_before}"
        )
    if len(result.success) != x.shape[0] or len(result.clean_correct) != x.shape[0]:
        raise ConformanceError("per-sample outputs do not have one entry per input")

    # Determinism: the same seed gives the same inputs; the global RNG is not consumed.
    rng = torch.get_rng_state()
    again = attack(model, x, y)
    if not torch.equal(again.x_adv, result.x_adv):
        raise ConformanceError("two runs with the same seed gave different adversarial inputs")
    if not torch.equal(torch.get_rng_state(), rng):
        raise ConformanceError("the attack consumed the global torch RNG")

    # generate: the same examples for the same seed and queries, without the success pass.
    count_before = model.counter.count
    crafted = attack.generate(model, x, y)
    if not torch.equal(crafted, result.x_adv):
        raise ConformanceError("generate() returned other examples than the attack's x_adv")
    if model.counter.count - count_before != result.queries:
        raise ConformanceError(
            f"generate() spent {model.counter.count - count_before} queries, "
            f"the attack {result.queries}"
        )

    # Budget: with too little budget the attack either raises QueryBudgetExceeded or returns
    # a clean partial result that stayed within the budget and says how many queries it used.
    original = model.counter
    short = max(result.queries - 1, 0)
    try:
        model.counter = QueryCounter(budget=short)
        try:
            partial = attack(model, x, y)
        except QueryBudgetExceeded:
            pass
        else:
            if partial.queries != model.counter.count or partial.queries > short:
                raise ConformanceError(
                    f"with a budget of {short} the attack reported {partial.queries} queries, "
                    f"the counter saw {model.counter.count}"
                )
            if partial.x_adv.shape != x.shape or float(partial.norms.max()) > limit:
                raise ConformanceError("a partial result broke the shape or the epsilon budget")
    finally:
        model.counter = original
    return result

"""Argument validation that raises, never asserts, so it still holds under ``python -O``.

Every check names the argument, says what was expected and shows what came, in one form:
``Expected epsilon to be a number > 0, but got epsilon=-1 (type=int)``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from typing import Any, TypeVar

from bastion.core.errors import ValidationError

__all__ = [
    "check_bool",
    "check_bounds",
    "check_choice",
    "check_int",
    "check_number",
    "check_type",
    "describe",
    "fail",
]

T = TypeVar("T")


def describe(name: str, value: Any) -> str:
    """Render ``name=value (type=T)`` with a short repr, for error messages."""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{name}={text} (type={type(value).__name__})"


def fail(
    name: str, expected: str, value: Any, *, error: type[ValidationError] = ValidationError
) -> ValidationError:
    """Build (not raise) the uniform error for argument ``name``; callers ``raise fail(...)``."""
    return error(f"Expected {name} to be {expected}, but got {describe(name, value)}")


def check_type(
    name: str, value: Any, types: type[T] | tuple[type, ...], expected: str | None = None
) -> T:
    """Return ``value`` if it is an instance of ``types``; raise `ValidationError` otherwise."""
    if not isinstance(value, types):
        if expected is None:
            kinds = types if isinstance(types, tuple) else (types,)
            expected = " or ".join(k.__name__ for k in kinds)
        raise fail(name, expected, value)
    return value  # type: ignore[return-value]


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a real bool (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise fail(name, "a bool", value)
    return value


def _bounds_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    return " and ".join(parts)


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a float if it is a finite real number within the given range.

    Bools are refused (``True`` is not an epsilon). ``low_open``/``high_open`` make a bound strict.
    """

    def expected() -> str:  # built only for the error message
        rng = _bounds_text(low, high, low_open, high_open)
        return "a finite number" + (" " + rng if rng else "")

    # numpy and torch scalars expose __float__ and an ``item`` method; accept those too
    is_real = isinstance(value, (int, float)) or (
        hasattr(value, "item") and hasattr(value, "__float__")
    )
    if isinstance(value, bool) or not is_real:
        raise fail(name, expected(), value)
    number = float(value)
    if not math.isfinite(number):
        raise fail(name, expected(), value)
    if low is not None and (number < low or (low_open and number == low)):
        raise fail(name, expected(), value)
    if high is not None and (number > high or (high_open and number == high)):
        raise fail(name, expected(), value)
    return number


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` if it is an int (not a bool) within ``[low, high]``."""
    expected = "an int"
    rng = _bounds_text(low, high, False, False)
    if rng:
        expected += " " + rng
    if isinstance(value, bool) or not (isinstance(value, int) or hasattr(value, "__index__")):
        raise fail(name, expected, value)
    number = int(value)
    if (low is not None and number < low) or (high is not None and number > high):
        raise fail(name, expected, value)
    return number


def check_choice(name: str, value: Any, choices: Collection[T] | Iterable[T]) -> T:
    """Return ``value`` if it is one of ``choices``."""
    options = list(choices)
    if value not in options:
        listed = ", ".join(repr(c) for c in options)
        raise fail(name, f"one of {listed}", value)
    return value  # type: ignore[no-any-return]


def check_bounds(name: str, bounds: Any) -> tuple[float, float]:
    """Return ``bounds`` as a pair of finite floats ``(low, high)`` with ``low < high``."""
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise fail(name, "a pair (low, high)", bounds)
    low = check_number(f"{name}[0]", bounds[0])
    high = check_number(f"{name}[1]", bounds[1])
    if not low < high:
        raise fail(name, "a pair (low, high) with low < high", bounds)
    return (low, high)

"""What an attacker may change in a tabular input: `FeatureConstraints`.

A pure description (no tensors, standard library only), validated once at construction; the
attacks turn it into masks and tensors when they run (``bastion.attacks.constraints``).
Features are numbered as the flattened input, ``0 .. num_features - 1``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bastion.core.validation import check_int, check_type, fail

__all__ = ["FeatureConstraints"]

_Bound = Mapping[int, float | None] | Sequence[float | None]


@dataclass(frozen=True, init=False)
class FeatureConstraints:
    """Per-feature rules every adversarial example must obey, on top of the model's bounds.

    All index arguments name features of the flattened input. Every argument is keyword-only
    and validated here (`ValidationError` naming the argument); the result is immutable.

    Args:
        num_features: how many features one input has (the product of the model's input
            shape); checked against the model when an attack runs.
        lower: per-feature lower bounds, a mapping ``{feature: bound}`` or a sequence of
            ``num_features`` entries; ``None`` or ``-inf`` means no bound.
        upper: per-feature upper bounds, as ``lower``; ``None`` or ``inf`` means no bound.
        immutable: features the attacker cannot change at all (an age, a date of birth).
        integer: features that take whole-number values only (counts).
        one_hot: groups of features that one-hot encode one categorical variable: in every
            input exactly one feature of a group is 1 and the others are 0.
        categorical: integer-coded categorical features, ``{feature: allowed values}``.
        feature_names: optional names (``num_features`` of them) used in error messages.

    Attributes:
        num_features: as given.
        lower: a tuple of ``num_features`` floats (``-inf`` where unbounded).
        upper: a tuple of ``num_features`` floats (``inf`` where unbounded).
        immutable: sorted feature indices.
        integer: sorted feature indices.
        one_hot: the groups, each a sorted tuple of feature indices.
        categorical: sorted ``(feature, sorted allowed values)`` pairs.
        feature_names: a tuple of names, or None.
    """

    num_features: int
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    immutable: tuple[int, ...]
    integer: tuple[int, ...]
    one_hot: tuple[tuple[int, ...], ...]
    categorical: tuple[tuple[int, tuple[float, ...]], ...]
    feature_names: tuple[str, ...] | None

    def __init__(
        self,
        *,
        num_features: int,
        lower: _Bound | None = None,
        upper: _Bound | None = None,
        immutable: Iterable[int] = (),
        integer: Iterable[int] = (),
        one_hot: Iterable[Iterable[int]] = (),
        categorical: Mapping[int, Iterable[float]] | None = None,
        feature_names: Sequence[str] | None = None,
    ) -> None:
        n = check_int("num_features", num_features, low=1)
        low = _bounds("lower", {} if lower is None else lower, n, -math.inf)
        high = _bounds("upper", {} if upper is None else upper, n, math.inf)
        for i, (lo, hi) in enumerate(zip(low, high, strict=True)):
            if lo > hi:
                raise fail(f"lower[{i}]", f"<= upper[{i}]={hi:g}", lo)
        frozen = _indices("immutable", immutable, n)
        whole = _indices("integer", integer, n)
        groups = _groups(one_hot, n)
        coded = _categorical({} if categorical is None else categorical, n)
        _check_overlaps(frozen, whole, groups, coded)
        for i, values in coded:
            if any(not low[i] <= v <= high[i] for v in values):
                raise fail(
                    f"categorical[{i}]",
                    f"values within feature {i}'s bounds [{low[i]:g}, {high[i]:g}]",
                    values,
                )
        for g, members in enumerate(groups):
            if not any(low[i] <= 1.0 <= high[i] for i in members):
                raise fail(f"one_hot[{g}]", "a group one of whose features may be 1", members)
        for key, value in (
            ("num_features", n),
            ("lower", low),
            ("upper", high),
            ("immutable", frozen),
            ("integer", whole),
            ("one_hot", groups),
            ("categorical", coded),
            ("feature_names", _names(feature_names, n)),
        ):
            object.__setattr__(self, key, value)

    def name(self, index: int) -> str:
        """``feature 3`` or ``feature 3 ('age')``: how messages refer to feature ``index``."""
        if self.feature_names is not None:
            return f"feature {index} ({self.feature_names[index]!r})"
        return f"feature {index}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (infinite bounds become None)."""

        def finite(values: Iterable[float]) -> list[float | None]:
            return [v if math.isfinite(v) else None for v in values]

        return {
            "num_features": self.num_features,
            "lower": finite(self.lower),
            "upper": finite(self.upper),
            "immutable": list(self.immutable),
            "integer": list(self.integer),
            "one_hot": [list(g) for g in self.one_hot],
            "categorical": {str(i): list(v) for i, v in self.categorical},
            "feature_names": None if self.feature_names is None else list(self.feature_names),
        }


def _check_overlaps(
    immutable: tuple[int, ...],
    integer: tuple[int, ...],
    groups: tuple[tuple[int, ...], ...],
    categorical: tuple[tuple[int, tuple[float, ...]], ...],
) -> None:
    in_group = {i: g for g, members in enumerate(groups) for i in members}
    coded = {i for i, _ in categorical}
    for i in immutable:
        if i in in_group:
            raise fail(
                "immutable",
                f"disjoint from one_hot (feature {i} is in one_hot[{in_group[i]}]; to freeze a "
                "categorical variable list all its features in immutable only)",
                immutable,
            )
    for i in integer:
        if i in in_group:
            raise fail("integer", f"disjoint from one_hot (feature {i} is in one_hot)", integer)
        if i in coded:
            raise fail("integer", f"disjoint from categorical (feature {i} is in both)", integer)
    for i in coded:
        if i in in_group:
            raise fail("categorical", f"disjoint from one_hot (feature {i} is in one_hot)", i)


def _index(name: str, value: Any, n: int) -> int:
    return check_int(name, value, low=0, high=n - 1)


def _indices(name: str, values: Any, n: int) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise fail(name, "a sequence of feature indices", values)
    out = tuple(_index(f"{name}[{k}]", v, n) for k, v in enumerate(values))
    if len(set(out)) != len(out):
        raise fail(name, "feature indices without repeats", values)
    return tuple(sorted(out))


def _bound_value(name: str, value: Any, default: float) -> float:
    if value is None:
        return default
    is_real = isinstance(value, (int, float)) or hasattr(value, "__float__")
    if isinstance(value, bool) or not is_real or math.isnan(float(value)):
        raise fail(name, "a number (not NaN) or None", value)
    return float(value)


def _bounds(name: str, value: Any, n: int, default: float) -> tuple[float, ...]:
    out = [default] * n
    if isinstance(value, Mapping):
        for key, bound in value.items():
            i = _index(f"{name} key", key, n)
            out[i] = _bound_value(f"{name}[{i}]", bound, default)
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        if len(value) != n:
            raise fail(name, f"a mapping or a sequence of num_features={n} entries", value)
        out = [_bound_value(f"{name}[{i}]", v, default) for i, v in enumerate(value)]
    else:
        raise fail(name, "a mapping {feature: bound} or a sequence of bounds", value)
    return tuple(out)


def _names(value: Any, n: int) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != n:
        raise fail("feature_names", f"None or a sequence of num_features={n} strings", value)
    return tuple(check_type(f"feature_names[{i}]", v, str) for i, v in enumerate(value))


def _groups(value: Any, n: int) -> tuple[tuple[int, ...], ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise fail("one_hot", "a sequence of feature-index groups", value)
    groups = tuple(_indices(f"one_hot[{g}]", members, n) for g, members in enumerate(value))
    owner: dict[int, int] = {}
    for g, members in enumerate(groups):
        if len(members) < 2:
            raise fail(f"one_hot[{g}]", "a group of at least 2 features", members)
        for i in members:
            if i in owner:
                raise fail(
                    "one_hot",
                    f"disjoint groups (feature {i} is in groups {owner[i]} and {g})",
                    value,
                )
            owner[i] = g
    return groups


def _categorical(value: Any, n: int) -> tuple[tuple[int, tuple[float, ...]], ...]:
    if not isinstance(value, Mapping):
        raise fail("categorical", "a mapping {feature: allowed values}", value)
    out = []
    for key, allowed in value.items():
        i = _index("categorical key", key, n)
        name = f"categorical[{i}]"
        if isinstance(allowed, (str, bytes)) or not isinstance(allowed, Iterable):
            raise fail(name, "a sequence of allowed values", allowed)
        values = []
        for v in allowed:
            number = _bound_value(name, v, math.nan)
            if not math.isfinite(number):
                raise fail(name, "finite allowed values", allowed)
            values.append(number)
        if not values:
            raise fail(name, "a non-empty sequence of allowed values", allowed)
        out.append((i, tuple(sorted(set(values)))))
    return tuple(sorted(out))

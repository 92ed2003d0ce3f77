"""What the attacker can do: the perturbation budget and the access they have to the model."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Self

from bastion.core.validation import check_bool, check_bounds, check_choice, check_number, fail

__all__ = ["Access", "Goal", "Norm", "Severity", "ThreatModel"]


class _Parsable(enum.StrEnum):
    """A string enum whose `parse` accepts a member or its value, with the uniform error."""

    @classmethod
    def parse(cls, value: Any, name: str | None = None) -> Self:
        """Turn a member's value (or a member) into the member; name the argument in errors."""
        if isinstance(value, cls):
            return value
        check_choice(name or cls._arg_name(), value, [m.value for m in cls])
        return cls(value)

    @classmethod
    def _arg_name(cls) -> str:
        return cls.__name__.lower()


class Access(_Parsable):
    """What a model answers with, from least to most revealing.

    An attacker who can read ``scores`` can also read labels; one with ``gradients`` can do both.
    """

    LABELS = "labels"
    SCORES = "scores"
    GRADIENTS = "gradients"

    @property
    def rank(self) -> int:
        """0 for labels, 1 for scores, 2 for gradients."""
        return _ACCESS_ORDER.index(self)

    def grants(self, needed: Access | str) -> bool:
        """True when this access level includes ``needed``."""
        return self.rank >= Access.parse(needed).rank


_ACCESS_ORDER = (Access.LABELS, Access.SCORES, Access.GRADIENTS)


class Norm(_Parsable):
    """The distance in which a perturbation is measured."""

    LINF = "linf"
    L2 = "l2"
    L1 = "l1"
    L0 = "l0"


class Goal(_Parsable):
    """The five attacker goals, each against one security property."""

    DISRUPTION = "disruption"  # availability of the system
    POISONING = "poisoning"  # integrity of the model
    EVASION = "evasion"  # integrity of the system
    DISCLOSURE = "disclosure"  # confidentiality of the training data
    ESPIONAGE = "espionage"  # confidentiality of the model


class Severity(_Parsable):
    """How bad a finding is; ordered from ``info`` to ``critical``."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for info up to 4 for critical."""
        return list(Severity).index(self)


@dataclass(frozen=True)
class ThreatModel:
    """An evasion attacker: how far they may move an input, and what the model tells them.

    Attributes:
        norm: the distance the perturbation is measured in.
        epsilon: the largest allowed perturbation in that norm (in input units, before any
            normalisation the model applies itself).
        bounds: the valid input range ``(low, high)``; adversarial inputs stay inside it.
        targeted: whether the attacker wants a chosen label rather than any wrong one.
        access: what the attacker can read from the model.
    """

    norm: Norm = Norm.LINF
    epsilon: float = 0.1
    bounds: tuple[float, float] = (0.0, 1.0)
    targeted: bool = False
    access: Access = Access.GRADIENTS

    def __post_init__(self) -> None:
        object.__setattr__(self, "norm", Norm.parse(self.norm))
        object.__setattr__(self, "access", Access.parse(self.access))
        eps = check_number("epsilon", self.epsilon, low=0.0)
        if self.norm is Norm.L0 and eps != int(eps):
            raise fail("epsilon", "a whole number of features for the l0 norm", self.epsilon)
        object.__setattr__(self, "epsilon", eps)
        object.__setattr__(self, "bounds", check_bounds("bounds", self.bounds))
        check_bool("targeted", self.targeted)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "norm": self.norm.value,
            "epsilon": self.epsilon,
            "bounds": list(self.bounds),
            "targeted": self.targeted,
            "access": self.access.value,
        }

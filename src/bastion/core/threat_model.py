"""What the attacker can do: the perturbation budget and the access they have to the model."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from bastion.core.validation import check_bool, check_choice, check_number, fail

__all__ = ["Access", "Goal", "Norm", "Severity", "ThreatModel"]


class Access(str, enum.Enum):
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

    @classmethod
    def parse(cls, value: Any, name: str = "access") -> Access:
        """Turn ``"labels"``/``"scores"``/``"gradients"`` (or an `Access`) into an `Access`."""
        if isinstance(value, Access):
            return value
        check_choice(name, value, [a.value for a in cls])
        return cls(value)


_ACCESS_ORDER = (Access.LABELS, Access.SCORES, Access.GRADIENTS)


class Norm(str, enum.Enum):
    """The distance in which a perturbation is measured."""

    LINF = "linf"
    L2 = "l2"
    L0 = "l0"

    @classmethod
    def parse(cls, value: Any, name: str = "norm") -> Norm:
        """Turn ``"linf"``/``"l2"``/``"l0"`` (or a `Norm`) into a `Norm`."""
        if isinstance(value, Norm):
            return value
        check_choice(name, value, [n.value for n in cls])
        return cls(value)


class Goal(str, enum.Enum):
    """The five attacker goals, each against one security property."""

    DISRUPTION = "disruption"  # availability of the system
    POISONING = "poisoning"  # integrity of the model
    EVASION = "evasion"  # integrity of the system
    DISCLOSURE = "disclosure"  # confidentiality of the training data
    ESPIONAGE = "espionage"  # confidentiality of the model

    @classmethod
    def parse(cls, value: Any, name: str = "goal") -> Goal:
        """Turn a goal's name (or a `Goal`) into a `Goal`."""
        if isinstance(value, Goal):
            return value
        check_choice(name, value, [g.value for g in cls])
        return cls(value)


class Severity(str, enum.Enum):
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

    @classmethod
    def parse(cls, value: Any, name: str = "severity") -> Severity:
        """Turn a severity's name (or a `Severity`) into a `Severity`."""
        if isinstance(value, Severity):
            return value
        check_choice(name, value, [s.value for s in cls])
        return cls(value)


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
        bounds = self.bounds
        if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
            raise fail("bounds", "a pair (low, high)", bounds)
        low = check_number("bounds[0]", bounds[0])
        high = check_number("bounds[1]", bounds[1])
        if not low < high:
            raise fail("bounds", "a pair (low, high) with low < high", bounds)
        object.__setattr__(self, "bounds", (low, high))
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

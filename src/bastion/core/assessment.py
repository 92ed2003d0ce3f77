"""The record of one assessment: what was attacked, the measured curve, and the findings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bastion.core.results import Finding
from bastion.core.threat_model import Norm, Severity
from bastion.core.validation import check_int, check_number, check_type

__all__ = ["AssessmentResult", "SweepPoint"]


@dataclass(frozen=True)
class SweepPoint:
    """One attack at one epsilon over the evaluation set.

    Attributes:
        attack: the attack's registry id.
        norm: the norm its epsilon is measured in.
        epsilon: the budget.
        samples: how many inputs were attacked.
        clean_accuracy: accuracy before the attack.
        robust_accuracy: accuracy after it (untargeted).
        success_rate: fraction of inputs the attack turned wrong (or already wrong).
        mean_norm: average perturbation size actually used.
        queries: model queries spent.
        seconds: wall-clock time.
    """

    attack: str
    norm: Norm
    epsilon: float
    samples: int
    clean_accuracy: float
    robust_accuracy: float
    success_rate: float
    mean_norm: float
    queries: int
    seconds: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "norm", Norm.parse(self.norm))
        check_number("epsilon", self.epsilon, low=0.0)
        check_int("samples", self.samples, low=1)
        for name in ("clean_accuracy", "robust_accuracy", "success_rate"):
            check_number(name, getattr(self, name), low=0.0, high=1.0)
        check_number("mean_norm", self.mean_norm, low=0.0)
        check_int("queries", self.queries, low=0)
        check_number("seconds", self.seconds, low=0.0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        out = dict(vars(self))
        out["norm"] = self.norm.value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepPoint:
        """Rebuild from `to_dict` output."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class AssessmentResult:
    """Everything a report needs, and nothing that needs an ML library to read.

    Attributes:
        target: what was assessed: model and data names, shapes, access.
        sweep: the measured accuracy-versus-epsilon points.
        findings: what the assessment established.
        seconds: total wall-clock time.
        metadata: bastion version, date, machine, seeds.
    """

    target: Mapping[str, Any]
    sweep: Sequence[SweepPoint] = ()
    findings: Sequence[Finding] = ()
    seconds: float = 0.0
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_type("target", self.target, Mapping, "a mapping")
        object.__setattr__(self, "sweep", tuple(self.sweep))
        object.__setattr__(self, "findings", tuple(self.findings))
        for i, point in enumerate(self.sweep):
            check_type(f"sweep[{i}]", point, SweepPoint)
        for i, finding in enumerate(self.findings):
            check_type(f"findings[{i}]", finding, Finding)

    @property
    def worst_severity(self) -> Severity | None:
        """The most severe finding's severity, or None without findings."""
        if not self.findings:
            return None
        return max((f.severity for f in self.findings), key=lambda s: s.rank)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view; `from_dict` reverses it."""
        return {
            "target": dict(self.target),
            "sweep": [p.to_dict() for p in self.sweep],
            "findings": [f.to_dict() for f in self.findings],
            "seconds": self.seconds,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AssessmentResult:
        """Rebuild from `to_dict` output, validating every field."""
        return cls(
            target=data.get("target", {}),
            sweep=[SweepPoint.from_dict(p) for p in data.get("sweep", [])],
            findings=[Finding.from_dict(f) for f in data.get("findings", [])],
            seconds=data.get("seconds", 0.0),
            metadata=data.get("metadata", {}),
        )

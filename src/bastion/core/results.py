"""What probes return: `AttackResult` for one attack run, `Finding` for anything worth reporting."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from bastion.core.threat_model import Goal, Severity, ThreatModel
from bastion.core.validation import check_number, check_type, fail

__all__ = ["AttackResult", "Finding"]

_ID = re.compile(r"^[a-z0-9][a-z0-9._:/-]*$")


@dataclass(frozen=True, eq=False)
class AttackResult:
    """The outcome of one attack on one batch.

    The array fields hold whatever the attack computes in (torch tensors for bastion's own
    attacks); only ``len()``, ``sum()`` and indexing are relied on here.

    Attributes:
        attack: the attack's registered id, e.g. ``"pgd-linf"``.
        threat_model: the budget and access the attack ran under.
        x_adv: the adversarial inputs, same shape as the inputs, inside bounds and budget.
        success: per sample, whether the attack reached its goal (wrong label, or the target).
        clean_correct: per sample, whether the model was right on the unperturbed input.
        norms: per sample, the size of the perturbation in the threat model's norm.
        queries: model queries the attack spent (one per sample per forward pass).
        seconds: wall-clock time of the attack alone.
        params: the attack's hyperparameters, for the report.
        budget_exhausted: True when a query budget (the attack's per-sample ``max_queries``
            or the model's query budget) stopped the attack on a sample it had not yet won,
            so the result is partial: more queries might have found more.
        unattacked: how many samples (the last ones) the attack never ran on, because the
            model's query budget ran out in an earlier batch; their ``x_adv`` is the clean
            input, and ``budget_exhausted`` is True when any of them is not already a success.
    """

    attack: str
    threat_model: ThreatModel
    x_adv: Any
    success: Any
    clean_correct: Any
    norms: Any
    queries: int
    seconds: float
    params: Mapping[str, Any] = field(default_factory=dict)
    budget_exhausted: bool = False
    unattacked: int = 0

    def __len__(self) -> int:
        return len(self.success)

    @property
    def success_rate(self) -> float:
        """Fraction of samples on which the attack reached its goal."""
        return int(self.success.sum()) / max(len(self.success), 1)

    @property
    def clean_accuracy(self) -> float:
        """Fraction of samples the model classified correctly before the attack."""
        return int(self.clean_correct.sum()) / max(len(self.clean_correct), 1)

    @property
    def robust_accuracy(self) -> float:
        """Fraction of samples still classified correctly after an untargeted attack."""
        kept = self.clean_correct & ~self.success
        return int(kept.sum()) / max(len(self.success), 1)

    def summary(self) -> dict[str, Any]:
        """Scalars only, JSON-ready."""
        return {
            "attack": self.attack,
            "threat_model": self.threat_model.to_dict(),
            "samples": len(self),
            "success_rate": self.success_rate,
            "clean_accuracy": self.clean_accuracy,
            "robust_accuracy": self.robust_accuracy,
            "queries": self.queries,
            "seconds": self.seconds,
            "params": dict(self.params),
            "budget_exhausted": self.budget_exhausted,
            "unattacked": self.unattacked,
        }


def _json_ready(name: str, value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise fail(name, "JSON-serialisable data with finite numbers", value) from exc


@dataclass(frozen=True)
class Finding:
    """One thing an assessment established, mapped onto an attack-tree leaf.

    Attributes:
        id: a stable identifier, lower-case, e.g. ``"evasion.pgd-linf.eps-0.1"``.
        title: one line a person reads first.
        goal: which attacker goal the finding serves.
        leaf: the attack-tree leaf it demonstrates, e.g. ``"evasion.white-box"``.
        severity: how bad it is.
        metrics: named numbers (finite floats) backing the finding.
        evidence: JSON-ready details: parameters, sample indices, file offsets.
        description: what it means and what to do about it.
    """

    id: str
    title: str
    goal: Goal
    leaf: str
    severity: Severity
    metrics: Mapping[str, float] = field(default_factory=dict)
    evidence: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        for name in ("id", "leaf"):
            value = check_type(name, getattr(self, name), str)
            if not _ID.match(value):
                raise fail(name, "a lower-case identifier of letters, digits and ._:/-", value)
        check_type("title", self.title, str)
        if not self.title.strip():
            raise fail("title", "a non-empty string", self.title)
        check_type("description", self.description, str)
        object.__setattr__(self, "goal", Goal.parse(self.goal))
        object.__setattr__(self, "severity", Severity.parse(self.severity))
        metrics = check_type("metrics", self.metrics, Mapping, "a mapping of names to numbers")
        clean = {str(k): check_number(f"metrics[{k!r}]", v) for k, v in metrics.items()}
        object.__setattr__(self, "metrics", MappingProxyType(clean))
        evidence = check_type("evidence", self.evidence, Mapping, "a mapping")
        object.__setattr__(
            self, "evidence", MappingProxyType(_json_ready("evidence", dict(evidence)))
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view; `from_dict` reverses it."""
        return {
            "id": self.id,
            "title": self.title,
            "goal": self.goal.value,
            "leaf": self.leaf,
            "severity": self.severity.value,
            "metrics": dict(self.metrics),
            "evidence": dict(self.evidence),
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """Rebuild a finding from `to_dict` output, validating every field."""
        check_type("finding", data, Mapping, "a mapping")
        missing = {"id", "title", "goal", "leaf", "severity"} - set(data)
        if missing:
            raise fail("finding", f"a mapping with keys {sorted(missing)}", dict(data))
        return cls(
            id=data["id"],
            title=data["title"],
            goal=data["goal"],
            leaf=data["leaf"],
            severity=data["severity"],
            metrics=data.get("metrics", {}),
            evidence=data.get("evidence", {}),
            description=data.get("description", ""),
        )

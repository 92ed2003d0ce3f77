"""Contracts every other package builds on: errors, the threat model, results, validation.

This package imports no ML or web library, so anything can depend on it.
"""

from bastion.core.assessment import AssessmentResult, SweepPoint
from bastion.core.constraints import FeatureConstraints
from bastion.core.errors import (
    AccessError,
    BastionError,
    BoundsError,
    ConfigError,
    LoadError,
    NonFiniteError,
    QueryBudgetExceeded,
    RemoteModelError,
    ShapeError,
    UnsafeFileError,
    ValidationError,
)
from bastion.core.results import AttackResult, Finding
from bastion.core.threat_model import Access, Goal, Norm, Severity, ThreatModel

__all__ = [
    "Access",
    "AccessError",
    "AssessmentResult",
    "AttackResult",
    "BastionError",
    "BoundsError",
    "ConfigError",
    "FeatureConstraints",
    "Finding",
    "Goal",
    "LoadError",
    "NonFiniteError",
    "Norm",
    "QueryBudgetExceeded",
    "RemoteModelError",
    "Severity",
    "ShapeError",
    "SweepPoint",
    "ThreatModel",
    "UnsafeFileError",
    "ValidationError",
]

"""What every runtime guard shares: the `Guard` interface, its `Verdict` and the `Query` it sees.

A guard looks at one request (a `Query`) and answers with a `Verdict`: which guard, what to do
(`Action`), why, and the evidence. What a guard does when it fires is configured per guard
(``action=``); a guard that does not fire answers `Action.ALLOW`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import torch

from bastion.core.validation import check_choice, check_type, fail

__all__ = ["Action", "Guard", "Query", "Verdict", "strongest"]


class Action(StrEnum):
    """What a guard asks the gateway to do, from mildest to strongest."""

    ALLOW = "allow"
    RECORD = "record"
    FLAG = "flag"
    SLOW = "slow"
    BLOCK = "block"

    @property
    def rank(self) -> int:
        """0 for allow up to 4 for block."""
        return _RANKS[self]

    @classmethod
    def parse(cls, value: Action | str, name: str = "action") -> Action:
        """Return ``value`` as an `Action`; raise `ValidationError` naming ``name`` otherwise."""
        if isinstance(value, Action):
            return value
        return Action(check_choice(name, value, [a.value for a in Action]))


# Declaration order is strength order; looked up per verdict on the gateway's request path.
_RANKS: dict[Action, int] = {action: i for i, action in enumerate(Action)}


@dataclass(frozen=True)
class Verdict:
    """One guard's answer about one request.

    Attributes:
        guard: the name of the guard that answered.
        action: what it asks for; `Action.ALLOW` when it did not fire.
        reason: one human-readable sentence; empty when allowed.
        evidence: JSON-serialisable facts behind the verdict (scores, thresholds, counts).
    """

    guard: str
    action: Action
    reason: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def fired(self) -> bool:
        """True when the guard asks for anything beyond allowing the request."""
        return self.action is not Action.ALLOW

    def as_dict(self) -> dict[str, Any]:
        """The verdict as plain JSON-ready data."""
        return {
            "guard": self.guard,
            "action": self.action.value,
            "reason": self.reason,
            "evidence": self.evidence,
        }


def strongest(verdicts: list[Verdict]) -> Action:
    """The strongest action among ``verdicts`` (`Action.ALLOW` for none)."""
    return max((v.action for v in verdicts), key=lambda a: a.rank, default=Action.ALLOW)


@dataclass(frozen=True)
class Query:
    """One request as a guard sees it.

    Attributes:
        identity: who sent it (an API key id, or any stable account name).
        address: the client address, already resolved through trusted proxies.
        x: the validated input batch ``(n, *input_shape)``, or None before validation.
        scores: the model's per-class scores for ``x``, or None before the model ran.
    """

    identity: str
    address: str = ""
    x: torch.Tensor | None = None
    scores: torch.Tensor | None = None


class Guard(ABC):
    """A runtime check on requests; subclasses implement `check`.

    Attributes:
        name: a short id used in verdicts and in the audit log.
        action: what the guard asks for when it fires.
        needs_scores: True when `check` needs ``query.scores`` (it runs after the model).
    """

    name: str = "guard"
    needs_scores: bool = False

    def __init__(self, *, action: Action | str = Action.FLAG) -> None:
        self.action = Action.parse(action)
        if self.action is Action.ALLOW:
            raise fail("action", "one of 'record', 'flag', 'slow', 'block'", action)

    @abstractmethod
    def check(self, query: Query) -> Verdict:
        """Inspect ``query`` and return this guard's verdict; may update the guard's state."""

    def allow(self, **evidence: Any) -> Verdict:
        """A verdict that lets the request through, with optional evidence."""
        return Verdict(self.name, Action.ALLOW, "", dict(evidence))

    def fire(self, reason: str, **evidence: Any) -> Verdict:
        """A verdict with this guard's configured action."""
        return Verdict(self.name, self.action, reason, dict(evidence))

    def _batch(self, query: Query) -> torch.Tensor:
        x = check_type("query.x", query.x, torch.Tensor, "a validated tensor batch")
        return x

"""Boundary proximity: a per-identity CUSUM test on how close answers are to the boundary.

Decision-based and score-based attacks (HopSkipJump, Boundary Attack, Sign-OPT, the last
steps of Square Attack) spend most of their queries right at the decision boundary, where
the gap between the two highest scores is small. Benign inputs rarely land there.

For each answered sample the guard records whether its top-2 margin falls below the
``near_quantile`` of the benign margins (set by `calibrate`): under benign traffic that
happens with probability ``p0 = near_quantile``, under an attack with ``p1 = attack_rate``.
Page's CUSUM test for a change from Bernoulli(p0) to Bernoulli(p1) accumulates the
log-likelihood ratio, clipped at zero, and flags the identity when it exceeds
``log(1 / false_alarm)``, Wald's bound for a sequential test with that error rate.
"""

from __future__ import annotations

import math

import torch

from bastion.core.errors import ValidationError
from bastion.core.validation import check_number
from bastion.defenses.guards.interface import Action, Guard, Query, Verdict

__all__ = ["BoundaryGuard", "top2_margin"]


def top2_margin(scores: torch.Tensor) -> torch.Tensor:
    """Highest minus second-highest score per row of ``(n, classes)`` scores."""
    top = torch.topk(scores.to(torch.float32), 2, dim=1).values
    return top[:, 0] - top[:, 1]


class BoundaryGuard(Guard):
    """Flag an identity whose answers sit near the decision boundary more often than normal.

    Args:
        near_margin: a margin below this counts as near the boundary; set by `calibrate`.
        near_quantile: share of benign samples that are near (``p0``).
        attack_rate: share of an attacker's samples that are near (``p1 > p0``).
        false_alarm: the test's false-alarm level; the CUSUM limit is ``log(1/false_alarm)``.
        action: what to do with a flagged identity.
    """

    name = "boundary"
    needs_scores = True

    def __init__(
        self,
        *,
        near_margin: float = 0.0,
        near_quantile: float = 0.05,
        attack_rate: float = 0.5,
        false_alarm: float = 1e-6,
        action: Action | str = Action.FLAG,
    ) -> None:
        super().__init__(action=action)
        self.near_margin = check_number("near_margin", near_margin, low=0)
        self.near_quantile = check_number(
            "near_quantile", near_quantile, low=0, high=1, low_open=True, high_open=True
        )
        self.attack_rate = check_number(
            "attack_rate",
            attack_rate,
            low=self.near_quantile,
            high=1,
            low_open=True,
            high_open=True,
        )
        self.false_alarm = check_number(
            "false_alarm", false_alarm, low=0, high=1, low_open=True, high_open=True
        )
        p0, p1 = self.near_quantile, self.attack_rate
        self._up = math.log(p1 / p0)
        self._down = math.log((1 - p1) / (1 - p0))
        self.limit = math.log(1 / self.false_alarm)
        self._state: dict[str, float] = {}

    def calibrate(self, benign_scores: torch.Tensor) -> float:
        """Set `near_margin` to the ``near_quantile`` of benign top-2 margins; return it."""
        if benign_scores.dim() != 2 or benign_scores.shape[0] < 20:
            raise ValidationError(
                "Expected benign scores of shape (n >= 20, classes), "
                f"but got shape {tuple(benign_scores.shape)}"
            )
        margins = top2_margin(benign_scores).double()
        self.near_margin = float(torch.quantile(margins, self.near_quantile))
        return self.near_margin

    def check(self, query: Query) -> Verdict:
        """Update the identity's CUSUM statistic with each sample's margin; fire over the limit."""
        if query.scores is None:
            raise ValidationError("Expected query.scores: the boundary guard runs after the model")
        margins = top2_margin(query.scores)
        stat = self._state.get(query.identity, 0.0)
        peak = stat
        for margin in margins.tolist():
            stat = max(0.0, stat + (self._up if margin < self.near_margin else self._down))
            peak = max(peak, stat)
        self._state[query.identity] = stat
        if peak >= self.limit:
            return self.fire(
                f"answers for this identity sit near the decision boundary unusually often "
                f"(CUSUM {peak:.3g} >= {self.limit:.3g})",
                cusum=peak,
                limit=self.limit,
                near_margin=self.near_margin,
                min_margin=float(margins.min()),
            )
        return self.allow(cusum=stat)

    def statistic(self, identity: str) -> float:
        """The identity's current CUSUM statistic (0 for one never seen)."""
        return self._state.get(identity, 0.0)

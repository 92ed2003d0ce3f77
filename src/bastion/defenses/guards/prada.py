"""PRADA: per-identity detection of model-extraction query streams.

Juuti, Szyller, Marchal, Asokan, "PRADA: Protecting against DNN Model Stealing Attacks",
IEEE EuroS&P 2019 (Algorithm 1).

Natural queries lie at distances from one another that are close to normally distributed;
the synthetic queries of extraction attacks (Jacobian-based augmentation, small steps around
a few seeds) do not. For each identity and each predicted class ``c`` the guard keeps a
growing set ``G_c`` and a threshold ``T_c``. A new query ``x`` classified ``c`` is compared
with ``G_c``: its minimum L2 distance ``d`` joins the identity's distance set ``D``; if ``d``
exceeds ``T_c``, ``x`` joins ``G_c``, ``d`` joins ``D_Gc`` and ``T_c`` becomes
``max(T_c, mean(D_Gc) - std(D_Gc))``. The first query of a class only starts ``G_c``. Once
``D`` (without values more than 3 standard deviations from its mean) holds more than
``min_distances`` values, the Shapiro-Wilk statistic ``W`` of ``D`` is computed every
``every`` queries (the authors' code: 100 and 10); the identity is flagged while
``W < delta`` (paper: 0.90 to 0.96 depending on the model; the code: 0.9).

Re-sends, a deviation from the paper: a client that sends the same input again (a retry, a
re-uploaded photo, each with a little sensor noise) puts a near-zero minimum distance into
``D`` each time, and a few such values make ``D`` look far from normal: on a stream of the
embedded digits, each sent one to three times with fresh noise (sigma 0.02), the paper's
algorithm flags 62-67% of the requests (bench/gateway_detection.py). A query whose minimum
distance to ``G_c`` is below ``duplicate_distance`` is therefore taken for a re-send: it joins
neither ``D`` nor ``G_c``. By default that distance is ``0.05 * sqrt(features) * (high - low)``,
a root-mean-square difference of 5% of the input range per feature: on the 8x8 digits 0.4,
above the 0.23 at most between two noisy copies of a digit, below the distance from almost
every one of the 1,797 digits to the nearest other one (median 1.0, 1% under 0.58, the
closest pair 0.33). The cost: an attack's own
repeats no longer count either. Jacobian-based augmentation with a linear substitute
repeats many earlier queries exactly (48-94 of 160 in tests/unit/defenses), so ``D`` fills
more slowly and PRADA's first test, which still flags it, comes at query 130-160 instead of
110. ``duplicate_distance=None`` (or 0) keeps the paper's behaviour.

Bounded state, which the paper does not have: each growing set keeps at most ``max_growing``
queries (later far-away queries are measured but not added) and ``D`` keeps its last
``max_distances`` values. Known weaknesses: attacks made of natural images (Knockoff Nets),
and Sybil accounts, since the state is per identity.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from bastion.core.validation import check_bounds, check_int, check_number, check_type, fail
from bastion.defenses.guards.interface import Action, Guard, Query, Verdict

__all__ = ["DUPLICATE_SHARE", "PradaGuard", "shapiro_w"]

#: The default re-send distance, as a share of the input range per feature (RMS).
DUPLICATE_SHARE = 0.05


def shapiro_w(values: np.ndarray) -> float:
    """The Shapiro-Wilk W statistic of ``values`` (1.0 for fewer than 3 or constant values).

    Uses `scipy.stats.shapiro`, imported on first use (a `PradaGuard` imports it when built,
    so no request pays SciPy's start-up cost), so loading the guards does not.
    """
    from scipy.stats import shapiro

    values = np.asarray(values, dtype=np.float64)
    if values.size < 3 or float(np.ptp(values)) == 0.0:
        return 1.0
    return float(shapiro(values).statistic)


@dataclass
class _ClassSet:
    """One class's growing set for one identity.

    ``D_Gc`` (the distances that grew ``G_c``) is kept as its count, sum and sum of squares,
    which is all its mean and standard deviation need.
    """

    bank: np.ndarray
    size: int = 0
    threshold: float = 0.0
    kept: int = 0
    kept_sum: float = 0.0
    kept_squares: float = 0.0


@dataclass
class _Identity:
    """One identity's PRADA state."""

    classes: dict[int, _ClassSet]
    distances: deque[float]  # D, the most recent ones
    since_test: int = 0
    w: float | None = None
    tested_on: int = 0


class PradaGuard(Guard):
    """Flag an identity whose query distances stop looking normally distributed (PRADA).

    Args:
        delta: flag while the Shapiro-Wilk ``W`` of the distance set is below this (paper:
            0.90-0.96; the authors' code: 0.9).
        min_distances: test only once more than this many distances remain after outliers
            are dropped (the authors' code: 100).
        every: queries between two tests (the authors' code: 10).
        outlier_sigmas: distances this many standard deviations from the mean are left out
            of the test (the paper: 3).
        max_growing: most queries kept in one class's growing set per identity.
        max_distances: most recent distances kept per identity.
        duplicate_distance: a query whose minimum distance to its class's growing set is
            below this is a re-send, left out of ``D`` and ``G_c`` (not in the paper; see the
            module docstring). ``"auto"``: ``0.05 * sqrt(features) * (high - low)`` of
            ``bounds``; None or 0: the paper's behaviour.
        bounds: the input range ``(low, high)``, for the ``"auto"`` re-send distance.
        action: what to do with a flagged identity's queries.
    """

    name = "prada"
    needs_scores = True

    def __init__(
        self,
        *,
        delta: float = 0.9,
        min_distances: int = 100,
        every: int = 10,
        outlier_sigmas: float = 3.0,
        max_growing: int = 2000,
        max_distances: int = 5000,
        duplicate_distance: float | Literal["auto"] | None = "auto",
        bounds: tuple[float, float] = (0.0, 1.0),
        action: Action | str = Action.FLAG,
    ) -> None:
        super().__init__(action=action)
        self.delta = check_number("delta", delta, low=0, high=1, low_open=True, high_open=True)
        self.min_distances = check_int("min_distances", min_distances, low=3)
        self.every = check_int("every", every, low=1)
        self.outlier_sigmas = check_number("outlier_sigmas", outlier_sigmas, low=0, low_open=True)
        self.max_growing = check_int("max_growing", max_growing, low=1)
        self.max_distances = check_int("max_distances", max_distances, low=self.min_distances + 1)
        self.bounds = check_bounds("bounds", bounds)
        if duplicate_distance is None or duplicate_distance == "auto":
            self.duplicate_distance: float | Literal["auto"] | None = duplicate_distance
        elif isinstance(duplicate_distance, str):
            raise fail("duplicate_distance", "a distance >= 0, 'auto' or None", duplicate_distance)
        else:
            self.duplicate_distance = check_number("duplicate_distance", duplicate_distance, low=0)
        self._identities: dict[str, _Identity] = {}
        import scipy.stats  # noqa: F401  # loaded now, not on an identity's 100th query

    def resend_distance(self, features: int) -> float:
        """The distance below which a query of ``features`` values is a re-send (0: none)."""
        if self.duplicate_distance is None:
            return 0.0
        if self.duplicate_distance == "auto":
            low, high = self.bounds
            return DUPLICATE_SHARE * math.sqrt(features) * (high - low)
        return self.duplicate_distance

    def _observe(self, state: _Identity, x: np.ndarray, label: int, resend: float) -> None:
        """Algorithm 1 for one query: update ``G_c``, ``T_c`` and ``D`` (a re-send, closer than
        ``resend`` to ``G_c``, changes nothing)."""
        cls = state.classes.get(label)
        if cls is None or cls.bank.shape[1] != x.shape[0]:
            cls = _ClassSet(np.empty((min(64, self.max_growing), x.shape[0]), np.float32))
            state.classes[label] = cls
        if cls.size == 0:
            cls.bank[0] = x
            cls.size = 1
            return
        diff = cls.bank[: cls.size] - x
        d = float(np.sqrt(np.min(np.einsum("ij,ij->i", diff, diff))))
        if d < resend:
            return
        state.distances.append(d)
        if d > cls.threshold:
            cls.kept += 1
            cls.kept_sum += d
            cls.kept_squares += d * d
            mean = cls.kept_sum / cls.kept
            std = math.sqrt(max(0.0, cls.kept_squares / cls.kept - mean * mean))
            cls.threshold = max(cls.threshold, mean - std)
            if cls.size < self.max_growing:
                if cls.size == cls.bank.shape[0]:
                    grown = min(2 * cls.size, self.max_growing)
                    bank = np.empty((grown, x.shape[0]), np.float32)
                    bank[: cls.size] = cls.bank[: cls.size]
                    cls.bank = bank
                cls.bank[cls.size] = x
                cls.size += 1

    def _test(self, state: _Identity) -> None:
        """Shapiro-Wilk on ``D`` without its outliers, once there are enough distances."""
        values = np.asarray(state.distances, dtype=np.float64)
        if values.size > self.min_distances:
            mean, std = values.mean(), values.std()
            if std > 0:
                values = values[np.abs(values - mean) <= self.outlier_sigmas * std]
        if values.size > self.min_distances:
            state.w = shapiro_w(values)
            state.tested_on = int(values.size)

    def check(self, query: Query) -> Verdict:
        """Feed each sample of ``query`` (with its predicted class) to the identity's state."""
        x = self._batch(query)
        scores = check_type("query.scores", query.scores, torch.Tensor, "the model's scores")
        flat = x.detach().reshape(x.shape[0], -1).to("cpu").float().numpy()
        labels = scores.detach().argmax(dim=1).cpu().tolist()
        state = self._identities.get(query.identity)
        if state is None:
            state = _Identity({}, deque(maxlen=self.max_distances))
            self._identities[query.identity] = state
        lowest = math.inf
        resend = self.resend_distance(flat.shape[1])
        for sample, label in zip(flat, labels, strict=True):
            self._observe(state, sample, int(label), resend)
            state.since_test += 1
            if state.since_test >= self.every:
                state.since_test = 0
                self._test(state)
                if state.w is not None:
                    lowest = min(lowest, state.w)
        w = state.w if lowest == math.inf else lowest
        evidence = {"w": w, "distances": state.tested_on, "delta": self.delta}
        if w is not None and w < self.delta:
            return self.fire(
                f"query distances are not normally distributed (Shapiro-Wilk W = {w:.3f} < "
                f"delta = {self.delta}): a model-extraction pattern",
                **evidence,
            )
        return self.allow(**evidence)

    def forget(self, identity: str) -> None:
        """Drop one identity's state."""
        self._identities.pop(identity, None)

    def statistic(self, identity: str) -> float | None:
        """The identity's last Shapiro-Wilk ``W``, or None before its first test."""
        state = self._identities.get(identity)
        return None if state is None else state.w

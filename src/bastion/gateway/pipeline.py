"""The guard pipeline the gateway runs per prediction, free of any web framework.

Order: input validation (a JSON batch or an uploaded image), rate limits (charged per
sample), the query-attack detectors that look at the input (Blacklight, nearest neighbours),
the model, the guards that look at its answer (boundary proximity, PRADA), output hardening.
A request refused at any step never reaches the model (or, for an answer-side block, its
answer is withheld). Validation holds no state and runs outside the lock; guard state and
the model are shared by all requests, so the rest runs under one lock. When the rate-limit
store (Redis) is unreachable the pipeline fails closed: 503, and an error in the
``bastion.gateway`` log, never traffic let through unlimited.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import torch

from bastion.core.errors import ConfigError
from bastion.core.threat_model import Access
from bastion.defenses.guards import (
    Action,
    BlacklightGuard,
    BoundaryGuard,
    Guard,
    InputGuard,
    NearestNeighbourGuard,
    OutputPolicy,
    PradaGuard,
    Query,
    RateLimitGuard,
    Verdict,
    strongest,
)
from bastion.defenses.guards.ratelimit import RateLimitStorageError
from bastion.gateway.loader import Served
from bastion.gateway.settings import GatewaySettings

__all__ = ["DETECTORS", "UNAVAILABLE", "Outcome", "Pipeline"]

#: Guards whose firing goes to the review queue (validation and rate limits do not).
DETECTORS = ("blacklight", "nearest-neighbour", "boundary", "prada")

# HTTP status per failed validation stage (see `InputGuard.inspect` and `inspect_image`).
_STAGE_STATUS = {
    "size": 413,
    "json": 400,
    "form": 400,
    "content": 422,
    "type": 415,
    "pixels": 413,
    "decode": 422,
}

#: The answer to a request that could not be rate limited because the store is unreachable.
UNAVAILABLE = "service unavailable: the rate-limit store cannot be reached"

log = logging.getLogger("bastion.gateway")


def _store_down(exc: RateLimitStorageError) -> None:
    log.error("failing closed (503): %s", exc)


@dataclass
class Outcome:
    """What the pipeline decided about one prediction request.

    Attributes:
        status: the HTTP status to answer with.
        verdicts: every guard's verdict, in the order they ran.
        predictions: the hardened answers (empty unless the model answered and it is shown).
        error: the message for a refused request.
        samples: how many samples the request held (0 when it did not parse).
        reached_model: True when the model was queried.
        retry_after: seconds to wait, for a 429.
        slow: seconds the answer should be delayed (the 'slow' action).
    """

    status: int = 200
    verdicts: list[Verdict] = field(default_factory=list)
    predictions: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    samples: int = 0
    reached_model: bool = False
    retry_after: int = 0
    slow: float = 0.0

    @property
    def action(self) -> Action:
        """The strongest action any guard asked for."""
        return strongest(self.verdicts)


class Pipeline:
    """Build the guards from settings and run them around the served model."""

    def __init__(self, settings: GatewaySettings, served: Served) -> None:
        cfg = settings.guards
        model = served.model
        self.model = model
        self.settings = settings
        self.input_guard = InputGuard(
            input_shape=model.input_shape,
            bounds=model.bounds,
            max_batch=cfg.max_batch,
            max_body_bytes=cfg.max_body_bytes,
            max_depth=cfg.max_depth,
            image_formats=cfg.image_formats,
            max_image_pixels=cfg.max_image_pixels,
        )
        self.rate_guards = [
            RateLimitGuard(
                limit=cfg.rate_limit_identity, per="identity", storage_uri=cfg.rate_limit_storage
            ),
            RateLimitGuard(
                limit=cfg.rate_limit_address, per="address", storage_uri=cfg.rate_limit_storage
            ),
        ]
        self.input_detectors: list[Guard] = []
        self.answer_detectors: list[Guard] = []
        pixels = 1
        for d in model.input_shape:
            pixels *= d
        if cfg.blacklight:
            salt = None if settings.secret is None else settings.secret.get_secret_value().encode()
            self.input_detectors.append(
                BlacklightGuard.for_input_size(
                    pixels,
                    bounds=model.bounds,
                    salt=salt,
                    min_matches=cfg.blacklight_min_matches,
                    action=cfg.blacklight_action,
                )
            )
        calibration = served.calibration
        if cfg.nearest_neighbour:
            knn = NearestNeighbourGuard(
                k=cfg.nearest_neighbour_k,
                skip_nearest=cfg.nearest_neighbour_skip,
                action=cfg.nearest_neighbour_action,
            )
            if cfg.nearest_neighbour_threshold is not None:
                knn.threshold = cfg.nearest_neighbour_threshold
            elif calibration is not None:
                knn.calibrate(calibration[:5000], fpr=cfg.nearest_neighbour_fpr)
            else:
                raise ConfigError(
                    "Expected calibration_data or guards.nearest_neighbour_threshold for the "
                    "nearest-neighbour guard, or guards.nearest_neighbour = false"
                )
            self.input_detectors.append(knn)
        self.grants_scores = model.access.grants(Access.SCORES)
        if cfg.boundary and self.grants_scores:
            boundary = BoundaryGuard(
                attack_rate=cfg.boundary_attack_rate,
                false_alarm=cfg.boundary_false_alarm,
                action=cfg.boundary_action,
            )
            if cfg.boundary_near_margin is not None:
                boundary.near_margin = cfg.boundary_near_margin
            elif calibration is not None:
                boundary.calibrate(model.scores(calibration[:5000]))
            else:
                raise ConfigError(
                    "Expected calibration_data or guards.boundary_near_margin for the boundary "
                    "guard, or guards.boundary = false"
                )
            self.answer_detectors.append(boundary)
        if cfg.prada:
            self.answer_detectors.append(
                PradaGuard(
                    delta=cfg.prada_delta,
                    min_distances=cfg.prada_min_distances,
                    duplicate_distance=cfg.prada_duplicate_distance,
                    bounds=model.bounds,
                    action=cfg.prada_action,
                )
            )
        self.outputs = {
            role: OutputPolicy(mode=o.mode, k=o.k, decimals=o.decimals)
            for role, o in settings.outputs.items()
        }
        self._lock = threading.Lock()

    @property
    def guards(self) -> list[Guard]:
        """Every guard, in the order they run."""
        return [
            self.input_guard,
            *self.rate_guards,
            *self.input_detectors,
            *self.answer_detectors,
        ]

    def limit_address(self, address: str) -> Verdict:
        """Charge one request to ``address`` alone (for requests refused before a key is known).

        Raises:
            RateLimitStorageError: the rate-limit store is unreachable (logged here).
        """
        with self._lock:
            try:
                return self.rate_guards[1].check(Query(identity="", address=address))
            except RateLimitStorageError as exc:
                _store_down(exc)
                raise

    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        if self.grants_scores:
            return self.model.scores(x)
        labels = self.model.labels(x)
        return torch.nn.functional.one_hot(labels, self.model.num_classes).to(torch.float32)

    def predict(self, identity: str, address: str, role: str, body: bytes) -> Outcome:
        """Run every guard on a JSON body and, if none refuses, the model; never raises for
        bad input."""
        return self.run(identity, address, role, *self.input_guard.inspect(body))

    def predict_image(self, identity: str, address: str, role: str, data: bytes) -> Outcome:
        """`predict` for an uploaded image file (its bytes, re-encoded before the model)."""
        return self.run(identity, address, role, *self.input_guard.inspect_image(data))

    def refuse(self, identity: str, address: str, reason: str, stage: str) -> Outcome:
        """Record a request refused before validation (e.g. a malformed upload form).

        It is still charged to the rate limits, like any other request.
        """
        verdict = self.input_guard.fire(reason, stage=stage)
        return self.run(identity, address, "client", verdict, None)

    def run(
        self,
        identity: str,
        address: str,
        role: str,
        verdict: Verdict,
        batch: torch.Tensor | None,
    ) -> Outcome:
        """The guards after validation: ``verdict`` and ``batch`` come from the input guard
        (``batch`` None when it refused)."""
        out = Outcome()
        out.verdicts.append(verdict)
        with self._lock:
            query = Query(identity=identity, address=address, x=batch)
            try:
                rate = [g.check(query) for g in self.rate_guards]
            except RateLimitStorageError as exc:
                _store_down(exc)
                out.status = 503
                out.error = UNAVAILABLE
                return out
            out.verdicts.extend(rate)
            limited = [v for v in rate if v.action is Action.BLOCK]
            if limited:
                out.status = 429
                out.error = f"rate limit exceeded: {limited[0].reason}"
                out.retry_after = max(int(v.evidence.get("retry_after", 1)) for v in limited)
                return out
            if batch is None:
                out.status = _STAGE_STATUS.get(str(verdict.evidence.get("stage")), 422)
                out.error = verdict.reason
                return out
            out.samples = int(batch.shape[0])
            out.verdicts.extend(g.check(query) for g in self.input_detectors)
            if any(v.action is Action.BLOCK for v in out.verdicts):
                out.status = 403
                out.error = "request refused: it matches a query-attack pattern"
                return out
            scores = self._scores(batch)
            out.reached_model = True
            answered = Query(identity=identity, address=address, x=batch, scores=scores)
            out.verdicts.extend(g.check(answered) for g in self.answer_detectors)
        final = strongest(out.verdicts)
        if final is Action.BLOCK:
            out.status = 403
            out.error = "answer withheld: this identity's queries match a query-attack pattern"
            return out
        if final is Action.SLOW:
            out.slow = self.settings.guards.slow_seconds
        policy = self.outputs.get(role) or OutputPolicy(mode="label")
        out.predictions = policy.render(scores)
        return out

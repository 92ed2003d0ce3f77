"""The FastAPI application: authentication, the audit trail, and the prediction endpoints.

Every request passes one middleware that authenticates it (all paths but ``/healthz`` need
``Authorization: Bearer KEY``) and, once answered, writes it to the audit store with its
identity, input hash, output and every guard's verdict, before the answer leaves. Errors are
JSON: ``{"error": {"status": 422, "message": "..."}}``. Keys never reach a log or a record;
only their public id does.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from bastion._version import __version__
from bastion.defenses.guards import Action, Verdict, client_address
from bastion.defenses.guards.ratelimit import RateLimitStorageError
from bastion.gateway.loader import Served, load_served, verify_served_files
from bastion.gateway.pipeline import DETECTORS, UNAVAILABLE, Outcome, Pipeline
from bastion.gateway.review import install_review, is_review_path
from bastion.gateway.settings import GatewaySettings, load_settings
from bastion.gateway.store import (
    FlagRecord,
    Principal,
    RequestRecord,
    Store,
    dumps,
    new_request_id,
)
from bastion.gateway.uploads import IMAGE_FIELD, PREDICT_BODY, form_image

__all__ = ["IMAGE_FIELD", "SETTINGS_ENV", "app_from_environment", "create_app"]

#: Environment variable naming the settings file `app_from_environment` reads.
SETTINGS_ENV = "BASTION_GATEWAY_CONFIG"

_OPEN_PATHS = frozenset({"/healthz"})


@dataclass
class _Audit:
    """What a request's handling learned, written to the audit store when it is answered."""

    id: str = field(default_factory=new_request_id)
    identity: str = ""
    address: str = ""
    input_hash: str = ""
    samples: int = 0
    output: Any = None
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    action: str = "allow"
    error: str = ""
    reached_model: bool = False


class FeedbackIn(BaseModel):
    """A label proposed for an earlier prediction."""

    prediction_id: str = Field(min_length=1, max_length=64)
    label: int = Field(ge=0)
    sample: int = Field(0, ge=0, description="Which sample of the prediction's batch.")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"status": status, "message": message}}, status_code=status, headers=headers
    )


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it exceeds ``limit`` bytes (reading stops there)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _refusal(limited: Verdict, reason: str) -> JSONResponse:
    """429 when the address is over its limit, else 401 for the missing or bad key."""
    if limited.action is Action.BLOCK:
        retry = str(limited.evidence.get("retry_after", 1))
        return _error(429, f"rate limit exceeded: {limited.reason}", {"Retry-After": retry})
    return _error(401, reason, {"WWW-Authenticate": "Bearer"})


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "bastion_gateway_requests",
            "Requests answered",
            ["path", "status"],
            registry=self.registry,
        )
        self.verdicts = Counter(
            "bastion_gateway_guard_actions",
            "Guard verdicts that fired",
            ["guard", "action"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "bastion_gateway_request_seconds",
            "Time to answer",
            ["path"],
            registry=self.registry,
        )


def create_app(
    settings: GatewaySettings | None = None,
    *,
    store: Store | None = None,
    served: Served | None = None,
) -> FastAPI:
    """Build the gateway app: load the model, build the guards, open the store.

    Args:
        settings: the configuration (defaults: the embedded digits CNN, every guard on,
            SQLite file ``bastion-gateway.db`` in the working directory).
        store: an already open store; by default one at ``settings.database_url``.
        served: an already loaded model (with calibration data) to serve instead of
            ``settings.model``.

    Raises:
        ConfigError: ``settings.manifest`` is set and does not verify, or does not list the
            model, weights or config file (see `verify_served_files`).
    """
    settings = settings or GatewaySettings()
    if served is None:
        served = load_served(settings)
    else:
        verify_served_files(settings)
    pipeline = Pipeline(settings, served)
    db = store or Store(settings.database_url)
    metrics = _Metrics()
    trusted = settings.guards.trusted_proxies
    app = FastAPI(
        title="bastion gateway",
        version=__version__,
        description="A hardened prediction gateway: every request is authenticated, "
        "limited, validated, watched for query attacks and recorded.",
    )
    app.state.settings = settings
    app.state.store = db
    app.state.pipeline = pipeline

    def audit_of(request: Request) -> _Audit:
        return request.state.audit  # type: ignore[no-any-return]

    def principal_of(request: Request) -> Principal:
        return request.state.principal  # type: ignore[no-any-return]

    @app.middleware("http")
    async def authenticate_and_record(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        audit = _Audit()
        request.state.audit = audit
        peer = request.client.host if request.client else ""
        audit.address = client_address(peer, request.headers.get("x-forwarded-for"), trusted)
        response: Response | None = None
        path = request.url.path
        # The review pages also accept a browser session cookie; they check it themselves.
        by_cookie = is_review_path(path) and "authorization" not in request.headers
        if path not in _OPEN_PATHS and not by_cookie:
            header = request.headers.get("authorization", "")
            scheme, _, key = header.partition(" ")
            if scheme.lower() != "bearer" or not key.strip():
                audit.error = "missing 'Authorization: Bearer KEY' header"
            else:
                found = await run_in_threadpool(db.authenticate, key.strip())
                if isinstance(found, Principal):
                    request.state.principal = found
                    audit.identity = found.key_id
                else:
                    audit.error = found
            if not audit.identity:
                # Refusals count against the address too, so guessing keys is rate limited.
                try:
                    limited = await run_in_threadpool(pipeline.limit_address, audit.address)
                except RateLimitStorageError:
                    response = _error(503, UNAVAILABLE)
                else:
                    response = _refusal(limited, audit.error)
            elif principal_of(request).blocked:
                audit.error = "this API key has been blocked by an administrator"
                response = _error(403, audit.error)
        if response is None:
            try:
                response = await call_next(request)
            except Exception:
                audit.error = audit.error or "internal error"
                await run_in_threadpool(_write, request, audit, 500)
                raise
        await run_in_threadpool(_write, request, audit, response.status_code)
        route = path if path in {"/v1/predict", "/v1/feedback", "/healthz", "/metrics"} else "other"
        metrics.requests.labels(route, str(response.status_code)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - started)
        response.headers["X-Request-Id"] = audit.id
        return response

    def _write(request: Request, audit: _Audit, status: int) -> None:
        flags = [
            FlagRecord(
                request_id=audit.id,
                identity=audit.identity,
                guard=v["guard"],
                action=v["action"],
                reason=v["reason"],
                evidence=dumps(v["evidence"]),
            )
            for v in audit.verdicts
            if v["guard"] in DETECTORS and v["action"] in ("flag", "slow", "block")
        ]
        record = RequestRecord(
            id=audit.id,
            identity=audit.identity,
            address=audit.address[:64],
            method=request.method[:8],
            path=request.url.path[:200],
            status=status,
            input_hash=audit.input_hash,
            samples=audit.samples,
            output=dumps(audit.output) if audit.output is not None else "",
            verdicts=dumps(audit.verdicts),
            action=audit.action,
            error=audit.error[:2000],
            reached_model=int(audit.reached_model),
        )
        db.record(record, flags)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        audit_of(request).error = str(exc.detail)
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        status = 400 if any(e.get("type") == "json_invalid" for e in errors) else 422
        message = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in errors
        )
        audit_of(request).error = message
        return _error(status, message)

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, str]:
        """Liveness: answers without a key."""
        return {"status": "ok"}

    @app.post("/v1/predict", tags=["predict"], openapi_extra=PREDICT_BODY)
    async def predict(request: Request) -> Response:
        """Predict a JSON batch ``{"inputs": [...]}``, or one image uploaded as
        ``multipart/form-data`` in the field ``image``; the answer's detail depends on the role.

        An image's type is read from its bytes (not its name or Content-Type); it must be an
        allowed format within the pixel limit, and is re-encoded before the model sees it.
        """
        audit, who = audit_of(request), principal_of(request)
        body = await _read_body(request, settings.guards.max_body_bytes)
        if body is None:
            audit.error = f"request body larger than {settings.guards.max_body_bytes} bytes"
            audit.action = Action.BLOCK.value
            return _error(413, audit.error)
        out: Outcome
        content_type = request.headers.get("content-type", "").lower()
        if content_type.startswith("multipart/form-data"):
            image = await form_image(request, body)
            if isinstance(image, str):
                audit.input_hash = hashlib.sha256(body).hexdigest()
                out = await run_in_threadpool(
                    pipeline.refuse, who.key_id, audit.address, image, "form"
                )
            else:
                audit.input_hash = hashlib.sha256(image).hexdigest()
                out = await run_in_threadpool(
                    pipeline.predict_image, who.key_id, audit.address, who.role, image
                )
        else:
            audit.input_hash = hashlib.sha256(body).hexdigest()
            out = await run_in_threadpool(
                pipeline.predict, who.key_id, audit.address, who.role, body
            )
        audit.verdicts = [v.as_dict() for v in out.verdicts]
        audit.action = out.action.value
        audit.samples = out.samples
        audit.reached_model = out.reached_model
        for v in out.verdicts:
            if v.fired:
                metrics.verdicts.labels(v.guard, v.action.value).inc()
        if out.status != 200:
            audit.error = out.error
            headers = {"Retry-After": str(out.retry_after)} if out.status == 429 else None
            return _error(out.status, out.error, headers)
        if out.slow:
            await asyncio.sleep(out.slow)
        audit.output = out.predictions
        return JSONResponse({"id": audit.id, "predictions": out.predictions})

    @app.post("/v1/feedback", status_code=202, tags=["predict"])
    async def feedback(request: Request, item: FeedbackIn) -> dict[str, Any]:
        """Propose a label for an earlier prediction; it is quarantined, never applied here."""
        audit, who = audit_of(request), principal_of(request)
        owner = await run_in_threadpool(db.prediction_owner, item.prediction_id)
        if owner is None or (who.role != "admin" and owner[0] != who.key_id):
            raise StarletteHTTPException(404, f"no prediction with id {item.prediction_id!r}")
        if item.sample >= owner[1]:
            raise StarletteHTTPException(
                422,
                f"Expected sample in [0, {owner[1] - 1}] for this prediction, "
                f"but got sample={item.sample}",
            )
        if item.label >= pipeline.model.num_classes:
            raise StarletteHTTPException(
                422,
                f"Expected label in [0, {pipeline.model.num_classes - 1}], "
                f"but got label={item.label}",
            )
        fid = await run_in_threadpool(
            db.add_feedback, item.prediction_id, who.key_id, item.label, item.sample
        )
        audit.output = {"feedback_id": fid}
        return {"id": fid, "status": "quarantined"}

    @app.get("/metrics", tags=["service"])
    async def prometheus(request: Request) -> Response:
        """Prometheus metrics (admins only)."""
        if principal_of(request).role != "admin":
            raise StarletteHTTPException(403, "the metrics need an admin key")
        return PlainTextResponse(
            generate_latest(metrics.registry).decode(), media_type=CONTENT_TYPE_LATEST
        )

    install_review(app, db, pipeline.limit_address)
    return app


def app_from_environment() -> FastAPI:
    """The app for ``uvicorn bastion.gateway:app_from_environment --factory``.

    Reads the settings file named by ``$BASTION_GATEWAY_CONFIG`` (defaults when unset).
    """
    return create_app(load_settings(os.environ.get(SETTINGS_ENV) or None))

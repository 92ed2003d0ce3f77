"""The admin review page: flagged identities and requests, with block, unblock and dismiss.

``GET /review`` is a server-rendered page (jinja2, autoescaped) for admins. A browser cannot
send ``Authorization: Bearer`` on a plain navigation, so an admin logs in at
``/review/login`` by pasting the key once; the gateway answers with a random session id in
an ``HttpOnly``, ``SameSite=Strict`` cookie (the key itself is never stored or sent back).
Sessions live in the database (`bastion.gateway.sessions`: only the hash of the session id is
stored), so every gateway process on one database shares them; they end after
`SESSION_SECONDS`, at logout, or as soon as the key is revoked, blocked, or no longer an
admin's. Callers with a Bearer admin key may use the page and its actions too.

Every state-changing form carries a CSRF token, compared with `hmac.compare_digest`: a random
token stored with the session (or, for a Bearer caller, the HMAC-SHA256 of the key id under a
secret shared through the database). The login form uses a double-submit token (a random
cookie repeated in the form). A missing or wrong token is refused with 403 and changes nothing.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jinja2
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from bastion.core.errors import ValidationError
from bastion.defenses.guards import Action, Verdict
from bastion.defenses.guards.ratelimit import RateLimitStorageError
from bastion.gateway.sessions import ReviewSessions
from bastion.gateway.store import FlagRecord, Principal, RequestRecord, Store

__all__ = ["REVIEW_PATH", "SESSION_COOKIE", "SESSION_SECONDS", "install_review", "is_review_path"]

#: Where the page lives; every review path starts with it.
REVIEW_PATH = "/review"
#: The cookie holding a logged-in admin's session id.
SESSION_COOKIE = "bastion_review"
#: How long a review session lasts after login.
SESSION_SECONDS = 3600
_LOGIN_COOKIE = "bastion_review_login"
_MAX_FORM = 16_384
_MAX_ROWS = 200
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}
_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def is_review_path(path: str) -> bool:
    """True for the review page and its sub-paths (login, logout, actions)."""
    return path == REVIEW_PATH or path.startswith(REVIEW_PATH + "/")


def _evidence(text: str) -> str:
    try:
        shown = json.dumps(json.loads(text), indent=1, sort_keys=True, default=str)
    except ValueError:
        shown = text
    return shown if len(shown) <= 2000 else shown[:2000] + " ..."


def install_review(app: FastAPI, store: Store, limit_address: Callable[[str], Verdict]) -> None:
    """Add the review page, its login and its actions to ``app``.

    Args:
        app: the gateway app (its middleware lets review paths through without a Bearer key).
        store: the audit store holding keys and flags.
        limit_address: the per-address rate limit charged for every failed login.
    """
    sessions = ReviewSessions(store, seconds=SESSION_SECONDS)

    def page(code: int, view: str, **context: Any) -> HTMLResponse:
        html = _ENV.get_template("review.html").render(view=view, **context)
        return HTMLResponse(html, status_code=code, headers=_HEADERS)

    def fail(request: Request, status: int, message: str) -> HTMLResponse:
        audit = getattr(request.state, "audit", None)
        if audit is not None:
            audit.error = message
        return page(status, "error", status=status, message=message)

    def see_other(url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303, headers=_HEADERS)

    def set_cookie(request: Request, response: Response, name: str, value: str) -> None:
        response.set_cookie(
            name,
            value,
            max_age=SESSION_SECONDS,
            path=REVIEW_PATH,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    def caller(request: Request) -> tuple[Principal, str, bool] | None:
        """The caller, its CSRF token and whether it came by cookie; None when not logged in."""
        bearer: Principal | None = getattr(request.state, "principal", None)
        if bearer is not None:
            return bearer, sessions.bearer_csrf(bearer.key_id), False
        sid = request.cookies.get(SESSION_COOKIE, "")
        session = sessions.get(sid) if sid else None
        if session is None:
            return None
        info = store.get_key(session.key_id)
        if info is None or info.revoked or info.blocked or info.role != "admin":
            sessions.close(sid)
            return None
        audit = getattr(request.state, "audit", None)
        if audit is not None:
            audit.identity = info.key_id
        return Principal(info.key_id, info.role, info.blocked), session.csrf, True

    async def form_of(request: Request) -> dict[str, str] | None:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            return None
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_FORM:
                return None
        try:
            fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=8)
        except ValueError:
            return None
        return {name: values[0] for name, values in fields.items()}

    async def authorised(request: Request) -> tuple[Principal, dict[str, str]] | HTMLResponse:
        """The admin behind a POST whose CSRF token checks out, with its form; else a refusal."""
        found = await run_in_threadpool(caller, request)
        if found is None:
            return fail(request, 401, "log in at /review/login first")
        who, csrf, _ = found
        if who.role != "admin":
            return fail(request, 403, "the review page needs an admin key")
        form = await form_of(request)
        token = (form or {}).get("csrf", "")
        if form is None or not hmac.compare_digest(token.encode(), csrf.encode()):
            return fail(request, 403, "missing or invalid CSRF token; reload the review page")
        return who, form

    def render_review(who: Principal, csrf: str, by_cookie: bool) -> HTMLResponse:
        keys = {k.key_id: k for k in store.list_keys()}
        with store.session() as s:
            grouped = s.execute(
                select(
                    FlagRecord.identity,
                    func.count(FlagRecord.id),
                    func.max(FlagRecord.time),
                )
                .where(FlagRecord.status == "open")
                .group_by(FlagRecord.identity)
            ).all()
            pairs = s.execute(
                select(FlagRecord.identity, FlagRecord.guard)
                .where(FlagRecord.status == "open")
                .distinct()
            ).all()
            open_flags = s.execute(
                select(FlagRecord, RequestRecord.input_hash, RequestRecord.path)
                .join(RequestRecord, RequestRecord.id == FlagRecord.request_id)
                .where(FlagRecord.status == "open")
                .order_by(FlagRecord.id.desc())
                .limit(_MAX_ROWS)
            ).all()
        summary = {row[0]: row for row in grouped}
        guards: dict[str, set[str]] = {}
        for identity, guard in pairs:
            guards.setdefault(identity, set()).add(guard)
        names = sorted(set(summary) | {k for k, info in keys.items() if info.blocked})
        identities = []
        for name in names:
            info = keys.get(name)
            row = summary.get(name)
            identities.append(
                {
                    "key_id": name,
                    "name": info.name if info else "",
                    "role": info.role if info else "unknown",
                    "blocked": bool(info and info.blocked),
                    "known": info is not None and name != who.key_id,
                    "open": row[1] if row else 0,
                    "last": row[2] if row else None,
                    "guards": ", ".join(sorted(guards.get(name, ()))),
                }
            )
        flags = [
            {
                "id": flag.id,
                "time": flag.time,
                "identity": flag.identity,
                "guard": flag.guard,
                "action": flag.action,
                "reason": flag.reason,
                "input_hash": input_hash,
                "path": path,
                "evidence": _evidence(flag.evidence),
            }
            for flag, input_hash, path in open_flags
        ]
        return page(
            200,
            "review",
            who=who,
            by_cookie=by_cookie,
            csrf=csrf,
            identities=identities,
            flags=flags,
        )

    @app.get(REVIEW_PATH, tags=["review"], response_class=HTMLResponse)
    async def review(request: Request) -> Response:
        """The review page (admins): flagged identities and open flags with their evidence."""
        found = await run_in_threadpool(caller, request)
        if found is None:
            return see_other(REVIEW_PATH + "/login")
        if found[0].role != "admin":
            return fail(request, 403, "the review page needs an admin key")
        return await run_in_threadpool(render_review, *found)

    @app.get(REVIEW_PATH + "/login", tags=["review"], response_class=HTMLResponse)
    async def login_form(request: Request) -> Response:
        """The login form: paste an admin key to open a review session."""
        token = secrets.token_urlsafe(32)
        response = page(200, "login", csrf=token, message="")
        set_cookie(request, response, _LOGIN_COOKIE, token)
        return response

    @app.post(REVIEW_PATH + "/login", tags=["review"], response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        """Check the pasted admin key and open a session (an HttpOnly, SameSite=Strict cookie)."""
        form = await form_of(request)
        token = (form or {}).get("csrf", "")
        cookie = request.cookies.get(_LOGIN_COOKIE, "")
        if form is None or not token or not hmac.compare_digest(token.encode(), cookie.encode()):
            return fail(request, 403, "missing or invalid CSRF token; reload the login page")
        found = await run_in_threadpool(store.authenticate, form.get("key", "").strip())
        if not isinstance(found, Principal):
            try:
                limited = await run_in_threadpool(limit_address, request.state.audit.address)
            except RateLimitStorageError:
                return fail(request, 503, "the rate limiter is unavailable; try again later")
            if limited.action is Action.BLOCK:
                return fail(request, 429, f"too many failed logins: {limited.reason}")
            request.state.audit.error = found
            return page(401, "login", csrf=token, message=found)
        request.state.audit.identity = found.key_id
        if found.role != "admin" or found.blocked:
            return fail(request, 403, "the review page needs an admin key that is not blocked")
        sid, _ = await run_in_threadpool(sessions.open, found.key_id)
        response = see_other(REVIEW_PATH)
        set_cookie(request, response, SESSION_COOKIE, sid)
        response.delete_cookie(_LOGIN_COOKIE, path=REVIEW_PATH)
        return response

    @app.post(REVIEW_PATH + "/logout", tags=["review"])
    async def logout(request: Request) -> Response:
        """End the review session."""
        checked = await authorised(request)
        if isinstance(checked, Response):
            return checked
        sid = request.cookies.get(SESSION_COOKIE, "")
        if sid:
            await run_in_threadpool(sessions.close, sid)
        response = see_other(REVIEW_PATH + "/login")
        response.delete_cookie(SESSION_COOKIE, path=REVIEW_PATH)
        return response

    def act(request: Request, who: Principal, verb: str, form: dict[str, str]) -> Response:
        try:
            if verb == "dismiss":
                flag = form.get("flag", "")
                if not flag.isdigit():
                    return fail(request, 422, f"Expected a flag id, but got {flag!r}")
                store.resolve_flag(int(flag), who.key_id)
            else:
                identity = form.get("identity", "")
                if identity == who.key_id:
                    return fail(request, 422, "an admin cannot block or unblock their own key")
                store.set_blocked(identity, verb == "block", who.key_id)
        except ValidationError as exc:
            return fail(request, 404, str(exc))
        request.state.audit.output = {"review": verb, **form, "csrf": "-"}
        return see_other(REVIEW_PATH)

    def action_route(verb: str, doc: str) -> None:
        async def handler(request: Request) -> Response:
            checked = await authorised(request)
            if isinstance(checked, Response):
                return checked
            return await run_in_threadpool(act, request, checked[0], verb, checked[1])

        handler.__doc__ = doc
        app.add_api_route(
            f"{REVIEW_PATH}/{verb}",
            handler,
            methods=["POST"],
            tags=["review"],
            name=f"review_{verb}",
            response_class=HTMLResponse,
        )

    action_route("block", "Block an identity: its key is refused with 403 from now on.")
    action_route("unblock", "Lift an identity's block.")
    action_route("dismiss", "Mark a flag as reviewed and dismissed.")

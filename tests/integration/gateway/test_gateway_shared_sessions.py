"""Review sessions live in the database: two gateway processes behind one balancer share them."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import typer
from gwprocs import StartGateway, gateway_settings, key_rows
from sqlalchemy import select, update
from typer.testing import CliRunner

from bastion.cli import serve as serve_module
from bastion.data.zoo import ZooEntry
from bastion.gateway import Store
from bastion.gateway.review import SESSION_COOKIE
from bastion.gateway.sessions import MAX_PER_KEY, ReviewSessions
from bastion.gateway.store import ReviewSession

pytestmark = pytest.mark.integration


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html
    return found.group(1)


def keys_list(url: str) -> dict[str, list[str]]:
    cli = typer.Typer()
    serve_module.register(cli)
    listed = CliRunner().invoke(cli, ["keys", "list", "--db", url], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    return key_rows(listed.output)


def test_a_session_opened_on_one_process_holds_on_another(
    tmp_path: Path, start_gateway: StartGateway, digits_entry: ZooEntry
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    store = Store(url)
    admin_id, admin = store.create_key("admin", "ops")
    client_id, client = store.create_key("client", "app")
    store.close()
    settings = gateway_settings(url)
    first, second = start_gateway(settings), start_gateway(settings)
    predict = {"inputs": [digits_entry.test.x[0].tolist()]}
    client_auth = {"Authorization": f"Bearer {client}"}
    with (
        httpx.Client(base_url=first.url, timeout=10) as a,
        httpx.Client(base_url=second.url, timeout=10) as b,
    ):
        form = a.get("/review/login")
        login = a.post(
            "/review/login",
            data={"csrf": csrf_of(form.text), "key": admin},
            follow_redirects=False,
        )
        assert login.status_code == 303
        session = login.cookies[SESSION_COOKIE]
        # the database holds only the token's hash
        reader = Store(url)
        with reader.session() as s:
            hashes = s.scalars(select(ReviewSession.token_hash)).all()
        reader.close()
        assert hashes == [hashlib.sha256(session.encode()).hexdigest()]
        assert session not in (tmp_path / "shared.db").read_bytes().decode("latin-1")

        b.cookies.set(SESSION_COOKIE, session, domain="127.0.0.1", path="/review")
        page_b = b.get("/review", follow_redirects=False)
        assert page_b.status_code == 200 and admin_id in page_b.text
        token = csrf_of(page_b.text)
        a.cookies.set(SESSION_COOKIE, session, domain="127.0.0.1", path="/review")
        assert csrf_of(a.get("/review").text) == token  # one CSRF token per session
        assert b.post("/review/block", data={"identity": client_id}).status_code == 403
        blocked = b.post(
            "/review/block", data={"identity": client_id, "csrf": token}, follow_redirects=False
        )
        assert blocked.status_code == 303
        assert a.post("/v1/predict", json=predict, headers=client_auth).status_code == 403
        rows = keys_list(url)
        assert rows["id"][-1] == "blocked"
        assert rows[client_id][-1] == "yes" and rows[admin_id][-1] == ""

        # a Bearer admin's CSRF token from one process is good on the other too
        bearer = {"Authorization": f"Bearer {admin}"}
        bearer_token = csrf_of(a.get("/review", headers=bearer).text)
        assert bearer_token != token
        unblocked = httpx.post(
            second.url + "/review/unblock",
            data={"identity": client_id, "csrf": bearer_token},
            headers=bearer,
            timeout=10,
        )
        assert unblocked.status_code == 303
        assert b.post("/v1/predict", json=predict, headers=client_auth).status_code == 200
        assert keys_list(url)[client_id][-1] == ""

        # logging out on one process ends the session on both
        out = a.post("/review/logout", data={"csrf": token}, follow_redirects=False)
        assert out.status_code == 303
        assert b.get("/review", follow_redirects=False).status_code == 303
        assert (
            b.post("/review/block", data={"identity": client_id, "csrf": token}).status_code == 401
        )


def test_sessions_expire_are_capped_per_key_and_refuse_malformed_tokens(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        sessions = ReviewSessions(store, seconds=60)
        token, info = sessions.open("abc")
        assert sessions.get(token) == info and info.key_id == "abc"
        assert sessions.get(token[:-1]) is None and sessions.get(token + "x") is None
        assert sessions.get("") is None
        other, _ = sessions.open("abc")
        assert sessions.get(other) is not None and sessions.get(token) is not None
        with store.session() as s, s.begin():
            s.execute(
                update(ReviewSession)
                .where(ReviewSession.token_hash == hashlib.sha256(token.encode()).hexdigest())
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        assert sessions.get(token) is None and sessions.get(other) is not None
        tokens = [sessions.open("abc")[0] for _ in range(MAX_PER_KEY)]
        assert sessions.get(other) is None  # the oldest went
        assert all(sessions.get(t) is not None for t in tokens)
        with store.session() as s:  # the expired one was purged, the cap holds
            assert len(s.scalars(select(ReviewSession.id)).all()) == MAX_PER_KEY
        sessions.close(tokens[0])
        assert sessions.get(tokens[0]) is None
        with pytest.raises(ValueError, match="seconds"):
            ReviewSessions(store, seconds=0)
    finally:
        store.close()

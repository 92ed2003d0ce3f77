"""The admin review page through TestClient: login, roles, CSRF, block/unblock/dismiss, escaping."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from bastion.data.zoo import ZooEntry
from bastion.gateway import Store
from bastion.gateway.review import SESSION_COOKIE
from bastion.gateway.store import FlagRecord, RequestRecord, dumps, new_request_id

Build = Callable[..., tuple[TestClient, Store, dict[str, str]]]
HOSTILE = '<script>alert("x")</script>'


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html
    return found.group(1)


def login(client: TestClient, key: str) -> Any:
    form = client.get("/review/login")
    assert form.status_code == 200
    return client.post(
        "/review/login", data={"csrf": csrf_of(form.text), "key": key}, follow_redirects=False
    )


def admin_page(client: TestClient, key: str) -> str:
    assert login(client, key).status_code == 303
    page = client.get("/review")
    assert page.status_code == 200
    return str(page.text)


def add_flag(store: Store, identity: str, reason: str = "near-duplicate queries") -> int:
    request = RequestRecord(
        id=new_request_id(), identity=identity, path="/v1/predict", status=200, input_hash="ab" * 32
    )
    flag = FlagRecord(
        request_id=request.id,
        identity=identity,
        guard="blacklight",
        action="flag",
        reason=reason,
        evidence=dumps({"matches": 3, "note": HOSTILE}),
    )
    store.record(request, [flag])
    return flag.id


def predict(client: TestClient, key: str, entry: ZooEntry) -> int:
    answer = client.post(
        "/v1/predict", headers=bearer(key), json={"inputs": [entry.test.x[0].tolist()]}
    )
    return int(answer.status_code)


def flag_status(store: Store, flag_id: int) -> tuple[str, str | None]:
    with store.engine.connect() as conn:
        sql = text("SELECT status, resolved_by FROM flags WHERE id = :i")
        status, by = conn.execute(sql, {"i": flag_id}).one()
        return str(status), by


def test_page_needs_login_and_an_admin(make_client: Build) -> None:
    client, _, keys = make_client()
    anonymous = client.get("/review", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/review/login"
    assert client.post("/review/block", data={"identity": "x", "csrf": "y"}).status_code == 401
    assert client.get("/review", headers=bearer(keys["client"])).status_code == 403
    assert client.get("/review", headers=bearer(keys["admin"])).status_code == 200
    refused = login(client, keys["client"])
    assert refused.status_code == 403 and SESSION_COOKIE not in refused.cookies
    wrong = login(client, keys["admin"] + "x")
    assert wrong.status_code == 401 and "invalid API key" in wrong.text
    documented = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    for path in ("/review", "/review/login", "/review/logout", "/review/block", "/review/dismiss"):
        assert path in documented


def test_login_sets_a_strict_httponly_session_cookie_and_never_the_key(make_client: Build) -> None:
    client, _, keys = make_client()
    answer = login(client, keys["admin"])
    assert answer.status_code == 303 and answer.headers["location"] == "/review"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/review" in cookie
    assert keys["admin"] not in cookie and keys["admin"].split("_", 2)[2] not in cookie
    page = client.get("/review")
    assert page.status_code == 200 and "Gateway review" in page.text
    assert page.headers["x-frame-options"] == "DENY" and "no-store" in page.headers["cache-control"]
    assert keys["admin"] not in page.text
    logout = client.post(
        "/review/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False
    )
    assert logout.status_code == 303
    assert client.get("/review", follow_redirects=False).status_code == 303


def test_login_form_needs_its_csrf_token(make_client: Build) -> None:
    client, _, keys = make_client()
    client.get("/review/login")
    for token in ("", "forged"):
        answer = client.post("/review/login", data={"csrf": token, "key": keys["admin"]})
        assert answer.status_code == 403
    assert client.get("/review", follow_redirects=False).status_code == 303


def test_actions_without_a_valid_csrf_token_change_nothing(
    make_client: Build, digits_entry: ZooEntry
) -> None:
    client, store, keys = make_client()
    client_id = keys["client"].split("_")[1]
    flag = add_flag(store, client_id)
    page = admin_page(client, keys["admin"])
    good = csrf_of(page)
    for data in ({}, {"csrf": ""}, {"csrf": "0" * len(good)}, {"csrf": good[:-1]}):
        assert client.post("/review/block", data={"identity": client_id, **data}).status_code == 403
        assert client.post("/review/dismiss", data={"flag": str(flag), **data}).status_code == 403
    # the right token sent as JSON (not a form), or another session's token, is refused too
    assert (
        client.post("/review/block", json={"identity": client_id, "csrf": good}).status_code == 403
    )
    with TestClient(client.app) as other:
        theirs = csrf_of(admin_page(other, keys["admin"]))
        assert theirs != good
        answer = client.post("/review/block", data={"identity": client_id, "csrf": theirs})
        assert answer.status_code == 403
    assert predict(client, keys["client"], digits_entry) == 200
    assert flag_status(store, flag) == ("open", None)
    assert store.get_key(client_id).blocked is False  # type: ignore[union-attr]


def test_block_takes_effect_and_unblock_lifts_it(
    make_client: Build, digits_entry: ZooEntry
) -> None:
    client, store, keys = make_client()
    client_id = keys["client"].split("_")[1]
    sample = digits_entry.test.x[5]
    for i in range(4):  # near-duplicates: Blacklight flags the identity (from the 4th) for real
        nudged = sample.copy()
        nudged[0, i, i] = min(1.0, float(nudged[0, i, i]) + 0.01)
        answer = client.post(
            "/v1/predict", headers=bearer(keys["client"]), json={"inputs": [nudged.tolist()]}
        )
        assert answer.status_code == 200
    page = admin_page(client, keys["admin"])
    assert f'id="identity-{client_id}"' in page and "blacklight" in page
    hashes = [r.input_hash for r in store.requests() if r.identity == client_id]
    assert any(h in page for h in hashes)
    blocked = client.post(
        "/review/block", data={"identity": client_id, "csrf": csrf_of(page)}, follow_redirects=False
    )
    assert blocked.status_code == 303
    refused = client.post(
        "/v1/predict", headers=bearer(keys["client"]), json={"inputs": [sample.tolist()]}
    )
    assert refused.status_code == 403 and "blocked" in refused.json()["error"]["message"]
    page = client.get("/review").text
    row = page.split(f'id="identity-{client_id}"')[1].split("</tr>")[0]
    assert "blocked" in row and "Unblock" in row
    assert (
        client.post(
            "/review/unblock", data={"identity": client_id, "csrf": csrf_of(page)}
        ).status_code
        == 200
    )  # followed the redirect back to the page
    assert predict(client, keys["client"], digits_entry) == 200


def test_admin_cannot_block_itself_and_unknown_ids_are_404(make_client: Build) -> None:
    client, _, keys = make_client()
    admin_id = keys["admin"].split("_")[1]
    token = csrf_of(admin_page(client, keys["admin"]))
    assert (
        client.post("/review/block", data={"identity": admin_id, "csrf": token}).status_code == 422
    )
    assert (
        client.post("/review/block", data={"identity": "nobody", "csrf": token}).status_code == 404
    )
    assert client.post("/review/dismiss", data={"flag": "999", "csrf": token}).status_code == 404
    assert client.get("/review").status_code == 200


def test_dismiss_resolves_the_flag(make_client: Build) -> None:
    client, store, keys = make_client()
    client_id = keys["client"].split("_")[1]
    flag = add_flag(store, client_id)
    page = admin_page(client, keys["admin"])
    assert f'id="flag-{flag}"' in page
    answer = client.post("/review/dismiss", data={"flag": str(flag), "csrf": csrf_of(page)})
    assert answer.status_code == 200 and f'id="flag-{flag}"' not in answer.text
    assert flag_status(store, flag) == ("dismissed", keys["admin"].split("_")[1])
    # dismissing twice is refused: the flag is no longer open
    again = client.post("/review/dismiss", data={"flag": str(flag), "csrf": csrf_of(page)})
    assert again.status_code == 404


def test_hostile_names_and_reasons_are_escaped(make_client: Build) -> None:
    client, store, keys = make_client()
    hostile_id, _ = store.create_key("client", HOSTILE)
    add_flag(store, hostile_id, reason=f"{HOSTILE}<img src=x onerror=alert(1)>")
    page = admin_page(client, keys["admin"])
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_a_revoked_admin_key_ends_its_session(make_client: Build) -> None:
    client, store, keys = make_client()
    admin_page(client, keys["admin"])
    store.revoke_key(keys["admin"].split("_")[1])
    assert client.get("/review", follow_redirects=False).status_code == 303


def test_migration_0002_upgrades_a_0001_database_keeping_its_keys(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    import bastion.gateway.store as store_module

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    config = Config()
    migrations = Path(store_module.__file__).with_name("migrations")
    config.set_main_option("script_location", str(migrations))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(
            text(
                "INSERT INTO api_keys (key_id, key_hash, role, name, created_at) "
                "VALUES ('abc', 'h', 'client', 'old', '2026-01-01 00:00:00')"
            )
        )
    engine.dispose()
    store = Store(url)
    info = store.get_key("abc")
    assert info is not None and info.name == "old" and not info.blocked
    store.set_blocked("abc", True, "admin1")
    assert store.get_key("abc").blocked  # type: ignore[union-attr]
    store.close()

"""A real browser clicks through a review: headless Chromium (Selenium) against real uvicorn.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package; skipped with
the reason when one is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.data.zoo import ZooEntry
from bastion.gateway import SETTINGS_ENV, Store
from bastion.gateway.review import SESSION_COOKIE

pytestmark = pytest.mark.integration

CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def browser_parts() -> tuple[str, str]:
    """Paths of the Chromium binary and chromedriver, or skip the test saying what is missing.

    Checked before the gateway starts, so a skip costs nothing.
    """
    pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")
    chromium = next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
        None,
    )
    if chromium is None:
        pytest.skip("no Chromium binary on PATH (apt-get install chromium)")
    driver = shutil.which("chromedriver")
    if driver is None:
        pytest.skip("no chromedriver on PATH (apt-get install chromium-driver)")
    return chromium, driver


@pytest.fixture()
def gateway(tmp_path: Path, zoo_cache: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A uvicorn gateway on 127.0.0.1 with one client and one admin key: (base URL, keys)."""
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    store = Store(db)
    keys = {role: store.create_key(role, f"browser {role}")[1] for role in ("client", "admin")}
    store.close()
    config = tmp_path / "gateway.toml"
    config.write_text(f'zoo_cache = "{zoo_cache}"\ndatabase_url = "{db}"\n')
    port = free_port()
    log = (tmp_path / "server.log").open("w+")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "bastion.gateway:app_from_environment"),
            *("--factory", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, SETTINGS_ENV: str(config)},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("the gateway did not start:\n" + Path(log.name).read_text())
        yield base, keys
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def predict(base: str, key: str, inputs: list[Any]) -> httpx.Response:
    return httpx.post(
        f"{base}/v1/predict",
        json={"inputs": inputs},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )


def test_admin_logs_in_sees_the_flag_and_blocks_the_identity(
    browser_parts: tuple[str, str],
    tmp_path: Path,
    gateway: tuple[str, dict[str, str]],
    digits_entry: ZooEntry,
) -> None:
    chromium, driver_path = browser_parts
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, keys = gateway
    client_id = keys["client"].split("_")[1]
    sample = digits_entry.test.x[5]
    for i in range(4):  # near-duplicates: Blacklight flags the client (from the 4th) for review
        nudged = sample.copy()
        nudged[0, i, i] = min(1.0, float(nudged[0, i, i]) + 0.01)
        assert predict(base, keys["client"], [nudged.tolist()]).status_code == 200

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    browser = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    started = time.monotonic()
    try:
        browser.set_page_load_timeout(10)
        # a click reloads the page: an element read mid-reload goes stale, so wait past it
        wait = WebDriverWait(browser, 10, ignored_exceptions=(StaleElementReferenceException,))
        browser.get(f"{base}/review")
        wait.until(lambda b: b.current_url.endswith("/review/login"))
        browser.find_element(By.ID, "key").send_keys(keys["admin"])
        browser.find_element(By.ID, "login").click()
        row_id = f"identity-{client_id}"
        wait.until(lambda b: b.find_elements(By.ID, row_id))
        row = browser.find_element(By.ID, row_id)
        assert "blacklight" in row.text and "active" in row.text
        assert browser.find_elements(By.CSS_SELECTOR, "#flags tr[id^='flag-']")
        # the session cookie is HttpOnly and SameSite=Strict, and holds no part of the key
        cookie = next(c for c in browser.get_cookies() if c["name"] == SESSION_COOKIE)
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert keys["admin"].split("_", 2)[2] not in cookie["value"]
        assert SESSION_COOKIE not in browser.execute_script("return document.cookie")

        row.find_element(By.CSS_SELECTOR, "button[value='block']").click()
        wait.until(
            lambda b: (
                "blocked"
                in b.find_element(By.ID, row_id).find_element(By.CLASS_NAME, "status").text
            )
        )
        assert browser.find_element(By.ID, row_id).find_elements(
            By.CSS_SELECTOR, "button[value='unblock']"
        )
    finally:
        browser.quit()
    assert time.monotonic() - started < 30
    refused = predict(base, keys["client"], [sample.tolist()])
    assert refused.status_code == 403 and "blocked" in refused.json()["error"]["message"]

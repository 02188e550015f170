"""A real browser on the example's live page: headless Chromium driven by selenium.

The catalog example (examples/catalog/app.py) runs under gunicorn (2 gthread
workers) against a real redis-server; Chromium opens ``/products/3/live``, and
a broadcast made by ``flask redis broadcast`` in another process changes the
page's DOM without a reload. Then the page's own "Buy one" button (a POST
served by either worker) updates the stock the same way, and a reconnect after
a server-side stream end replays what was missed.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y
chromium chromium-driver``) and selenium (test extra). Without them the test
skips with a message, except under ``CI=true``, where a missing browser fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_rediscache import RedisCache

from .test_cable_helpers import ROOT, Gunicorn

pytestmark = pytest.mark.slow

CATALOG = ROOT / "examples" / "catalog"
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
CHROMEDRIVER = shutil.which("chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")


def _require_browser() -> Any:
    missing = []
    try:
        from selenium import webdriver
    except ImportError:
        missing.append("selenium (pip install 'flask-rediscache[test]')")
        webdriver = None
    if CHROMIUM is None:
        missing.append("chromium (apt-get install -y chromium)")
    if CHROMEDRIVER is None:
        missing.append("chromedriver (apt-get install -y chromium-driver)")
    if missing:
        message = "browser test needs " + ", ".join(missing)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return webdriver


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    webdriver = _require_browser()
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def text_becomes(driver: Any, element_id: str, expected: str, timeout: float = 10) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: d.find_element(By.ID, element_id).text == expected,
        message=f"#{element_id} never became {expected!r}")
    return str(driver.find_element(By.ID, element_id).text)


def flask_broadcast(redis_url: str, channel: str, data: str, *extra: str) -> str:
    """``flask --app examples/catalog/app.py redis broadcast ...`` in its own process."""
    env = {**os.environ, "REDIS_URL": redis_url, "SECRET_KEY": "browser-test"}
    result = subprocess.run([sys.executable, "-m", "flask", "--app", str(CATALOG / "app.py"), "redis",
                             "broadcast", channel, data, *extra],
                            env=env, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def test_a_cli_broadcast_updates_the_open_page(browser, redis_server, tmp_path):
    from selenium.webdriver.common.by import By

    env = {"SECRET_KEY": "browser-test", "CATALOG_DB_DELAY": "0", "REDIS_CABLE_MAX_STREAM_SECONDS": "4"}
    server = Gunicorn(tmp_path, {"REDIS_URL": redis_server.url, **env}, app="app:app", chdir=CATALOG,
                      workers=2, threads=8)
    try:
        server.wait_ready("/me")
        browser.get(f"{server.base}/products/3/live")
        assert browser.find_element(By.TAG_NAME, "h1").text == "Burr grinder"
        assert browser.find_element(By.ID, "stock").text == "5"
        text_becomes(browser, "status", "live")

        started = time.perf_counter()
        output = flask_broadcast(redis_server.url, "product:3", '{"stock": 2}', "--event", "stock")
        assert output.startswith("Broadcast to product:3")
        text_becomes(browser, "stock", "2")
        took = time.perf_counter() - started
        print(f"\nCLI broadcast to DOM update (process start included): {took:.2f} s")

        # Data is shown as text, never as HTML.
        flask_broadcast(redis_server.url, "product:3", '{"message": "<b>Back in stock soon</b>"}')
        item = browser.find_element(By.CSS_SELECTOR, "#news li")
        text_becomes(browser, "news", "<b>Back in stock soon</b>")
        assert item.find_elements(By.TAG_NAME, "b") == []

        # The page's own button: a POST on either worker, broadcast back to this page.
        browser.find_element(By.ID, "buy").click()
        text_becomes(browser, "stock", "4")  # 5 in the catalog, 1 sold (the CLI's 2 was a message only)

        # The stream ends after REDIS_CABLE_MAX_STREAM_SECONDS; EventSource reconnects with
        # Last-Event-ID, and what was broadcast in between is replayed.
        deadline = time.monotonic() + 15
        while browser.find_element(By.ID, "status").text == "live" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert browser.find_element(By.ID, "status").text == "reconnecting..."
        sender = Flask("sender")
        sender.config.update(SECRET_KEY="s", REDIS_URL=redis_server.url)
        with sender.app_context():  # in the retry gap (2 s): only a replay can deliver it
            assert RedisCache(sender).broadcast("product:3", {"message": "while away"})
        text_becomes(browser, "status", "live", timeout=15)
        messages = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#news li")]
        deadline = time.monotonic() + 10
        while "while away" not in messages and time.monotonic() < deadline:
            time.sleep(0.1)
            messages = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#news li")]
        assert messages == ["<b>Back in stock soon</b>", "while away"]  # each once, in order
    finally:
        server.stop()
    assert "Traceback" not in server.log_tail(20000)

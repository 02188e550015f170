"""The Flask-DebugToolbar panel: every cache and session call of a request."""

from __future__ import annotations

import importlib
import re
import sys

import pytest
from flask import Flask, session

from flask_rediscache import RedisCache
from flask_rediscache.state import get_state

PANEL = "flask_rediscache.contrib.debug_toolbar.RedisCachePanel"


@pytest.fixture
def toolbar_app(redis_server):
    pytest.importorskip("flask_debugtoolbar")
    from flask_debugtoolbar import DebugToolbarExtension

    app = Flask("toolbar")
    app.config.update(SECRET_KEY="test-secret", DEBUG=True, REDIS_URL=redis_server.url,
                      DEBUG_TB_INTERCEPT_REDIRECTS=False, DEBUG_TB_PANELS=[PANEL])
    app.debug = True
    cache = RedisCache(app)
    DebugToolbarExtension(app)

    @app.get("/page")
    def page():
        cache.get("product:1")  # a miss
        cache.set("product:1", {"name": "tea"}, timeout=60)  # a write
        cache.get("product:1")  # a hit
        cache.get_many("product:1", "product:2")
        user = session.get("user", "anonymous")  # a session load
        return f"<html><body><h1>Hello {user}</h1></body></html>"

    @app.get("/login")
    def login():
        session["user"] = "ada"
        return "<html><body>ok</body></html>"

    yield app
    get_state(app).close()


def panel_html(html: str) -> str:
    match = re.search(r'id="flDebugRedisCachePanel-content".*?(<table class="rediscache-calls">.*?</table>)',
                      html, re.S)
    assert match, "the panel is not in the page"
    return match.group(1)


def test_panel_lists_hits_misses_writes_and_totals(toolbar_app):
    client = toolbar_app.test_client()
    client.get("/login")
    html = client.get("/page").get_data(as_text=True)
    assert "Redis cache" in html  # the nav entry
    table = panel_html(html)
    rows = re.findall(r"<tr class=\"flDebug(?:Odd|Even)\">(.*?)</tr>", table, re.S)
    cells = [re.findall(r"<td>(.*?)</td>", row, re.S) for row in rows]
    summary = [(c[1], c[2], re.sub(r"</?code>", "", c[3]), c[4]) for c in cells]
    assert summary == [
        ("cache", "get", "product:1", "miss"),
        ("cache", "set", "product:1", "write"),
        ("cache", "get", "product:1", "hit"),
        ("cache", "get_many", "product:1, product:2", "1 hits, 1 misses"),
        ("session", "load", summary[4][2], "hit"),
    ]
    assert summary[4][2].startswith("session:")
    assert all(float(c[5]) > 0 for c in cells)
    assert int(cells[1][6]) > 0 and int(cells[2][6]) > 0 and int(cells[0][6]) == 0
    assert "5 calls: 4 cache, 1 session;" in table and "3 hits, 2 misses, 1 writes" in table


def test_panel_escapes_keys(toolbar_app):
    cache = toolbar_app.extensions["rediscache"]

    @toolbar_app.get("/xss")
    def xss():
        cache.get("<script>alert(1)</script>")
        return "<html><body>x</body></html>"

    table = panel_html(toolbar_app.test_client().get("/xss").get_data(as_text=True))
    assert "<script>alert" not in table and "&lt;script&gt;" in table


def test_clear_import_error_without_flask_debugtoolbar(monkeypatch):
    monkeypatch.setitem(sys.modules, "flask_debugtoolbar", None)
    monkeypatch.setitem(sys.modules, "flask_debugtoolbar.panels", None)
    monkeypatch.delitem(sys.modules, "flask_rediscache.contrib.debug_toolbar", raising=False)
    with pytest.raises(ImportError, match="pip install flask-debugtoolbar"):
        importlib.import_module("flask_rediscache.contrib.debug_toolbar")
    monkeypatch.delitem(sys.modules, "flask_rediscache.contrib.debug_toolbar", raising=False)

"""The catalog example's live product page (examples/catalog/app.py), without a browser.

The browser drives it in test_browser.py; here the routes are checked one by
one: the page, the buy button's broadcast, and the viewer count the event
stream keeps.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server

from flask_rediscache.state import get_state

from .test_cable_helpers import SSEClient, wait_for
from .test_example_app import load_module


@pytest.fixture(scope="module")
def catalog() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as mp:
        for key in ("REDIS_URL", "SECRET_KEY", "CATALOG_DB_DELAY"):
            mp.delenv(key, raising=False)
        yield load_module("catalog_live_example")


@pytest.fixture
def app(catalog: Any, redis_server: Any) -> Iterator[Any]:
    app = catalog.create_app({"REDIS_URL": redis_server.url, "SECRET_KEY": "live", "CATALOG_DB_DELAY": 0,
                              "TESTING": True})
    yield app
    state = get_state(app)
    state.extras["cable"].close()
    state.close()


def test_live_page_shows_stock_and_viewers_and_opens_an_event_source(app):
    page = app.test_client().get("/products/3/live")
    assert page.status_code == 200
    assert "Burr grinder" in page.text and 'id="stock">5<' in page.text
    assert 'new EventSource("/products/3/events")' in page.text
    assert 'id="viewers">1<' in page.text  # the page's own viewer
    assert app.test_client().get("/products/999/live").status_code == 404
    assert app.test_client().get("/products/999/events").status_code == 404


def test_buying_broadcasts_the_new_stock_until_sold_out(app):
    client = app.test_client()
    cache = app.extensions["rediscache"]
    answers = [client.post("/products/3/buy") for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [409]
    assert [a.json.get("stock") for a in answers] == [4, 3, 2, 1, 0, 0]
    with app.app_context():
        assert cache.broadcasts("product:3") == [{"stock": n} for n in (4, 3, 2, 1, 0)]
    assert 'id="stock">0<' in client.get("/products/3/live").text


def test_the_event_stream_counts_viewers(app):
    cache = app.extensions["rediscache"]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        watcher = SSEClient(server.server_port, "/products/2/events")
        watcher.wait_ready()
        other = SSEClient(server.server_port, "/products/2/events")
        other.wait_ready()
        assert json.loads(watcher.next().data) == {"viewers": 2}
        other.close()
        # werkzeug notices the closed connection at the stream's next write: a broadcast will do
        with app.app_context():
            cache.broadcast("product:2", {"message": "hello"})
        got = [json.loads(watcher.next().data) for _ in range(2)]
        assert got[0] == {"message": "hello"}
        assert got[1] == {"viewers": 1}
        with app.app_context():
            assert wait_for(lambda: cache.get("viewers:2") == 1)
        watcher.close()
    finally:
        server.shutdown()
        server.server_close()

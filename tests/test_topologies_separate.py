"""Separate instances per purpose: REDIS_CACHE_URL and REDIS_SESSION_URL.

The Rails guide's "separate by purpose": the cache may evict (allkeys-lru)
while sessions must not (noeviction), so they live on different servers, each
with its own pool, guard and circuit breaker. Two real servers per test.
"""

from __future__ import annotations

import pytest
from flask import session

from flask_rediscache.state import get_state

from .support import Recorder

pytestmark = pytest.mark.timeout(60)



@pytest.fixture
def two(redis_factory):
    cache_server = redis_factory("--maxmemory", "16mb", "--maxmemory-policy", "allkeys-lru")
    session_server = redis_factory("--maxmemory-policy", "noeviction")
    return cache_server, session_server


def _routes(app):
    @app.post("/login/<name>")
    def login(name):
        session["user"] = name
        return "ok"

    @app.get("/me")
    def me():
        return {"user": session.get("user")}

    @app.get("/cached")
    @app.extensions["rediscache"].cached(timeout=60)
    def cached():
        return "page"


def test_cache_keys_on_one_server_sessions_on_the_other(make_app, two):
    cache_server, session_server = two
    errors = Recorder()
    app = make_app(REDIS_CACHE_URL=cache_server.url, REDIS_SESSION_URL=session_server.url,
                   REDIS_ERROR_HANDLER=errors)
    _routes(app)
    state = get_state(app)
    assert state.targets["cache"] is not state.targets["session"]
    pools = [state.targets[purpose].client.connection_pool for purpose in ("cache", "session")]
    assert pools[0] is not pools[1]
    assert [p.connection_kwargs["port"] for p in pools] == [cache_server.port, session_server.port]
    assert state.targets["cache"].purposes == ["cache"] and state.targets["session"].purposes == ["session"]
    assert state.boundaries["cache"].breaker is not state.boundaries["session"].breaker
    with app.app_context():
        cache = app.extensions["rediscache"]
        cache.set("k", 1)
        cache.set_many({"a": 1, "b": 2})
    client = app.test_client()
    assert client.post("/login/ada").status_code == 200
    assert client.get("/me").json == {"user": "ada"}
    assert client.get("/cached").data == b"page"

    def keys(server):
        return {k.split(b":")[0] for k in server.client().scan_iter()}

    assert keys(cache_server) == {b"cache"}
    assert keys(session_server) == {b"session"}
    assert errors.calls == []
    # Clearing the cache leaves every session alone, even with the same prefix rules.
    with app.app_context():
        assert app.extensions["rediscache"].clear() >= 3
    assert keys(cache_server) == set()
    assert client.get("/me").json == {"user": "ada"}


def test_same_url_shares_one_pool(make_app, redis_server):
    app = make_app(REDIS_CACHE_URL=redis_server.url, REDIS_SESSION_URL=redis_server.url)
    state = get_state(app)
    assert state.targets["cache"] is state.targets["session"]
    assert state.targets["cache"].purposes == ["cache", "session"]
    assert state.boundaries["cache"].breaker is state.boundaries["session"].breaker


def test_cache_server_down_keeps_sessions_working(make_app, two):
    """One purpose's outage opens its own breaker only."""
    cache_server, session_server = two
    errors = Recorder()
    app = make_app(REDIS_CACHE_URL=cache_server.url, REDIS_SESSION_URL=session_server.url,
                   REDIS_ERROR_HANDLER=errors, REDIS_CIRCUIT_BREAKER_THRESHOLD=2)
    _routes(app)
    client = app.test_client()
    assert client.post("/login/ada").status_code == 200
    cache_server.kill()
    with app.app_context():
        cache = app.extensions["rediscache"]
        for _ in range(3):
            assert cache.get("k") is None and cache.set("k", 1) is False
    state = get_state(app)
    assert state.boundaries["cache"].breaker.state == "open"
    assert state.boundaries["session"].breaker.state == "closed"
    assert client.get("/me").json == {"user": "ada"}
    assert client.get("/cached").data == b"page"  # the view runs uncached
    assert client.post("/login/bob").status_code == 200
    assert client.get("/me").json == {"user": "bob"}
    assert errors.calls and not [c for c in errors.calls if "session" in c["method"]]


def test_session_server_down_keeps_the_cache_working(make_app, two):
    cache_server, session_server = two
    app = make_app(REDIS_CACHE_URL=cache_server.url, REDIS_SESSION_URL=session_server.url)
    _routes(app)
    session_server.kill()
    client = app.test_client()
    assert client.post("/login/ada").status_code == 200  # the request still succeeds
    with app.app_context():
        cache = app.extensions["rediscache"]
        assert cache.set("k", 1) is True and cache.get("k") == 1
    assert get_state(app).boundaries["cache"].breaker.state == "closed"

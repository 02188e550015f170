"""What broke on Flask 3.0 and Flask main before: run on every Flask of the matrix.

``./dev.sh test`` runs this module (with the cache, session and cached-view
tests) on Flask 3.0.x, 3.1.x and the Flask main wheel.
"""

from __future__ import annotations

import pytest
from flask import session

from .support import commands


@pytest.fixture
def client(app):
    return app.test_client()


def test_a_new_session_is_created_and_read_back(app, client):
    @app.post("/login")
    def login():
        session["user"] = "alice"
        return "ok"

    @app.get("/me")
    def me():
        return session.get("user", "nobody")

    assert client.post("/login").status_code == 200
    assert client.get("/me").data == b"alice"


def test_cached_view_is_stored_and_replayed(app, client, redis_server):
    renders = []

    @app.get("/page")
    @app.extensions["rediscache"].cached(timeout=60)
    def page():
        renders.append(1)
        return f"render {len(renders)}"

    assert client.get("/page").data == b"render 1"
    redis_server.reset_stats()
    assert client.get("/page").data == b"render 1"
    assert renders == [1]
    assert commands(redis_server) == {"get": 1}


def test_cached_view_that_reads_the_session_is_not_stored(app, client):
    renders = []

    @app.get("/hello")
    @app.extensions["rediscache"].cached(timeout=60)
    def hello():
        renders.append(1)
        return f"hello {session.get('user', 'guest')}"

    client.get("/hello")
    client.get("/hello")
    assert len(renders) == 2


def test_cached_helper_called_from_a_view_returns_its_value(app, client):
    """Only the registered view is turned into a response (Flask-Caching's behaviour)."""
    ext = app.extensions["rediscache"]
    calls = []

    @ext.cached(timeout=60, key_prefix="all_comments")
    def all_comments():
        calls.append(1)
        return ["first", "second"]

    @app.get("/comments")
    def comments():
        value = all_comments()
        assert value == ["first", "second"]  # a list, not a Response
        return {"n": len(value)}

    assert client.get("/comments").json == {"n": 2}
    assert client.get("/comments").json == {"n": 2}
    assert calls == [1]


@pytest.mark.parametrize("touch", [False, True], ids=["untouched", "touched"])
def test_cached_view_with_flask_cookie_sessions(make_app, redis_server, touch):
    """REDIS_SESSION=False: the app's own session interface is wrapped so the
    decorator can still tell whether the view used the session."""
    app = make_app(REDIS_URL=redis_server.url, REDIS_SESSION=False)
    renders = []

    @app.get("/page")
    @app.extensions["rediscache"].cached(timeout=60)
    def page():
        renders.append(1)
        if touch:
            return f"hello {session.get('user', 'guest')}"
        return "hello"

    client = app.test_client()
    client.get("/page")
    client.get("/page")
    assert len(renders) == (2 if touch else 1)

"""Side by side with the real Flask-Session 0.8 (issue 13, item 17).

The same app, the same Flask-Session configuration (``SESSION_TYPE="redis"``,
``SESSION_REDIS`` a client to the test server, its own ``SESSION_KEY_PREFIX``),
once with ``Session(app)`` and once with ``RedisCache(app)`` instead, driven
through the same requests. What a user of the app observes (response data,
whether the cookie is set, permanent or deleted, what the session holds
across requests, ``session.sid``, ``regenerate``) is the same; the documented
differences (docs/migrating-flask-session.rst) are asserted as differences.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask, request, session
from flask.testing import FlaskClient
from flask_session import Session

from flask_rediscache import RedisCache
from flask_rediscache.state import get_state

from .servers import RedisServer

KINDS = ("flask_session", "rediscache")
PREFIX = {"flask_session": "fs:", "rediscache": "rc:"}


def build(kind: str, server: RedisServer, **extra: Any) -> Flask:
    """The app as a Flask-Session user wrote it; ``rediscache`` only swaps ``Session(app)``."""
    app = Flask(f"compat-{kind}")
    app.config.update({"SECRET_KEY": "compat-secret", "SESSION_TYPE": "redis",
                       "SESSION_REDIS": redis.from_url(server.url), "SESSION_KEY_PREFIX": PREFIX[kind],
                       "SESSION_REFRESH_EACH_REQUEST": False, **extra})
    if kind == "flask_session":
        Session(app)
    else:
        RedisCache(app)  # no REDIS_URL, no TESTING: the Flask-Session config alone must do

    @app.post("/login")
    def login() -> dict[str, Any]:
        session["user"] = request.form.get("user", "ada")
        if request.form.get("permanent") == "no":
            session.permanent = False
        return {"user": session["user"]}

    @app.get("/me")
    def me() -> dict[str, Any]:
        return {"user": session.get("user"), "sid_is_str": isinstance(session.sid, str)}  # type: ignore[attr-defined]

    @app.get("/sid")
    def sid() -> dict[str, Any]:
        return {"sid": session.sid}  # type: ignore[attr-defined]

    @app.get("/anonymous")
    def anonymous() -> str:
        return "hello"

    @app.post("/regenerate")
    def regenerate() -> dict[str, Any]:
        before = session.sid  # type: ignore[attr-defined]
        app.session_interface.regenerate(session)  # type: ignore[attr-defined]
        return {"changed": session.sid != before, "user": session.get("user")}  # type: ignore[attr-defined]

    @app.post("/logout")
    def logout() -> str:
        session.clear()
        return "bye"

    @app.get("/keys")
    def keys() -> list[str]:
        return sorted(k for k in session if k != "_permanent")

    return app


@pytest.fixture
def apps(redis_server: RedisServer) -> Iterator[Callable[..., dict[str, Flask]]]:
    built: list[Flask] = []

    def make(**extra: Any) -> dict[str, Flask]:
        pair = {kind: build(kind, redis_server, **extra) for kind in KINDS}
        built.append(pair["rediscache"])
        return pair

    yield make
    for app in built:
        get_state(app).close()


def cookie_action(response: Any) -> str | None:
    """What the response did to the session cookie: None, "deleted", "permanent" or "browser"."""
    for header in response.headers.getlist("Set-Cookie"):
        name, _, rest = header.partition("=")
        if name != "session":
            continue
        value, _, attributes = rest.partition(";")
        if not value or "Expires=Thu, 01 Jan 1970" in attributes:
            return "deleted"
        return "permanent" if "Expires=" in attributes else "browser"
    return None


def observe(client: FlaskClient, method: str, path: str, **kwargs: Any) -> tuple[Any, str | None]:
    response = client.open(path, method=method, **kwargs)
    assert response.status_code == 200
    return (response.json if response.is_json else response.text), cookie_action(response)


def sid_of(client: FlaskClient) -> str:
    found = client.get("/sid").json
    assert found is not None
    return str(found["sid"])


def journey(app: Flask) -> list[Any]:
    """Log in, read, regenerate, read, log out, read; a second user with a browser-session cookie."""
    client = app.test_client()
    seen: list[Any] = [
        observe(client, "GET", "/anonymous"),
        observe(client, "GET", "/me"),
        observe(client, "POST", "/login", data={"user": "ada"}),
        observe(client, "GET", "/me"),
    ]
    old = client.get_cookie("session")
    assert old is not None
    seen += [observe(client, "POST", "/regenerate"), observe(client, "GET", "/me")]
    new = client.get_cookie("session")
    assert new is not None
    seen.append(new.value != old.value)
    stale = app.test_client()
    stale.set_cookie("session", old.value)
    seen.append(observe(stale, "GET", "/me"))           # the old id no longer names the session
    seen += [observe(client, "POST", "/logout"), observe(client, "GET", "/me")]
    seen.append(client.get_cookie("session") is None)
    other = app.test_client()
    seen += [observe(other, "POST", "/login", data={"user": "bob", "permanent": "no"}),
             observe(other, "GET", "/me"), observe(other, "GET", "/keys")]
    return seen


def test_the_same_journey_gives_the_same_observations(apps: Callable[..., dict[str, Flask]]) -> None:
    pair = apps()
    theirs, ours = journey(pair["flask_session"]), journey(pair["rediscache"])
    assert ours == theirs
    ada = {"user": "ada", "sid_is_str": True}
    nobody = {"user": None, "sid_is_str": True}
    assert ours == [
        ("hello", None), (nobody, None),
        ({"user": "ada"}, "permanent"),                 # SESSION_PERMANENT's default: permanent
        (ada, None),
        ({"changed": True, "user": "ada"}, "permanent"), (ada, None), True,
        (nobody, None),
        ("bye", "deleted"), (nobody, None), True,
        ({"user": "bob"}, "browser"), ({"user": "bob", "sid_is_str": True}, None), (["user"], None),
    ]


def test_session_permanent_false_gives_browser_session_cookies(apps: Callable[..., dict[str, Flask]]) -> None:
    for kind, app in apps(SESSION_PERMANENT=False).items():
        client = app.test_client()
        assert observe(client, "POST", "/login")[1] == "browser", kind


def test_sid_is_a_string_for_a_new_session_and_stays_through_the_request(
        apps: Callable[..., dict[str, Flask]]) -> None:
    for kind, app in apps().items():
        client = app.test_client()
        first = sid_of(client)
        assert isinstance(first, str) and len(first) == 43, kind  # token_urlsafe(SESSION_ID_LENGTH=32)
        client.post("/login")
        assert sid_of(client) == sid_of(client), kind


def test_session_id_length_is_honoured_by_both(apps: Callable[..., dict[str, Flask]]) -> None:
    for kind, app in apps(SESSION_ID_LENGTH=24).items():
        assert len(sid_of(app.test_client())) == 32, kind


# -- the documented differences ------------------------------------------------------

def test_storage_layout_differs(apps: Callable[..., dict[str, Flask]], redis_server: RedisServer) -> None:
    pair = apps()
    server = redis_server.client()
    cookies = {}
    for kind, app in pair.items():
        client = app.test_client()
        client.post("/login")
        cookie = client.get_cookie("session")
        assert cookie is not None
        cookies[kind] = cookie.value
    # Flask-Session: a string under <prefix><the cookie itself>; the cookie is the bare id.
    [theirs] = server.keys("fs:*")
    assert theirs == f"fs:{cookies['flask_session']}".encode()
    assert server.type(theirs) == b"string"
    # Here: a hash under <prefix>:<sha256 of the id>; the cookie is the id, signed.
    [ours] = server.keys("rc:*")
    assert server.type(ours) == b"hash"
    assert len(ours) == len("rc:") + 64
    sid = cookies["rediscache"].split(".")[0]
    assert sid.encode() not in ours and cookies["rediscache"] != sid
    assert server.hgetall(ours) == {b"user": b'"ada"', b"_permanent": b"true"}


def test_concurrent_writes_to_different_keys_both_persist_here(
        apps: Callable[..., dict[str, Flask]]) -> None:
    results = {}
    for kind, app in apps().items():
        barrier = threading.Barrier(2, timeout=10)

        @app.post("/put/<name>", endpoint="put")
        def put(name: str, barrier: threading.Barrier = barrier) -> str:
            session.get("user")        # both requests have loaded the session...
            barrier.wait()
            session[name] = 1          # ...before either saves
            return "ok"

        client = app.test_client()
        client.post("/login")
        cookie = client.get_cookie("session")
        assert cookie is not None

        def request_as_the_user(name: str, value: str = cookie.value, target: Flask = app) -> None:
            other = target.test_client()
            other.set_cookie("session", value)
            assert other.post(f"/put/{name}").status_code == 200

        threads = [threading.Thread(target=request_as_the_user, args=(name,)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
        results[kind] = client.get("/keys").json
    assert results["rediscache"] == ["a", "b", "user"]
    # Flask-Session writes the whole session: the request that saved last overwrote the other's key.
    assert results["flask_session"] in (["a", "user"], ["b", "user"])


def test_reads_do_not_write_here(apps: Callable[..., dict[str, Flask]], redis_server: RedisServer) -> None:
    calls = {}
    for kind, app in apps(SESSION_REFRESH_EACH_REQUEST=True).items():
        client = app.test_client()
        client.post("/login")
        redis_server.reset_stats()
        response = client.get("/me")
        calls[kind] = (redis_server.commands_since_reset(), cookie_action(response))
    # Flask-Session re-saves the session and re-sends the cookie on every request that loads it.
    assert calls["flask_session"] == ({"get": 1, "set": 1}, "permanent")
    # Here one HGETALL; the TTL and the cookie slide at most once per half lifetime (docs/sessions.rst).
    commands, action = calls["rediscache"]
    assert set(commands) == {"hgetall"} and action is None


def test_an_existing_flask_session_cookie_is_a_fresh_session_here(
        apps: Callable[..., dict[str, Flask]]) -> None:
    pair = apps(SESSION_KEY_PREFIX="shared:")
    theirs = pair["flask_session"].test_client()
    theirs.post("/login")
    cookie = theirs.get_cookie("session")
    assert cookie is not None
    ours = pair["rediscache"].test_client()
    ours.set_cookie("session", cookie.value)
    assert ours.get("/me").json == {"user": None, "sid_is_str": True}  # users log in once more


def test_the_migration_guide_names_every_flask_session_key_and_backend() -> None:
    from pathlib import Path

    from flask_session.defaults import Defaults

    page = (Path(__file__).resolve().parent.parent / "docs" / "migrating-flask-session.rst").read_text()
    for key in (k for k in vars(Defaults) if k.startswith("SESSION_")):
        assert f"``{key}``" in page, key
    for name in ("Session(app)", "session.sid", "regenerate(session)", "session_cleanup",
                 "should_set_storage",
                 "MemcachedSessionInterface", "FileSystemSessionInterface", "CacheLibSessionInterface",
                 "MongoDBSessionInterface", "SqlAlchemySessionInterface", "DynamoDBSessionInterface",
                 "ServerSideSession", "MsgSpecSerializer"):
        assert name in page, name

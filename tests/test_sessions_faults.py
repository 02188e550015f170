"""Sessions under real faults (issue 12, items 2, 3, 6, 9, 10 and 11).

Every test runs against real redis-server processes (out of memory with
``noeviction``, a read-only replica, a paused or killed server); the races
use threads that interleave two requests of one user.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis
from flask import Flask, request, session

from .support import Recorder
from .test_sessions import (
    _cookie_attrs,
    add_routes,
    cookie_of,
    get,
    redis_key,
    session_data,
    session_errors,
    set_cookie_headers,
    sid_of,
)

# -- 12.2: a save applies entirely or not at all ----------------------------------


def fill_up(server) -> None:
    """Fill ``server`` (maxmemory + noeviction) until it refuses writes."""
    admin = server.client()
    blob = b"x" * 20_000
    for i in range(10_000):
        try:
            admin.set(f"filler:{i}", blob)
        except redis.exceptions.OutOfMemoryError:
            return
    pytest.fail("the server never ran out of memory")


def test_out_of_memory_save_leaves_the_session_exactly_as_it_was(make_app, redis_factory):
    server = redis_factory("--maxmemory", "1mb", "--maxmemory-policy", "noeviction")
    errors = Recorder()
    app = add_routes(make_app(REDIS_URL=server.url, REDIS_ERROR_HANDLER=errors))

    @app.get("/relogin")
    def relogin():
        session.clear()
        session["a"] = 1
        return "ok"

    @app.get("/rename")
    def rename():
        session["who"] = session.pop("user")
        return "ok"

    cookie = cookie_of(get(app, "/set?user=alice&cart=3"))
    key = redis_key(cookie)
    admin = server.client()
    before = admin.hgetall(key)
    assert before == {b"user": b'"alice"', b"cart": b'"3"'}
    fill_up(server)
    for path in ("/relogin", "/rename"):
        resp = get(app, path, cookie)
        assert resp.status_code == 200, path
        assert set_cookie_headers(resp) == [], path  # the client keeps its cookie
        assert admin.hgetall(key) == before, path  # nothing half-applied
    assert len(errors.calls) == 2
    assert all(isinstance(c["exception"], redis.exceptions.OutOfMemoryError) for c in errors.calls)
    assert session_data(app, cookie) == {"user": "alice", "cart": "3"}
    # Once memory is back, the same requests apply in full.
    admin.config_set("maxmemory", "0")
    get(app, "/rename", cookie)
    assert admin.hgetall(key) == {b"who": b'"alice"', b"cart": b'"3"'}
    get(app, "/relogin", cookie)
    assert admin.hgetall(key) == {b"a": b"1"}


# -- 12.3: an ended session is never re-created --------------------------------------


def add_stale_route(app: Flask) -> tuple[threading.Event, threading.Event]:
    """``/stale``: loads the session, waits for the test, then changes it."""
    loaded, go = threading.Event(), threading.Event()

    @app.get("/stale")
    def stale():
        session.get("user")
        loaded.set()
        assert go.wait(10)
        session["cart"] = "stale"
        return "ok"

    return loaded, go


def run_stale_around(app: Flask, cookie: str, other_path: str, loaded, go):
    """``/stale`` loads, then ``other_path`` runs to completion, then ``/stale`` saves."""
    result = {}
    thread = threading.Thread(target=lambda: result.update(resp=get(app, "/stale", cookie)))
    thread.start()
    assert loaded.wait(10)
    other = get(app, other_path, cookie)
    go.set()
    thread.join(10)
    return result["resp"], other


@pytest.mark.parametrize("url", ["server", "memory://stale-logout"])
def test_request_that_loaded_before_a_logout_does_not_bring_it_back(make_app, redis_server, url):
    app = add_routes(make_app(REDIS_URL=redis_server.url if url == "server" else url))
    loaded, go = add_stale_route(app)
    cookie = cookie_of(get(app, "/set?user=alice"))
    stale, logout = run_stale_around(app, cookie, "/clear", loaded, go)
    assert logout.status_code == 200 and set_cookie_headers(logout)[0].startswith("session=;")
    assert stale.status_code == 200
    assert set_cookie_headers(stale) == []  # leaves the client's (deleted) cookie alone
    assert session_data(app, cookie) == {}
    client = app.session_interface.store.client
    assert client.exists(redis_key(cookie)) == 0  # the old key was not re-created


@pytest.mark.parametrize("url", ["server", "memory://stale-regenerate"])
def test_request_that_loaded_before_a_regenerate_does_not_revive_the_old_id(make_app, redis_server, url):
    app = add_routes(make_app(REDIS_URL=redis_server.url if url == "server" else url))
    loaded, go = add_stale_route(app)
    cookie = cookie_of(get(app, "/set?user=alice"))
    stale, regenerated = run_stale_around(app, cookie, "/regenerate", loaded, go)
    new = cookie_of(regenerated)
    assert sid_of(new) != sid_of(cookie)
    assert stale.status_code == 200 and set_cookie_headers(stale) == []  # the old id is not re-sent
    client = app.session_interface.store.client
    assert client.exists(redis_key(cookie)) == 0
    assert session_data(app, new) == {"user": "alice"}  # the stale change went nowhere
    assert session_data(app, cookie) == {}


def test_login_after_clear_on_an_expired_session_gets_a_new_id(sapp_factory):
    """clear() then set holds only this request's data: if the old key is gone
    (expired), it is stored as a new session under a new id."""
    app, server = sapp_factory()

    @app.get("/login/<user>")
    def login(user):
        session.clear()
        session["user"] = user
        return "ok"

    cookie = cookie_of(get(app, "/set?user=anon"))
    server.client().delete(redis_key(cookie))
    resp = get(app, "/login/alice", cookie)
    fresh = cookie_of(resp)
    assert sid_of(fresh) != sid_of(cookie)
    assert session_data(app, fresh) == {"user": "alice"}
    assert server.client().exists(redis_key(cookie)) == 0


@pytest.fixture
def sapp_factory(make_app, redis_server):
    def make(**config):
        return add_routes(make_app(REDIS_URL=redis_server.url, **config)), redis_server
    return make


# -- 12.6: log-out while Redis is down ----------------------------------------------------


@pytest.mark.parametrize("fault", ["killed", "paused"])
def test_logout_while_redis_is_down_still_deletes_the_cookie(make_app, redis_factory, fault):
    server = redis_factory()
    app = add_routes(make_app(REDIS_URL=server.url, REDIS_READ_TIMEOUT=0.3, REDIS_CONNECT_TIMEOUT=0.3,
                              SESSION_COOKIE_DOMAIN="example.test", SESSION_COOKIE_SECURE=True,
                              SESSION_COOKIE_SAMESITE="Lax"))

    @app.get("/logout")
    def logout():
        user = session.get("user")  # a typical log-out reads first: the load fails too
        session.clear()
        return f"bye {user}"

    created = get(app, "/set?user=alice").headers.getlist("Set-Cookie")[0]
    cookie = created.split(";", 1)[0].split("=", 1)[1]
    key = redis_key(cookie)
    (server.kill if fault == "killed" else server.pause)()
    try:
        with session_errors() as seen:
            for path in ("/clear", "/logout"):
                resp = get(app, path, cookie)
                assert resp.status_code == 200, path
                deleted = set_cookie_headers(resp)
                assert len(deleted) == 1 and deleted[0].startswith("session=;"), path
                before, after = _cookie_attrs(created), _cookie_attrs(deleted[0])
                for flag in ("domain", "path", "secure", "samesite", "httponly"):
                    assert after.get(flag) == before.get(flag), (path, flag)
        assert [e["operation"] for e in seen] == ["save", "open", "save"]
    finally:
        if fault == "paused":
            server.resume()
    if fault == "paused":
        # docs/sessions.rst: a DEL that reached the hung server applies once it
        # resumes; whatever Redis was never told stays only until its TTL.
        assert server.client().ttl(key) in (-2, *range(1, 31 * 86400 + 1))


# -- 12.9: a read-only replica --------------------------------------------------------------


def test_reads_from_a_read_only_replica_stand_on_their_own(make_app, redis_factory, monkeypatch):
    primary = redis_factory()
    replica = redis_factory("--replicaof", "127.0.0.1", str(primary.port))
    deadline = time.monotonic() + 10
    while replica.client().info("replication").get("master_link_status") != "up":
        assert time.monotonic() < deadline, "the replica never synced"
        time.sleep(0.05)
    writer = add_routes(make_app(REDIS_URL=primary.url))
    cookie = cookie_of(get(writer, "/set?user=alice&cart=3"))
    while not replica.client().exists(redis_key(cookie)):
        assert time.monotonic() < deadline, "the session never reached the replica"
        time.sleep(0.05)
    errors = Recorder()
    reader = add_routes(make_app(REDIS_SESSION_URL=replica.url, REDIS_CACHE_URL=primary.url,
                                 REDIS_NAMESPACE="c", REDIS_ERROR_HANDLER=errors))
    now = time.time() + 0.75 * reader.permanent_session_lifetime.total_seconds()
    monkeypatch.setattr(time, "time", lambda: now)  # the sliding EXPIRE is due and refused
    resp = get(reader, "/get", cookie)
    assert resp.status_code == 200
    assert resp.get_json() == [["cart", "3"], ["user", "alice"]]  # not empty
    assert set_cookie_headers(resp) == []  # not refreshed: the cookie stays as it was
    assert [type(c["exception"]) for c in errors.calls] == [redis.exceptions.ReadOnlyError]


# -- 12.10: a value of another type at the session key ----------------------------------------


def test_foreign_value_at_the_key_is_a_missing_session_and_login_gets_a_new_id(sapp_factory):
    app, server = sapp_factory()
    cookie = cookie_of(get(app, "/set?user=alice"))
    admin = server.client()
    admin.delete(redis_key(cookie))
    admin.set(redis_key(cookie), "not a hash")  # WRONGTYPE for every hash command
    resp = get(app, "/get", cookie)
    assert resp.status_code == 200 and resp.get_json() == []
    resp = get(app, "/set?user=bob", cookie)  # log in again
    fresh = cookie_of(resp)
    assert sid_of(fresh) != sid_of(cookie)
    assert session_data(app, fresh) == {"user": "bob"}
    assert admin.get(redis_key(cookie)) == b"not a hash"  # left alone


# -- 12.11: field names that are not valid UTF-8 ---------------------------------------------------


def test_lone_surrogate_field_names_are_stored_losslessly(sapp_factory):
    app, server = sapp_factory()
    seen = {}

    @app.post("/prefs")
    def prefs():
        session.update(request.get_json())
        return "ok"

    @app.get("/all")
    def all_():
        seen.update(session.copy())
        return "ok"

    body = '{"\\ud800": 1, "ok\\udfff": "\\ud800 value", "plain": true}'
    resp = app.test_client(use_cookies=False).post("/prefs", data=body, content_type="application/json")
    assert resp.status_code == 200
    cookie = cookie_of(resp)
    get(app, "/all", cookie)
    assert seen == {"\ud800": 1, "ok\udfff": "\ud800 value", "plain": True}
    # Changing such a field works too.
    resp = app.test_client(use_cookies=False).post(
        "/prefs", data='{"\\ud800": 2}', content_type="application/json",
        headers={"Cookie": f"session={cookie}"})
    assert resp.status_code == 200
    seen.clear()
    get(app, "/all", cookie)
    assert seen["\ud800"] == 2
    assert len(server.client().hkeys(redis_key(cookie))) == 3

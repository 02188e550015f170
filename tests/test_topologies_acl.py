"""Least privilege: the whole cache and the sessions through the Rails guide's ACL users.

``user rails on >password ~cache:* +@read +@write`` may only run @read/@write
commands on keys under ``cache:``: no PING, INFO, EVAL, MULTI, KEYS. Each test
creates the users on a private real server, runs every public cache method,
and then reads the server's ACL LOG: a single refused command or key (which
the guard would otherwise hide as a "miss") fails the test.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from flask import session

from flask_rediscache.state import get_state

from .support import Recorder
from .topology_servers import acl_denials, acl_user

pytestmark = pytest.mark.timeout(60)

RAILS = ("~cache:*", "+@read", "+@write")
# Connection handshake commands redis-py sends and ignores when refused (CLIENT
# SETINFO on Redis >= 7.2, CLIENT MAINT_NOTIFICATIONS on 8.x); not cache paths.
HANDSHAKE = {"client|setinfo", "client|maint_notifications"}
FORBIDDEN = {"ping", "info", "eval", "evalsha", "multi", "exec", "keys", "flushdb", "flushall", "config"}



@pytest.fixture
def server(redis_factory):
    return redis_factory()


def _denied(server, user: str) -> list[tuple[str, str]]:
    return [(e["reason"], e["object"]) for e in acl_denials(server, user)
            if not (e["reason"] == "command" and e["object"] in HANDSHAKE)]


def _used(server) -> set[str]:
    return set(server.commands_since_reset(ignore=("config|resetstat",)))


def test_every_cache_method_as_the_rails_acl_user(make_app, server):
    url = acl_user(server, "rails", "password", *RAILS)
    errors = Recorder()
    app = make_app(REDIS_URL=url, REDIS_NAMESPACE="cache", REDIS_ERROR_HANDLER=errors, REDIS_SESSION=False)
    server.reset_stats()
    with app.app_context():
        cache = app.extensions["rediscache"]
        assert cache.set("a", {"x": 1}) is True
        assert cache.get("a") == {"x": 1}
        assert cache.add("a", 2) is False and cache.add("b", 2) is True
        assert cache.has("a") and not cache.has("nope")
        assert 290 <= cache.ttl("a") <= 300
        assert cache.set_many({"c": 3, "d": 4}, timeout=60) == ["c", "d"]
        assert cache.get_many("a", "b", "c", "nope") == [{"x": 1}, 2, 3, None]
        assert cache.get_dict("c", "d") == {"c": 3, "d": 4}
        assert cache.inc("n") == 1 and cache.inc("n", 4, timeout=30) == 5
        assert cache.dec("n", 2) == 3 and cache.get("n") == 3
        assert cache.ttl("n") is not None
        assert cache.delete("b") is True
        assert cache.delete_many("c", "d", "nope") == 2
        assert cache.fetch("f", lambda: "computed") == "computed"
        assert cache.fetch("f", lambda: "again") == "computed"
        assert cache.fetch("f", lambda: "forced", force=True) == "forced"
        assert cache.client is not None
        assert cache.delete_matched("f*") == 1
        assert cache.clear() == 2  # a, n
        assert server.client().dbsize() == 0
    assert errors.calls == []
    assert _denied(server, "rails") == []
    assert not (_used(server) & FORBIDDEN)


def test_fetch_with_race_condition_ttl_and_memoize_as_the_rails_user(make_app, server):
    url = acl_user(server, "rails", "password", *RAILS)
    errors = Recorder()
    app = make_app(REDIS_URL=url, REDIS_ERROR_HANDLER=errors, REDIS_SESSION=False)
    server.reset_stats()
    with app.app_context():
        cache = app.extensions["rediscache"]
        # Cold key: the lock (SET NX PX) is taken, the value stored, the lock
        # released (GET + UNLINK, no Lua).
        assert cache.fetch("r", lambda: "v1", timeout=1, race_condition_ttl=5) == "v1"
        time.sleep(1.1)
        # Logically expired, still in Redis for race_condition_ttl: recomputed under the lock.
        assert cache.fetch("r", lambda: "v2", timeout=1, race_condition_ttl=5) == "v2"
        assert cache.fetch("r", lambda: "v3", timeout=1, race_condition_ttl=5) == "v2"
        assert not [k for k in server.client().scan_iter() if b"lock" in k]

        calls = []

        @cache.memoize(timeout=60, race_condition_ttl=5)
        def add(a, b=2):
            calls.append((a, b))
            return a + b

        assert add(1) == 3 and add(1, 2) == 3 and add(a=1, b=2) == 3
        assert calls == [(1, 2)]
        cache.delete_memoized(add, 1)
        assert add(1) == 3 and len(calls) == 2
        add(5)
        assert cache.delete_memoized(add) >= 1  # every entry of add: SCAN + UNLINK
        assert add(5) == 7 and len(calls) == 4
        assert add.uncached(5) == 7 and len(calls) == 5

        @cache.memoize(timeout=60)
        async def slow_square(n):
            return n * n

        assert asyncio.run(slow_square(4)) == 16
        assert asyncio.run(slow_square(4)) == 16

    @app.get("/page")
    @app.extensions["rediscache"].cached(timeout=60)
    def page():
        calls.append("view")
        return "hello"

    client = app.test_client()
    assert client.get("/page").data == b"hello" and client.get("/page").data == b"hello"
    assert calls.count("view") == 1
    with app.app_context():
        assert app.extensions["rediscache"].clear() >= 1
    assert errors.calls == []
    assert _denied(server, "rails") == []
    assert not (_used(server) & FORBIDDEN)


def test_refused_commands_and_keys_fail_open(make_app, server):
    """Negative control: with a namespace outside the user's key pattern, Redis
    refuses every command; the app sees misses and the handler NOPERM."""
    url = acl_user(server, "rails", "password", *RAILS)
    errors = Recorder()
    app = make_app(REDIS_URL=url, REDIS_NAMESPACE="other", REDIS_ERROR_HANDLER=errors, REDIS_SESSION=False)
    with app.app_context():
        cache = app.extensions["rediscache"]
        assert cache.set("k", 1) is False
        assert cache.get("k") is None
        assert cache.fetch("k", lambda: "computed") == "computed"
    assert errors.calls
    assert all(isinstance(c["exception"], redis.exceptions.NoPermissionError) for c in errors.calls)
    assert ("key", "other:k") in _denied(server, "rails")
    # NOPERM proves the server answers: the breaker stays closed.
    assert get_state(app).boundaries["cache"].breaker.state == "closed"


def test_connection_handshake_needs_no_extra_permission(make_app, server):
    """redis-py authenticates with HELLO (allowed to every user) and ignores a
    refused CLIENT SETINFO; new connections keep working for the ACL user."""
    url = acl_user(server, "rails", "password", *RAILS)
    app = make_app(REDIS_URL=url, REDIS_SESSION=False)
    with app.app_context():
        cache = app.extensions["rediscache"]
        pool = cache.client.connection_pool
        for i in range(5):
            pool.disconnect()  # force a fresh handshake each time
            assert cache.set(f"k{i}", i) is True and cache.get(f"k{i}") == i
    assert _denied(server, "rails") == []


def test_db_other_than_0_needs_select(make_app, server):
    """SELECT is not in @read/@write: a non-zero db in the URL needs ``+select``
    (the docs say so); without it the cache fails open naming the refusal."""
    url = acl_user(server, "rails", "password", *RAILS).replace("/0", "/2")
    errors = Recorder()
    app = make_app(REDIS_URL=url, REDIS_ERROR_HANDLER=errors, REDIS_SESSION=False)
    with app.app_context():
        assert app.extensions["rediscache"].set("k", 1) is False
    assert errors.calls and "select" in str(errors.calls[0]["exception"]).lower()
    url = acl_user(server, "rails2", "password", *RAILS, "+select").replace("/0", "/2")
    app = make_app(REDIS_URL=url, REDIS_SESSION=False)
    with app.app_context():
        assert app.extensions["rediscache"].set("k", 1) is True
    assert server.client(db=2).exists("cache:k") == 1


def test_sessions_as_a_user_limited_to_session_keys(make_app, server):
    cache_url = acl_user(server, "rails", "password", *RAILS)
    # Sessions save atomically with one script: +evalsha, and +script|load after a NOSCRIPT.
    session_url = acl_user(server, "sessions", "pw2", "~session:*", "+@read", "+@write", "+evalsha",
                           "+script|load")
    errors = Recorder()
    app = make_app(REDIS_CACHE_URL=cache_url, REDIS_SESSION_URL=session_url, REDIS_ERROR_HANDLER=errors)

    @app.post("/login/<name>")
    def login(name):
        session["user"] = name
        app.session_interface.regenerate(session)
        return "ok"

    @app.post("/add/<int:n>")
    def add(n):
        session.setdefault("items", []).append(n)
        session.modified = True
        return "ok"

    @app.get("/me")
    def me():
        return {"user": session.get("user"), "items": session.get("items")}

    @app.post("/logout")
    def logout():
        session.clear()
        return "ok"

    client = app.test_client()
    assert client.post("/login/ada").status_code == 200
    assert client.post("/add/1").status_code == 200 and client.post("/add/2").status_code == 200
    assert client.get("/me").json == {"user": "ada", "items": [1, 2]}
    assert [k for k in server.client().scan_iter("session:*")]
    assert client.post("/logout").status_code == 200
    assert client.get("/me").json == {"user": None, "items": None}
    assert not list(server.client().scan_iter("session:*"))
    assert errors.calls == []
    assert _denied(server, "sessions") == []


def test_health_and_doctor_say_what_the_acl_user_may_not_do(make_app, server):
    url = acl_user(server, "rails", "password", *RAILS)
    app = make_app(REDIS_URL=url, REDIS_SESSION=False)
    runner = app.test_cli_runner()
    health = runner.invoke(args=["redis", "health"])
    # Reachable and authenticated: healthy, and it says what it could not check.
    assert health.exit_code == 0, health.output
    assert "Traceback" not in health.output
    assert "no permission for PING" in health.output and "no permission for INFO" in health.output
    assert ":password@" not in health.output
    doctor = runner.invoke(args=["redis", "doctor"])
    assert "Traceback" not in doctor.output
    assert "no permission for INFO" in doctor.output, doctor.output

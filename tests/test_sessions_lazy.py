"""Lazy sessions, sliding expiry and exact command counts (issue 11, items 2 and 5).

Counts come from the server's ``INFO commandstats`` (commands run inside the
save script count too); round trips from the packets redis-py sends.
"""

from __future__ import annotations

import json
import time

import pytest
from flask import Flask, g, jsonify, request, session

from flask_rediscache.session_object import RedisSession
from flask_rediscache.sessions import RedisSessionInterface
from flask_rediscache.state import SESSION_G_ATTR

from .test_sessions import (
    add_routes,
    commands,
    cookie_of,
    get,
    redis_key,
    round_trips,
    set_cookie_headers,
    sid_of,
)

#: What the views below saw, per request.
SEEN: dict[str, object] = {}


def add_lazy_routes(app: Flask) -> Flask:
    add_routes(app)

    @app.get("/peek")
    def peek():
        ours = getattr(g, SESSION_G_ATTR)
        SEEN["before"] = ours.touched
        if request.args.get("read"):
            session.get("user")
        SEEN["after"] = ours.touched
        return "ok"

    @app.get("/proxy-only")
    def proxy_only():
        SEEN["is_ours"] = isinstance(session._get_current_object(), RedisSession)  # the proxy, no data
        return "ok"

    @app.get("/dictish")
    def dictish():
        SEEN["json"] = json.loads(json.dumps(dict(session)))
        SEEN["dict"] = dict(session)
        SEEN["splat"] = {**session}
        SEEN["eq"] = session == {"warm": "1", "user": "alice"}
        SEEN["len"] = len(session)
        SEEN["in"] = "user" in session
        SEEN["keys"] = sorted(session)
        SEEN["or"] = session | {"x": 1}
        return jsonify(session.copy())

    return app


@pytest.fixture
def sapp(make_app, redis_server):
    SEEN.clear()
    app = add_lazy_routes(make_app(REDIS_URL=redis_server.url))
    get(app, "/set?warm=1")  # a pooled connection and the save script loaded
    return app


def later(monkeypatch, app: Flask, fraction: float) -> None:
    """Move the clock ``fraction`` of PERMANENT_SESSION_LIFETIME ahead."""
    now = time.time() + fraction * app.permanent_session_lifetime.total_seconds()
    monkeypatch.setattr(time, "time", lambda: now)


def test_interface_tracks_access_and_records_its_session_in_g(sapp):
    assert RedisSessionInterface.tracks_access is True
    cookie = cookie_of(get(sapp, "/set?user=alice"))
    get(sapp, "/peek", cookie)
    assert SEEN == {"before": False, "after": False}
    get(sapp, "/peek?read=1", cookie)
    assert SEEN == {"before": False, "after": True}


def test_untouched_session_with_a_cookie_sends_no_command(sapp, redis_server, monkeypatch):
    """Issue 11.5: a valid cookie on a request that never uses ``session``: 0 commands."""
    cookie = cookie_of(get(sapp, "/set?user=alice"))
    for path in ("/noop", "/proxy-only"):
        redis_server.reset_stats()
        with round_trips(monkeypatch) as sent:
            resp = get(sapp, path, cookie)
        assert resp.status_code == 200 and set_cookie_headers(resp) == []
        assert sent == [] and commands(redis_server) == {}, path
    assert SEEN["is_ours"] is True


def test_read_only_request_is_one_hgetall(sapp, redis_server, monkeypatch):
    cookie = cookie_of(get(sapp, "/set?user=alice"))
    redis_server.reset_stats()
    with round_trips(monkeypatch) as sent:
        assert get(sapp, "/read/user", cookie).get_json() == "alice"
    assert len(sent) == 1
    assert commands(redis_server) == {"hgetall": 1}


def test_new_session_write_is_one_round_trip(sapp, redis_server, monkeypatch):
    redis_server.reset_stats()
    with round_trips(monkeypatch) as sent:
        cookie = cookie_of(get(sapp, "/set?user=alice"))
    assert len(sent) == 1
    assert commands(redis_server) == {"evalsha": 1, "hset": 1, "expire": 1}
    assert redis_server.client().hgetall(redis_key(cookie)) == {b"user": b'"alice"'}


def test_write_to_an_existing_session_is_load_plus_one_atomic_save(sapp, redis_server, monkeypatch):
    cookie = cookie_of(get(sapp, "/set?user=alice&n=1"))
    redis_server.reset_stats()
    with round_trips(monkeypatch) as sent:
        resp = get(sapp, "/set?n=2", cookie)
    assert set_cookie_headers(resp) == []  # same id, fresh cookie: nothing to send
    assert len(sent) == 2  # the load, then the save
    assert commands(redis_server) == {"hgetall": 1, "evalsha": 1, "exists": 1, "hset": 1, "expire": 1}


def test_logout_is_one_del_without_a_load(sapp, redis_server, monkeypatch):
    cookie = cookie_of(get(sapp, "/set?user=alice"))
    redis_server.reset_stats()
    with round_trips(monkeypatch) as sent:
        resp = get(sapp, "/clear", cookie)
    assert set_cookie_headers(resp)[0].startswith("session=;")
    assert len(sent) == 1 and commands(redis_server) == {"del": 1}


def test_forged_cookie_sends_nothing_even_when_used(sapp, redis_server, monkeypatch):
    cookie = cookie_of(get(sapp, "/set?user=alice"))
    forged = cookie[:-3] + ("AAA" if not cookie.endswith("AAA") else "BBB")
    redis_server.reset_stats()
    with round_trips(monkeypatch) as sent:
        assert get(sapp, "/get", forged).get_json() == []
    assert sent == [] and commands(redis_server) == {}


# -- sliding expiry -------------------------------------------------------------


def test_ttl_slides_only_once_the_cookie_is_half_the_lifetime_old(sapp, redis_server, monkeypatch):
    """The documented rule: with SESSION_REFRESH_EACH_REQUEST, a cookie older than
    half of PERMANENT_SESSION_LIFETIME is re-signed and the key's TTL reset, in
    the read's round trip; younger cookies cost nothing extra."""
    lifetime = int(sapp.permanent_session_lifetime.total_seconds())
    cookie = cookie_of(get(sapp, "/set?user=alice"))
    key = redis_key(cookie)
    admin = redis_server.client()
    admin.expire(key, 1000)
    later(monkeypatch, sapp, 0.49)
    redis_server.reset_stats()
    resp = get(sapp, "/read/user", cookie)
    assert set_cookie_headers(resp) == [] and commands(redis_server) == {"hgetall": 1}
    assert admin.ttl(key) <= 1000
    later(monkeypatch, sapp, 0.51)
    redis_server.reset_stats()
    with round_trips(monkeypatch) as sent:
        resp = get(sapp, "/read/user", cookie)
    assert resp.get_json() == "alice"
    assert len(sent) == 1 and commands(redis_server) == {"hgetall": 1, "expire": 1}
    fresh = cookie_of(resp)
    assert sid_of(fresh) == sid_of(cookie) and fresh != cookie
    assert "Expires" not in set_cookie_headers(resp)[0]  # not permanent: still a browser-session cookie
    assert lifetime - 5 < admin.ttl(key) <= lifetime
    # The new cookie is young again: no refresh on the next request.
    redis_server.reset_stats()
    assert set_cookie_headers(get(sapp, "/read/user", fresh)) == []
    assert commands(redis_server) == {"hgetall": 1}


def test_untouched_session_due_for_refresh_is_one_round_trip(sapp, redis_server, monkeypatch):
    cookie = cookie_of(get(sapp, "/permanent"))
    later(monkeypatch, sapp, 0.75)
    redis_server.reset_stats()
    with round_trips(monkeypatch) as sent:
        resp = get(sapp, "/noop", cookie)
    assert len(sent) == 1 and commands(redis_server) == {"hget": 1, "expire": 1}
    assert sid_of(cookie_of(resp)) == sid_of(cookie)
    assert "Expires=" in set_cookie_headers(resp)[0]  # permanent: Expires renewed


def test_no_refresh_without_refresh_each_request(make_app, redis_server, monkeypatch):
    app = add_routes(make_app(REDIS_URL=redis_server.url, SESSION_REFRESH_EACH_REQUEST=False))
    cookie = cookie_of(get(app, "/permanent"))
    later(monkeypatch, app, 0.9)
    redis_server.reset_stats()
    assert set_cookie_headers(get(app, "/noop", cookie)) == []
    assert set_cookie_headers(get(app, "/get", cookie)) == []
    assert commands(redis_server) == {"hgetall": 1}


def test_refresh_of_a_session_that_is_gone_sends_no_cookie(sapp, redis_server, monkeypatch):
    cookie = cookie_of(get(sapp, "/set?user=alice"))
    redis_server.client().delete(redis_key(cookie))
    later(monkeypatch, sapp, 0.9)
    assert set_cookie_headers(get(sapp, "/noop", cookie)) == []
    assert set_cookie_headers(get(sapp, "/get", cookie)) == []
    assert redis_server.client().exists(redis_key(cookie)) == 0


def test_making_a_session_permanent_sends_the_cookie_with_expires(sapp):
    cookie = cookie_of(get(sapp, "/set?user=alice"))
    resp = get(sapp, "/permanent", cookie)
    assert sid_of(cookie_of(resp)) == sid_of(cookie) and "Expires=" in set_cookie_headers(resp)[0]


# -- the session object -------------------------------------------------------------


def test_session_behaves_as_a_dict_and_loads_on_any_use(sapp):
    cookie = cookie_of(get(sapp, "/set?warm=1&user=alice"))
    resp = get(sapp, "/dictish", cookie)
    data = {"warm": "1", "user": "alice"}
    assert resp.get_json() == data
    assert {"json": data, "dict": data, "splat": data, "eq": True, "len": 2, "in": True,
                       "keys": ["user", "warm"], "or": {**data, "x": 1}} == SEEN
    assert set_cookie_headers(resp) == []  # read only

    cleared = RedisSession("x" * 43, lambda s: pytest.fail("clear() needs no load"))
    cleared.clear()
    assert cleared.touched and cleared.modified and cleared == {}


FIRST_USES = {
    "len": len, "iter": list, "contains": lambda s: "a" in s, "keys": lambda s: s.keys(),
    "items": lambda s: s.items(), "values": lambda s: s.values(), "repr": repr, "eq": lambda s: s == {},
    "copy": lambda s: s.copy(), "setdefault": lambda s: s.setdefault("b", 2), "pop": lambda s: s.pop("a"),
    "popitem": lambda s: s.popitem(), "update": lambda s: s.update(b=2), "bool": bool,
    "delitem": lambda s: s.__delitem__("a"), "setitem": lambda s: s.__setitem__("b", 2),
    "get": lambda s: s.get("a"), "permanent": lambda s: s.permanent, "dict": dict,
}


@pytest.mark.parametrize("first_use", sorted(FIRST_USES))
def test_any_first_use_loads_once_and_marks_touched(first_use):
    loads = []
    s = RedisSession("x" * 43, lambda s: (loads.append(1), s.data.update({"a": 1})))
    assert not s.touched and s.pending
    FIRST_USES[first_use](s)
    assert loads == [1] and s.touched and s.accessed and not s.pending
    FIRST_USES[first_use](s) if first_use not in ("pop", "popitem", "delitem") else len(s)
    assert loads == [1]


def test_new_session_works_on_every_flask_version(sapp):
    """Flask 3.0 has no get_cookie_partitioned: a new session must not 500 there."""
    resp = get(sapp, "/set?user=alice")
    assert resp.status_code == 200 and cookie_of(resp)


def test_cached_view_ignores_an_untouched_session(make_app, redis_server):
    """What the lead's @cached reads: a view that never touched the session is
    cached although a cookie was sent; one that touched it is not."""
    app = add_routes(make_app(REDIS_URL=redis_server.url))
    cache = app.extensions["rediscache"]
    calls = {"public": 0, "private": 0}

    @app.get("/public")
    @cache.cached(timeout=60)
    def public():
        calls["public"] += 1
        return "same for everyone"

    @app.get("/private")
    @cache.cached(timeout=60)
    def private():
        calls["private"] += 1
        return f"hello {session.get('user')}"

    cookie = cookie_of(get(app, "/set?user=alice"))
    for _ in range(2):
        assert get(app, "/public", cookie).status_code == 200
        assert get(app, "/private", cookie).get_data(as_text=True) == "hello alice"
    assert calls == {"public": 1, "private": 2}

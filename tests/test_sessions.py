"""Redis sessions against real redis-server processes.

Each test drives an app through Flask's test client with cookies passed by
hand (``use_cookies=False``), so every Set-Cookie the interface sends, or does
not send, is visible. The hardening of issues 11 and 12 (lazy loading, sliding
expiry, atomic saves, races, faults) is in test_sessions_lazy.py and
test_sessions_faults.py.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest
import redis
from flask import Flask, jsonify, request, session
from flask.sessions import SecureCookieSessionInterface, SessionInterface, session_json_serializer
from itsdangerous import Signer, TimestampSigner
from markupsafe import Markup
from redis.connection import AbstractConnection

from flask_rediscache import signals
from flask_rediscache.session_object import RedisSession
from flask_rediscache.sessions import RedisSessionInterface

# -- helpers ---------------------------------------------------------------


def add_routes(app: Flask) -> Flask:
    """A small API over the session: set/get/pop/clear/regenerate/mutate."""

    @app.get("/set")
    def set_():
        for k, v in request.args.items():
            session[k] = v
        return "ok"

    @app.get("/get")
    def get():
        return jsonify(sorted((k, v) for k, v in session.items() if isinstance(v, str)))

    @app.get("/read/<name>")
    def read(name):
        return jsonify(session.get(name))

    @app.get("/pop/<name>")
    def pop(name):
        session.pop(name, None)
        return "ok"

    @app.get("/clear")
    def clear():
        session.clear()
        return "ok"

    @app.get("/noop")
    def noop():
        return "ok"

    @app.get("/regenerate")
    def regenerate():
        app.session_interface.regenerate(session)
        return "ok"

    @app.get("/permanent")
    def permanent():
        session.permanent = True
        session["p"] = "1"
        return "ok"

    return app


def set_cookie_headers(resp) -> list[str]:
    return [h for h in resp.headers.getlist("Set-Cookie") if h.startswith("session=")]


def cookie_of(resp) -> str:
    headers = set_cookie_headers(resp)
    assert len(headers) == 1, headers
    return headers[0].split(";", 1)[0].split("=", 1)[1]


def sid_of(cookie: str) -> str:
    """The session id in a cookie (``<id>.<timestamp>.<signature>``)."""
    return cookie.split(".", 1)[0]


def redis_key(cookie: str, prefix: str = "session") -> str:
    """The key the contract promises: the prefix and a SHA-256 of the id (not the id)."""
    return f"{prefix}:{hashlib.sha256(sid_of(cookie).encode()).hexdigest()}"


def get(app: Flask, path: str, cookie: str | None = None, **kwargs):
    headers = {"Cookie": f"session={cookie}"} if cookie else {}
    return app.test_client(use_cookies=False).get(path, headers=headers, **kwargs)


def session_data(app: Flask, cookie: str) -> dict[str, str]:
    return dict(get(app, "/get", cookie).get_json())


def commands(server) -> dict[str, int]:
    """Commands since the last stats reset, minus the HELLO each new connection
    sends (including the one that reads the stats)."""
    return server.commands_since_reset()


@pytest.fixture
def sapp(make_app, redis_server):
    return add_routes(make_app(REDIS_URL=redis_server.url))


@contextmanager
def round_trips(monkeypatch):
    """Count the packets of commands sent to any Redis (one per round trip)."""
    sent: list[bytes] = []
    real = AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return real(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    try:
        yield sent
    finally:
        monkeypatch.setattr(AbstractConnection, "send_packed_command", real)


@contextmanager
def session_errors():
    seen: list[dict] = []

    def receiver(sender, **kwargs):
        seen.append(kwargs)

    with signals.session_error.connected_to(receiver):
        yield seen


# -- registration, cookie and storage ----------------------------------------


def test_init_app_registers_the_interface_unless_disabled(make_app, redis_server):
    assert isinstance(make_app(REDIS_URL=redis_server.url).session_interface, RedisSessionInterface)
    off = make_app(REDIS_URL=redis_server.url, REDIS_SESSION=False)
    # Flask's own interface, wrapped only to tell @cached whether a view used the session.
    assert isinstance(off.session_interface.inner, SecureCookieSessionInterface)


def test_empty_session_stores_nothing_and_sets_no_cookie(sapp, redis_server):
    resp = get(sapp, "/read/x")
    assert resp.status_code == 200
    assert set_cookie_headers(resp) == []
    assert "Cookie" in resp.headers.get("Vary", "")  # accessed
    resp = get(sapp, "/noop")
    assert "Vary" not in resp.headers  # not accessed
    assert commands(redis_server) == {}
    assert redis_server.client().keys("*") == []


def test_write_stores_a_digested_hash_with_ttl(make_app, redis_server):
    app = add_routes(make_app(REDIS_URL=redis_server.url, PERMANENT_SESSION_LIFETIME=timedelta(minutes=2),
                              REDIS_SESSION_PREFIX="sess"))
    resp = get(app, "/set?user=alice&role=admin")
    cookie = cookie_of(resp)
    sid, timestamp, signature = cookie.split(".")
    assert len(sid) >= 43 and timestamp and signature  # 32 random bytes, base64url; signed when
    assert "Expires" not in set_cookie_headers(resp)[0]  # not permanent: a browser-session cookie
    client = redis_server.client()
    keys = [k.decode() for k in client.keys("*")]
    assert keys == [redis_key(cookie, "sess")]
    assert sid not in keys[0]
    assert client.type(keys[0]) == b"hash"
    assert client.hgetall(keys[0]) == {b"user": b'"alice"', b"role": b'"admin"'}  # JSON, no pickle
    assert 110 < client.ttl(keys[0]) <= 120  # PERMANENT_SESSION_LIFETIME, non-permanent too
    assert session_data(app, cookie) == {"user": "alice", "role": "admin"}


def test_two_sessions_get_different_ids(sapp):
    assert cookie_of(get(sapp, "/set?a=1")) != cookie_of(get(sapp, "/set?a=1"))


def test_tagged_json_types_round_trip(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url)
    when = datetime(2024, 5, 17, 12, 30, 45, tzinfo=timezone.utc)
    ident = uuid.uuid4()
    value = {
        "when": when, "raw": b"\x00\xffbytes", "pair": (1, "two", (3.5, None)), "id": ident,
        "html": Markup("<b>safe</b>"), "nested": {"list": [when, b"x", {"deep": (ident,)}], "n": 1},
        "text": "ünïcødé", "flag": True, "plain": {"b": [1, 2.5, None, {"c": "d"}], "a": False},
        "tag_like": {" t": [1, 2]}, "empty": {},
    }

    @app.get("/store")
    def store():
        session.update(value)
        return "ok"

    seen = {}

    @app.get("/load")
    def load():
        seen.update(session)
        return "ok"

    cookie = cookie_of(get(app, "/store"))
    get(app, "/load", cookie)
    assert seen == value
    assert type(seen["pair"]) is tuple and type(seen["html"]) is Markup and type(seen["id"]) is uuid.UUID
    assert type(seen["nested"]["list"][2]["deep"]) is tuple
    # Stored as Flask's tagged JSON, byte for byte, one field per key.
    fields = redis_server.client().hgetall(redis_key(cookie))
    with app.app_context():
        assert fields == {k.encode(): session_json_serializer.dumps(v).encode() for k, v in value.items()}


# -- bad cookies -------------------------------------------------------------


def _bad_cookies(app: Flask, good: str) -> dict[str, str]:
    head, _, sig = good.rpartition(".")
    sid = sid_of(good)
    other_key = RedisSessionInterface.__new__(RedisSessionInterface)
    other_key.signer = other_key._signer([b"some other secret"])
    return {
        "forged signature": f"{head}.{'A' * len(sig)}",
        "flipped id char": ("B" if sid[0] != "B" else "C") + good[1:],
        "truncated": good[:-5],
        "no signature": head,
        "no timestamp": Signer(b"test-secret", salt=app.session_interface.salt, key_derivation="hmac",
                               digest_method=hashlib.sha256).sign(sid).decode(),
        "timestamp of another id": head + "." + sig + "." + sig,
        "oversized": good + "A" * 5000,
        "malformed": "not a cookie at all!",
        "non ascii": good[:-1] + "é",
        "signed by another key": other_key.sign(sid),
        "signed but not an id": app.session_interface.sign("short"),
        "flask cookie session": "eyJ1c2VyIjoiYWxpY2UifQ.ZmJ1bg.abc",
    }


def test_tampered_cookies_cost_no_redis_command(sapp, redis_server, monkeypatch):
    good = cookie_of(get(sapp, "/set?user=alice"))
    key = redis_key(good)
    for name, bad in _bad_cookies(sapp, good).items():
        redis_server.reset_stats()
        with round_trips(monkeypatch) as sent:
            resp = get(sapp, "/get", bad)
        assert sent == [], name
        assert resp.status_code == 200, name
        assert resp.get_json() == [], name  # a fresh empty session
        assert set_cookie_headers(resp) == [], name
        assert commands(redis_server) == {}, name
        # Writing to it creates a new session with a new cookie, never under the tampered id.
        fresh = cookie_of(get(sapp, "/set?x=1", bad))
        assert fresh != bad and fresh != good, name
    assert redis_server.client().hgetall(key) == {b"user": b'"alice"'}  # untouched by any of it


def test_unknown_id_is_not_reused(sapp, redis_server):
    """A validly signed id whose data is gone (expired, revoked) gets a fresh id on write."""
    cookie = cookie_of(get(sapp, "/set?user=alice"))
    redis_server.client().delete(redis_key(cookie))
    assert session_data(sapp, cookie) == {}
    fresh = cookie_of(get(sapp, "/set?user=mallory", cookie))
    assert sid_of(fresh) != sid_of(cookie)
    assert redis_server.client().exists(redis_key(cookie)) == 0


# -- cost ------------------------------------------------------------------


def test_read_only_request_is_one_round_trip_and_writes_nothing(sapp, redis_server, monkeypatch):
    """A fresh cookie: one HGETALL, nothing else (the TTL slides only once the
    cookie is older than half the lifetime: test_sessions_lazy.py)."""
    app = sapp

    @app.get("/nested")
    def nested():
        session["cart"] = {"items": [1, 2], "meta": {"n": 2}}
        return "ok"

    cookie = cookie_of(get(app, "/set?user=alice"))
    get(app, "/nested", cookie)
    key = redis_key(cookie)
    admin = redis_server.client()
    admin.expire(key, 100)  # so a refresh would be visible
    get(app, "/noop")  # a warm pooled connection, so the count below is the request alone
    redis_server.reset_stats()
    with round_trips(monkeypatch) as sent:
        resp = get(app, "/read/cart", cookie)
    assert resp.get_json() == {"items": [1, 2], "meta": {"n": 2}}
    assert len(sent) == 1
    assert commands(redis_server) == {"hgetall": 1}
    assert set_cookie_headers(resp) == []
    assert "Cookie" in resp.headers["Vary"]
    assert 95 < admin.ttl(key) <= 100  # not due to slide yet


@pytest.mark.parametrize("protocol", [2, 3])
def test_read_path_speaks_both_resp_versions(make_app, redis_server, monkeypatch, protocol):
    app = add_routes(make_app(REDIS_URL=f"{redis_server.url}?protocol={protocol}"))
    cookie = cookie_of(get(app, "/set?user=alice&x=1"))
    with round_trips(monkeypatch) as sent:
        assert session_data(app, cookie) == {"user": "alice", "x": "1"}
    assert len(sent) == 1


def test_dropped_connection_does_not_fail_the_read_path(make_app, redis_server):
    errors = []
    app = add_routes(make_app(REDIS_URL=redis_server.url, REDIS_ERROR_HANDLER=lambda **kw: errors.append(kw)))
    cookie = cookie_of(get(app, "/set?user=alice"))
    assert session_data(app, cookie) == {"user": "alice"}
    admin = redis_server.client()
    assert admin.client_kill_filter(_type="normal", skipme=True) >= 1  # drops the app's pooled connection
    assert session_data(app, cookie) == {"user": "alice"}
    assert errors == []


def test_read_only_without_refresh_is_a_single_hgetall(make_app, redis_server):
    app = add_routes(make_app(REDIS_URL=redis_server.url, SESSION_REFRESH_EACH_REQUEST=False))
    cookie = cookie_of(get(app, "/set?user=alice"))
    redis_server.reset_stats()
    assert session_data(app, cookie) == {"user": "alice"}
    assert commands(redis_server) == {"hgetall": 1}


def test_permanent_session_renews_its_cookie_without_rewriting_data(sapp, redis_server, monkeypatch):
    """Changed by issue 11.5: the cookie (and the key's TTL) are renewed only once
    the cookie is older than half of PERMANENT_SESSION_LIFETIME, not on every request."""
    created = set_cookie_headers(get(sapp, "/permanent"))[0]
    assert "Expires=" in created
    cookie = created.split(";", 1)[0].split("=", 1)[1]
    redis_server.reset_stats()
    resp = get(sapp, "/get", cookie)
    assert resp.get_json() == [["p", "1"]]
    assert set_cookie_headers(resp) == []  # a fresh cookie: nothing to renew
    assert commands(redis_server) == {"hgetall": 1}
    lifetime = sapp.permanent_session_lifetime.total_seconds()
    later = time.time() + lifetime * 0.6
    monkeypatch.setattr(time, "time", lambda: later)  # the cookie is now 60 % of the lifetime old
    redis_server.reset_stats()
    resp = get(sapp, "/get", cookie)
    assert resp.get_json() == [["p", "1"]]
    renewed = set_cookie_headers(resp)[0]
    assert sid_of(cookie_of(resp)) == sid_of(cookie) and cookie_of(resp) != cookie  # same id, new timestamp
    assert "Expires=" in renewed
    assert commands(redis_server) == {"hgetall": 1, "expire": 1}  # one round trip, no data rewritten


def test_save_writes_only_changed_fields(sapp, redis_server):
    cookie = cookie_of(get(sapp, "/set?a=1&b=2&c=3"))
    key = redis_key(cookie)
    redis_server.reset_stats()
    get(sapp, "/set?a=1&b=20", cookie)  # a unchanged, b changed
    stats = commands(redis_server)
    assert stats.get("hset") == 1 and "hdel" not in stats and "del" not in stats
    admin = redis_server.client()
    # Prove only b was sent: a concurrent writer's value of a survives.
    admin.hset(key, "a", '"other"')
    get(sapp, "/set?a=1&b=21", cookie)  # loads a="other", sets a="1": changed again
    assert admin.hget(key, "a") == b'"1"'
    admin.hset(key, "a", '"other"')
    get(sapp, "/set?b=22", cookie)
    assert admin.hgetall(key) == {b"a": b'"other"', b"b": b'"22"', b"c": b'"3"'}
    redis_server.reset_stats()
    get(sapp, "/pop/c", cookie)
    assert commands(redis_server).get("hdel") == 1
    assert admin.hgetall(key) == {b"a": b'"other"', b"b": b'"22"'}


def test_in_place_mutation_of_nested_values_is_saved(sapp, redis_server):
    @sapp.get("/cart/init")
    def cart_init():
        session["cart"] = {"items": []}
        session["tags"] = ["a"]
        return "ok"

    @sapp.get("/cart/add/<item>")
    def cart_add(item):
        session["cart"]["items"].append(item)  # no session.modified = True
        return "ok"

    cookie = cookie_of(get(sapp, "/cart/init"))
    redis_server.reset_stats()
    resp = get(sapp, "/cart/add/apple", cookie)
    assert set_cookie_headers(resp) == []
    assert commands(redis_server).get("hset") == 1
    get(sapp, "/cart/add/pear", cookie)
    assert get(sapp, "/read/cart", cookie).get_json() == {"items": ["apple", "pear"]}
    assert redis_server.client().hget(redis_key(cookie), "tags") == b'["a"]'


# -- concurrency --------------------------------------------------------------


def add_put_route(app: Flask, parties: int) -> threading.Barrier:
    """``/put/<name>`` sets ``name``, once all ``parties`` requests are in their
    views, i.e. every one has loaded the session before any of them saves."""
    barrier = threading.Barrier(parties)

    @app.get("/put/<name>")
    def put(name):
        barrier.wait(timeout=10)
        session[name] = name
        return "ok"

    return barrier


def _concurrent_puts(app: Flask, cookie: str, names: list[str]) -> list[int]:
    """Each name in its own thread and test client, all with the same cookie."""
    statuses: list[int] = []

    def worker(name: str) -> None:
        client = app.test_client(use_cookies=False)
        statuses.append(client.get(f"/put/{name}", headers={"Cookie": f"session={cookie}"}).status_code)

    threads = [threading.Thread(target=worker, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    return statuses


def test_concurrent_requests_changing_different_keys_all_persist(sapp):
    add_put_route(sapp, 3)
    cookie = cookie_of(get(sapp, "/set?base=0"))
    assert _concurrent_puts(sapp, cookie, ["a", "b", "c"]) == [200, 200, 200]
    assert session_data(sapp, cookie) == {"base": "0", "a": "a", "b": "b", "c": "c"}


def test_flask_session_loses_the_concurrent_update_we_keep(make_app, redis_factory):
    """Same scenario against Flask-Session 0.8 (whole-session GET/SET) and ours."""
    from flask_session import Session

    server = redis_factory()
    fs_app = Flask("flask-session-peer")
    fs_app.config.update(SECRET_KEY="test-secret", SESSION_TYPE="redis",
                         SESSION_REDIS=redis.Redis(host="127.0.0.1", port=server.port))
    Session(fs_app)
    add_routes(fs_app)
    ours = add_routes(make_app(REDIS_URL=server.url))
    names = ["a", "b", "c"]
    add_put_route(fs_app, len(names))
    add_put_route(ours, len(names))
    results = {}
    for label, app in (("flask-session", fs_app), ("ours", ours)):
        cookie = cookie_of(get(app, "/set?base=0"))
        assert _concurrent_puts(app, cookie, names) == [200, 200, 200]
        data = session_data(app, cookie)
        assert data["base"] == "0"
        results[label] = [n for n in names if n in data]
    assert len(results["flask-session"]) < 3, results  # last writer wins: updates lost
    assert results["ours"] == names, results


# -- stored garbage and pickle ----------------------------------------------------


class _Exploit:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_planted_pickle_never_runs(sapp, redis_server, tmp_path):
    marker = str(tmp_path / "pwned")
    payload = pickle.dumps(_Exploit(marker))
    admin = redis_server.client()
    # 1. A pickle planted as a field of a real session: the field is dropped.
    cookie = cookie_of(get(sapp, "/set?user=alice"))
    admin.hset(redis_key(cookie), "evil", payload)
    resp = get(sapp, "/read/evil", cookie)
    assert resp.status_code == 200 and resp.get_json() is None
    assert session_data(sapp, cookie) == {"user": "alice"}
    # 2. A whole pickled value at the key (Flask-Session's layout): a missing
    #    session (issue 12.10); the write gets a new id, the value stays as it was.
    other = cookie_of(get(sapp, "/set?user=bob"))
    admin.delete(redis_key(other))
    admin.set(redis_key(other), payload)
    resp = get(sapp, "/set?user=mallory", other)
    assert resp.status_code == 200 and sid_of(cookie_of(resp)) != sid_of(other)
    assert admin.get(redis_key(other)) == payload
    assert not os.path.exists(marker)
    # The error reply left the pooled connection in sync: the next request reads its own data.
    assert session_data(sapp, cookie) == {"user": "alice"}


def test_undecodable_field_is_dropped_logged_and_kept_in_redis(sapp, redis_server, caplog):
    cookie = cookie_of(get(sapp, "/set?user=alice"))
    key = redis_key(cookie)
    admin = redis_server.client()
    garbage = {"bad json": b"{not json", "bad tag": b'{" d":"not a date"}', "bad utf8": b"\xff\xfe"}
    admin.hset(key, mapping=garbage)
    with caplog.at_level(logging.WARNING, logger="flask_rediscache"), session_errors() as seen:
        assert session_data(sapp, cookie) == {"user": "alice"}
        get(sapp, "/set?more=1", cookie)  # a write must not delete what it could not read
    assert "undecodable session field" in caplog.text
    assert {e["operation"] for e in seen} == {"decode"}
    stored = admin.hgetall(key)
    assert {k.decode(): v for k, v in stored.items() if k.decode() in garbage} == garbage
    assert stored[b"more"] == b'"1"'


# -- lifecycle -----------------------------------------------------------------


def _cookie_attrs(header: str) -> dict[str, str]:
    attrs = {}
    for part in header.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        attrs[name.lower()] = value
    return attrs


def test_clear_deletes_data_and_cookie_with_the_same_flags(make_app, redis_server):
    app = add_routes(make_app(
        REDIS_URL=redis_server.url, SESSION_COOKIE_DOMAIN="example.test", SESSION_COOKIE_PATH="/app",
        SESSION_COOKIE_SECURE=True, SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_PARTITIONED=True,
        SESSION_COOKIE_NAME="session"))
    created = set_cookie_headers(get(app, "/set?user=alice"))[0]
    cookie = created.split(";", 1)[0].split("=", 1)[1]
    assert redis_server.client().exists(redis_key(cookie)) == 1
    resp = get(app, "/clear", cookie)
    deleted = set_cookie_headers(resp)
    assert len(deleted) == 1 and deleted[0].startswith("session=;")
    before, after = _cookie_attrs(created), _cookie_attrs(deleted[0])
    for flag in ("domain", "path", "secure", "samesite", "partitioned", "httponly"):
        assert after.get(flag) == before.get(flag), flag
    assert after["domain"] == "example.test" and after["samesite"] == "Strict"
    # SESSION_COOKIE_PARTITIONED exists from Flask 3.1 on.
    assert ("partitioned" in after) is hasattr(SessionInterface, "get_cookie_partitioned")
    assert "max-age" in after and after["max-age"] == "0"
    assert redis_server.client().keys("*") == []


def test_clear_then_set_replaces_the_whole_session(sapp, redis_server):
    @sapp.get("/login/<user>")
    def login(user):
        session.clear()
        session["user"] = user
        return "ok"

    cookie = cookie_of(get(sapp, "/set?user=anon&cart=x"))
    redis_server.client().hset(redis_key(cookie), "added", '"concurrently"')
    get(sapp, "/login/alice", cookie)
    assert redis_server.client().hgetall(redis_key(cookie)) == {b"user": b'"alice"'}


def test_emptying_by_pop_deletes_data_and_cookie(sapp, redis_server):
    cookie = cookie_of(get(sapp, "/set?only=1"))
    resp = get(sapp, "/pop/only", cookie)
    assert set_cookie_headers(resp)[0].startswith("session=;")
    assert redis_server.client().keys("*") == []


def test_regenerate_moves_data_and_kills_the_old_id(sapp, redis_server):
    old = cookie_of(get(sapp, "/set?user=alice&cart=x"))
    resp = get(sapp, "/regenerate", old)
    new = cookie_of(resp)
    assert sid_of(new) != sid_of(old)
    admin = redis_server.client()
    assert admin.exists(redis_key(old)) == 0
    assert admin.hgetall(redis_key(new)) == {b"user": b'"alice"', b"cart": b'"x"'}
    assert admin.ttl(redis_key(new)) > 0
    assert session_data(sapp, new) == {"user": "alice", "cart": "x"}
    assert session_data(sapp, old) == {}  # the fixated id is dead


def test_regenerate_requires_a_redis_session(sapp):
    with pytest.raises(TypeError):
        sapp.session_interface.regenerate({"a": 1})
    assert isinstance(sapp.session_interface.open_session(sapp, sapp.test_request_context().request),
                      RedisSession)


def test_secret_key_fallbacks_rotate(make_app, redis_server):
    old_app = add_routes(make_app(REDIS_URL=redis_server.url, SECRET_KEY="old-secret"))
    cookie = cookie_of(get(old_app, "/set?user=alice"))
    rotated = add_routes(make_app(REDIS_URL=redis_server.url, SECRET_KEY="new-secret",
                                  SECRET_KEY_FALLBACKS=["older", "old-secret"]))
    resp = get(rotated, "/get", cookie)
    assert resp.get_json() == [["user", "alice"]]
    resigned = cookie_of(resp)  # re-signed with the current key, same id
    assert resigned != cookie and sid_of(resigned) == sid_of(cookie)
    assert set_cookie_headers(get(rotated, "/get", resigned)) == []  # done rotating
    new_only = add_routes(make_app(REDIS_URL=redis_server.url, SECRET_KEY="new-secret"))
    assert session_data(new_only, resigned) == {"user": "alice"}
    redis_server.reset_stats()
    assert session_data(new_only, cookie) == {}  # the old key alone is no longer trusted
    assert commands(redis_server) == {}


def _hmac_derived_signer(secret: str | bytes) -> TimestampSigner:
    """The signer the interface used to build: itsdangerous deriving the key per call."""
    return TimestampSigner(secret, salt=RedisSessionInterface.salt, key_derivation="hmac",
                           digest_method=hashlib.sha256)


@pytest.mark.parametrize("secret", ["new-secret", b"\xffbytes-secret"])
def test_cookies_of_the_per_call_derivation_stay_valid(make_app, redis_server, secret):
    # The key is derived once (key_derivation="none" with HMAC(secret, salt));
    # cookies signed by the per-call "hmac" derivation verify, for the current
    # key and for a fallback, and the new cookies verify with the old signer.
    app = add_routes(make_app(REDIS_URL=redis_server.url, SECRET_KEY=secret,
                              SECRET_KEY_FALLBACKS=["older", "old-secret"]))
    iface = app.session_interface
    sid = iface.generate_sid()
    current = _hmac_derived_signer(secret).sign(sid).decode()
    fallback = _hmac_derived_signer("old-secret").sign(sid).decode()
    parsed = iface.unsign(current)
    assert parsed is not None and parsed[0] == sid and parsed[2] is True
    parsed = iface.unsign(fallback)
    assert parsed is not None and parsed[0] == sid and parsed[2] is False
    assert iface.unsign(_hmac_derived_signer("unknown").sign(sid).decode()) is None
    assert _hmac_derived_signer(secret).unsign(iface.sign(sid)) == sid.encode()
    # Same timestamp, same bytes: the signature itself is unchanged.
    value = f"{sid}.ZmJhcg".encode()
    assert iface.signer.get_signature(value) == _hmac_derived_signer(secret).get_signature(value)
    assert [Signer(k, key_derivation="none", digest_method=hashlib.sha256).get_signature(value)
            for k in iface.fallback_signer.secret_keys] == [
        _hmac_derived_signer(k).get_signature(value) for k in ["older", "old-secret"]]
    # Through a request: the old cookie's session is read.
    cookie = cookie_of(get(app, "/set?user=alice"))
    old_style = _hmac_derived_signer(secret).sign(sid_of(cookie)).decode()
    assert session_data(app, old_style) == {"user": "alice"}


def test_memory_url_sessions_work(make_app):
    app = add_routes(make_app(REDIS_URL="memory://sessions-test"))
    cookie = cookie_of(get(app, "/set?user=alice&x=1"))
    get(app, "/pop/x", cookie)
    assert session_data(app, cookie) == {"user": "alice"}
    new = cookie_of(get(app, "/regenerate", cookie))
    assert session_data(app, new) == {"user": "alice"} and session_data(app, cookie) == {}
    assert set_cookie_headers(get(app, "/clear", new))[0].startswith("session=;")
    assert app.session_interface.store.client.keys("session:*") == []


def test_least_privilege_acl_user(make_app, redis_factory):
    server = redis_factory()
    admin = server.client()
    # docs/sessions.rst: the save is one script (EVALSHA, SCRIPT LOAD after a restart).
    admin.execute_command("ACL", "SETUSER", "sess", "on", ">sesspw", "~session:*", "+@read", "+@write",
                          "+evalsha", "+script|load")
    errors = []
    app = add_routes(make_app(REDIS_URL=f"redis://sess:sesspw@127.0.0.1:{server.port}/0",
                              REDIS_ERROR_HANDLER=lambda **kw: errors.append(kw)))
    limited = redis.Redis(host="127.0.0.1", port=server.port, username="sess", password="sesspw")
    with pytest.raises(redis.exceptions.NoPermissionError):
        limited.set("elsewhere", 1)  # the user really is confined
    cookie = cookie_of(get(app, "/set?user=alice&x=1"))
    get(app, "/pop/x", cookie)
    get(app, "/set?y=2", cookie)
    assert session_data(app, cookie) == {"user": "alice", "y": "2"}
    new = cookie_of(get(app, "/regenerate", cookie))
    get(app, "/clear", new)
    assert errors == []
    assert admin.keys("*") == []


# -- outages -------------------------------------------------------------------


def test_paused_server_request_succeeds_and_stored_session_survives(make_app, redis_factory):
    server = redis_factory()
    app = add_routes(make_app(REDIS_URL=server.url, REDIS_READ_TIMEOUT=0.3, REDIS_CONNECT_TIMEOUT=0.3))
    cookie = cookie_of(get(app, "/set?user=alice&cart=3"))
    before = server.client().hgetall(redis_key(cookie))
    server.pause()
    try:
        with session_errors() as seen:
            resp = get(app, "/set?user=mallory&cart=0", cookie)
            assert resp.status_code == 200
            assert set_cookie_headers(resp) == []  # the client keeps its cookie
            # Issue 12.6: a log-out still deletes the cookie; the data stays until its TTL.
            resp = get(app, "/clear", cookie)
            assert resp.status_code == 200 and set_cookie_headers(resp)[0].startswith("session=;")
        assert [e["operation"] for e in seen] == ["open", "save"]
    finally:
        server.resume()
    assert server.client().hgetall(redis_key(cookie)) == before
    assert session_data(app, cookie) == {"user": "alice", "cart": "3"}


def test_save_failure_keeps_the_old_session_and_cookie(make_app, redis_factory, caplog):
    server = redis_factory()
    app = add_routes(make_app(REDIS_URL=server.url, REDIS_READ_TIMEOUT=0.3, REDIS_CONNECT_TIMEOUT=0.3))

    @app.get("/login-during-outage")
    def login():
        app.session_interface.regenerate(session)
        session["user"] = "alice-admin"
        server.pause()  # Redis hangs after the load, before the save
        return "ok"

    cookie = cookie_of(get(app, "/set?user=alice"))
    try:
        with caplog.at_level(logging.WARNING, logger="flask_rediscache"), session_errors() as seen:
            resp = get(app, "/login-during-outage", cookie)
        assert resp.status_code == 200
        assert set_cookie_headers(resp) == []  # the new id was not stored: keep the old cookie
        assert [e["operation"] for e in seen] == ["save"]
        assert "save_session" in caplog.text
    finally:
        server.resume()
    assert session_data(app, cookie) == {"user": "alice"}


def test_killed_server_gives_an_empty_session(make_app, redis_factory, caplog):
    server = redis_factory()
    app = add_routes(make_app(REDIS_URL=server.url))
    cookie = cookie_of(get(app, "/set?user=alice"))
    server.kill()
    with caplog.at_level(logging.WARNING, logger="flask_rediscache"), session_errors() as seen:
        resp = get(app, "/get", cookie)
        assert resp.status_code == 200 and resp.get_json() == []
        assert set_cookie_headers(resp) == []
        resp = get(app, "/set?user=x")  # a new session during the outage: no cookie to nothing
        assert resp.status_code == 200 and set_cookie_headers(resp) == []
    assert [e["operation"] for e in seen] == ["open", "save"]
    assert "open_session" in caplog.text

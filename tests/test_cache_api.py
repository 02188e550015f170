"""Rails'/django-redis' cache API: fetch options, fetch_multi, read/write_multi,
versions, TTL control, against a real redis-server with exact command counts."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest
from redis.connection import AbstractConnection

from flask_rediscache.keys import make_key
from flask_rediscache.state import get_state

from .support import commands


@contextmanager
def round_trips():
    """Count socket writes of every redis-py connection (a pipeline is one)."""
    counter = [0]
    original = AbstractConnection.send_packed_command

    def counted(self, command, check_health=True):
        counter[0] += 1
        return original(self, command, check_health)

    AbstractConnection.send_packed_command = counted
    try:
        yield counter
    finally:
        AbstractConnection.send_packed_command = original


def settle(cache):
    """Open the pool's connection first, so the handshake is not counted."""
    cache.get("warm-up")


# -- fetch options -----------------------------------------------------------
def test_fetch_skip_nil_does_not_store_none(cache, redis_server):
    calls = []
    assert cache.fetch("nil", lambda: calls.append(1), skip_nil=True) is None
    assert cache.fetch("nil", lambda: calls.append(1), skip_nil=True) is None
    assert len(calls) == 2 and not redis_server.client().exists(b"cache:nil")
    assert cache.fetch("kept", lambda: None) is None
    assert redis_server.client().exists(b"cache:kept")


def test_fetch_expires_at(cache, redis_server):
    when = datetime.now(timezone.utc) + timedelta(seconds=120)
    assert cache.fetch("at", lambda: 1, expires_at=when) == 1
    assert 115 <= redis_server.client().ttl(b"cache:at") <= 120
    assert cache.fetch("epoch", lambda: 2, expires_at=time.time() + 30) == 2
    assert 25 <= redis_server.client().ttl(b"cache:epoch") <= 30
    assert cache.fetch("past", lambda: 3, expires_at=time.time() - 5) == 3
    assert not redis_server.client().exists(b"cache:past")
    with pytest.raises(ValueError, match="naive"):
        cache.fetch("naive", lambda: 4, expires_at=datetime.now())
    with pytest.raises(ValueError, match="not both"):
        cache.fetch("both", lambda: 4, timeout=5, expires_at=time.time() + 5)


# -- fetch_multi, read_multi, write_multi -------------------------------------
def test_fetch_multi_100_keys_40_misses_is_one_read_one_compute_one_write(cache, redis_server):
    keys = [f"k{i}" for i in range(100)]
    missing = set(keys[::5] + keys[1::5])  # 40 keys
    cache.set_many({k: f"cached {k}" for k in keys if k not in missing})
    settle(cache)
    calls = []

    def compute(miss):
        calls.append(list(miss))
        return {k: f"computed {k}" for k in miss}

    redis_server.reset_stats()
    with round_trips() as trips:
        result = cache.fetch_multi(keys, compute, timeout=60)
    assert trips[0] == 2  # one MGET, one pipeline of SETs
    assert commands(redis_server) == {"mget": 1, "set": 40}
    assert len(calls) == 1 and sorted(calls[0]) == sorted(missing)
    assert list(result) == keys
    assert all(result[k] == (f"computed {k}" if k in missing else f"cached {k}") for k in keys)
    assert 55 <= redis_server.client().ttl(b"cache:k0") <= 60
    # Now all hit: one MGET, compute not called.
    redis_server.reset_stats()
    assert cache.fetch_multi(keys, compute) == result and len(calls) == 1
    assert commands(redis_server) == {"mget": 1}


def test_fetch_multi_options(cache, redis_server):
    assert cache.fetch_multi([], lambda miss: {}) == {}
    out = cache.fetch_multi(["a", "b", "a"], lambda miss: {k: None for k in miss}, skip_nil=True)
    assert out == {"a": None, "b": None}
    assert not redis_server.client().exists(b"cache:a")
    with pytest.raises(KeyError, match="'b'"):
        cache.fetch_multi(["a", "b"], lambda miss: {"a": 1})
    assert not redis_server.client().exists(b"cache:a")  # nothing stored
    with pytest.raises(RuntimeError):
        cache.fetch_multi(["a"], lambda miss: (_ for _ in ()).throw(RuntimeError("boom")))
    cache.fetch_multi(["v"], lambda miss: {"v": 1}, version="1")
    assert cache.get("v", version="1") == 1 and cache.get("v", version="2") is None
    assert cache.fetch_multi(["v"], lambda miss: {"v": 2}, version="2") == {"v": 2}


def test_fetch_multi_serves_stale_and_recomputes_once(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url)
    cache = app.extensions["rediscache"]
    store = get_state(app).store
    with app.app_context():
        for key in ("s1", "s2"):
            rkey = make_key("cache", key)
            store.write(rkey, store.encode(rkey, "old " + key, signed=True, expires_at=time.time() - 1),
                        60, extra_ttl=30)
        computing = threading.Event()
        release = threading.Event()
        calls = []

        def slow(miss):
            calls.append(list(miss))
            computing.set()
            release.wait(5)
            return {k: "new " + k for k in miss}

        out = {}

        def first():
            with app.app_context():
                out["first"] = cache.fetch_multi(["s1", "s2", "cold"], slow, race_condition_ttl=5)

        thread = threading.Thread(target=first)
        thread.start()
        assert computing.wait(5)
        # The first caller holds the locks: stale values at once, no compute here.
        started = time.monotonic()
        second = cache.fetch_multi(["s1", "s2"], lambda miss: pytest.fail("computed twice"),
                                   race_condition_ttl=5)
        assert second == {"s1": "old s1", "s2": "old s2"} and time.monotonic() - started < 0.5
        # A cold key being computed is waited for, not computed again.
        waiter = {}

        def cold():
            with app.app_context():
                waiter["v"] = cache.fetch_multi(["cold"], lambda miss: pytest.fail("computed twice"),
                                                race_condition_ttl=5)

        cold_thread = threading.Thread(target=cold)
        cold_thread.start()
        time.sleep(0.1)
        release.set()
        thread.join(5)
        cold_thread.join(5)
        assert out["first"] == {"s1": "new s1", "s2": "new s2", "cold": "new cold"}
        assert waiter["v"] == {"cold": "new cold"}
        assert len(calls) == 1 and sorted(calls[0]) == ["cold", "s1", "s2"]
        assert redis_server.client().keys(b"cache:lock:*") == []  # locks released


def test_fetch_multi_fails_open(make_app, redis_factory):
    server = redis_factory()
    app = make_app(REDIS_URL=server.url)
    cache = app.extensions["rediscache"]
    server.kill()
    with app.app_context():
        out = cache.fetch_multi(["a", "b"], lambda miss: {k: k.upper() for k in miss})
        assert out == {"a": "A", "b": "B"}


def test_read_multi_and_write_multi(cache, redis_server):
    settle(cache)
    redis_server.reset_stats()
    assert cache.write_multi({"a": 1, "b": None, "c": [3]}, timeout=30) == ["a", "b", "c"]
    assert cache.read_multi("a", "b", "missing", "c") == {"a": 1, "b": None, "c": [3]}
    assert commands(redis_server) == {"set": 3, "mget": 1}
    assert cache.read_multi() == {}
    assert 25 <= redis_server.client().ttl(b"cache:a") <= 30


# -- versions -----------------------------------------------------------------
def test_versioned_write_other_version_is_a_miss(cache, redis_server):
    assert cache.set("post:1", "v1 body", version="1")
    assert cache.get("post:1", version="1") == "v1 body"
    assert cache.get("post:1", version="2") is None
    assert cache.get("post:1") == "v1 body"  # no version asked: any version (Rails' rule)
    assert cache.get_many("post:1", "x", version=1) == ["v1 body", None]
    assert cache.get_many("post:1", version=2) == [None]
    assert cache.has("post:1", version="1") and not cache.has("post:1", version="2")
    cache.set("plain", 5)
    assert cache.get("plain", version="1") is None  # unversioned entries miss a versioned read
    assert cache.set("n", 7, version="1") and cache.get("n", version="1") == 7  # an int, signed


def test_add_and_delete_with_version(cache, redis_server):
    assert cache.add("k", "a", version="1")
    assert not cache.add("k", "b", version="2")  # present, whatever its version
    assert not cache.delete("k", version="2")  # only that version
    assert cache.get("k", version="1") == "a"
    assert cache.delete("k", version="1") and not redis_server.client().exists(b"cache:k")


def test_version_bumps_recycle_the_key(cache, redis_server):
    calls = []
    for version in range(100):
        value = cache.fetch("report", lambda v=version: calls.append(v) or f"r{v}", version=version)
        assert value == f"r{version}"
        assert cache.fetch("report", lambda: pytest.fail("hit expected"), version=version) == f"r{version}"
    assert len(calls) == 100
    assert redis_server.client().dbsize() == 1

    @cache.memoize(version="1")
    def double(x):
        calls.append(x)
        return 2 * x

    assert double(2) == 4 and double(2) == 4
    keys_before = redis_server.client().dbsize()
    versions = iter(range(100))

    @cache.memoize(version=lambda: current[0], name="tests.bumped")
    def triple(x):
        calls.append(x)
        return 3 * x

    current = [0]
    for _ in range(100):
        current[0] = next(versions)
        n = len(calls)
        assert triple(1) == 3 and triple(1) == 3
        assert len(calls) == n + 1  # one miss per version, then hits
    assert redis_server.client().dbsize() == keys_before + 1


def test_memoize_version_hit_is_one_get(cache, redis_server):
    @cache.memoize(version="v7")
    def f(x):
        return {"x": x}

    f(1)
    redis_server.reset_stats()
    assert f(1) == {"x": 1}
    assert commands(redis_server) == {"get": 1}


def test_unversioned_entries_from_before_still_read(app, redis_server):
    # The entry format is unchanged for unversioned entries: bytes written by the
    # previous release (same codec, no FLAG_VERSION) read back.
    from flask_rediscache.codec import Codec

    codec = Codec(b"test-secret", 1024)
    rkey = b"cache:old"
    redis_server.client().set(rkey, codec.encode(rkey, {"a": 1}))
    with app.app_context():
        assert app.extensions["rediscache"].get("old") == {"a": 1}


# -- TTL control ----------------------------------------------------------------
def test_has_and_ttl_agree_inside_the_stale_window(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url)
    cache = app.extensions["rediscache"]
    store = get_state(app).store
    with app.app_context():
        rkey = make_key("cache", "stale")
        data = store.encode(rkey, "old", signed=True, expires_at=time.time() - 1)
        store.write(rkey, data, 60, extra_ttl=30)
        assert redis_server.client().exists(rkey)
        assert cache.has("stale") is False and cache.ttl("stale") == 0
        assert cache.get("stale") is None
        cache.fetch("fresh", lambda: 1, timeout=60, race_condition_ttl=30)
        assert cache.has("fresh") is True and 59 <= cache.ttl("fresh") <= 60
        assert redis_server.client().ttl(make_key("cache", "fresh")) > 80  # Redis keeps it longer
        cache.set("forever", 1, timeout=0)
        assert cache.has("forever") and cache.ttl("forever") is None
        assert not cache.has("missing") and cache.ttl("missing") == 0
        cache.inc("counter")
        assert cache.has("counter")


def test_has_and_ttl_transfer_no_value(cache, redis_server):
    cache.set("big", "x" * 100_000)
    settle(cache)
    redis_server.reset_stats()
    with round_trips() as trips:
        assert cache.has("big") and cache.ttl("big") > 0
    assert trips[0] == 2
    assert commands(redis_server) == {"getrange": 2, "pttl": 1}


def test_touch_is_one_command_without_get(cache, redis_server):
    cache.set("k", "v", timeout=10)
    settle(cache)
    redis_server.reset_stats()
    assert cache.touch("k", 100)
    assert commands(redis_server) == {"expire": 1}
    assert 95 <= redis_server.client().ttl(b"cache:k") <= 100
    redis_server.reset_stats()
    assert cache.touch("k")  # the default timeout
    assert commands(redis_server) == {"expire": 1}
    assert 295 <= redis_server.client().ttl(b"cache:k") <= 300
    assert not cache.touch("missing")
    assert cache.touch("k", 0) and redis_server.client().ttl(b"cache:k") == -1


def test_expire_expire_at_persist(cache, redis_server):
    r = redis_server.client()
    cache.set("k", "v", timeout=0)
    assert cache.expire("k", 50) and 45 <= r.ttl(b"cache:k") <= 50
    assert cache.expire("k", timedelta(minutes=2)) and 115 <= r.ttl(b"cache:k") <= 120
    assert cache.persist("k") and r.ttl(b"cache:k") == -1
    assert not cache.persist("k")  # no TTL left to remove
    when = datetime.now(timezone.utc) + timedelta(seconds=70)
    assert cache.expire_at("k", when) and 65 <= r.ttl(b"cache:k") <= 70
    assert cache.expire_at("k", time.time() + 20) and 15 <= r.ttl(b"cache:k") <= 20
    assert not cache.expire("missing", 5)
    with pytest.raises(ValueError):
        cache.expire_at("k", datetime.now())
    assert cache.expire_at("k", time.time() - 1) and not r.exists(b"cache:k")


def test_ttl_control_fails_open(make_app, redis_factory):
    server = redis_factory()
    app = make_app(REDIS_URL=server.url)
    cache = app.extensions["rediscache"]
    server.kill()
    with app.app_context():
        assert cache.touch("k") is False and cache.expire("k", 5) is False
        assert cache.persist("k") is False and cache.expire_at("k", time.time() + 5) is False
        assert cache.has("k") is False and cache.ttl("k") == 0


def test_memory_url_supports_the_new_api(make_app):
    app = make_app(REDIS_URL="memory://api")
    cache = app.extensions["rediscache"]
    with app.app_context():
        assert cache.fetch_multi(["a", "b"], lambda miss: {k: k for k in miss}) == {"a": "a", "b": "b"}
        assert cache.read_multi("a", "c") == {"a": "a"}
        assert cache.touch("a", 5) and cache.ttl("a") == 5
        cache.set("v", 1, version=2)
        assert cache.get("v", version=2) == 1 and cache.get("v", version=3) is None

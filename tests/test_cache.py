"""The cache API against a real redis-server: every method, keys, codec in place, failures."""

from __future__ import annotations

import datetime
import logging
import os
import pickle
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from redis.connection import AbstractConnection

from flask_rediscache import signals
from flask_rediscache.codec import MAC_SIZE, VERSION
from flask_rediscache.keys import MAX_KEY_BYTES
from flask_rediscache.state import get_state

from .servers import free_port
from .support import commands


class RoundTrips:
    """Counts the batches of commands sent to any Redis (one per round trip)."""

    def __init__(self) -> None:
        self.count = 0


@contextmanager
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[RoundTrips]:
    counter = RoundTrips()
    original = AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        counter.count += 1
        return original(self, command, check_health)

    with monkeypatch.context() as patch:
        patch.setattr(AbstractConnection, "send_packed_command", counting)
        yield counter


def raw_key(name: str) -> bytes:
    return b"cache:" + name.encode()


# -- get / set / add / delete / has -------------------------------------------
@pytest.mark.parametrize("value", [None, 0, 1, -5, True, False, 1.5, "s", b"b", (1,), [1], {"a": {1, 2}},
                                   datetime.date(2024, 5, 1)], ids=repr)
def test_set_get_keeps_type(cache, value):
    assert cache.set("k", value) is True
    out = cache.get("k")
    assert out == value and type(out) is type(value)


def test_get_missing_is_none(cache):
    assert cache.get("nope") is None


def test_set_overwrites_and_delete(cache):
    cache.set("k", "one")
    cache.set("k", "two")
    assert cache.get("k") == "two"
    assert cache.delete("k") is True
    assert cache.delete("k") is False
    assert cache.get("k") is None


def test_has(cache):
    assert cache.has("k") is False
    cache.set("k", None)
    assert cache.has("k") is True


def test_add_only_when_absent(cache):
    assert cache.add("k", "first") is True
    assert cache.add("k", "second") is False
    assert cache.get("k") == "first"


def test_add_is_atomic_across_threads(cache, app):
    wins = []
    barrier = threading.Barrier(10)

    def worker(i):
        with app.app_context():
            barrier.wait()
            if cache.add("race", i):
                wins.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert cache.get("race") == wins[0]


def test_timeouts(cache, redis_server, app):
    r = redis_server.client()
    cache.set("default", 1)
    assert 295 <= r.ttl(raw_key("default")) <= 300  # REDIS_DEFAULT_TIMEOUT
    cache.set("seconds", 1, timeout=50)
    assert 45 <= r.ttl(raw_key("seconds")) <= 50
    cache.set("delta", 1, timeout=datetime.timedelta(minutes=2))
    assert 115 <= r.ttl(raw_key("delta")) <= 120
    cache.set("forever", 1, timeout=0)
    assert r.ttl(raw_key("forever")) == -1
    cache.set("fraction", 1, timeout=0.2)  # rounds up, never "forever"
    assert r.ttl(raw_key("fraction")) == 1
    cache.add("added", 1, timeout=7)
    assert 5 <= r.ttl(raw_key("added")) <= 7
    with pytest.raises(ValueError, match="timeout"):
        cache.set("bad", 1, timeout=-1)
    with pytest.raises(ValueError, match="timeout"):
        cache.set("bad", 1, timeout="10")
    assert not r.exists(raw_key("bad"))


def test_default_timeout_from_config(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_DEFAULT_TIMEOUT=datetime.timedelta(seconds=40))
    with app.app_context():
        app.extensions["rediscache"].set("k", 1)
    assert 35 <= redis_server.client().ttl(b"cache:k") <= 40


def test_ttl(cache):
    assert cache.ttl("missing") == 0  # django-redis' meaning: 0 missing, None no expiry
    cache.set("forever", 1, timeout=0)
    assert cache.ttl("forever") is None
    cache.set("k", 1, timeout=100)
    assert 95 <= cache.ttl("k") <= 100


# -- keys ---------------------------------------------------------------------
@pytest.mark.parametrize("key", ["with space", "new\nline", "glob*?[x]", "ünïcødé ключ", "", "a:b:c",
                                 "\\back\\slash", "\x00nul"])
def test_any_characters_work(cache, key):
    assert cache.set(key, key)
    assert cache.get(key) == key
    assert cache.delete(key)


def test_long_keys_are_shortened_and_distinct(cache, redis_server):
    a, b = "x" * 1000 + "a", "x" * 1000 + "b"
    cache.set(a, "A")
    cache.set(b, "B")
    assert (cache.get(a), cache.get(b)) == ("A", "B")
    keys = redis_server.client().keys("*")
    assert len(keys) == 2
    assert all(len(k) <= MAX_KEY_BYTES and k.startswith(b"cache:xxx") for k in keys)


def test_non_str_key_is_a_clear_error(cache):
    with pytest.raises(TypeError, match="must be str"):
        cache.set(1, "v")


def test_everything_lives_in_the_namespace(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_NAMESPACE="myapp:cache", REDIS_RACE_CONDITION_TTL=5)
    with app.app_context():
        cache = app.extensions["rediscache"]
        cache.set("a", 1)
        cache.set_many({"b": 2})
        cache.inc("c")
        cache.fetch("d", lambda: 4)

        @cache.memoize()
        def f(x):
            return x

        f(1)
    keys = redis_server.client().keys("*")
    assert len(keys) == 5
    assert all(k.startswith(b"myapp:cache:") for k in keys), keys


# -- many ---------------------------------------------------------------------
def test_get_many_is_one_mget(cache, redis_server):
    cache.set_many({"a": 1, "b": None, "c": [3]})
    cache.get("a")  # warm the connection
    redis_server.reset_stats()
    assert cache.get_many("a", "missing", "b", "c") == [1, None, None, [3]]
    assert commands(redis_server) == {"mget": 1}
    assert cache.get_many() == []


def test_get_dict(cache):
    cache.set("a", "A")
    assert cache.get_dict("a", "b") == {"a": "A", "b": None}


def test_set_many_is_one_round_trip(cache, redis_server, monkeypatch):
    cache.get("warm")
    with round_trips(monkeypatch) as trips:
        stored = cache.set_many({"a": 1, "b": "two", "c": None}, timeout=60)
    assert trips.count == 1
    assert stored == ["a", "b", "c"]
    assert cache.get_many("a", "b", "c") == [1, "two", None]
    assert 55 <= redis_server.client().ttl(b"cache:b") <= 60
    assert cache.set_many({}) == []


def test_delete_many_is_one_round_trip(cache, monkeypatch):
    cache.set_many({"a": 1, "b": 2, "c": 3})
    with round_trips(monkeypatch) as trips:
        assert cache.delete_many("a", "b", "missing") == 2
    assert trips.count == 1
    assert cache.get_many("a", "b", "c") == [None, None, 3]
    assert cache.delete_many() == 0


# -- counters -----------------------------------------------------------------
def test_inc_dec(cache):
    assert cache.inc("n") == 1
    assert cache.inc("n", 10) == 11
    assert cache.dec("n", 3) == 8
    assert cache.dec("n") == 7
    value = cache.get("n")
    assert value == 7 and type(value) is int


def test_set_then_inc_and_bool_stays_bool(cache):
    cache.set("n", 41)
    assert cache.inc("n") == 42
    cache.set("flag", True)
    assert cache.get("flag") is True


def test_inc_from_threads_is_exact(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_POOL_SIZE=8)
    cache = app.extensions["rediscache"]
    barrier = threading.Barrier(8)

    def worker():
        with app.app_context():
            barrier.wait()
            for _ in range(200):
                cache.inc("hits")

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with app.app_context():
        assert cache.get("hits") == 1600


def test_inc_timeout_only_sets_a_missing_ttl(cache, redis_server, monkeypatch):
    r = redis_server.client()
    cache.get("warm")
    with round_trips(monkeypatch) as trips:
        cache.inc("n", timeout=100)
    assert trips.count == 1
    assert 95 <= r.ttl(b"cache:n") <= 100
    cache.inc("n", timeout=5)  # does not shorten (or extend) the window
    assert r.ttl(b"cache:n") > 50
    cache.inc("fresh")  # default timeout applies to a new counter
    assert 295 <= r.ttl(b"cache:fresh") <= 300
    cache.inc("persistent", timeout=0)
    assert r.ttl(b"cache:persistent") == -1
    cache.set("kept", 5, timeout=0)
    cache.inc("kept", timeout=0)
    assert r.ttl(b"cache:kept") == -1


def test_inc_on_redis_without_expire_nx(cache, redis_server, monkeypatch):
    """Redis < 7 refuses EXPIRE ... NX: inc falls back to TTL + EXPIRE."""
    from redis.client import Pipeline

    def old_expire(self, name, time, nx=False, **kwargs):
        args = ["EXPIRE", name, time] + (["BOGUS-NX"] if nx else [])
        return self.execute_command(*args)

    monkeypatch.setattr(Pipeline, "expire", old_expire)
    r = redis_server.client()
    assert cache.inc("n", timeout=100) == 1
    assert 95 <= r.ttl(b"cache:n") <= 100
    assert cache.inc("n", timeout=5) == 2
    assert r.ttl(b"cache:n") > 50
    assert get_state(cache.state().app).store._expire_nx is False  # the fallback really ran


def test_inc_on_a_non_counter_fails_open_and_keeps_the_value(cache):
    cache.set("obj", {"a": 1})
    assert cache.inc("obj") is None
    assert cache.get("obj") == {"a": 1}


# -- delete_matched / clear ---------------------------------------------------
def test_delete_matched_is_a_glob_inside_the_namespace(cache, redis_server):
    r = redis_server.client()
    cache.set_many({"user:1": 1, "user:2": 2, "user:x:3": 3, "post:1": 4})
    r.set(b"other:user:1", b"x")
    r.set(b"cacheuser:1", b"x")
    assert cache.delete_matched("user:*") == 3
    assert cache.get_many("user:1", "user:2", "post:1") == [None, None, 4]
    assert r.exists(b"other:user:1", b"cacheuser:1") == 2
    assert cache.delete_matched("nothing:*") == 0


def test_delete_matched_in_batches_without_keys_command(cache, redis_server):
    r = redis_server.client()
    with r.pipeline(transaction=False) as pipe:
        for i in range(2500):
            pipe.set(f"cache:bulk:{i}".encode(), b"1")
        pipe.execute()
    redis_server.reset_stats()
    assert cache.delete_matched("bulk:*") == 2500
    stats = commands(redis_server)
    assert set(stats) == {"scan", "unlink"}
    assert stats["unlink"] >= 3  # 1000 keys per UNLINK at most
    assert r.dbsize() == 0


def test_delete_matched_escapes_the_namespace(make_app, redis_server):
    r = redis_server.client()
    app = make_app(REDIS_URL=redis_server.url, REDIS_NAMESPACE="a\\b")
    r.set(b"ab:k", b"outside")
    r.set(b"a\\b:k", b"inside")
    with app.app_context():
        assert app.extensions["rediscache"].clear() == 1
    assert r.get(b"ab:k") == b"outside"


def test_clear_only_touches_the_namespace(cache, redis_server):
    r = redis_server.client()
    r.set(b"session:abc", b"keep")
    r.set(b"other", b"keep")
    r.set(b"cachey:1", b"keep")
    cache.set_many({"a": 1, "b": 2})
    cache.inc("c")
    redis_server.reset_stats()
    assert cache.clear() == 3
    stats = commands(redis_server)
    assert not {"keys", "flushdb", "flushall"} & set(stats)
    assert "scan" in stats
    assert sorted(r.keys("*")) == [b"cachey:1", b"other", b"session:abc"]


# -- the codec in place -------------------------------------------------------
def test_forged_pickle_never_runs_and_next_set_replaces_it(cache, redis_server, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    payload = pickle.dumps(Evil())
    r = redis_server.client()
    r.set(b"cache:raw", payload)
    r.set(b"cache:forged", bytes((VERSION, 0)) + b"\x00" * MAC_SIZE + payload)
    assert cache.get("raw") is None
    assert cache.get("forged") is None
    assert cache.get_many("raw", "forged") == [None, None]
    assert not marker.exists()
    assert cache.set("forged", "clean")
    assert cache.get("forged") == "clean"


def test_entry_copied_to_another_key_is_a_miss(cache, redis_server):
    r = redis_server.client()
    cache.set("a", {"role": "user"})
    r.set(b"cache:b", r.get(b"cache:a"))
    assert cache.get("b") is None


@pytest.mark.parametrize("garbage", [b"", b"\xf1", b"\xf1\x00", b"garbage", b"\x80\x04K\x01.",
                                     b"12abc"])
def test_garbage_is_a_miss_and_is_replaced(cache, redis_server, garbage, caplog):
    redis_server.client().set(b"cache:g", garbage)
    misses = []
    with signals.cache_miss.connected_to(lambda sender, **kw: misses.append(kw["key"])):
        assert cache.get("g") is None
    assert misses == ["g"]
    assert cache.set("g", "ok") and cache.get("g") == "ok"


def test_truncated_entry_is_a_miss(cache, redis_server):
    r = redis_server.client()
    cache.set("t", {"x": list(range(100))})
    data = r.get(b"cache:t")
    r.set(b"cache:t", data[:-5])
    assert cache.get("t") is None


def test_large_compressible_value_is_compressed(cache, redis_server):
    value = ("lorem ipsum dolor sit amet " * 10_000)[:260_000]
    assert cache.set("big", value)
    assert redis_server.client().strlen(b"cache:big") < len(value) / 4
    assert cache.get("big") == value


def test_incompressible_value_is_not_inflated(cache, redis_server):
    value = os.urandom(50_000)
    cache.set("rand", value)
    assert redis_server.client().strlen(b"cache:rand") < len(value) + 100
    assert cache.get("rand") == value


# -- signals ------------------------------------------------------------------
def test_hit_and_miss_signals_once_per_key(cache, app):
    events = []

    def on_hit(sender, **kw):
        events.append(("hit", sender, kw["key"]))

    def on_miss(sender, **kw):
        events.append(("miss", sender, kw["key"]))

    cache.set("a", "x")  # not an int: fetch reads signed entries only, never plain counters
    with signals.cache_hit.connected_to(on_hit), signals.cache_miss.connected_to(on_miss):
        cache.get("a")
        cache.get("b")
        cache.get_many("a", "b", "c")
        cache.fetch("a", lambda: 0)
        cache.fetch("d", lambda: 0)
    assert events == [("hit", app, "a"), ("miss", app, "b"), ("hit", app, "a"), ("miss", app, "b"),
                      ("miss", app, "c"), ("hit", app, "a"), ("miss", app, "d")]


# -- the client and several apps ----------------------------------------------
def test_client_is_the_redis_py_client(cache, redis_server):
    assert isinstance(cache.client, redis.Redis)
    cache.client.set(b"direct", b"1")
    assert redis_server.client().get(b"direct") == b"1"


# -- failure: every method returns its miss value -------------------------------
@pytest.fixture
def down_cache(make_app):
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_RECONNECT_ATTEMPTS=0)
    with app.app_context():
        yield app.extensions["rediscache"]


def test_redis_down_every_method_returns_its_miss_value(down_cache, caplog):
    cache = down_cache
    calls = []

    def compute():
        calls.append(1)
        return "computed"

    with caplog.at_level(logging.WARNING, logger="flask_rediscache"):
        assert cache.get("k") is None
        assert cache.set("k", 1) is False
        assert cache.add("k", 1) is False
        assert cache.delete("k") is False
        assert cache.delete_many("a", "b") == 0
        assert cache.has("k") is False
        assert cache.get_many("a", "b") == [None, None]
        assert cache.get_dict("a", "b") == {"a": None, "b": None}
        assert cache.set_many({"a": 1}) == []
        assert cache.inc("n") is None
        assert cache.dec("n") is None
        assert cache.ttl("k") == 0  # what a missing key gives
        assert cache.fetch("k", compute) == "computed"
        assert cache.fetch("k", compute, race_condition_ttl=5) == "computed"
        assert cache.delete_matched("*") == 0
        assert cache.clear() == 0
    assert len(calls) == 2


def test_acl_user_with_read_write_only(redis_factory, make_app):
    """The Rails guide's least-privilege user can run every cache operation."""
    server = redis_factory()
    admin = server.client()
    admin.execute_command("ACL", "SETUSER", "app", "on", ">apppass", "~cache:*", "-@all", "+@read",
                          "+@write")
    errors = []
    app = make_app(REDIS_URL=f"redis://app:apppass@127.0.0.1:{server.port}/0", REDIS_SESSION=False,
                   REDIS_ERROR_HANDLER=lambda **kw: errors.append(kw))
    with app.app_context():
        cache = app.extensions["rediscache"]

        @cache.memoize(race_condition_ttl=5)
        def f(x):
            return x * 2

        assert cache.set("a", 1) and cache.get("a") == 1
        assert cache.add("b", 2) and cache.has("b")
        assert cache.set_many({"c": 3, "d": 4}) == ["c", "d"]
        assert cache.get_many("a", "c") == [1, 3]
        assert cache.inc("n", timeout=10) == 1 and cache.dec("n") == 0
        assert cache.ttl("a") is not None
        assert cache.fetch("e", lambda: 5, race_condition_ttl=3) == 5
        assert f(2) == 4 and f(2) == 4
        assert cache.delete_memoized(f, 2) == 1
        f(3)
        assert cache.delete_memoized(f) == 1
        assert cache.delete("a") and cache.delete_many("b", "c") == 2
        assert cache.delete_matched("d*") == 1
        assert cache.clear() >= 2
        # The user really is restricted: no scripts, no MULTI, no keys outside cache:*.
        with pytest.raises(redis.exceptions.NoPermissionError):
            cache.client.eval("return 1", 0)
        with pytest.raises(redis.exceptions.NoPermissionError):
            cache.client.pipeline(transaction=True).set("cache:x", 1).execute()
        with pytest.raises(redis.exceptions.NoPermissionError):
            cache.client.set("outside", 1)
    assert errors == []


def test_every_method_on_memory_url(make_app):
    """memory:// (fakeredis) supports every command the cache sends."""
    errors = []
    app = make_app(REDIS_URL="memory://cache-test-all", REDIS_ERROR_HANDLER=lambda **kw: errors.append(kw))
    with app.app_context():
        cache = app.extensions["rediscache"]
        cache.clear()

        @cache.memoize(race_condition_ttl=5)
        def f(x):
            return [x]

        assert cache.set("a", 1) and cache.add("b", None) and not cache.add("b", 2)
        assert cache.get_many("a", "b", "c") == [1, None, None] and cache.has("b")
        assert cache.set_many({"c": "C"}) == ["c"] and cache.get_dict("c") == {"c": "C"}
        assert cache.inc("n", timeout=10) == 1 and cache.dec("n", 3) == -2 and cache.ttl("n") <= 10
        assert cache.fetch("d", lambda: 4, race_condition_ttl=2) == 4
        assert f(1) == [1] and f(1) == [1]
        assert cache.delete_memoized(f) == 1
        assert cache.delete_many("a", "b") == 2 and cache.delete("c")
        assert cache.delete_matched("*") == 2  # n and d
    assert errors == []


def test_set_of_an_unpicklable_value_raises_a_type_error(cache, redis_server):
    from flask_rediscache.errors import UnpicklableError

    with pytest.raises(UnpicklableError, match="cannot cache a lock"):
        cache.set("k", threading.Lock())
    assert redis_server.client().keys("*") == []


def test_a_type_error_from_the_computation_is_never_swallowed(cache):
    def compute():
        raise TypeError("bug in the caller's code")

    with pytest.raises(TypeError, match="bug in the caller"):
        cache.fetch("k", compute)

"""REDIS_LOCAL_CACHE (issue 16): the per-request local cache and the process
near-cache kept correct by Redis' invalidation messages, on real servers.

Command counts come from ``INFO commandstats``; the tracking connection's own
commands (``CLIENT ID``/``TRACKING``, ``SUBSCRIBE``, its ``PING``) are left out.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import pytest
from flask import Flask

from flask_rediscache import RedisCache, signals
from flask_rediscache.errors import ConfigError
from flask_rediscache.local_sources import ProcessSource
from flask_rediscache.local_store import LocalStore
from flask_rediscache.state import get_state
from flask_rediscache.tracking import Tracker

from .servers import HANDSHAKE
from .topology_servers import wait_until

TRACKING = (*HANDSHAKE, "client|id", "client|tracking", "subscribe", "ping")


def counts(server: Any) -> dict[str, int]:
    return server.commands_since_reset(ignore=TRACKING)  # type: ignore[no-any-return]


def tracker_of(app: Flask) -> Tracker:
    source = get_state(app).store.source
    assert isinstance(source, ProcessSource)
    return source.tracker


def tracking_up(app: Flask, timeout: float = 5) -> Tracker:
    """Start the near-cache (it starts on the first read) and wait until it serves copies."""
    tracker = tracker_of(app)
    tracker.lookup(b"-")
    wait_until(lambda: tracker.tracking, timeout)
    return tracker


def _ext(app: Flask) -> RedisCache:
    ext = app.extensions["rediscache"]
    assert isinstance(ext, RedisCache)
    return ext


@pytest.fixture
def other(redis_server: Any) -> Any:
    """Another process's view of the server: a plain client."""
    return redis_server.client()


# -- settings ---------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "value", "needle"), [
    ("REDIS_LOCAL_CACHE", "yes", "REDIS_LOCAL_CACHE"),
    ("REDIS_LOCAL_CACHE", 1, "REDIS_LOCAL_CACHE"),
    ("REDIS_LOCAL_CACHE_SIZE", 0, "REDIS_LOCAL_CACHE_SIZE"),
    ("REDIS_LOCAL_CACHE_SIZE", "many", "REDIS_LOCAL_CACHE_SIZE"),
    ("REDIS_LOCAL_CACHE_MAX_BYTES", -1, "REDIS_LOCAL_CACHE_MAX_BYTES"),
    ("REDIS_LOCAL_CACHE_TTL", 0, "REDIS_LOCAL_CACHE_TTL"),
    ("REDIS_LOCAL_CACHE_TTL", "soon", "REDIS_LOCAL_CACHE_TTL"),
])
def test_bad_settings_name_the_key(key: str, value: Any, needle: str) -> None:
    app = Flask("t")
    app.config.update(SECRET_KEY="s", REDIS_URL="redis://127.0.0.1:1/0", **{key: value})
    with pytest.raises(ConfigError, match=needle):
        RedisCache(app)


def test_off_by_default_and_false_is_off(make_app: Any, redis_server: Any) -> None:
    for config in ({}, {"REDIS_LOCAL_CACHE": False}):
        app = make_app(REDIS_URL=redis_server.url, **config)
        assert not isinstance(get_state(app).store, LocalStore)


def test_process_mode_is_refused_on_memory_and_cluster() -> None:
    app = Flask("t")
    app.config.update(SECRET_KEY="s", REDIS_URL="memory://", REDIS_LOCAL_CACHE="process")
    with pytest.raises(ConfigError, match=r"REDIS_LOCAL_CACHE.*memory://"):
        RedisCache(app)
    app = Flask("t")
    app.config.update(SECRET_KEY="s", REDIS_CLUSTER=["redis://127.0.0.1:1"], REDIS_LOCAL_CACHE="process")
    with pytest.raises(ConfigError, match=r"REDIS_LOCAL_CACHE.*[Cc]luster"):
        RedisCache(app)


def test_request_mode_works_on_memory() -> None:
    app = Flask("t")
    app.config.update(SECRET_KEY="s", REDIS_URL="memory://", REDIS_LOCAL_CACHE="request")
    cache = RedisCache(app)
    with app.app_context():
        cache.set("k", [1])
        assert cache.get("k") == [1]


# -- "request": Rails' LocalCache ---------------------------------------------------------

def test_request_repeat_reads_are_served_locally_and_die_with_the_context(make_app, redis_server, other):
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE="request")
    cache = _ext(app)
    with app.app_context():
        cache.set("k", {"a": [1]})
    redis_server.reset_stats()
    with app.app_context():
        first = cache.get("k")
        second = cache.get("k")
        assert first == second == {"a": [1]}
        second["a"].append(2)  # a caller mutating its copy changes nothing stored
        assert cache.get("k") == {"a": [1]}
        other.delete(b"cache:k")
        assert cache.get("k") == {"a": [1]}  # this context keeps what it read (Rails' rule)
    assert counts(redis_server) == {"get": 1, "del": 1}
    with app.app_context():  # a new context starts empty
        assert cache.get("k") is None


def test_request_own_writes_update_the_map(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE="request")
    cache = _ext(app)
    with app.app_context():
        redis_server.reset_stats()
        cache.set("a", 1.5)
        assert cache.get("a") == 1.5
        cache.delete("a")
        assert cache.get("a") is None
        cache.set_many({"b": "B", "c": "C"})
        assert cache.get_many("b", "c") == ["B", "C"]
        assert counts(redis_server) == {"set": 3, "unlink": 1}
        cache.inc("n")
        assert cache.get("n") == 1 and cache.get("n") == 1  # counters are never kept
        cache.clear()
        assert cache.get("b") is None
    stats = counts(redis_server)
    assert stats["get"] == 3  # n twice, b once after the clear


def test_request_get_many_fetches_only_what_it_lacks(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE="request")
    cache = _ext(app)
    with app.app_context():
        cache.set_many({"a": 1.0, "b": 2.0, "c": 3.0})
    with app.app_context():
        assert cache.get("a") == 1.0
        redis_server.reset_stats()
        assert cache.get_many("a", "b", "c", "b") == [1.0, 2.0, 3.0, 2.0]
        assert cache.get_many("a", "b", "c") == [1.0, 2.0, 3.0]
        assert counts(redis_server) == {"mget": 1}


def test_request_memoize_and_cached_view(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE="request")
    cache = _ext(app)
    calls: list[int] = []

    @cache.memoize(60)
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    @app.get("/twice")
    def twice() -> str:
        return f"{square(3)} {square(3)} {square(3)}"

    client = app.test_client()
    assert client.get("/twice").text == "9 9 9"
    redis_server.reset_stats()
    assert client.get("/twice").text == "9 9 9"
    assert calls == [3]
    assert counts(redis_server) == {"get": 1}  # one per request, not one per call


def test_request_mode_outside_an_app_context_reads_redis(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE="request")
    cache = _ext(app)
    cache.set("k", "v")
    redis_server.reset_stats()
    assert cache.get("k") == "v" and cache.get("k") == "v"
    assert counts(redis_server) == {"get": 2}


def test_local_hits_are_flagged_in_the_signals(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE="request")
    cache = _ext(app)
    hits: list[dict[str, Any]] = []
    reads: list[dict[str, Any]] = []

    def on_hit(sender: Any, **kw: Any) -> None:
        hits.append(kw)

    def on_read(sender: Any, **kw: Any) -> None:
        reads.append(kw)

    with app.app_context():
        cache.set("k", "v")
        cache.delete("k")
        cache.set("j", "v")
    with app.app_context(), signals.cache_hit.connected_to(on_hit, app), \
            signals.cache_read.connected_to(on_read, app):
        cache.get("j")
        cache.get("j")
    assert [h.get("local") for h in hits] == [None, True]  # only local hits carry the flag
    assert [(r["hit"], r["local"]) for r in reads] == [(True, False), (True, True)]


# -- "process": the near-cache ---------------------------------------------------------------

def test_process_second_read_is_served_locally(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE="process")
    cache = _ext(app)
    tracking_up(app)
    cache.set("k", {"x": 1})
    redis_server.reset_stats()
    values = [cache.get("k") for _ in range(5)]
    assert values == [{"x": 1}] * 5
    assert values[0] is not values[1]
    assert counts(redis_server) == {"get": 1, "pttl": 1}


def test_process_another_writer_is_seen_at_once(make_app, redis_server, other):
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE="process")
    cache = _ext(app)
    tracking_up(app)
    writer = _ext(make_app(REDIS_URL=redis_server.url))  # another app: another process's writes
    for i in range(50):
        writer.set("k", i)
        assert cache.get("k") == i or wait_until(lambda i=i: cache.get("k") == i, 0.05)
        assert cache.get("k") == i
    writer.delete("k")
    wait_until(lambda: cache.get("k") is None, 0.05)
    assert tracker_of(app).invalidations >= 50


def test_process_write_racing_a_read_never_leaves_a_stale_copy(make_app, redis_server, other):
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE="process")
    tracker = tracking_up(app)
    key = b"cache:race"
    other.set(key, b"\xf1old")
    token = tracker.begin(key)
    assert token is not None
    old = other.get(key)  # the read's reply, then another write lands before it is kept
    other.set(key, b"\xf1new")
    wait_until(lambda: tracker.invalidations >= 1, 1)
    tracker.finish(key, token, old)
    assert tracker.lookup(key) is not old and len(tracker.copies) == 0


def test_process_flush_empties_the_copies(make_app, redis_server, other):
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE="process")
    cache = _ext(app)
    tracker = tracking_up(app)
    cache.set("k", "v")
    assert cache.get("k") == "v" and len(tracker.copies) == 1
    other.flushdb()
    assert cache.get("k") is None
    assert tracker.resets >= 2  # the start, then the flush


def test_process_own_writes_and_deletes_apply_at_once(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE="process")
    cache = _ext(app)
    tracking_up(app)
    cache.set("k", 1.0)
    assert cache.get("k") == 1.0
    cache.set("k", 2.0)
    assert cache.get("k") == 2.0
    cache.delete("k")
    assert cache.get("k") is None
    cache.set_many({"a": "A"})
    assert cache.get_many("a", "k") == ["A", None]


def test_process_counters_locks_and_foreign_bytes_are_never_kept(make_app, redis_server, other):
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE="process")
    cache = _ext(app)
    tracker = tracking_up(app)
    cache.inc("n", 5)
    other.set(b"cache:foreign", b"not ours")
    redis_server.reset_stats()
    for _ in range(3):
        assert cache.get("n") == 5
        assert cache.get("foreign") is None
    assert counts(redis_server)["get"] == 6
    with cache.lock("job"):
        pass
    assert len(tracker.copies) == 0


def test_process_copy_never_outlives_the_redis_ttl_or_the_logical_expiry(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE="process")
    cache = _ext(app)
    tracker = tracking_up(app)
    cache.set("short", "v", timeout=1)
    assert cache.get("short") == "v" and cache.get("short") == "v"
    deadline = tracker.copies._data[b"cache:short"][1]
    assert deadline - time.monotonic() <= 1.0
    calls: list[int] = []

    @cache.memoize(1, race_condition_ttl=5)
    def f() -> int:
        calls.append(1)
        return len(calls)

    assert f() == 1
    assert f() == 1
    key = next(k for k in tracker.copies._data if b"memoize" in k)
    assert tracker.copies._data[key][1] - time.monotonic() <= 1.0  # the logical expiry, not TTL+5
    time.sleep(1.1)
    assert cache.get("short") is None


def test_process_local_ttl_and_size_bounds(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE="process",
                   REDIS_LOCAL_CACHE_SIZE=10, REDIS_LOCAL_CACHE_MAX_BYTES=4000,
                   REDIS_LOCAL_CACHE_TTL=0.3)
    cache = _ext(app)
    tracker = tracking_up(app)
    cache.set_many({f"k{i}": i * 1.0 for i in range(30)})
    for i in range(30):
        assert cache.get(f"k{i}") == i * 1.0
    assert len(tracker.copies) == 10
    cache.set("big", "x" * 3000)
    cache.get("big")
    cache.get("k29")
    assert tracker.copies.bytes <= 4000
    assert cache.get("k29") == 29.0
    redis_server.reset_stats()
    time.sleep(0.35)
    assert cache.get("k29") == 29.0
    assert counts(redis_server) == {"get": 1, "pttl": 1}


def test_process_killed_tracking_connection_empties_and_bypasses(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE="process")
    cache = _ext(app)
    tracker = tracking_up(app)
    cache.set("k", "v")
    cache.get("k")
    assert len(tracker.copies) == 1
    killed = redis_server.client().client_kill_filter(_type="pubsub")
    assert killed == 1
    redis_server.reset_stats()
    assert cache.get("k") == "v"  # the poll sees the closed connection: read from Redis
    assert counts(redis_server).get("get") == 1
    wait_until(lambda: tracker.tracking, 5)
    assert len(tracker.copies) == 0
    assert cache.get("k") == "v"


def test_process_redis_restart_fails_open_and_comes_back_fresh(make_app, redis_factory):
    server = redis_factory()
    app = make_app(REDIS_URL=server.url, REDIS_LOCAL_CACHE="process", REDIS_READ_TIMEOUT=0.5,
                   REDIS_CIRCUIT_BREAKER_THRESHOLD=1000)
    cache = _ext(app)
    tracker = tracking_up(app)
    cache.set("k", "old")
    assert cache.get("k") == "old"
    server.kill()
    assert cache.get("k") is None  # never served from a copy nobody can keep right
    server.start()
    server.client().set(b"cache:k", b"not signed")  # a restarted server holds something else
    wait_until(lambda: tracker.tracking, 10)
    assert cache.get("k") is None
    cache.set("k", "new")
    assert cache.get("k") == "new"


def test_process_open_breaker_bypasses_the_copies(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE="process")
    cache = _ext(app)
    tracking_up(app)
    cache.set("k", "v")
    assert cache.get("k") == "v"
    breaker = get_state(app).boundaries["cache"].breaker
    for _ in range(breaker.threshold):
        breaker.failure()
    assert not breaker.closed
    assert cache.get("k") is None


def test_process_many_threads_see_every_write(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE="process")
    cache = _ext(app)
    tracking_up(app)
    writer = _ext(make_app(REDIS_URL=redis_server.url))
    writer.set("v", 0)
    stop = threading.Event()
    stale: list[tuple[int, Any]] = []
    done = [0]

    def read() -> None:
        while not stop.is_set():
            floor = done[0]
            got = cache.get("v")
            if got is None or got < floor:
                stale.append((floor, got))

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    tracker = tracker_of(app)
    wait_until(lambda: cache.get("v") == 0, 1)
    base = tracker.invalidations
    for i in range(1, 200):
        writer.set("v", i)
        # Exactly one invalidation per write: once it is counted, it has been applied.
        wait_until(lambda i=i: tracker.invalidations >= base + i, 1, interval=0.0005)
        done[0] = i
    stop.set()
    for t in threads:
        t.join()
    assert stale == []


def test_process_fork_gives_the_child_its_own_tracking(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE="process")
    cache = _ext(app)
    tracker = tracking_up(app)
    cache.set("k", "parent")
    assert cache.get("k") == "parent"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: empty copies, its own connection
        try:
            ok = len(tracker.copies) == 0 and not tracker.tracking
            tracker.lookup(b"-")
            deadline = time.monotonic() + 5
            while not tracker.tracking and time.monotonic() < deadline:
                time.sleep(0.01)
            ok = ok and tracker.tracking and cache.get("k") == "parent"
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(pid, 0)
    clients = redis_server.client().client_list(_type="pubsub")
    assert tracker.tracking and len(clients) >= 1
    assert cache.get("k") == "parent"


def test_process_stats(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE="process")
    cache = _ext(app)
    tracking_up(app)
    cache.set("k", "v")
    cache.get("k")
    cache.get("k")
    stats = cache.local_cache_stats()
    assert stats is not None
    assert stats["mode"] == "process" and stats["tracking"] is True
    assert stats["entries"] == 1 and stats["hits"] >= 1 and stats["invalidations"] >= 1
    assert 0 < stats["hit_ratio"] <= 1


def test_process_lookup_applies_pending_invalidations_without_the_listener(make_app, redis_server):
    """The read path polls the connection itself: with the listener asleep for a
    minute, another process's write is still seen on the next read."""
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE="process")
    cache = _ext(app)
    tracker = tracker_of(app)
    tracker.poll_interval = 60.0
    tracking_up(app)
    writer = _ext(make_app(REDIS_URL=redis_server.url))
    writer.set("k", "one")
    time.sleep(0.01)
    assert cache.get("k") == "one" and cache.get("k") == "one"
    for value in ("two", "three"):
        writer.set("k", value)
        time.sleep(0.005)  # delivery on loopback; the listener sleeps for 60 s
        assert cache.get("k") == value


def test_stats_health_and_doctor_report_the_near_cache(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE="process",
                   REDIS_HEALTH_ENDPOINT="/health/redis")
    cache = _ext(app)
    tracking_up(app)
    cache.set("k", "v")
    cache.get("k")
    cache.get("k")
    body = app.test_client().get("/health/redis").get_json()
    assert body["status"] == "ok"
    assert body["local_cache"]["tracking"] is True and body["local_cache"]["entries"] == 1
    runner = app.test_cli_runner()
    result = runner.invoke(args=["redis", "stats", "--json"])
    assert result.exit_code == 0, result.output
    local = json.loads(result.stdout)["process"]["local_cache"]
    assert local["mode"] == "process" and local["hits"] >= 1
    text = runner.invoke(args=["redis", "stats"]).output
    assert "local cache (process)" in text and "tracking up" in text
    found = json.loads(runner.invoke(args=["redis", "doctor", "--json"]).stdout)["findings"]
    local_cache = [f for f in found if f["check"] == "local-cache"]
    assert [f["status"] for f in local_cache] == ["pass"]
    assert "tracking client" in local_cache[0]["message"]


def test_request_mode_stats(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE="request")
    cache = _ext(app)
    with app.app_context():
        cache.set("k", "v")
        cache.delete("k")
        cache.get("k")
        cache.get("k")
    stats = cache.local_cache_stats()
    assert stats is not None and stats["mode"] == "request" and stats["hits"] == 2
    assert _ext(make_app(REDIS_URL=redis_server.url)).local_cache_stats() is None



def test_process_mode_for_a_least_privilege_acl_user(make_app, redis_factory, caplog):
    """The rights docs/local-cache.rst lists are enough, and without them reads still work."""
    server = redis_factory()
    admin = server.client()
    admin.acl_setuser("near", enabled=True, reset=True, passwords=["+near-Pa55"], keys=["cache:*"],
                      categories=["+@read", "+@write"],
                      commands=["+client|id", "+client|tracking", "+subscribe", "+ping"],
                      channels=["__redis__:invalidate"])
    app = make_app(REDIS_URL=f"redis://near:near-Pa55@127.0.0.1:{server.port}/0", REDIS_SESSION=False,
                   REDIS_LOCAL_CACHE="process")
    cache = _ext(app)
    tracking_up(app)
    cache.set("k", "v")
    assert cache.get("k") == "v" and cache.get("k") == "v"
    assert cache.local_cache_stats()["hits"] >= 1

    admin.acl_setuser("plain", enabled=True, reset=True, passwords=["+plain-Pa55"], keys=["cache:*"],
                      categories=["+@read", "+@write"])
    app = make_app(REDIS_URL=f"redis://plain:plain-Pa55@127.0.0.1:{server.port}/0", REDIS_SESSION=False,
                   REDIS_LOCAL_CACHE="process")
    cache = _ext(app)
    assert get_state(app).store.local_problem(3) is not None
    cache.set("k", "w")
    assert cache.get("k") == "w" and cache.get("k") == "w"
    stats = cache.local_cache_stats()
    assert stats["tracking"] is False and stats["entries"] == 0 and "NoPermissionError" in stats["last_error"]
    assert "cannot start local cache tracking" in caplog.text and "Pa55" not in caplog.text


@pytest.mark.parametrize("mode", ["request", "process"])
def test_a_miss_is_looked_up_and_counted_once(make_app, redis_server, mode):
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE=mode)
    cache = _ext(app)
    if mode == "process":
        tracking_up(app)
    with app.app_context():
        before = cache.local_cache_stats()
        cache.get("never-read")
        after = cache.local_cache_stats()
        assert after["misses"] - before["misses"] == 1
        cache.get("never-read")
        assert cache.local_cache_stats()["hits"] - after["hits"] == 1


def test_local_hits_never_count_as_redis_successes(make_app, redis_factory):
    """A frozen server (SIGSTOP): copies stop being served once the breaker has
    seen a failure, so the breaker opens as it would without a local cache."""
    server = redis_factory()
    app = make_app(REDIS_URL=server.url, REDIS_LOCAL_CACHE="process", REDIS_READ_TIMEOUT=0.2,
                   REDIS_CONNECT_TIMEOUT=0.2, REDIS_RECONNECT_ATTEMPTS=0,
                   REDIS_CIRCUIT_BREAKER_THRESHOLD=3, REDIS_CIRCUIT_BREAKER_COOLDOWN=30)
    cache = _ext(app)
    tracking_up(app)
    cache.set("k", "v")
    assert cache.get("k") == "v" and cache.get("k") == "v"
    breaker = get_state(app).boundaries["cache"].breaker
    server.pause()
    try:
        assert cache.get("missing") is None  # a timeout: one failure
        assert breaker.failures == 1
        results = [cache.get("k") for _ in range(3)]  # not served locally: Redis times out
        assert results == [None, None, None]
        assert not breaker.closed
    finally:
        server.resume()


def test_a_suspect_breaker_bypasses_copies_until_redis_answers(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE="process")
    cache = _ext(app)
    tracking_up(app)
    cache.set("k", "v")
    cache.get("k")
    breaker = get_state(app).boundaries["cache"].breaker
    breaker.failure()
    redis_server.reset_stats()
    assert cache.get("k") == "v"  # read from Redis, which answers: the breaker is healthy again
    assert counts(redis_server) == {"get": 1, "pttl": 1}
    assert breaker.failures == 0
    assert cache.get("k") == "v"
    assert counts(redis_server) == {"get": 1, "pttl": 1}


@pytest.mark.parametrize("mode", ["request", "process"])
def test_fetch_and_cached_views_are_served_locally(make_app, redis_server, mode):
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE=mode)
    cache = _ext(app)
    if mode == "process":
        tracking_up(app)
    computed: list[str] = []

    @app.get("/page")
    @cache.cached(60)
    def page() -> str:
        computed.append("page")
        return "rendered"

    @app.get("/fetched")
    def fetched() -> str:
        first = cache.fetch("f", lambda: computed.append("f") or "F", timeout=60)
        second = cache.fetch("f", lambda: computed.append("f") or "F", timeout=60)
        return f"{first}{second}"

    client = app.test_client()
    for _ in range(2):  # process mode: this process's own writes drop its copies; the next read refills
        assert client.get("/page").text == "rendered"
        assert client.get("/fetched").text == "FF"
    redis_server.reset_stats()
    assert client.get("/fetched").text == "FF"
    assert client.get("/page").text == "rendered"
    assert computed == ["page", "f"]
    expected = {} if mode == "process" else {"get": 2}  # request mode: one read per request
    assert counts(redis_server) == expected


def test_forged_signed_looking_bytes_are_never_kept(make_app, redis_server, other):
    """Copies are decoded without a second signature check, so only entries that
    passed it may be kept: bytes that merely look signed are a miss every time."""
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE="process")
    cache = _ext(app)
    tracker = tracking_up(app)
    other.set(b"cache:forged", b"\xf1\x00" + b"\x00" * 16 + b"\x80\x04K\x01.")  # pickle of 1, no valid MAC
    for _ in range(3):
        assert cache.get("forged") is None
    assert len(tracker.copies) == 0


class Point:
    def __init__(self, x: int) -> None:
        self.x = x

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and other.x == self.x


@pytest.mark.parametrize("mode", ["request", "process"])
def test_local_hits_return_the_same_types_as_redis(make_app, redis_server, mode):
    """Copies of builtin values are rebuilt with marshal, everything else from the
    pickle: either way a local hit returns what a read from Redis returns."""
    from collections import OrderedDict, namedtuple

    pair = namedtuple("pair", "a b")
    shared = [1, 2]
    values: dict[str, Any] = {
        "dict": {"a": [1, 2.5, "x", b"y", None, True]}, "tuple": (1, (2, 3)), "set": {1, 2},
        "frozenset": frozenset({"a"}), "bool": False, "big": 2**80, "text": "é\udcff",
        "ordered": OrderedDict(a=1), "pair": pair(1, 2), "point": Point(3),
        "shared": [shared, shared], "none": None, "complex": 1 + 2j,
    }
    globals()["pair"] = pair  # picklable by reference
    pair.__qualname__ = "pair"
    app = make_app(REDIS_URL=redis_server.url, REDIS_LOCAL_CACHE=mode)
    cache = _ext(app)
    if mode == "process":
        tracking_up(app)
    with app.app_context():
        for name, value in values.items():
            cache.set(name, value)
    with app.app_context():
        for name, value in values.items():
            from_redis = cache.get(name)
            local = cache.get(name)
            assert from_redis == local == value, name
            assert type(local) is type(value) is type(from_redis), name
            assert local is not from_redis or value is None or isinstance(value, bool), name
        shared_back = cache.get("shared")
        assert shared_back[0] is shared_back[1]
    assert cache.local_cache_stats()["hits"] >= len(values)
    if mode == "process":
        from flask_rediscache.local_cache import Unpacked

        kept = {key: copy for key, (copy, _) in tracker_of(app).copies._data.items()}
        assert isinstance(kept[b"cache:dict"], Unpacked)
        assert isinstance(kept[b"cache:point"], bytes) and isinstance(kept[b"cache:ordered"], bytes)

"""fetch() and race_condition_ttl: one recomputation, stale served at once, cold keys wait."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from flask_rediscache import signals
from flask_rediscache.keys import make_key
from flask_rediscache.state import get_state

from .servers import free_port


class Counter:
    def __init__(self):
        self.n = 0
        self.lock = threading.Lock()

    def bump(self):
        with self.lock:
            self.n += 1
            return self.n


def state_store(app):
    return get_state(app).store


def write_expired_raw(app, rkey, value, race_ttl=10):
    """An entry whose logical expiry has passed but that Redis keeps for race_ttl."""
    store = state_store(app)
    store.write(rkey, store.encode(rkey, value, expires_at=time.time() - 1), 60, extra_ttl=race_ttl)


def write_expired(app, key, value, race_ttl=10):
    write_expired_raw(app, make_key(get_state(app).settings.namespace, key), value, race_ttl)


def run_threads(n, target):
    barrier = threading.Barrier(n)
    results = [None] * n

    def worker(i):
        barrier.wait()
        results[i] = target()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


@pytest.fixture
def race_app(make_app, redis_server):
    return make_app(REDIS_URL=redis_server.url, REDIS_POOL_SIZE=25)


# -- plain fetch --------------------------------------------------------------
def test_fetch_computes_once_then_hits(cache):
    calls = Counter()
    assert cache.fetch("k", lambda: calls.bump() and "v") == "v"
    assert cache.fetch("k", lambda: calls.bump() and "w") == "v"
    assert calls.n == 1
    assert cache.get("k") == "v"


def test_fetch_caches_none_and_force_recomputes(cache):
    calls = Counter()

    def none():
        calls.bump()

    assert cache.fetch("k", none) is None
    assert cache.fetch("k", none) is None
    assert calls.n == 1
    assert cache.fetch("k", lambda: "new", force=True) == "new"
    assert cache.get("k") == "new"


def test_fetch_timeout(cache, redis_server):
    cache.fetch("k", lambda: 1, timeout=30)
    assert 25 <= redis_server.client().ttl(b"cache:k") <= 30


def test_exception_propagates_and_stores_nothing(cache, redis_server):
    def boom():
        raise KeyError("nope")

    with pytest.raises(KeyError):
        cache.fetch("k", boom, race_condition_ttl=5)
    assert redis_server.client().keys("*") == []  # neither the value nor the lock
    start = time.perf_counter()
    assert cache.fetch("k", lambda: "ok", race_condition_ttl=5) == "ok"
    assert time.perf_counter() - start < 0.5  # no wait on a leftover lock


def test_entry_outlives_its_logical_expiry_by_race_ttl(cache, redis_server):
    before = time.time()
    cache.fetch("k", lambda: "v", timeout=30, race_condition_ttl=20)
    r = redis_server.client()
    assert 45 <= r.ttl(b"cache:k") <= 50
    value, expires_at = state_store(cache.state().app).codec.decode(b"cache:k", r.get(b"cache:k"))
    assert value == "v" and before + 29 <= expires_at <= time.time() + 30


def test_get_treats_a_logically_expired_entry_as_missing(cache, app):
    write_expired(app, "old", "stale")
    assert cache.get("old") is None
    assert cache.get_many("old") == [None]
    assert cache.fetch("old", lambda: "fresh", race_condition_ttl=10) == "fresh"


def test_default_race_ttl_from_config(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_RACE_CONDITION_TTL=15)
    with app.app_context():
        app.extensions["rediscache"].fetch("k", lambda: 1, timeout=30)
        assert 40 <= redis_server.client().ttl(b"cache:k") <= 45
        with pytest.raises(ValueError, match="race_condition_ttl"):
            app.extensions["rediscache"].fetch("k", lambda: 1, race_condition_ttl=-1)
        with pytest.raises(ValueError, match="race_condition_ttl"):
            app.extensions["rediscache"].memoize(race_condition_ttl="soon")


# -- stampede control ---------------------------------------------------------
def test_expired_key_one_recomputation_others_served_stale(race_app):
    cache = race_app.extensions["rediscache"]
    write_expired(race_app, "hot", "stale")
    calls = Counter()

    def slow():
        calls.bump()
        time.sleep(0.5)
        return "fresh"

    def call():
        with race_app.app_context():
            start = time.perf_counter()
            value = cache.fetch("hot", slow, timeout=60, race_condition_ttl=10)
            return value, time.perf_counter() - start

    results = run_threads(20, call)
    assert calls.n == 1
    values = [v for v, _ in results]
    assert values.count("fresh") == 1 and values.count("stale") == 19
    stale_times = sorted(t for v, t in results if v == "stale")
    assert stale_times[-1] < 0.2, stale_times  # at once, not after the 0.5 s recomputation
    with race_app.app_context():
        assert cache.get("hot") == "fresh"


def test_cold_key_one_computation_others_wait_for_it(race_app, redis_server):
    cache = race_app.extensions["rediscache"]
    calls = Counter()

    def slow():
        calls.bump()
        time.sleep(0.3)
        return {"answer": 42}

    def call():
        with race_app.app_context():
            return cache.fetch("cold", slow, timeout=60, race_condition_ttl=5)

    results = run_threads(20, call)
    assert calls.n == 1
    assert results == [{"answer": 42}] * 20
    assert redis_server.client().keys("cache:lock:*") == []  # released


def test_cold_key_winner_failing_hands_over_to_one_waiter(race_app):
    cache = race_app.extensions["rediscache"]
    calls = Counter()

    def flaky():
        n = calls.bump()
        time.sleep(0.2)
        if n == 1:
            raise RuntimeError("first computation fails")
        return "second"

    def call():
        with race_app.app_context():
            try:
                return cache.fetch("cold", flaky, timeout=60, race_condition_ttl=5)
            except RuntimeError:
                return "raised"

    results = run_threads(10, call)
    assert calls.n == 2
    assert results.count("raised") == 1 and results.count("second") == 9


def test_lock_is_namespaced_and_only_released_by_its_owner(cache, app, redis_server):
    r = redis_server.client()
    seen = {}

    def compute():
        (lock,) = r.keys("cache:lock:*")
        seen["lock"] = lock
        seen["ttl"] = r.pttl(lock)
        r.set(lock, b"someone-else")  # our lock expired and another caller took it
        return "v"

    assert cache.fetch("k", compute, race_condition_ttl=3) == "v"
    assert seen["lock"] == b"cache:lock:k"
    assert 0 < seen["ttl"] <= 3000
    assert r.get(b"cache:lock:k") == b"someone-else"


def test_lock_ttl_is_capped(cache, redis_server):
    r = redis_server.client()
    seen = {}

    def compute():
        seen["ttl"] = r.pttl(b"cache:lock:k")
        return 1

    cache.fetch("k", compute, race_condition_ttl=3600)
    assert 0 < seen["ttl"] <= 10_000


def test_waiter_takes_over_when_the_lock_expires(cache, redis_server):
    # A lock held by a dead worker (never released, never written): the lock
    # expires after its TTL and the waiter takes it over and computes.
    redis_server.client().set(b"cache:lock:k", b"dead-worker", px=300)
    start = time.perf_counter()
    assert cache.fetch("k", lambda: "mine", race_condition_ttl=0.3) == "mine"
    assert 0.2 < time.perf_counter() - start < 1.0


def test_memoize_race_condition_ttl(race_app, redis_server):
    cache = race_app.extensions["rediscache"]
    calls = Counter()

    @cache.memoize(timeout=60, race_condition_ttl=10)
    def report(x):
        n = calls.bump()
        time.sleep(0.3)
        return f"v{n}"

    def call():
        with race_app.app_context():
            start = time.perf_counter()
            return report(1), time.perf_counter() - start

    assert [v for v, _ in run_threads(20, call)] == ["v1"] * 20  # cold: one computation
    assert calls.n == 1
    (key,) = redis_server.client().keys("cache:memoize:*")
    value, _ = state_store(race_app).codec.decode(key, redis_server.client().get(key))
    write_expired_raw(race_app, key, value)
    results = run_threads(20, call)
    assert calls.n == 2
    assert sorted(v for v, _ in results) == ["v1"] * 19 + ["v2"]
    assert max(t for v, t in results if v == "v1") < 0.2


def test_async_memoize_cold_key_one_computation(app, redis_server):
    cache = app.extensions["rediscache"]
    calls = Counter()

    @cache.memoize(timeout=60, race_condition_ttl=5)
    async def slow(x):
        calls.bump()
        await asyncio.sleep(0.2)
        return x * 10

    async def main():
        return await asyncio.gather(*(slow(4) for _ in range(6)))

    with app.app_context():
        start = time.perf_counter()
        assert asyncio.run(main()) == [40] * 6
        assert time.perf_counter() - start < 1.0  # waiters slept cooperatively
    assert calls.n == 1
    assert redis_server.client().keys("cache:lock:*") == []


def test_async_memoize_failure_releases_the_lock(app, redis_server):
    cache = app.extensions["rediscache"]

    @cache.memoize(race_condition_ttl=5)
    async def broken(x):
        raise LookupError(x)

    with app.app_context(), pytest.raises(LookupError):
        asyncio.run(broken(1))
    assert redis_server.client().keys("*") == []


# -- signals and failure ------------------------------------------------------
def test_one_signal_per_fetch_including_waiters(race_app):
    cache = race_app.extensions["rediscache"]
    events = []
    lock = threading.Lock()

    def record(kind):
        def receiver(sender, **kw):
            with lock:
                events.append((kind, kw["key"]))
        return receiver

    on_hit, on_miss = record("hit"), record("miss")

    def call():
        with race_app.app_context():
            return cache.fetch("k", lambda: time.sleep(0.2) or "v", race_condition_ttl=5)

    with signals.cache_hit.connected_to(on_hit), signals.cache_miss.connected_to(on_miss):
        run_threads(8, call)
    assert len(events) == 8
    assert events.count(("miss", "k")) == 1 and events.count(("hit", "k")) == 7


def test_redis_down_fetch_computes(make_app):
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_RECONNECT_ATTEMPTS=0)
    calls = Counter()
    with app.app_context():
        cache = app.extensions["rediscache"]
        for _ in range(3):
            assert cache.fetch("k", lambda: calls.bump(), race_condition_ttl=5) is not None
    assert calls.n == 3


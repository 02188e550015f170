"""The fail-open boundary and the circuit breaker against real, failing servers."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
import redis

from flask_rediscache import signals
from flask_rediscache.breaker import CircuitBreaker
from flask_rediscache.errors import CircuitOpenError, PoolExhaustedError
from flask_rediscache.masking import mask
from flask_rediscache.state import get_state

from .servers import free_port
from .support import Recorder


def test_nothing_listening_fails_open(make_app, caplog):
    handler = Recorder()
    port = free_port()
    app = make_app(REDIS_URL=f"redis://:s3cret@127.0.0.1:{port}/0", REDIS_ERROR_HANDLER=handler)
    seen = []

    def on_error(sender, **kw):
        seen.append((sender, kw))

    with app.app_context(), signals.cache_error.connected_to(on_error), \
            caplog.at_level(logging.WARNING, logger="flask_rediscache"):
        cache = app.extensions["rediscache"]
        assert cache.get("k") is None
        lines = [r for r in caplog.records if r.name == "flask_rediscache"]
        assert len(lines) == 1
        assert "get" in lines[0].getMessage()
        assert len(handler.calls) == 1
        assert handler.calls[0]["method"] == "get"
        assert handler.calls[0]["returning"] is None
        assert isinstance(handler.calls[0]["exception"], redis.ConnectionError)
        assert seen and seen[0][0] is app and seen[0][1]["method"] == "get"
        assert cache.set("k", 1) is False
        assert cache.delete("k") is False
    assert "s3cret" not in caplog.text
    assert len(handler.calls) == 3


def test_repeated_failures_are_rate_limited_in_the_log(make_app, caplog):
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_CIRCUIT_BREAKER_THRESHOLD=1000,
                   REDIS_RECONNECT_ATTEMPTS=0)
    with app.app_context(), caplog.at_level(logging.WARNING, logger="flask_rediscache"):
        cache = app.extensions["rediscache"]
        for _ in range(30):
            assert cache.get("k") is None
    assert len([r for r in caplog.records if r.name == "flask_rediscache"]) == 1


def test_broken_error_handler_does_not_break_fail_open(make_app):
    def handler(**kwargs):
        raise ValueError("handler bug")

    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_ERROR_HANDLER=handler)
    with app.app_context():
        assert app.extensions["rediscache"].get("k") is None


def test_pool_is_bounded_under_thread_contention(make_app, redis_server):
    errors = Recorder()
    app = make_app(REDIS_URL=redis_server.url, REDIS_POOL_SIZE=3, REDIS_ERROR_HANDLER=errors)
    monitor = redis_server.client()
    # Connections that exist before the app starts (ours, other fixtures' idle
    # ones) are not the app's.
    before = {int(c["id"]) for c in monitor.client_list()}
    peak = 0
    stop = threading.Event()

    def sample():
        nonlocal peak
        while not stop.is_set():
            clients = [c for c in monitor.client_list() if int(c["id"]) not in before]
            peak = max(peak, len(clients))
            time.sleep(0.005)

    failures = []

    def hammer(n):
        with app.app_context():
            cache = app.extensions["rediscache"]
            for i in range(200):
                if not cache.set(f"k{n}-{i}", i):
                    failures.append(("set", n, i))
                if cache.get(f"k{n}-{i}") != i:
                    failures.append(("get", n, i))

    sampler = threading.Thread(target=sample)
    sampler.start()
    workers = [threading.Thread(target=hammer, args=(n,)) for n in range(12)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    sampler.join()
    assert failures == []
    assert errors.calls == []
    assert 1 <= peak <= 3


def test_hung_server_is_bounded_then_breaker_makes_it_cheap(make_app, redis_factory):
    server = redis_factory()
    app = make_app(REDIS_URL=server.url, REDIS_CIRCUIT_BREAKER_COOLDOWN=2)
    states = []

    def on_state(sender, **kw):
        states.append(kw["state"])

    with app.app_context(), signals.breaker_state.connected_to(on_state):
        cache = app.extensions["rediscache"]
        assert cache.set("before", "v")
        server.pause()
        try:
            started = time.monotonic()
            assert cache.get("before") is None
            first = time.monotonic() - started
            assert first < 1.8, f"one call against a hung server took {first:.2f}s"
            for _ in range(4):  # reach the threshold of 5
                cache.get("before")
            assert states == ["open"]
            started = time.monotonic()
            for _ in range(50):
                assert cache.get("before") is None
            fifty = time.monotonic() - started
            assert fifty < 0.25, f"50 calls with the breaker open took {fifty:.3f}s"
        finally:
            server.resume()
        recovered_at = None
        started = time.monotonic()
        while time.monotonic() - started < 2 + 1 + 1.5:
            if cache.get("before") == "v":
                recovered_at = time.monotonic() - started
                break
            time.sleep(0.05)
        assert recovered_at is not None and recovered_at <= 2 + 1
        assert states[-1] == "closed"


def test_server_killed_and_restarted_recovers(make_app, redis_factory):
    server = redis_factory()
    app = make_app(REDIS_URL=server.url, REDIS_CIRCUIT_BREAKER_COOLDOWN=0.5)
    with app.app_context():
        cache = app.extensions["rediscache"]
        assert cache.set("a", 1)
        server.kill()
        for _ in range(10):
            assert cache.get("a") is None
        server.start()
        time.sleep(0.6)
        assert cache.set("a", 2)
        assert cache.get("a") == 2


class Clock:
    """An injectable monotonic clock: tests move time instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_lets_one_probe_through():
    changes = []
    clock = Clock()
    breaker = CircuitBreaker("x", threshold=2, cooldown=5, on_change=lambda n, s: changes.append(s),
                             clock=clock)
    breaker.failure()
    assert breaker.allow()
    breaker.failure()
    assert not breaker.allow()
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # everyone else waits for it
    breaker.failure()  # probe failed: open again
    assert not breaker.allow()
    clock.now += 5
    assert breaker.allow()
    breaker.success()
    assert breaker.allow() and breaker.state == "closed"
    assert changes == ["open", "half-open", "open", "half-open", "closed"]


def test_open_breaker_reports_through_the_same_path(make_app):
    handler = Recorder()
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_ERROR_HANDLER=handler,
                   REDIS_CIRCUIT_BREAKER_THRESHOLD=1, REDIS_CIRCUIT_BREAKER_COOLDOWN=60)
    with app.app_context():
        cache = app.extensions["rediscache"]
        cache.get("a")
        cache.get("b")
    assert isinstance(handler.calls[-1]["exception"], CircuitOpenError)


def test_refused_commands_do_not_open_the_breaker(make_app, redis_factory):
    server = redis_factory("--maxmemory", "3mb", "--maxmemory-policy", "noeviction")
    handler = Recorder()
    app = make_app(REDIS_URL=server.url, REDIS_ERROR_HANDLER=handler, REDIS_CIRCUIT_BREAKER_THRESHOLD=2,
                   REDIS_COMPRESS_THRESHOLD=0)
    with app.app_context():
        cache = app.extensions["rediscache"]
        big = "x" * 300_000
        results = [cache.set(f"big{i}", big) for i in range(10)]
        assert results[0] is True and results[-1] is False  # OOM refused, not raised
        assert any(isinstance(c["exception"], redis.ResponseError) for c in handler.calls)
        assert get_state(app).boundaries["cache"].breaker.state == "closed"
        assert cache.get("big0") == big


def test_mask():
    assert mask("failed redis://u:pw@h:1/0 x") == "failed redis://u:***@h:1/0 x"
    assert mask("redis://h:1/0?password=pw&db=1") == "redis://h:1/0?password=***&db=1"
    assert mask("auth with Sup3r failed", ["Sup3r"]) == "auth with *** failed"


def test_pool_waits_neither_succeed_nor_reset_the_failure_count():
    clock = Clock()
    breaker = CircuitBreaker("x", threshold=3, cooldown=5, clock=clock)
    breaker.pool_wait_failed()  # a busy process, healthy server: nothing happens
    assert breaker.failures == 0 and breaker.state == "closed"
    breaker.failure()
    breaker.pool_wait_failed()  # the server is suspect now: a wait counts against it
    assert breaker.failures == 2 and breaker.state == "closed"
    breaker.pool_wait_failed()
    assert breaker.state == "open"
    clock.now += 5
    assert breaker.allow()  # the probe
    breaker.pool_wait_failed()  # the probe could not even get a connection: still not a success
    assert breaker.state != "closed"


def test_fail_open_false_raises_the_redis_error(make_app, caplog):
    handler = Recorder()
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_FAIL_OPEN=False,
                   REDIS_ERROR_HANDLER=handler)
    with app.app_context(), caplog.at_level(logging.WARNING, logger="flask_rediscache"):
        cache = app.extensions["rediscache"]
        with pytest.raises(redis.ConnectionError):
            cache.get("k")
        with pytest.raises(redis.ConnectionError):
            cache.set("k", 1)
    assert len(handler.calls) == 2  # reported before raising
    assert "raising" in caplog.text


def test_fail_open_default_returns_none_and_logs_one_line(make_app, caplog):
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    with app.app_context(), caplog.at_level(logging.WARNING, logger="flask_rediscache"):
        assert app.extensions["rediscache"].get("k") is None
    assert len([r for r in caplog.records if r.name == "flask_rediscache"]) == 1


@pytest.mark.parametrize("signal_name", ["cache_error", "breaker_state"])
def test_raising_signal_receivers_do_not_break_fail_open(make_app, signal_name, caplog):
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_CIRCUIT_BREAKER_THRESHOLD=1)

    def broken(sender, **kwargs):
        raise RuntimeError("receiver bug")

    with app.app_context(), getattr(signals, signal_name).connected_to(broken), \
            caplog.at_level(logging.WARNING, logger="flask_rediscache"):
        cache = app.extensions["rediscache"]
        for _ in range(3):
            assert cache.get("k") is None
            assert cache.set("k", 1) is False
    logged = [r for r in caplog.records if "raised; ignored" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None  # logged once, then ignored


def test_breaker_opens_fast_for_a_frozen_server_under_thread_load(make_app, redis_factory):
    """Issue 12.7: 32 threads, pool 4, pool timeout 0.2 s, Redis frozen with SIGSTOP."""
    server = redis_factory()
    app = make_app(REDIS_URL=server.url, REDIS_POOL_SIZE=4, REDIS_POOL_TIMEOUT=0.2,
                   REDIS_CIRCUIT_BREAKER_COOLDOWN=1)
    breaker = get_state(app).boundaries["cache"].breaker
    states: list[tuple[float, str]] = []

    def on_state(sender, **kw):
        states.append((time.monotonic(), kw["state"]))

    with app.app_context():
        assert app.extensions["rediscache"].set("k", "v")
    stop = threading.Event()
    open_costs: list[float] = []

    def hammer():
        with app.app_context():
            cache = app.extensions["rediscache"]
            while not stop.is_set():
                was_open = breaker.state == "open"
                started = time.monotonic()
                cache.get("k")
                if was_open and breaker.state == "open":
                    open_costs.append(time.monotonic() - started)

    with signals.breaker_state.connected_to(on_state):
        server.pause()
        frozen_at = time.monotonic()
        try:
            threads = [threading.Thread(target=hammer) for _ in range(32)]
            for t in threads:
                t.start()
            time.sleep(4)
            stop.set()
            for t in threads:
                t.join()
        finally:
            server.resume()
    opened = [t for t, s in states if s == "open"]
    assert opened, f"the breaker never opened: {states}"
    assert opened[0] - frozen_at <= 2.0, f"opened after {opened[0] - frozen_at:.2f}s"
    assert "closed" not in [s for _, s in states], f"reported recovery while frozen: {states}"
    open_costs.sort()
    # Wall time, so it includes waiting for the GIL among 32 threads on 2 CPUs (it was
    # 1-2 ms on a loaded machine): the bound tells "skips Redis" from "waits for the
    # pool" (REDIS_POOL_TIMEOUT, 200 ms) with room for the scheduler.
    assert open_costs and open_costs[len(open_costs) // 2] < 0.02, "open-breaker calls are not cheap"


def test_pool_exhaustion_is_its_own_error_and_not_retried(make_app, redis_server):
    handler = Recorder()
    app = make_app(REDIS_URL=redis_server.url, REDIS_POOL_SIZE=1, REDIS_POOL_TIMEOUT=0.1,
                   REDIS_ERROR_HANDLER=handler, REDIS_RECONNECT_ATTEMPTS=3)
    pool = get_state(app).targets["cache"].client.connection_pool
    held = pool.get_connection()
    try:
        with app.app_context():
            started = time.monotonic()
            assert app.extensions["rediscache"].get("k") is None
            took = time.monotonic() - started
    finally:
        pool.release(held)
    assert isinstance(handler.calls[0]["exception"], PoolExhaustedError)
    assert took < 0.3, f"a pool wait was retried: {took:.2f}s"
    assert get_state(app).boundaries["cache"].breaker.failures == 0


@pytest.mark.parametrize("attempts", [0, 1, 3])
def test_retry_count_follows_config(make_app, attempts):
    """redis-py 8 would retry 10 times; we pass REDIS_RECONNECT_ATTEMPTS explicitly.

    A listener that accepts and closes every connection counts the attempts.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.settimeout(0.2)
    accepted = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        app = make_app(REDIS_URL=f"redis://127.0.0.1:{port}/0", REDIS_RECONNECT_ATTEMPTS=attempts,
                       REDIS_RECONNECT_DELAY=0)
        with app.app_context():
            assert app.extensions["rediscache"].get("k") is None
    finally:
        stop.set()
        thread.join()
        listener.close()
    assert len(accepted) == attempts + 1


def test_retrier_never_retries_a_pool_wait_and_retries_a_refused_connect():
    from redis.backoff import NoBackoff

    from flask_rediscache.retrying import RETRIED_ERRORS, CommandRetry, Retrier

    def retrier(attempts):
        return Retrier(attempts, CommandRetry(NoBackoff(), attempts - 1, supported_errors=RETRIED_ERRORS), 0)

    calls = []

    def pool_wait():
        calls.append("pool")
        raise PoolExhaustedError("no connection within 0.1s")

    with pytest.raises(PoolExhaustedError):
        retrier(3)(pool_wait)
    assert calls == ["pool"]

    def refused_twice():
        calls.append("refused")
        if calls.count("refused") < 3:
            raise redis.ConnectionError("refused")
        return "ok"

    assert retrier(3)(refused_twice) == "ok"
    assert calls.count("refused") == 3

    def timeout():
        calls.append("timeout")
        raise redis.TimeoutError("hung")

    with pytest.raises(redis.TimeoutError):
        retrier(3)(timeout)
    assert calls.count("timeout") == 1  # a hung server is not asked again

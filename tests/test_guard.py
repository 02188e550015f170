"""The fail-open guard and circuit breaker against real, failing servers."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import redis

from flask_rediscache import signals
from flask_rediscache.guard import CircuitBreaker, CircuitOpenError, mask_credentials

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
    app = make_app(REDIS_URL=redis_server.url, REDIS_POOL_SIZE=3)
    errors = Recorder()
    app.config["REDIS_ERROR_HANDLER"] = errors
    app.extensions["rediscache_state"].guards["cache"].handler = errors
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


def test_breaker_lets_one_probe_through():
    changes = []
    breaker = CircuitBreaker("x", threshold=2, cooldown=0.05, on_change=lambda n, s: changes.append(s))
    breaker.failure()
    assert breaker.allow()
    breaker.failure()
    assert not breaker.allow()
    time.sleep(0.06)
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # everyone else waits for it
    breaker.failure()  # probe failed: open again
    assert not breaker.allow()
    time.sleep(0.06)
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
        assert app.extensions["rediscache_state"].guards["cache"].breaker.state == "closed"
        assert cache.get("big0") == big


def test_mask_credentials():
    assert mask_credentials("failed redis://u:pw@h:1/0 x") == "failed redis://u:***@h:1/0 x"


@pytest.mark.parametrize("attempts", [0, 1, 3])
def test_retry_count_follows_config(make_app, attempts, monkeypatch):
    """redis-py 8 would retry 10 times; we pass REDIS_RECONNECT_ATTEMPTS explicitly."""
    import redis.connection

    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_RECONNECT_ATTEMPTS=attempts,
                   REDIS_RECONNECT_DELAY=0)
    calls = []
    real = redis.connection.Connection._connect

    def counting(self):
        calls.append(1)
        return real(self)

    monkeypatch.setattr(redis.connection.Connection, "_connect", counting)
    with app.app_context():
        assert app.extensions["rediscache"].get("k") is None
    assert len(calls) == attempts + 1

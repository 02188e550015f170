"""Issue 12's cache items against real servers: lost replies, unsigned integers, dead lock holders."""

from __future__ import annotations

import threading
import time

import pytest

from flask_rediscache.keys import lock_key, make_key
from flask_rediscache.state import get_state

from .proxy import FaultProxy
from .support import Recorder


@pytest.fixture
def proxy(redis_server):
    p = FaultProxy(redis_server.port)
    yield p
    p.close()


@pytest.fixture
def proxied(make_app, proxy):
    handler = Recorder()
    app = make_app(REDIS_URL=proxy.url, REDIS_RECONNECT_ATTEMPTS=3, REDIS_RECONNECT_DELAY=0,
                   REDIS_ERROR_HANDLER=handler)
    with app.app_context():
        yield app.extensions["rediscache"], handler


@pytest.mark.parametrize("timeout", [0, 60], ids=["plain", "pipelined-with-expire"])
def test_inc_whose_reply_is_lost_counts_once(proxied, proxy, redis_server, timeout):
    cache, handler = proxied
    assert cache.inc("hits", timeout=timeout) == 1
    proxy.drop_reply_to(b"INCRBY")
    assert cache.inc("hits", timeout=timeout) is None  # fails open: what a miss returns
    assert proxy.dropped == 1
    assert redis_server.client().get(b"cache:hits") == b"2"  # executed once, not retried
    assert cache.inc("hits", timeout=timeout) == 3
    assert handler.calls and handler.calls[0]["method"] == "inc"


def test_add_whose_reply_is_lost_is_not_retried(proxied, proxy, redis_server):
    cache, handler = proxied
    proxy.drop_reply_to(b"NX")
    assert cache.add("once", "v") is False  # reported as a failure (signal, handler), not "someone else"
    assert handler.calls and handler.calls[0]["method"] == "add"
    stats = redis_server.commandstats()
    assert stats.get("set") == 1  # one SET NX reached the server, no second attempt
    assert cache.get("once") == "v"


def test_lost_reply_to_the_stampede_lock_does_not_wait_on_itself(proxied, proxy):
    cache, _ = proxied
    proxy.drop_reply_to(b"NX")  # the lock's SET NX PX
    started = time.monotonic()
    assert cache.fetch("cold", lambda: "computed", race_condition_ttl=5) == "computed"
    assert time.monotonic() - started < 0.5


def test_idempotent_commands_are_retried_after_a_lost_reply(proxied, proxy):
    cache, handler = proxied
    assert cache.set("k", "v")
    proxy.drop_reply_to(b"GET")
    assert cache.get("k") == "v"  # the retry got it
    assert handler.calls == []


def test_unsigned_integer_at_a_memoized_key_is_a_miss(cache, redis_server):
    calls = []

    @cache.memoize()
    def is_admin(user):
        calls.append(user)
        return False

    assert is_admin("eve") is False
    (key,) = [k for k in redis_server.client().keys(b"cache:memoize:*")]
    redis_server.client().set(key, b"1")  # planted: an unsigned "true"
    assert is_admin("eve") is False
    assert calls == ["eve", "eve"]


def test_unsigned_integer_is_read_by_get_and_inc_only(cache, redis_server):
    redis_server.client().set(b"cache:n", b"41")
    assert cache.get("n") == 41
    assert cache.inc("n") == 42
    assert cache.fetch("n", lambda: "computed") == "computed"  # fetch needs a signed entry


def test_memoized_int_results_are_signed(cache, redis_server):
    @cache.memoize()
    def answer():
        return 42

    assert answer() == 42
    (key,) = redis_server.client().keys(b"cache:memoize:*")
    assert redis_server.client().get(key) != b"42"
    assert answer() == 42


def test_dead_lock_holder_hands_over_to_exactly_one_waiter(cache, app, redis_server):
    """Issue 12.8: the holder died; its lock expires and exactly one of 20 waiters computes."""
    state = get_state(app)
    rkey = make_key(state.settings.namespace, "report")
    redis_server.client().set(lock_key(state.settings.namespace, rkey), b"dead-holder", px=1000)
    computed = []
    results = []

    def compute():
        computed.append(1)
        time.sleep(0.2)
        return "fresh"

    def waiter():
        with app.app_context():
            results.append(app.extensions["rediscache"].fetch("report", compute, race_condition_ttl=1))

    started = time.monotonic()
    threads = [threading.Thread(target=waiter) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - started
    assert len(computed) == 1, f"{len(computed)} waiters computed"
    assert results == ["fresh"] * 20
    assert took < 1 + 0.2 + 0.8, f"waiters took {took:.2f}s"

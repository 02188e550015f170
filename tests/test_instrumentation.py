"""Timed instrumentation signals (Rails' cache_*.active_support events)."""

from __future__ import annotations

import pytest

from flask_rediscache import signals


@pytest.fixture
def events():
    seen = []

    connected = []
    for signal in signals.INSTRUMENTATION:
        def bound(sender, _name=signal.name, **kwargs):
            seen.append((_name.removeprefix("rediscache."), kwargs))
        signal.connect(bound)
        connected.append((signal, bound))
    yield seen
    for signal, bound in connected:
        signal.disconnect(bound)


def by_name(events, name):
    return [payload for event, payload in events if event == name]


def test_every_event_is_received_with_a_positive_duration(cache, events):
    cache.set("a", "one")
    cache.get("a")
    cache.get("missing")
    cache.get_many("a", "missing")
    cache.set_many({"b": 2, "c": 3})
    cache.fetch("f", lambda: "computed")
    cache.fetch_multi(["a", "m1"], lambda miss: {k: k for k in miss})
    cache.has("a")
    cache.inc("n")
    cache.dec("n", 2)
    cache.delete("a")
    cache.delete_many("b", "c")
    cache.delete_matched("f*")
    names = {event for event, _ in events}
    assert names == {"cache-read", "cache-read-multi", "cache-generate", "cache-write", "cache-write-multi",
                     "cache-delete", "cache-delete-multi", "cache-delete-matched", "cache-increment",
                     "cache-decrement", "cache-exist"}
    for event, payload in events:
        assert payload["duration"] > 0, event
        assert payload["purpose"] == "cache" and payload["local"] is False and "error" not in payload
    reads = by_name(events, "cache-read")
    assert [(r["key"], r["hit"], r["operation"]) for r in reads] == [
        ("a", True, "get"), ("missing", False, "get"), ("f", False, "fetch")]
    assert reads[0]["size"] > 0 and reads[1]["size"] == 0
    multi = by_name(events, "cache-read-multi")
    assert multi[0]["key"] == ["a", "missing"] and multi[0]["hits"] == ["a"]
    assert multi[0]["misses"] == ["missing"]
    assert multi[1]["operation"] == "fetch_multi" and multi[1]["misses"] == ["m1"]
    generated = by_name(events, "cache-generate")
    assert [g["key"] for g in generated] == ["f", ["m1"]]
    writes = by_name(events, "cache-write")
    assert [w["key"] for w in writes] == ["a", "f"] and all(w["size"] > 0 for w in writes)
    assert [w["key"] for w in by_name(events, "cache-write-multi")] == [["b", "c"], ["m1"]]
    assert by_name(events, "cache-exist")[0]["exist"] is True
    assert by_name(events, "cache-increment")[0]["amount"] == 1
    assert by_name(events, "cache-decrement")[0]["amount"] == 2
    assert by_name(events, "cache-delete")[0]["key"] == "a"
    assert by_name(events, "cache-delete-multi")[0]["key"] == ["b", "c"]
    assert by_name(events, "cache-delete-matched")[0]["key"] == "f*"


def test_memoize_and_plain_api_name_keys_alike(cache, events):
    @cache.memoize(timeout=60)
    def square(x):
        return x * x

    square(3)
    square(3)
    key = square.make_cache_key(square.uncached, 3)
    reads = by_name(events, "cache-read")
    assert [(r["key"], r["hit"]) for r in reads] == [(key, False), (key, True)]
    assert [g["key"] for g in by_name(events, "cache-generate")] == [key]
    assert [w["key"] for w in by_name(events, "cache-write")] == [key]
    events.clear()
    cache.get(key)  # the same key through the plain API: the same form
    assert by_name(events, "cache-read")[0]["key"] == key


def test_cached_view_generate_event(app, events):
    cache = app.extensions["rediscache"]

    @app.get("/page")
    @cache.cached(timeout=60)
    def page():
        return "hello"

    client = app.test_client()
    assert client.get("/page").data == b"hello"
    assert client.get("/page").data == b"hello"
    assert [g["key"] for g in by_name(events, "cache-generate")] == ["view//page"]
    assert [r["hit"] for r in by_name(events, "cache-read")] == [False, True]


def test_failed_open_events_carry_the_error(make_app, redis_factory, events):
    server = redis_factory()
    app = make_app(REDIS_URL=server.url)
    cache = app.extensions["rediscache"]
    server.kill()
    with app.app_context():
        assert cache.get("k") is None
        assert cache.set("k", 1) is False
        assert cache.get_many("a", "b") == [None, None]
    for event, payload in events:
        assert payload["error"] is not None and payload["duration"] > 0, event
    assert by_name(events, "cache-read")[0]["hit"] is False


def test_a_raising_receiver_never_breaks_the_call(cache):
    def broken(sender, **kwargs):
        raise RuntimeError("receiver bug")

    signals.cache_read.connect(broken)
    try:
        cache.set("k", 1)
        assert cache.get("k") == 1
    finally:
        signals.cache_read.disconnect(broken)


def test_nothing_is_timed_without_receivers(cache, monkeypatch):
    import flask_rediscache.cache as cache_module

    def boom(*args, **kwargs):
        raise AssertionError("timed without a receiver")

    monkeypatch.setattr(cache_module.Cache, "_observed", boom)
    for signal in signals.INSTRUMENTATION:  # receivers other tests (the docs' snippets) left connected
        monkeypatch.setattr(signal, "receivers", {})
    cache.set("k", "v")
    assert cache.get("k") == "v" and cache.get_many("k") == ["v"] and cache.has("k")
    cache.fetch_multi(["k", "x"], lambda miss: {"x": 2})
    cache.delete("k")


def test_the_error_handler_sees_the_real_miss_value_while_timed(make_app, redis_factory, events):
    from .support import Recorder

    handler = Recorder()
    server = redis_factory()
    app = make_app(REDIS_URL=server.url, REDIS_ERROR_HANDLER=handler, REDIS_CIRCUIT_BREAKER_THRESHOLD=2)
    cache = app.extensions["rediscache"]
    server.kill()
    with app.app_context():
        assert cache.get("k") is None and cache.set("k", "v") is False
        assert cache.get("k") is None  # the breaker is open now: nothing sent
    assert [c["returning"] for c in handler.calls] == [None, False, None]
    errors = [payload["error"] for _, payload in events if "error" in payload]
    assert len(errors) == 3 and type(errors[2]).__name__ == "CircuitOpenError"

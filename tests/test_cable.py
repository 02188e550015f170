"""Broadcast and server-sent event streams (flask_rediscache/cable*.py).

Against real redis-server processes (and ``memory://``), with the app served
by werkzeug's threaded server on a loopback port and read by a raw-socket SSE
client (tests/test_cable_helpers.py), so disconnects and ``Last-Event-ID``
are what a browser sends. The gunicorn, restart and browser acceptance tests
live in test_cable_gunicorn.py and test_browser.py.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask, request
from werkzeug.serving import make_server

from flask_rediscache import signals
from flask_rediscache.cable import Cable, check_channel, encode
from flask_rediscache.cable_stream import sse_message
from flask_rediscache.cable_subscription import parse_id
from flask_rediscache.state import get_state

from .servers import RedisServer
from .test_cable_helpers import SSEClient, wait_for


def cable_of(app: Flask) -> Cable:
    return get_state(app).extras["cable"]  # type: ignore[no-any-return]


@pytest.fixture
def live(make_app: Callable[..., Flask]) -> Iterator[Callable[..., tuple[Flask, int]]]:
    """``live(**config) -> (app, port)``: an app with ``GET /s/<channel>`` served on a free port.

    Query parameters ``hb`` and ``max`` set the stream's heartbeat and lifetime.
    """
    servers: list[Any] = []
    apps: list[Flask] = []

    def start(**config: Any) -> tuple[Flask, int]:
        app = make_app(**config)
        cache = app.extensions["rediscache"]

        @app.get("/s/<channel>")
        def stream(channel: str) -> Any:
            return cache.stream(channel, heartbeat=float(request.args.get("hb", 15)),
                                max_seconds=float(request.args.get("max", 60)))

        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        apps.append(app)
        return app, server.server_port

    yield start
    for app in apps:
        cable_of(app).close()
    for server in servers:
        server.shutdown()
        server.server_close()


def blocked_xreads(server: RedisServer) -> list[dict[str, Any]]:
    """Connections blocked in XREAD right now (flag ``b``)."""
    return [c for c in server.client().client_list() if c.get("cmd") == "xread" and "b" in c.get("flags", "")]


# -- publishing ----------------------------------------------------------------
def test_broadcast_appends_json_to_a_bounded_expiring_stream(app, cache, redis_server):
    redis_server.reset_stats()
    message_id = cache.broadcast("news", {"title": "Hello", "n": 1}, event="headline")
    assert message_id is not None
    parse_id(message_id)
    raw = redis_server.client()
    key = cable_of(app).key("news")
    assert key == b"{cache-cable}:news"  # one hash-tagged prefix: one slot on a cluster
    [(entry_id, fields)] = raw.xrange(key)
    assert entry_id.decode() == message_id
    assert json.loads(fields[b"d"]) == {"title": "Hello", "n": 1}
    assert fields[b"e"] == b"headline"
    assert 0 < raw.ttl(key) <= 86_400
    stats = redis_server.commands_since_reset()
    assert stats.get("xadd") == 1 and stats.get("expire") == 1


def test_history_is_trimmed_to_about_redis_cable_history(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_CABLE_HISTORY=50)
    cache = app.extensions["rediscache"]
    with app.app_context():
        for n in range(1000):
            cache.broadcast("ticks", n)
    length = redis_server.client().xlen(cable_of(app).key("ticks"))
    assert 50 <= length <= 50 + 100  # MAXLEN ~ trims whole nodes (100 entries each)


def test_ids_increase_and_data_round_trips(cache):
    values = [None, True, 3, 2.5, "ünï\ncode", [1, {"a": None}]]
    ids = [cache.broadcast("mixed", value) for value in values]
    assert ids == sorted(ids, key=parse_id) and len(set(ids)) == len(ids)
    assert cache.broadcasts("mixed") == values


def test_bad_channel_event_or_data_raise(cache):
    for channel in ("", "has space", "__wake__", "x" * 300, 42, "tab\there"):
        with pytest.raises(ValueError, match="channel"):
            cache.broadcast(channel, 1)
    with pytest.raises(ValueError, match="event"):
        cache.broadcast("ok", 1, event="two words")
    with pytest.raises(TypeError, match="JSON"):
        cache.broadcast("ok", object())
    with pytest.raises(TypeError, match="JSON"):
        cache.broadcast("ok", float("nan"))
    assert check_channel("user:42/orders") == "user:42/orders"


def test_broadcasts_lists_what_was_broadcast_in_testing(make_app):
    app = make_app(REDIS_URL="memory://cable-record")
    cache = app.extensions["rediscache"]
    with app.app_context():
        cache.broadcast("a", {"x": 1})
        cache.broadcast("b", 2)
        cache.broadcast("a", [3])
        assert cache.broadcasts("a") == [{"x": 1}, [3]]
        assert cache.broadcasts("b") == [2]
        assert cache.broadcasts("none") == []
        app.testing = False
        with pytest.raises(RuntimeError, match="testing"):
            cache.broadcasts("a")


def test_sse_message_format():
    fields = encode({"a": "x\ny"}, "stock")
    assert sse_message((b"5-1", fields)) == b'id: 5-1\nevent: stock\ndata: {"a":"x\\ny"}\n\n'
    # data that someone else wrote with raw newlines still makes one event
    assert sse_message((b"5-2", {b"d": b"1\n2"})) == b"id: 5-2\ndata: 1\ndata: 2\n\n"


# -- streaming -----------------------------------------------------------------------
def test_stream_sends_retry_at_once_then_live_messages(live, redis_server):
    app, port = live(REDIS_URL=redis_server.url)
    cache = app.extensions["rediscache"]
    client = SSEClient(port, "/s/news")
    client.wait_ready()
    assert client.headers["content-type"].startswith("text/event-stream")
    assert "no-cache" in client.headers["cache-control"]
    assert client.retry == 2000
    with app.app_context():
        first = cache.broadcast("news", {"n": 1}, event="headline")
        second = cache.broadcast("news", {"n": 2})
        cache.broadcast("other", {"n": 3})
    events = client.collect(2)
    assert [(e.id, e.event, json.loads(e.data)) for e in events] == [
        (first, "headline", {"n": 1}), (second, None, {"n": 2})]
    assert client.drain() == []
    client.close()


def test_reconnect_with_last_event_id_gets_exactly_the_missed_messages_once_in_order(live, redis_server):
    app, port = live(REDIS_URL=redis_server.url)
    cache = app.extensions["rediscache"]
    client = SSEClient(port, "/s/feed")
    client.wait_ready()
    with app.app_context():
        cache.broadcast("feed", "before")
    seen = client.next()
    assert seen.data == '"before"'
    client.close()
    wait_for(lambda: cable_of(app).reader.watched() == {}, timeout=5)

    with app.app_context():
        missed = [cache.broadcast("feed", {"n": n}) for n in range(10)]
    again = SSEClient(port, "/s/feed", last_event_id=seen.id)
    replayed = again.collect(10)
    assert [e.id for e in replayed] == missed
    assert [json.loads(e.data)["n"] for e in replayed] == list(range(10))
    with app.app_context():
        live_id = cache.broadcast("feed", "live")
    [after] = again.collect(1)
    assert after.id == live_id
    assert again.drain() == []  # nothing twice
    again.close()


def test_last_event_id_in_the_query_string_and_bad_ids(live, redis_server):
    app, port = live(REDIS_URL=redis_server.url)
    cache = app.extensions["rediscache"]
    with app.app_context():
        first = cache.broadcast("q", 1)
        cache.broadcast("q", 2)
    client = SSEClient(port, f"/s/q?last_event_id={first}")
    assert [e.data for e in client.collect(1)] == ["2"]
    client.close()
    # A malformed id is ignored (no replay), an id from the future replays nothing and still streams.
    for bad in ("garbage", "99999999999999-0"):
        other = SSEClient(port, "/s/q", last_event_id=bad)
        other.wait_ready()
        assert other.drain() == []
        with app.app_context():
            new = cache.broadcast("q", bad)
        assert [e.id for e in other.collect(1)] == [new]
        other.close()


def test_many_streams_share_one_blocking_connection(live, redis_server):
    app, port = live(REDIS_URL=redis_server.url)
    cache = app.extensions["rediscache"]
    clients = [SSEClient(port, f"/s/room{n % 5}") for n in range(50)]
    for client in clients:
        client.wait_ready()
    assert wait_for(lambda: sum(cable_of(app).reader.watched().values()) == 50)
    with app.app_context():
        ids = {n: cache.broadcast(f"room{n}", n) for n in range(5)}
    for index, client in enumerate(clients):
        [event] = client.collect(1)
        assert event.id == ids[index % 5]
    assert len(wait_for(lambda: blocked_xreads(redis_server))) == 1
    for client in clients:
        client.close()


def test_resp3_connections_work_too(live, redis_server):
    app, port = live(REDIS_URL=redis_server.url, REDIS_CONNECTION_OPTIONS={"protocol": 3})
    cache = app.extensions["rediscache"]
    with app.app_context():
        first = cache.broadcast("r3", 1)
    client = SSEClient(port, "/s/r3", last_event_id="0-1")
    client.wait_ready()
    with app.app_context():
        second = cache.broadcast("r3", 2)
    assert [(e.id, e.data) for e in client.collect(2)] == [(first, "1"), (second, "2")]
    client.close()


def test_a_channel_joined_later_is_read_without_waiting_for_the_block_timeout(live, redis_server):
    app, port = live(REDIS_URL=redis_server.url)
    cache = app.extensions["rediscache"]
    first = SSEClient(port, "/s/early")
    first.wait_ready()
    assert wait_for(lambda: blocked_xreads(redis_server))  # the reader blocks on "early" only
    late = SSEClient(port, "/s/late")
    late.wait_ready()
    time.sleep(0.05)
    started = time.perf_counter()
    with app.app_context():
        cache.broadcast("late", "hi")
    late.next(timeout=3)
    assert time.perf_counter() - started < 1  # woken by the wake stream, not the 5 s block
    first.close()
    late.close()


def test_streams_opening_while_messages_flow_miss_nothing(live, redis_server):
    """Each stream gets every message broadcast after its retry: line, none twice."""
    app, port = live(REDIS_URL=redis_server.url)
    cache = app.extensions["rediscache"]
    stop = threading.Event()
    sent: list[tuple[float, str]] = []

    def publish() -> None:
        with app.app_context():
            n = 0
            while not stop.is_set():
                sent.append((time.perf_counter(), cache.broadcast("busy", n)))
                n += 1
                time.sleep(0.002)

    publisher = threading.Thread(target=publish)
    publisher.start()
    clients = []
    for _ in range(15):
        client = SSEClient(port, "/s/busy")
        client.wait_ready()
        clients.append(client)
        time.sleep(0.02)
    time.sleep(0.2)
    stop.set()
    publisher.join()
    time.sleep(0.3)
    for client in clients:
        got = [e.id for e in client.drain(0)]
        assert len(got) == len(set(got))
        assert got == sorted(got, key=parse_id)
        expected = [mid for at, mid in sent if at > client.first_byte_at]  # type: ignore[operator]
        missing = set(expected) - set(got)
        assert not missing, f"{len(missing)} of {len(expected)} missed"
        client.close()


def test_heartbeats_and_max_lifetime(live, redis_server):
    app, port = live(REDIS_URL=redis_server.url)
    client = SSEClient(port, "/s/quiet?hb=0.2&max=1.5")
    client.wait_ready()
    assert client.ended.wait(5), "the stream outlived its max lifetime"
    elapsed = time.perf_counter() - client.started
    assert 1.2 <= elapsed < 3
    assert client.comments.count("heartbeat") >= 4
    assert wait_for(lambda: cable_of(app).reader.watched() == {})


def test_a_client_that_goes_away_is_unsubscribed(live, redis_server):
    app, port = live(REDIS_URL=redis_server.url)
    clients = [SSEClient(port, "/s/gone?hb=0.2") for _ in range(3)]
    for client in clients:
        client.wait_ready()
    assert wait_for(lambda: cable_of(app).reader.watched() == {"gone": 3})
    for client in clients[:2]:
        client.close()
    # werkzeug notices at the next heartbeat write; gunicorn's socket is checked every second
    assert wait_for(lambda: cable_of(app).reader.watched() == {"gone": 1}, timeout=5)
    clients[2].close()
    assert wait_for(lambda: cable_of(app).reader.watched() == {}, timeout=5)
    # ... and the reader thread lets go of its connection once idle
    cable_of(app).reader.idle_exit = 0.1
    with app.app_context():
        app.extensions["rediscache"].broadcast("gone", "wake up")  # any message: the reader loops
    assert wait_for(lambda: not cable_of(app).reader.running, timeout=10)
    assert wait_for(lambda: not blocked_xreads(redis_server), timeout=10)


def test_memory_url_broadcasts_and_streams_in_process(live):
    app, port = live(REDIS_URL="memory://cable-memory")
    cache = app.extensions["rediscache"]
    client = SSEClient(port, "/s/local")
    client.wait_ready()
    with app.app_context():
        message_id = cache.broadcast("local", {"ok": True})
    [event] = client.collect(1)
    assert event.id == message_id and json.loads(event.data) == {"ok": True}
    client.close()
    with app.app_context():
        missed = [cache.broadcast("local", n) for n in range(3)]
    again = SSEClient(port, "/s/local", last_event_id=message_id)
    assert [e.id for e in again.collect(3)] == missed
    again.close()


# -- failure ---------------------------------------------------------------------------
def test_broadcast_fails_open_when_redis_is_down(redis_factory, make_app, caplog):
    server = redis_factory()
    app = make_app(REDIS_URL=server.url)
    cache = app.extensions["rediscache"]
    errors: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        errors.append(kwargs)

    server.kill()
    with signals.cache_error.connected_to(receiver), caplog.at_level(logging.WARNING, "flask_rediscache"), \
            app.app_context():
        assert cache.broadcast("down", {"n": 1}) is None
        assert cache.broadcasts("down") == [{"n": 1}]  # the app did broadcast; Redis lost it
    assert errors and errors[0]["method"] == "broadcast" and errors[0]["returning"] is None
    assert any("broadcast on cable Redis" in r.getMessage() for r in caplog.records)


def test_broadcast_raises_with_fail_open_off(redis_factory, make_app):
    server = redis_factory()
    app = make_app(REDIS_URL=server.url, REDIS_FAIL_OPEN=False)
    server.kill()
    with app.app_context(), pytest.raises(redis.ConnectionError):
        app.extensions["rediscache"].broadcast("down", 1)


def test_a_stream_opened_while_redis_is_down_ends_with_200(live, redis_factory):
    server = redis_factory()
    app, port = live(REDIS_URL=server.url)
    server.kill()
    client = SSEClient(port, "/s/down")
    client.wait_ready()
    assert client.ended.wait(5)
    assert client.status == 200 and client.retry == 2000  # the browser reconnects and replays
    assert any("unavailable" in c for c in client.comments)
    assert wait_for(lambda: cable_of(app).reader.watched() == {})


def test_streams_resume_after_redis_restarts(live, redis_factory):
    server = redis_factory()
    app, port = live(REDIS_URL=server.url, REDIS_CIRCUIT_BREAKER_COOLDOWN=0.3)
    cache = app.extensions["rediscache"]
    client = SSEClient(port, "/s/phoenix")
    client.wait_ready()
    with app.app_context():
        cache.broadcast("phoenix", "one")
    assert client.next().data == '"one"'
    server.kill()
    with app.app_context():
        assert cache.broadcast("phoenix", "lost") is None
    time.sleep(0.5)
    server.start()

    def delivered() -> bool:
        with app.app_context():
            cache.broadcast("phoenix", "two")
        try:
            return client.next(timeout=0.5).data == '"two"'
        except Exception:
            return False

    assert wait_for(delivered, timeout=15, interval=0.1)
    assert not client.ended.is_set()
    client.close()


# -- client_for ------------------------------------------------------------------------
def test_client_for_returns_each_purposes_pooled_client(make_app, redis_server, redis_factory):
    queue_server = redis_factory()
    app = make_app(REDIS_URL=redis_server.url, REDIS_PURPOSES=["queue"], REDIS_QUEUE_URL=queue_server.url)
    cache = app.extensions["rediscache"]
    with app.app_context():
        assert cache.client_for("cache") is cache.client
        assert cache.client_for("session") is cache.client  # same URL: one pool
        assert cache.client_for("cable") is cache.client
        queue = cache.client_for("queue")
        assert queue is not cache.client
        queue.set("job", "1")
        assert queue_server.client().get("job") == b"1"
        assert redis_server.client().get("job") is None
        with pytest.raises(KeyError, match="queue"):
            cache.client_for("jobs")


# -- flask redis broadcast ----------------------------------------------------------------
def run_cli(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["redis", *args])


def test_cli_broadcast_reaches_open_streams(live, redis_server):
    app, port = live(REDIS_URL=redis_server.url)
    client = SSEClient(port, "/s/product:3")
    client.wait_ready()
    result = run_cli(app, "broadcast", "product:3", '{"stock": 2}', "--event", "stock")
    assert result.exit_code == 0, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith("Broadcast to product:3 on redis://127.0.0.1:") and " id " in line
    [event] = client.collect(1)
    assert event.id == line.rsplit(" ", 1)[1]
    assert (event.event, json.loads(event.data)) == ("stock", {"stock": 2})
    client.close()


def test_cli_broadcast_errors_are_one_line(redis_factory, make_app):
    server = redis_factory(password="pa55-w0rd")
    app = make_app(REDIS_URL=server.url)
    for args, needle in ((("news", "{not json"), "not valid JSON"),
                         (("has space", "1"), "channel"),
                         (("news", "1", "--event", "a b"), "event")):
        result = run_cli(app, "broadcast", *args)
        assert result.exit_code == 1, result.output
        [line] = result.output.strip().splitlines()
        assert line.startswith("Error:") and needle in line and "Traceback" not in result.output
    server.kill()
    result = run_cli(app, "broadcast", "news", "1")
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: cable Redis") and "connection refused" in line
    assert "pa55-w0rd" not in result.output


def test_cli_broadcast_on_memory_says_it_is_per_process(make_app):
    app = make_app(REDIS_URL="memory://cable-cli")
    result = run_cli(app, "broadcast", "news", "[1, 2]")
    assert result.exit_code == 0, result.output
    assert "per-process" in result.output and "Broadcast to news on memory://cable-cli" in result.output

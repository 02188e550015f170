"""Broadcast acceptance under gunicorn (gthread): cross-process latency, one reader
connection for 200 streams, Redis killed and restarted under open streams, shutdown.

The app is tests/test_cable_app.py; the "browsers" are raw-socket SSE clients
(tests/test_cable_helpers.py) in this process, which also broadcasts: every
message crosses from this process through Redis to a gunicorn worker.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from flask_rediscache import RedisCache

from .servers import RedisServer
from .test_cable_helpers import Gunicorn, SSEClient, percentile, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[Any]:
    started: list[Gunicorn] = []

    def start(redis_url: str, **kwargs: Any) -> Gunicorn:
        env = {"REDIS_URL": redis_url, **kwargs.pop("env", {})}
        server = Gunicorn(tmp_path, env, **kwargs)
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()


def broadcaster(url: str, **config: Any) -> tuple[Any, RedisCache]:
    from flask import Flask

    app = Flask("broadcaster")
    app.config.update(SECRET_KEY="b", REDIS_URL=url, **config)
    return app, RedisCache(app)


def open_on_every_worker(server: Gunicorn, channel: str, per_worker: int, workers: int = 2,
                         attempts: int = 60) -> dict[int, list[SSEClient]]:
    """Open streams until each of ``workers`` workers serves ``per_worker`` of them."""
    by_pid: dict[int, list[SSEClient]] = {}
    for _ in range(attempts):
        client = SSEClient(server.port, f"/stream/{channel}")
        client.wait_ready()
        pid = int(client.headers["x-pid"])
        if len(by_pid.get(pid, [])) >= per_worker:
            client.close()
        else:
            by_pid.setdefault(pid, []).append(client)
        if len(by_pid) == workers and all(len(v) == per_worker for v in by_pid.values()):
            return by_pid
    spread = {pid: len(group) for pid, group in by_pid.items()}
    pytest.fail(f"streams did not spread over {workers} workers: {spread}")


def test_cross_process_delivery_p99_under_50ms(redis_server, gunicorn):
    server = gunicorn(redis_server.url, workers=2, threads=8)
    by_pid = open_on_every_worker(server, "bench", per_worker=2)
    clients = [c for group in by_pid.values() for c in group]
    app, cache = broadcaster(redis_server.url)
    latencies: list[float] = []
    with app.app_context():
        for n in range(300):
            sent = time.perf_counter()
            message_id = cache.broadcast("bench", {"n": n})
            assert message_id is not None
            for client in clients:
                event = client.next(timeout=5)
                assert event.id == message_id
                latencies.append((event.at - sent) * 1000)
            time.sleep(0.002)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    print(f"\ncross-process delivery over {len(latencies)} deliveries to {len(clients)} streams in "
          f"{len(by_pid)} gunicorn workers: p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(latencies):.2f} ms")
    assert p99 < 50

    # A broadcast made inside one worker reaches the streams of the other one too.
    answer = requests.post(f"{server.base}/broadcast/bench", json={"from": "worker"}, timeout=5).json()
    for client in clients:
        event = client.next(timeout=5)
        assert event.id == answer["id"] and json.loads(event.data) == {"from": "worker"}
    assert {int(client.headers["x-pid"]) for client in clients} - {answer["pid"]}, "no other worker"
    for client in clients:
        client.close()


def test_200_streams_in_one_worker_share_one_blocking_connection(redis_server, gunicorn):
    server = gunicorn(redis_server.url, workers=1, threads=220, env={"REDIS_POOL_SIZE": "5"})
    [worker] = psutil.Process(server.proc.pid).children()
    rss_before = worker.memory_info().rss
    clients = [SSEClient(server.port, f"/stream/room{n % 20}") for n in range(200)]
    for client in clients:
        client.wait_ready()
    state = requests.get(f"{server.base}/cable", timeout=5).json()
    assert sum(state["watched"].values()) == 200 and len(state["watched"]) == 20
    app, cache = broadcaster(redis_server.url)
    with app.app_context():
        ids = {n: cache.broadcast(f"room{n}", n) for n in range(20)}
    for index, client in enumerate(clients):
        assert client.next(timeout=10).id == ids[index % 20]

    listed = redis_server.client().client_list()
    blocked = [c for c in listed if c.get("cmd") == "xread" and "b" in c.get("flags", "")]
    worker_connections = len([c for c in worker.net_connections("tcp")
                              if c.raddr and c.raddr.port == redis_server.port])
    rss_after = worker.memory_info().rss
    threads = worker.num_threads()
    print(f"\n200 open streams in one worker: {len(blocked)} blocked XREAD connection(s), "
          f"{worker_connections} Redis connection(s) in all, {threads} threads "
          f"(gthread pool 220), RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB")
    assert len(blocked) == 1
    assert worker_connections <= 5 + 1  # the pool (REDIS_POOL_SIZE) plus the reader
    assert threads <= 220 + 10  # gunicorn's pool threads + the reader + a few of gunicorn's own
    assert rss_after - rss_before < 60 * 2**20
    for client in clients:
        client.close()
    assert wait_for(lambda: requests.get(f"{server.base}/cable", timeout=5).json()["watched"] == {},
                    timeout=10)


def test_redis_killed_and_restarted_under_open_streams(redis_factory, gunicorn):
    redis_server: RedisServer = redis_factory()
    env = {"REDIS_CIRCUIT_BREAKER_COOLDOWN": "0.5", "CABLE_HEARTBEAT": "1"}
    server = gunicorn(redis_server.url, workers=2, threads=16, env=env)
    by_pid = open_on_every_worker(server, "alerts", per_worker=3)
    clients = [c for group in by_pid.values() for c in group]
    app, cache = broadcaster(redis_server.url, REDIS_CIRCUIT_BREAKER_COOLDOWN=0.5)
    with app.app_context():
        before = cache.broadcast("alerts", "before")
    last_seen = {}
    for client in clients:
        event = client.next()
        assert event.id == before
        last_seen[client] = event.id

    redis_server.kill()
    statuses: list[int] = []
    for _ in range(3):  # broadcasts during the outage: the page answers, the id is None
        answer = requests.post(f"{server.base}/broadcast/alerts", json="during", timeout=10)
        statuses.append(answer.status_code)
        assert answer.json()["id"] is None
    # a stream opened during the outage is a 200 that ends at once (the browser retries)
    during = SSEClient(server.port, "/stream/alerts")
    during.wait_ready()
    assert during.ended.wait(10) and during.status == 200
    statuses.append(during.status)  # type: ignore[arg-type]
    time.sleep(1)
    redis_server.start()

    with app.app_context():
        after = wait_for(lambda: cache.broadcast("alerts", "after"), timeout=10, interval=0.2)
    assert after
    # Every stream gets "after": live if it survived, else through a reconnect with Last-Event-ID.
    for client in clients:
        current = client
        deadline = time.monotonic() + 20
        got = None
        while time.monotonic() < deadline and got is None:
            try:
                event = current.next(timeout=0.5)
                if event.data == '"after"':
                    got = event
            except Exception:
                if current.ended.is_set():  # ended: reconnect the way EventSource does
                    current = SSEClient(server.port, "/stream/alerts", last_event_id=last_seen[client])
                    current.wait_open()
                    statuses.append(current.status)  # type: ignore[arg-type]
                elif time.monotonic() > deadline - 15:
                    with app.app_context():  # the reader may be backing off: send it again
                        cache.broadcast("alerts", "after")
        assert got is not None, "a stream neither resumed nor replayed"
        current.close()
    assert all(status < 500 for status in statuses), statuses
    log = server.log_tail(20000)
    # the outage was logged (one line per 10 s per worker: the reader's or a broadcast's)
    assert "on cable Redis" in log and "failing open" in log
    assert " 500 " not in log and "Traceback" not in log


def test_graceful_shutdown_does_not_wait_on_open_streams(redis_server, gunicorn):
    server = gunicorn(redis_server.url, workers=1, threads=8, env={"CABLE_MAX_SECONDS": "600"})
    clients = [SSEClient(server.port, "/stream/forever") for _ in range(4)]
    for client in clients:
        client.wait_ready()
    started = time.monotonic()
    server.stop()
    elapsed = time.monotonic() - started
    print(f"\ngunicorn stopped in {elapsed:.1f} s with 4 open streams (graceful timeout 3 s)")
    assert elapsed < 3 + 3
    for client in clients:
        assert client.ended.wait(5)

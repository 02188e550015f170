"""The process near-cache (``REDIS_LOCAL_CACHE = "process"``) under gunicorn
``--preload`` (gthread, 2 workers × 4 threads): fork safety and cross-process
invalidation, end to end.

The app is tests/local_cache_app.py. Each worker must open its own tracking
connection after the fork (never use one the master opened while preloading),
and a write made by another process (a plain RedisCache app in this test) must
show in every worker's responses within :data:`VISIBLE_WITHIN`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from .local_cache_app import cache, create_app, load_setting
from .servers import RedisServer
from .test_cable_helpers import ROOT, Gunicorn
from .topology_servers import wait_until

pytestmark = pytest.mark.slow

WORKERS, THREADS = 2, 4
VISIBLE_WITHIN = 0.1  # seconds from the write's return to every worker showing it
ROUNDS = 10


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[Any]:
    started: list[Gunicorn] = []

    def start(redis_url: str, env: dict[str, str]) -> Gunicorn:
        server = Gunicorn(tmp_path, {"REDIS_URL": redis_url, **env}, app="tests.local_cache_app:create_app()",
                          chdir=ROOT, workers=WORKERS, threads=THREADS,
                          extra=("--preload", "--keep-alive", "30"))
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()


def sessions_on_every_worker(base: str, attempts: int = 100) -> dict[int, requests.Session]:
    """One keep-alive session per worker (a connection stays with the worker that accepted it)."""
    by_pid: dict[int, requests.Session] = {}
    for _ in range(attempts):
        session = requests.Session()
        pid = session.get(f"{base}/setting/color", timeout=5).json()["pid"]
        if pid in by_pid:
            session.close()
        else:
            by_pid[pid] = session
        if len(by_pid) == WORKERS:
            return by_pid
    pytest.fail(f"requests did not reach {WORKERS} workers: {sorted(by_pid)}")


def ask(base: str, pid: int, session: requests.Session) -> dict[str, Any]:
    answer: dict[str, Any] = session.get(f"{base}/setting/color", timeout=5).json()
    assert answer["pid"] == pid, "a keep-alive connection changed worker"
    return answer


def redis_ports(pid: int, redis_port: int) -> set[int]:
    """Local ports of the process's TCP connections to Redis (inherited sockets included)."""
    return {c.laddr.port for c in psutil.Process(pid).net_connections("tcp")
            if c.raddr and c.raddr.port == redis_port}


@pytest.mark.parametrize("master_read", [False, True], ids=["master-idle", "master-tracking"])
def test_preloaded_workers_track_on_their_own_and_see_other_writes(redis_factory, gunicorn, master_read):
    redis_server: RedisServer = redis_factory()
    raw = redis_server.client()
    raw.set("db:color", 1)
    server = gunicorn(redis_server.url, {"PRELOAD_READ": "1" if master_read else "0"})
    master = server.proc.pid
    pubsub = raw.client_list(_type="pubsub")
    assert len(pubsub) == (1 if master_read else 0), pubsub  # only the master's, if it read

    by_pid = sessions_on_every_worker(server.base)
    assert set(by_pid) == set(server.worker_pids())
    # Tracking starts on a worker's first read; from then on a repeat read is a local hit.
    for pid, session in by_pid.items():
        wait_until(lambda pid=pid, session=session: ask(server.base, pid, session)["tracking"], 5,
                   message=f"tracking in worker {pid}")
        first = ask(server.base, pid, session)
        second = ask(server.base, pid, session)
        assert first["setting"]["value"] == second["setting"]["value"] == 1
        assert second["hits"] >= first["hits"] + 2, "the repeat read was not served locally"

    # -- one tracking connection per worker, none shared with the master --------------------
    pubsub_ports = {int(c["addr"].rsplit(":", 1)[1]) for c in raw.client_list(_type="pubsub")}
    master_ports = redis_ports(master, redis_server.port)
    own = {pid: (redis_ports(pid, redis_server.port) & pubsub_ports) - master_ports for pid in by_pid}
    print(f"\npubsub connections {sorted(pubsub_ports)}; master {master} holds "
          f"{sorted(master_ports & pubsub_ports)}; workers' own: {own}")
    assert len(pubsub_ports) == WORKERS + (1 if master_read else 0)
    assert len(master_ports & pubsub_ports) == (1 if master_read else 0)
    assert all(len(ports) == 1 for ports in own.values()), own
    assert len(set.union(*own.values())) == WORKERS, "two workers share a tracking connection"

    # -- another process writes: every worker shows it within VISIBLE_WITHIN ---------------
    # Each worker is polled by its own thread from the moment the write returned. A request
    # takes a few ms here (most of it HTTP), so the rule checked is on when requests started:
    # every worker answered the new value to a request it got within VISIBLE_WITHIN of the write
    # (and, polled back to back, every later one too).
    writer = create_app(redis_server.url, local_cache=False)
    new_from: list[float] = []  # per worker and write: start of its first request answered new
    seen_after: list[float] = []  # the same request's end

    def poll(pid: int, session: requests.Session, value: int, written: float) -> tuple[float, float]:
        while True:
            started = time.perf_counter()
            answer = ask(server.base, pid, session)
            ended = time.perf_counter()
            if answer["setting"]["value"] == value and answer["flag"] == {"n": value}:
                return started - written, ended - written
            # the old value, never anything else
            assert answer["setting"]["value"] in (value - 1, value), answer
            assert answer["flag"] in (None if value == 2 else {"n": value - 1}, {"n": value}), answer
            assert ended - written < 2, f"worker {pid} never showed {value}"

    with ThreadPoolExecutor(WORKERS) as pool:
        for value in range(2, ROUNDS + 2):
            raw.set("db:color", value)
            with writer.app_context():
                assert cache.set("flag", {"n": value})
                assert cache.delete_memoized(load_setting, "color") == 1
            written = time.perf_counter()
            futures = [pool.submit(poll, pid, session, value, written) for pid, session in by_pid.items()]
            for future in futures:
                started, ended = future.result()
                new_from.append(started)
                seen_after.append(ended)
            for pid, session in by_pid.items():  # the new value is served locally again
                before = ask(server.base, pid, session)
                after = ask(server.base, pid, session)
                assert after["setting"]["value"] == value and after["hits"] >= before["hits"] + 2
    print(f"another process's write ({ROUNDS} writes x {WORKERS} workers): new value answered to requests "
          f"started up to {max(new_from) * 1000:.1f} ms after it (in hand after max "
          f"{max(seen_after) * 1000:.1f} ms, mean {sum(seen_after) / len(seen_after) * 1000:.1f} ms)")
    assert max(new_from) < VISIBLE_WITHIN
    assert len(raw.client_list(_type="pubsub")) == WORKERS + (1 if master_read else 0)
    assert "Traceback" not in server.log_tail(20000)

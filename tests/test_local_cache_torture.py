"""Torture test of the process near-cache (``REDIS_LOCAL_CACHE = "process"``): no stale read.

One writer process stores version-stamped values (a global write sequence
number ``n``, signed entries) on :data:`KEYS` keys through a plain RedisCache
app; another process runs :data:`READERS` reader threads on one RedisCache app
with the near-cache on, for :data:`DURATION` seconds. Midway the test kills
the tracking connection (``CLIENT KILL TYPE pubsub``), later it kills
redis-server and starts it again on the same port (with an append-only file,
so acknowledged writes survive, as they would in production).

Two staleness rules, both without exceptions:

* **Exact** (the reader's tracker has not been reset since it became ready):
  the reader process is the only one tracking and never writes, so write ``n``
  is the ``n``-th key named in the invalidation messages. A reader snapshots
  ``D = tracker.invalidations`` before each read; the read of key ``k`` that
  returned version ``v`` is stale if some write ``n`` with ``v < n <= D`` went
  to ``k`` (its invalidation had been applied before the read started). A
  missing key reads as version 0. The test checks the premise too: with the
  writer held, ``invalidations`` equals the number of writes.
* **Time** (every read, and the only rule after a reset: messages were lost,
  so the counter no longer maps to writes): a read that started more than
  :data:`STALE_AFTER` after the writer's ``SET`` of a newer version returned
  must not return an older version. ``time.monotonic()`` is system-wide on
  Linux, so the writer's and the readers' stamps compare.

Reads that raise (Redis down; the reader app has ``REDIS_FAIL_OPEN = False`` so
an outage cannot pass for a missing key) are counted, not judged.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from bisect import bisect_right
from typing import Any

import pytest
from flask import Flask

from flask_rediscache import RedisCache
from flask_rediscache.local_sources import ProcessSource
from flask_rediscache.state import get_state

pytestmark = pytest.mark.slow

DURATION = 10.0  # seconds of load
KEYS = 100
READERS = 8
STALE_AFTER = 0.010  # the time rule's grace, seconds
WRITE_PAUSE = 0.001  # between two writes: keys change often, yet most reads can be local
MAX_WRITES = 1_000_000  # size of the shared write log
KILL_TRACKING_AT = 0.4 * DURATION
RESTART_AT = 0.65 * DURATION
DOWN_FOR = 0.5  # seconds redis-server stays dead
SECRET = "torture-secret"


def make_app(url: str, **config: Any) -> Flask:
    app = Flask("local-cache-torture")
    app.config.update(SECRET_KEY=SECRET, REDIS_URL=url, REDIS_FAIL_OPEN=False,
                      REDIS_CIRCUIT_BREAKER_COOLDOWN=0.2, REDIS_READ_TIMEOUT=1,
                      REDIS_CONNECT_TIMEOUT=1, **config)
    RedisCache(app)
    return app


def key_name(k: int) -> str:
    return f"k{k}"


# -- the writer process ------------------------------------------------------------------

def writer_main(url: str, key_of_seq: Any, done_at: Any, count: Any, ready: Any, stop: Any,
                hold: Any, holding: Any, errors: Any) -> None:
    app = make_app(url)
    cache: RedisCache = app.extensions["rediscache"]
    rng = random.Random(1)
    if not ready.wait(60):
        return
    n = 0
    with app.app_context():
        while not stop.is_set() and n + 1 < MAX_WRITES:
            if hold.is_set():
                holding.set()
                time.sleep(0.001)
                continue
            holding.clear()
            n += 1
            k = rng.randrange(KEYS)
            key_of_seq[n] = k  # logged before the SET: a reader may see it at once
            count.value = n
            while True:
                try:
                    if cache.set(key_name(k), n, timeout=0, signed=True):
                        break
                except Exception:
                    pass
                errors.value += 1
                if stop.is_set():
                    return  # n stays without a done time: the time rule skips it
                time.sleep(0.005)
            done_at[n] = time.monotonic()
            time.sleep(WRITE_PAUSE)


# -- the reader process ------------------------------------------------------------------

def reader_main(url: str, key_of_seq: Any, done_at: Any, count: Any, ready: Any, stop: Any,
                writer_done: Any, published: Any, results: Any) -> None:
    app = make_app(url, REDIS_LOCAL_CACHE="process")
    cache: RedisCache = app.extensions["rediscache"]
    source = get_state(app).store.source
    assert isinstance(source, ProcessSource)
    tracker = source.tracker
    tracker.lookup(b"-")  # tracking starts on the first read
    deadline = time.monotonic() + 10
    while not tracker.tracking and time.monotonic() < deadline:
        time.sleep(0.005)
    if not tracker.tracking:
        results.put({"error": f"tracking not established: {tracker.last_error}"})
        return
    resets0 = tracker.resets
    inv0 = tracker.invalidations
    missing = object()
    logs: list[list[tuple[int, int, int, int, float]]] = []
    read_errors = [0] * READERS

    def read(index: int) -> None:
        rng = random.Random(100 + index)
        log: list[tuple[int, int, int, int, float]] = []
        logs.append(log)
        append = log.append
        names = [key_name(k) for k in range(KEYS)]
        with app.app_context():
            get = cache.get
            while not stop.is_set():
                k = rng.randrange(KEYS)
                t = time.monotonic()
                d = tracker.invalidations
                r = tracker.resets
                try:
                    v = get(names[k], missing, signed=True)
                except Exception:
                    read_errors[index] += 1
                    continue
                append((k, 0 if v is missing else v, d, r, t))

    def publish() -> None:
        while not stop.is_set():
            published[0], published[1], published[2] = (
                tracker.invalidations - inv0, tracker.resets, int(tracker.tracking))
            time.sleep(0.002)

    threads = [threading.Thread(target=read, args=(i,)) for i in range(READERS)]
    threads.append(threading.Thread(target=publish))
    for thread in threads:
        thread.start()
    ready.set()
    for thread in threads:
        thread.join()
    stats = cache.local_cache_stats()
    tracking_at_end = tracker.tracking
    writer_done.wait(30)

    # -- judge every read -----------------------------------------------------------
    writes = count.value
    seqs: list[list[int]] = [[] for _ in range(KEYS)]
    for n in range(1, writes + 1):
        seqs[key_of_seq[n]].append(n)
    done = done_at[: writes + 1]
    reads = exact_checked = after_reset = 0
    stale_exact: list[tuple[Any, ...]] = []
    stale_time: list[tuple[Any, ...]] = []
    for log in logs:
        reads += len(log)
        for k, v, d, r, t in log:
            per_key = seqs[k]
            i = bisect_right(per_key, v)
            if i == len(per_key):
                if r != resets0:
                    after_reset += 1
                else:
                    exact_checked += 1
                continue  # v is the key's last write: nothing can be newer
            newer = per_key[i]
            if r == resets0:
                exact_checked += 1
                if newer <= d - inv0:
                    stale_exact.append((key_name(k), v, newer, d - inv0))
            else:
                after_reset += 1
            if done[newer] and done[newer] + STALE_AFTER < t:
                stale_time.append((key_name(k), v, newer, round((t - done[newer]) * 1000, 3)))
    results.put({
        "reads": reads, "read_errors": sum(read_errors), "writes": writes,
        "exact_checked": exact_checked, "after_reset": after_reset,
        "stale_exact": len(stale_exact), "stale_exact_examples": stale_exact[:5],
        "stale_time": len(stale_time), "stale_time_examples": stale_time[:5],
        "stats": stats, "resets0": resets0, "tracking_at_end": tracking_at_end,
    })


# -- the test --------------------------------------------------------------------------------

def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.002)


def test_near_cache_never_serves_a_stale_value_under_load_and_faults(redis_factory):
    started = time.monotonic()
    # The append-only file brings acknowledged writes back after the restart; without
    # it every key would read as missing, which the time rule would rightly call stale.
    server = redis_factory("--appendonly", "yes", "--appendfsync", "always")
    ctx = multiprocessing.get_context("spawn")
    key_of_seq = ctx.Array("i", MAX_WRITES, lock=False)
    done_at = ctx.Array("d", MAX_WRITES, lock=False)
    count = ctx.Value("q", 0, lock=False)
    errors = ctx.Value("q", 0, lock=False)
    published = ctx.Array("q", 3, lock=False)  # the reader's invalidations, resets, tracking
    ready, stop, hold, holding, writer_done = (ctx.Event() for _ in range(5))
    results = ctx.Queue()
    writer = ctx.Process(target=writer_main, daemon=True,
                         args=(server.url, key_of_seq, done_at, count, ready, stop, hold, holding, errors))
    reader = ctx.Process(target=reader_main, daemon=True,
                         args=(server.url, key_of_seq, done_at, count, ready, stop, writer_done,
                               published, results))
    writer.start()
    reader.start()
    try:
        assert ready.wait(30), "the reader process did not establish tracking"
        t0 = time.monotonic()

        # -- phase 1: no fault; then check the exact rule's premise ----------------------------
        time.sleep(KILL_TRACKING_AT - 0.1)
        hold.set()
        wait_for(holding.is_set, 5, "the writer to hold")
        writes = count.value
        resets_before = published[1]
        wait_for(lambda: published[0] >= writes, 2, f"{writes} invalidations")
        time.sleep(0.02)
        assert published[0] == writes, (
            f"{published[0]} keys invalidated for {writes} writes: the exact rule's premise is wrong")
        assert published[1] == resets_before
        hold.clear()
        print(f"\ntorture: {writes} writes -> {published[0]} invalidations before any fault")

        # -- phase 2: the tracking connection is killed --------------------------------------
        time.sleep(max(0.0, t0 + KILL_TRACKING_AT - time.monotonic()))
        killed = server.client().client_kill_filter(_type="pubsub")
        assert killed == 1
        wait_for(lambda: published[1] > resets_before and published[2] == 1, 5, "tracking to come back")

        # -- phase 3: redis-server killed and restarted on the same port ----------------------
        time.sleep(max(0.0, t0 + RESTART_AT - time.monotonic()))
        resets_before = published[1]
        server.kill()
        time.sleep(DOWN_FOR)
        server.start()
        wait_for(lambda: published[1] > resets_before and published[2] == 1, 8, "tracking after restart")

        time.sleep(max(0.0, t0 + DURATION - time.monotonic()))
        stop.set()
        writer.join(15)
        writer_done.set()
        result = results.get(timeout=60)
        reader.join(15)
    finally:
        stop.set()
        writer_done.set()
        for proc in (writer, reader):
            if proc.is_alive():
                proc.kill()
                proc.join(5)
    assert "error" not in result, result["error"]
    stats = result["stats"]
    reads = result["reads"]
    hit_ratio = stats["hits"] / reads
    print(f"torture: {result['writes']} writes ({errors.value} failed attempts retried), {reads} reads "
          f"by {READERS} threads in {DURATION:g}s ({result['read_errors']} raised while Redis was down)")
    print(f"torture: local hits {stats['hits']} = {hit_ratio:.1%} of reads; invalidations "
          f"{stats['invalidations']}, resets {stats['resets']}, bypassed {stats['bypassed']}")
    print(f"torture: exact rule over {result['exact_checked']} reads: {result['stale_exact']} stale; "
          f"time rule ({STALE_AFTER * 1000:g} ms) over all {reads} reads, {result['after_reset']} of them "
          f"after a reset: {result['stale_time']} stale")
    print(f"torture: {time.monotonic() - started:.1f}s in all")
    assert result["stale_exact"] == 0, (
        f"stale reads (key, got, newer write, D): {result['stale_exact_examples']}")
    assert result["stale_time"] == 0, (
        f"stale reads (key, got, newer write, ms late): {result['stale_time_examples']}")
    assert result["tracking_at_end"], "tracking was not re-established after the restart"
    assert stats["resets"] >= result["resets0"] + 4  # kill and restart: each a loss, then a fresh start
    assert result["writes"] > 500
    assert result["exact_checked"] > 10_000 and result["after_reset"] > 10_000
    assert reads > 50_000, f"only {reads} reads"
    assert hit_ratio > 0.5, f"local hit ratio {hit_ratio:.1%}"

"""``python -m benchmarks.invalidation [--writes N] [--json PATH]``: how soon another
process's write reaches a process near-cache.

A reader process (``REDIS_LOCAL_CACHE = "process"``) loops ``cache.get(key)``
in one thread, served from its copy, and reports the first moment each new
value comes back. The writer (this process, an app on the same namespace and
secret without a local cache, so the values are signed entries as the reader
expects) sets the key ``--writes`` times, a new value each time, waiting for
the reader to see it and then pausing 1–5 ms (random, so the writes do not
fall in step with the tracker's listener). The delay of one write is the time
from the writer's ``cache.set`` returning to the reader first returning the
new value: Redis' invalidation message, the reader noticing it on its next
lookup, and the refill (``GET`` + ``PTTL``, one round trip). Both ends read
``time.monotonic()``, which on Linux is one clock for every process. A
delay can come out negative when the writer is descheduled between Redis
answering and ``cache.set`` returning; the delay counted from just before
the writer's ``cache.set`` (never negative, but including the writer's own
call) is reported too.

The reader's near-cache statistics are checked at the end (tracking stayed up,
one invalidation per write, the loop was served locally), so a reader that
bypassed its copies, and therefore saw every write at once, cannot pass.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import statistics
import sys
import time
import warnings
from multiprocessing.connection import Connection
from typing import Any

from flask import Flask

from flask_rediscache import RedisCache

from .goals import Goal
from .local import tracker_of, wait_tracking
from .results import merge
from .server import LocalRedis
from .suites import SECRET, product

NAMESPACE = "invalidation"
KEY = "hot"
#: The value that tells the reader to stop.
STOP = -1
PAUSE = (0.001, 0.005)
#: Seconds the writer waits for the reader to see one write.
PATIENCE = 5.0
GOAL_P99_MS = 2.0


def app_for(url: str, local: str | bool) -> tuple[Flask, RedisCache]:
    app = Flask(f"bench-invalidation-{local or 'writer'}")
    app.config.update(SECRET_KEY=SECRET, REDIS_URL=url, REDIS_NAMESPACE=NAMESPACE, REDIS_LOCAL_CACHE=local)
    return app, RedisCache(app)


def reader(url: str, conn: Connection) -> None:
    """The reader process: loop ``cache.get(KEY)``, report each new value's first sighting."""
    warnings.simplefilter("ignore")
    app, cache = app_for(url, "process")
    tracker = tracker_of(app)
    with app.app_context():
        cache.get(KEY)  # starts the tracking (lazily, on the first read)
        wait_tracking(tracker)
        value = cache.get(KEY)  # fills the copy
        last = value["id"] if value else None
        conn.send(("ready", last))
        get = cache.get
        while True:
            value = get(KEY)
            seq = value["id"] if value else None
            if seq != last:
                seen = time.monotonic()
                if seq == STOP:
                    break
                conn.send((seq, seen, value == product(seq) if seq is not None else False))
                last = seq
        conn.send(("stats", cache.local_cache_stats()))
    conn.close()


def percentile(ordered: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of sorted ``ordered``, interpolated."""
    if len(ordered) == 1:
        return ordered[0]
    at = (len(ordered) - 1) * p / 100
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def measure(url: str, writes: int, seed: int = 16) -> dict[str, Any]:
    writer_app, writer = app_for(url, False)
    with writer_app.app_context():
        writer.set(KEY, product(0))
    mp = multiprocessing.get_context("spawn")  # a fresh interpreter, like another worker
    ours, theirs = mp.Pipe()
    proc = mp.Process(target=reader, args=(url, theirs), name="near-cache reader", daemon=True)
    proc.start()
    theirs.close()
    rng = random.Random(seed)
    delays: list[float] = []
    sent: list[float] = []  # from just before the writer's cache.set: never negative
    try:
        if not ours.poll(30):
            raise RuntimeError("the reader did not start (tracking not established?)")
        tag, first = ours.recv()
        if (tag, first) != ("ready", 0):
            raise RuntimeError(f"the reader started with {tag!r} {first!r}, not the value 0")
        with writer_app.app_context():
            for seq in range(1, writes + 1):
                before = time.monotonic()
                writer.set(KEY, product(seq))
                done = time.monotonic()
                if not ours.poll(PATIENCE):
                    raise RuntimeError(f"the reader did not see write {seq} within {PATIENCE:g} s")
                got, seen, intact = ours.recv()
                if got != seq or not intact:
                    raise RuntimeError(f"write {seq}: the reader returned {got!r} (intact: {intact})")
                delays.append((seen - done) * 1000)
                sent.append((seen - before) * 1000)
                time.sleep(rng.uniform(*PAUSE))
            writer.set(KEY, product(STOP))
        if not ours.poll(PATIENCE):
            raise RuntimeError("the reader did not stop")
        tag, stats = ours.recv()
    finally:
        proc.join(PATIENCE)
        if proc.is_alive():
            proc.terminate()
            proc.join()
    if not stats["tracking"] or stats["invalidations"] < writes or stats["resets"] > 1:
        raise RuntimeError(f"the reader's near-cache was not tracking throughout: {stats}")
    if stats["hits"] < 10 * writes:
        raise RuntimeError(f"the reader's loop was not served from its copy: {stats}")
    ordered = sorted(delays)
    from_send = sorted(sent)
    return {
        "writes": writes,
        "pause_ms": [PAUSE[0] * 1000, PAUSE[1] * 1000],
        "p50_ms": round(percentile(ordered, 50), 4),
        "p90_ms": round(percentile(ordered, 90), 4),
        "p99_ms": round(percentile(ordered, 99), 4),
        "max_ms": round(ordered[-1], 4),
        "min_ms": round(ordered[0], 4),
        "mean_ms": round(statistics.fmean(ordered), 4),
        "from_send": {"p50_ms": round(percentile(from_send, 50), 4),
                      "p99_ms": round(percentile(from_send, 99), 4),
                      "max_ms": round(from_send[-1], 4)},
        "reader": {k: stats[k] for k in ("hits", "misses", "invalidations", "resets", "bypassed")},
    }


def goals(result: dict[str, Any]) -> list[Goal]:
    return [Goal("invalidation_p99", "process near-cache: another process's write seen, p99 delay",
                 result["p99_ms"], GOAL_P99_MS, "<=", "ms",
                 f"{result['writes']} writes: p50 {result['p50_ms']:.3f} ms, p99 {result['p99_ms']:.3f} ms, "
                 f"max {result['max_ms']:.3f} ms")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.invalidation",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, help="writes to time (default 1000, --quick 100)")
    parser.add_argument("--quick", action="store_true", help="a smoke run (100 writes)")
    parser.add_argument("--json", metavar="PATH",
                        help="add the results to this JSON (the one python -m benchmarks wrote)")
    args = parser.parse_args(argv)
    writes = args.writes or (100 if args.quick else 1000)
    if writes < 1:
        parser.error("--writes must be positive")
    warnings.simplefilter("ignore")
    print(f"  measuring the invalidation delay ({writes} writes) ...", file=sys.stderr, flush=True)
    with LocalRedis() as server:
        result = measure(server.url, writes)
        result["redis_server"] = server.version()
    result["quick"] = args.quick
    print(f"invalidation delay, process near-cache, {writes} writes by another process "
          f"(ms from the writer's SET returning to the reader returning the new value):")
    print(f"  p50 {result['p50_ms']:.3f}  p90 {result['p90_ms']:.3f}  p99 {result['p99_ms']:.3f}  "
          f"max {result['max_ms']:.3f}  (min {result['min_ms']:.3f}, mean {result['mean_ms']:.3f})")
    fs = result["from_send"]
    print(f"  counted from just before the writer's cache.set instead: p50 {fs['p50_ms']:.3f}  "
          f"p99 {fs['p99_ms']:.3f}  max {fs['max_ms']:.3f}")
    print(f"  reader's near-cache: {result['reader']}")
    for goal in goals(result):
        print(f"  goal: p99 ≤ {goal.target:g} ms: {'met' if goal.met else 'MISSED'}")
    if args.json:
        merge(args.json, "invalidation", result, goals(result))
        print(f"results added to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

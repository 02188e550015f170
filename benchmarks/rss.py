"""``python -m benchmarks.rss [--keys N] [--json PATH]``: a process near-cache's memory
stays bounded however many distinct keys it reads.

One process (``REDIS_LOCAL_CACHE = "process"``, ``REDIS_LOCAL_CACHE_SIZE =
10000``) reads ``--keys`` distinct keys (default 1,000,000) with ``get_many``
in batches of 1,000; one key in ten was stored beforehand (a small dict), the
others are missing, which the near-cache keeps too. Every read fills a copy,
so the copies reach the entry cap within the first 10,000 keys and from then
on every batch evicts 1,000 copies. The resident set size
(``/proc/self/statm``, after a ``gc.collect()``) is sampled after the
warm-up (100,000 keys) and every 100,000 keys after; the figure is the
growth from the warm-up sample to the last.

The goal, growth ≤ 4 MB: the copies are at their cap by the warm-up sample,
so whatever grows after it is either allocator noise (a few hundred kB) or
something kept per key read. 900,000 reads after the warm-up mean a leak of
as little as 5 bytes per key (one small dict slot per key would be 50 or more)
crosses 4 MB, while the noise stays well under it.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import warnings
from typing import Any

from flask import Flask

from flask_rediscache import RedisCache

from .goals import Goal
from .local import tracker_of, wait_tracking
from .results import merge
from .server import LocalRedis
from .suites import SECRET, product

NAMESPACE = "rss"
SIZE = 10_000
BATCH = 1_000
STORED_EVERY = 10
WARMUP = 100_000
SAMPLE_EVERY = 100_000
GOAL_GROWTH_MB = 4.0
MB = 1024 * 1024


def rss_bytes() -> int:
    """This process's resident set size, after a full collection."""
    gc.collect()
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def app_for(url: str, local: str | bool) -> tuple[Flask, RedisCache]:
    app = Flask(f"bench-rss-{local or 'writer'}")
    app.config.update(SECRET_KEY=SECRET, REDIS_URL=url, REDIS_NAMESPACE=NAMESPACE,
                      REDIS_LOCAL_CACHE=local, REDIS_LOCAL_CACHE_SIZE=SIZE)
    return app, RedisCache(app)


def key(i: int) -> str:
    return f"item:{i}"


def store(url: str, keys: int) -> None:
    """One key in ``STORED_EVERY``, written by an app without a local cache (before the
    reader's tracking starts, so they cost it no invalidation messages)."""
    app, cache = app_for(url, False)
    with app.app_context():
        for start in range(0, keys, BATCH * STORED_EVERY):
            stop = min(start + BATCH * STORED_EVERY, keys)
            cache.set_many({key(i): product(i) for i in range(start, stop, STORED_EVERY)}, timeout=3600)


def measure(url: str, keys: int) -> dict[str, Any]:
    store(url, keys)
    app, cache = app_for(url, "process")
    tracker = tracker_of(app)
    samples: list[tuple[int, float]] = []
    started = time.monotonic()
    with app.app_context():
        cache.get(key(0))  # starts the tracking (lazily, on the first read)
        wait_tracking(tracker)
        samples.append((0, rss_bytes() / MB))
        for start in range(0, keys, BATCH):
            batch = range(start, min(start + BATCH, keys))
            got = cache.get_many(*(key(i) for i in batch))
            want = [product(i) if i % STORED_EVERY == 0 else None for i in batch]
            if got != want:
                raise RuntimeError(f"get_many returned wrong values in the batch from key {start}")
            done = batch.stop
            if done in (WARMUP, keys) or (done > WARMUP and done % SAMPLE_EVERY == 0):
                samples.append((done, rss_bytes() / MB))
        stats = cache.local_cache_stats()
    tracker.close()  # before the server goes: no "tracking lost" warning
    assert stats is not None
    if not stats["tracking"] or stats["resets"] > 1:
        raise RuntimeError(f"the near-cache was not tracking throughout: {stats}")
    if stats["entries"] != min(SIZE, keys):
        raise RuntimeError(f"the near-cache holds {stats['entries']} copies, not {min(SIZE, keys)}: {stats}")
    warm = next((mb for done, mb in samples if done >= min(WARMUP, keys)), samples[-1][1])
    end = samples[-1][1]
    return {
        "keys": keys,
        "stored_every": STORED_EVERY,
        "batch": BATCH,
        "local_cache_size": SIZE,
        "warmup_keys": min(WARMUP, keys),
        "samples": [[done, round(mb, 2)] for done, mb in samples],
        "start_mb": round(samples[0][1], 2),
        "warm_mb": round(warm, 2),
        "end_mb": round(end, 2),
        "growth_mb": round(end - warm, 2),
        "seconds": round(time.monotonic() - started, 1),
        "near_cache": {k: stats[k] for k in ("entries", "bytes", "evictions", "misses", "resets")},
    }


def goals(result: dict[str, Any]) -> list[Goal]:
    return [Goal("rss_growth", f"process near-cache: RSS growth reading {result['keys']:,} distinct keys, "
                 f"after the first {result['warmup_keys']:,}", result["growth_mb"], GOAL_GROWTH_MB,
                 "<=", "MB",
                 f"{result['keys']:,} keys, REDIS_LOCAL_CACHE_SIZE={result['local_cache_size']}: "
                 f"{result['warm_mb']:.1f} MB after {result['warmup_keys']:,}, {result['end_mb']:.1f} MB "
                 f"at the end")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rss", description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, help="distinct keys to read (default 1,000,000, --quick 300,000)")
    parser.add_argument("--quick", action="store_true", help="a smoke run (300,000 keys)")
    parser.add_argument("--json", metavar="PATH",
                        help="add the results to this JSON (the one python -m benchmarks wrote)")
    args = parser.parse_args(argv)
    keys = args.keys or (300_000 if args.quick else 1_000_000)
    if keys < BATCH:
        parser.error(f"--keys must be at least {BATCH}")
    warnings.simplefilter("ignore")
    print(f"  measuring the RSS over {keys:,} distinct keys ...", file=sys.stderr, flush=True)
    with LocalRedis() as server:
        result = measure(server.url, keys)
    result["quick"] = args.quick
    print(f"RSS of a process near-cache (REDIS_LOCAL_CACHE_SIZE={SIZE}) reading {keys:,} distinct keys "
          f"in get_many batches of {BATCH} ({result['seconds']} s):")
    print("  " + ", ".join(f"{done:,}: {mb:.1f} MB" for done, mb in result["samples"]))
    print(f"  after {result['warmup_keys']:,} keys {result['warm_mb']:.2f} MB, at the end "
          f"{result['end_mb']:.2f} MB: growth {result['growth_mb']:+.2f} MB")
    print(f"  near-cache: {result['near_cache']}")
    for goal in goals(result):
        print(f"  goal: growth ≤ {goal.target:g} MB: {'met' if goal.met else 'MISSED'}")
    if args.json:
        merge(args.json, "rss", result, goals(result))
        print(f"results added to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

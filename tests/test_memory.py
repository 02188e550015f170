"""Memory: 100 k memoized calls over 10 k keys must not grow the process.

A subprocess (so nothing from pytest or other tests pollutes its heap) runs a
memoized function 100 000 times over 10 000 distinct arguments against a
private real redis-server, with receivers connected to the hit/miss/error
signals, and at the same time calls a memoized function of a second app whose
Redis is down, so every call of that one goes through the guard's error path
and the open circuit breaker. It reports its RSS after each 20 000 calls. Once
warm (every key built and cached once, every code path taken), the RSS must
stay flat: a leak of even 50 bytes per call would add 4 MB by the end.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from .servers import free_port

pytestmark = pytest.mark.slow

CALLS, KEYS, EVERY = 100_000, 10_000, 20_000
SLACK_BYTES = 2 * 1024 * 1024

SCRIPT = textwrap.dedent("""
    import gc, json, logging, sys
    import psutil
    from flask import Flask
    from flask_rediscache import RedisCache, signals

    logging.getLogger("flask_rediscache").setLevel(logging.CRITICAL)
    url, dead_url, calls, keys, every = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])

    def make(name, url, **config):
        app = Flask(name)
        app.config.update(SECRET_KEY="memory-secret", REDIS_URL=url, **config)
        return app, RedisCache(app)

    live_app, live = make("live", url)
    dead_app, dead = make("dead", dead_url, REDIS_CIRCUIT_BREAKER_COOLDOWN=0.2, REDIS_RECONNECT_ATTEMPTS=0,
                          REDIS_ERROR_HANDLER=lambda **kw: None)
    seen = {"hit": 0, "miss": 0, "error": 0}

    def on_hit(sender, **kw): seen["hit"] += 1
    def on_miss(sender, **kw): seen["miss"] += 1
    def on_error(sender, **kw): seen["error"] += 1

    signals.cache_hit.connect(on_hit)
    signals.cache_miss.connect(on_miss)
    signals.cache_error.connect(on_error)

    @live.memoize(timeout=600)
    def product(pid, currency="EUR"):
        return {"id": pid, "name": f"product {pid}", "price": pid * 1.5, "currency": currency}

    @dead.memoize(timeout=600)
    def fallback(pid):
        return pid

    rss = []
    process = psutil.Process()
    with live_app.app_context():
        for i in range(1, calls + 1):
            assert product(i % keys)["id"] == i % keys
            with dead_app.app_context():
                assert fallback(i % keys) == i % keys
            if i % every == 0:
                gc.collect()
                rss.append(process.memory_info().rss)
    print(json.dumps({"rss": rss, "seen": seen}))
""")


def test_rss_stays_flat_over_100k_memoized_calls(redis_factory):
    server = redis_factory()
    dead_url = f"redis://127.0.0.1:{free_port()}/0"
    out = subprocess.run([sys.executable, "-c", SCRIPT, server.url, dead_url, str(CALLS), str(KEYS),
                          str(EVERY)], capture_output=True, text=True, timeout=110)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    rss, seen = result["rss"], result["seen"]
    mib = [round(r / 2**20, 2) for r in rss]
    print(f"\nmemory: RSS after each {EVERY} calls (MiB): {mib}; signals {seen}")
    # The calls really went where we think: live hits and misses, dead errors.
    assert seen["miss"] >= KEYS and seen["hit"] >= CALLS - KEYS - 100
    assert seen["error"] >= CALLS * 0.9
    assert server.client().dbsize() == KEYS
    growth = rss[-1] - rss[0]
    assert growth <= SLACK_BYTES, (f"RSS grew {growth / 2**20:.2f} MiB between {EVERY} and {CALLS} "
                                   f"calls: {mib}")

"""``python -m benchmarks.e2e [--rounds N] [--seconds S] [--json PATH]``: requests per second under gunicorn.

The figure users feel: one memoized route served by gunicorn (2 workers x 4
threads, gthread) and loaded by ``wrk`` (Debian's package) over loopback,
against the same route returning the same payload with no cache at all.
Contenders, each in its own gunicorn, all measured in the same run:

* ``no cache``: the view returns the payload it builds from constants;
* ``flask-rediscache`` (one ``GET`` per hit), ``flask-rediscache near-cache``
  (``REDIS_LOCAL_CACHE = "process"``) and ``Flask-Caching`` (``RedisCache``):
  the view returns a memoized function's result.

Each round runs every contender once, in a rotated order; the ratio to ``no
cache`` is taken within each round and the median over rounds is reported
(goal: near-cache >= 0.85x). Every response must be a 2xx, and the near-cache
workers must report local hits, or the run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

from .goals import Goal
from .results import merge
from .server import LocalRedis, free_port

NO_CACHE = "no cache"
OURS = "flask-rediscache"
NEAR = "flask-rediscache near-cache"
FC = "Flask-Caching"
CONTENDERS = (NO_CACHE, OURS, NEAR, FC)
GOAL = 0.85

APP = '''
import os

from flask import Flask, jsonify

MODE = os.environ["BENCH_MODE"]
URL = os.environ["BENCH_REDIS_URL"]


def payload():
    return [{"id": i, "name": f"item {i}", "price": i * 1.5, "tags": ["a", "b"]} for i in range(50)]


def create():
    app = Flask("bench-e2e")
    app.config.update(SECRET_KEY="bench", REDIS_URL=URL, REDIS_SESSION=False)
    if MODE == "no cache":
        catalog = payload
    elif MODE == "Flask-Caching":
        from flask_caching import Cache

        cache = Cache(app, config={"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": URL})
        catalog = cache.memoize(300)(payload)
    else:
        from flask_rediscache import RedisCache

        if MODE == "flask-rediscache near-cache":
            app.config["REDIS_LOCAL_CACHE"] = "process"
        cache = RedisCache(app)
        catalog = cache.memoize(300)(payload)

        @app.get("/local-stats")
        def local_stats():
            return jsonify(cache.local_cache_stats())

    @app.get("/catalog")
    def view():
        return jsonify(catalog())

    return app
'''


def _wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"benchmarks.e2e: {url} did not answer within {timeout:g} s")


class Gunicorn:
    """One contender's app under gunicorn on a free loopback port."""

    def __init__(self, mode: str, redis_url: str, workdir: str) -> None:
        self.mode = mode
        self.port = free_port()
        env = {**os.environ, "BENCH_MODE": mode, "BENCH_REDIS_URL": redis_url,
               "PYTHONPATH": workdir + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.log = open(os.path.join(workdir, f"gunicorn-{self.port}.log"), "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", "2", "--threads", "4", "--worker-class",
             "gthread", "--bind", f"127.0.0.1:{self.port}", "--log-level", "warning",
             "bench_e2e_app:create()"], env=env, stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def wrk(url: str, seconds: float, connections: int) -> float:
    """Requests per second ``wrk`` measured; raises if any response was not a 2xx."""
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", url],
                         capture_output=True, text=True, check=True).stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or errors:
        raise SystemExit(f"benchmarks.e2e: errors under load at {url}:\n{out}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise SystemExit(f"benchmarks.e2e: cannot read wrk's output:\n{out}")
    return float(found.group(1))


def _local_hits(server: Gunicorn) -> int:
    """The most local hits one near-cache worker reports (asked 20 times, so
    both workers are likely to answer; each has its own near-cache)."""
    hits = 0
    for _ in range(20):
        with urllib.request.urlopen(server.url + "/local-stats", timeout=2) as response:
            stats = json.load(response)
        hits = max(hits, int(stats["hits"]))
    return hits


def run(rounds: int, seconds: float, connections: int) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("benchmarks.e2e: wrk is not installed (apt-get install wrk, or ./dev.sh bench)")
    workdir = tempfile.mkdtemp(prefix="rediscache-e2e-")
    with open(os.path.join(workdir, "bench_e2e_app.py"), "w") as fh:
        fh.write(APP)
    rps: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    with LocalRedis() as redis_server:
        servers = {name: Gunicorn(name, redis_server.url, workdir) for name in CONTENDERS}
        try:
            for server in servers.values():
                _wait_http(server.url + "/catalog")
                wrk(server.url + "/catalog", 1, connections)  # warm up every worker and its cache
            for index in range(rounds):
                order = CONTENDERS[index % len(CONTENDERS):] + CONTENDERS[:index % len(CONTENDERS)]
                for name in order:
                    rps[name].append(wrk(servers[name].url + "/catalog", seconds, connections))
                    print(f"round {index + 1}: {name:<28} {rps[name][-1]:8.0f} req/s", flush=True)
            local_hits = _local_hits(servers[NEAR])
            if local_hits == 0:
                raise SystemExit("benchmarks.e2e: the near-cache workers report no local hits")
        finally:
            for server in servers.values():
                server.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    ratios = {name: statistics.median(r / n for r, n in zip(rps[name], rps[NO_CACHE], strict=True))
              for name in CONTENDERS}
    return {"rounds": rounds, "seconds": seconds, "connections": connections,
            "workers": 2, "threads": 4, "cpus": os.cpu_count(),
            "rps": {name: statistics.median(values) for name, values in rps.items()},
            "rps_rounds": rps, "ratio_to_no_cache": ratios, "goal": GOAL,
            "met": ratios[NEAR] >= GOAL, "near_cache_local_hits_one_worker": local_hits}


def goals(result: dict[str, Any]) -> list[Goal]:
    ratios = result["ratio_to_no_cache"]
    return [Goal("e2e_near_cache_rps", "gunicorn + wrk: memoized route with the process near-cache "
                 "÷ the same route without any cache (requests/s)", round(ratios[NEAR], 3), GOAL, ">=",
                 "×", f"{result['rps'][NEAR]:.0f} vs {result['rps'][NO_CACHE]:.0f} req/s (medians); "
                 f"one GET per hit {ratios[OURS]:.2f}×, Flask-Caching {ratios[FC]:.2f}×")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.e2e", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk duration per contender and round")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="a smoke run (1 round of 2 s)")
    parser.add_argument("--json", metavar="PATH",
                        help="add the results to this JSON (the one python -m benchmarks wrote)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 1, 2.0
    result = run(args.rounds, args.seconds, args.connections)
    print(f"\n{'contender':<28} {'req/s (median)':>15} {'÷ no cache':>11}")
    for name in CONTENDERS:
        print(f"{name:<28} {result['rps'][name]:15.0f} {result['ratio_to_no_cache'][name]:10.2f}×")
    verdict = "met" if result["met"] else "NOT met"
    print(f"goal: near-cache >= {GOAL}x no cache: {verdict}")
    result["quick"] = args.quick
    if args.json:
        merge(args.json, "e2e", result, goals(result))
        print(f"results added to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

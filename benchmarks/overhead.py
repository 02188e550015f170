"""``python -m benchmarks.overhead [--rounds N] [--json PATH]``: the pure-Python cost of a memoize hit.

The cache purpose's redis-py client is replaced by a stub whose ``get`` is a
dict lookup, so what is timed is everything flask-rediscache does around the
one ``GET`` (key building, the fail-open boundary, signature check, decode,
bookkeeping) and nothing of the network. Three contenders, each the same
memoized call on a cached small dict:

* ``no receiver``: nobody listens to any signal (the production case);
* ``cache_read receiver``: a no-op receiver on
  :data:`flask_rediscache.signals.cache_read`, so every hit is timed and sent;
* ``all receivers``: a receiver on every instrumentation signal.

The reported figure is the median over rounds of µs per call (rounds
interleave the contenders, as in :mod:`benchmarks.harness`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask

from flask_rediscache import RedisCache, signals
from flask_rediscache.state import get_state

from .harness import timed_batch

#: Instrumentation signals (those that exist in the installed version).
_INSTRUMENTATION = ("cache_read", "cache_read_multi", "cache_generate", "cache_write", "cache_write_multi",
                    "cache_delete", "cache_delete_multi", "cache_delete_matched", "cache_increment",
                    "cache_decrement", "cache_exist")


class StubClient:
    """Just enough of a redis-py client for a memoize hit and its first miss."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def set(self, key: bytes, value: bytes, ex: Any = None, **_: Any) -> bool:
        self.data[key] = value
        return True


def build() -> tuple[Flask, Callable[[], Any]]:
    app = Flask("overhead")
    app.config.update(SECRET_KEY="bench", REDIS_URL="memory://overhead", REDIS_NAMESPACE="bench")
    cache = RedisCache(app)
    state = get_state(app)
    stub = StubClient()
    store: Any = state.store  # the stub is not a redis-py client
    store.client = stub
    if getattr(store, "reader", None) is not None:
        store.reader = stub

    @cache.memoize(timeout=300)
    def load_product(pid: int) -> dict[str, Any]:
        return {"id": pid, "name": f"product {pid}", "price": 9.99, "tags": ["a", "b"]}

    with app.app_context():
        load_product(7)  # the miss that stores it
    assert len(stub.data) == 1
    return app, lambda: load_product(7)


def _noop(sender: Any, **kwargs: Any) -> None:
    return None


@contextmanager
def receivers(names: tuple[str, ...]) -> Iterator[None]:
    connected = [getattr(signals, name) for name in names if hasattr(signals, name)]
    for signal in connected:
        signal.connect(_noop)
    try:
        yield
    finally:
        for signal in connected:
            signal.disconnect(_noop)


def measure(rounds: int = 15, n: int = 50_000) -> dict[str, float]:
    app, op = build()
    contenders: dict[str, tuple[str, ...]] = {
        "no receiver": (),
        "cache_read receiver": ("cache_read",),
        "all receivers": _INSTRUMENTATION,
    }
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    with app.app_context():
        timed_batch(op, n // 10)  # warm up
        for r in range(rounds):
            names = list(contenders)
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                with receivers(contenders[name]):
                    samples[name].append(timed_batch(op, n) / n * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--n", type=int, default=50_000, help="calls per batch")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    result = measure(args.rounds, args.n)
    base = result["no receiver"]
    for name, us in result.items():
        extra = "" if name == "no receiver" else f"  (+{us - base:.2f} µs)"
        print(f"memoize hit, stubbed client, {name:22s} {us:6.2f} µs/call{extra}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"memoize_hit_stub_us": result}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

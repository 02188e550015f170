"""The local cache (``REDIS_LOCAL_CACHE``): a hit served from memory, against a round trip.

Two benchmarks of the main run (``python -m benchmarks``):

* ``memoize_hit_process``: a memoized function hit served by the process
  near-cache (``REDIS_LOCAL_CACHE = "process"``), against the raw ``GET`` +
  ``pickle.loads`` of the memoize hit benchmark, Flask-Caching and
  flask-rediscache without a local cache.
* ``repeat_read_request``: ``cache.get`` of a key already read in the same app
  context with ``REDIS_LOCAL_CACHE = "request"``, against the same raw read.

Before they are timed, both check that the value comes back and that a
repeat costs no round trip, so a near-cache that silently bypasses itself
cannot pass for a fast one. The near-cache's tracking is stopped around the
other contenders' batches (and after its benchmark) and started again, untimed,
before its own, so its listener thread and the ``PING`` it sends every second
never run while another contender is timed or counted. The request-local
benchmark pushes one app context again for every batch, so the key has been
read in it once, at build time, and the batches make no round trip.

The invalidation delay and the memory of a full near-cache have their own
modules: :mod:`benchmarks.invalidation` and :mod:`benchmarks.rss`.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from flask import Flask

from flask_rediscache import RedisCache
from flask_rediscache.state import get_state

from .harness import Benchmark, Contender, counting_round_trips
from .suites import FC, OURS, PRODUCT, RAW, SECRET, Apps, _contender, product

#: flask-rediscache on the same operation without ``REDIS_LOCAL_CACHE``: one round trip.
OURS_REMOTE = "flask-rediscache, no local cache"
#: Seconds to wait for the near-cache's tracking connection.
TRACKING_TIMEOUT = 5.0


def local_app(url: str, mode: str) -> tuple[Flask, RedisCache]:
    """An app whose cache keeps local copies (``mode``: ``"request"`` or ``"process"``), in
    its own namespace, so writes of the other benchmarks send it no invalidations."""
    app = Flask(f"bench-local-{mode}")
    app.config.update(SECRET_KEY=SECRET, REDIS_URL=url, REDIS_NAMESPACE=f"local-{mode}",
                      REDIS_LOCAL_CACHE=mode)
    return app, RedisCache(app)


def tracker_of(app: Flask) -> Any:
    """The near-cache's :class:`~flask_rediscache.tracking.Tracker` of ``app``."""
    return get_state(app).store.source.tracker  # type: ignore[attr-defined]


def wait_tracking(tracker: Any, timeout: float = TRACKING_TIMEOUT) -> None:
    problem = tracker.wait(timeout)
    if problem is not None or not tracker.tracking:
        raise RuntimeError(f"the near-cache's tracking did not start: {problem}")


def build(apps: Apps) -> list[Benchmark]:
    process, stop_tracking = _memoize_hit_process(apps)
    return [
        Benchmark("memoize_hit_process", "memoize hit, process near-cache", "call", RAW, process,
                  "the memoize hit above with REDIS_LOCAL_CACHE = \"process\": served from the "
                  "process's copy, kept correct by CLIENT TRACKING; the baseline is the same raw "
                  "GET and pickle.loads", cleanup=stop_tracking),
        Benchmark("repeat_read_request", "repeat read, request-local", "op", RAW,
                  _repeat_read_request(apps),
                  "cache.get of a small dict already read in the same app context with "
                  "REDIS_LOCAL_CACHE = \"request\", against a raw GET and pickle.loads"),
    ]


def _served_locally(op: Callable[[], Any], expected: Any, what: str) -> None:
    """``op`` returns ``expected`` twice, the second time without a round trip."""
    if op() != expected:
        raise AssertionError(f"{what}: the first call did not return the value")
    with counting_round_trips() as trips:
        got = op()
    if got != expected:
        raise AssertionError(f"{what}: the repeat did not return the value")
    if trips[0]:
        raise AssertionError(f"{what}: the repeat cost {trips[0]} round trips, not a local hit")


def _memoize_hit_process(apps: Apps) -> tuple[list[Contender], Callable[[], None]]:
    """The contenders, and what stops the near-cache's tracking."""
    raw, fc, ours = apps.raw, apps.fc, apps.ours
    raw.set(b"raw:product:7", pickle.dumps(product(7), protocol=pickle.HIGHEST_PROTOCOL), ex=300)
    app, near = local_app(apps.url, "process")
    tracker = tracker_of(app)

    @near.memoize(timeout=300)
    def load_product(pid: int) -> dict[str, Any]:
        return product(pid)

    @contextmanager
    def tracked() -> Iterator[None]:
        """The app context with tracking up and the copy filled (started if another
        contender's batch stopped it: establishing and filling are not timed)."""
        with app.app_context():
            if not tracker.tracking:
                wait_tracking(tracker)
                load_product(7)  # fills the copy (the tracker was emptied on connecting)
            yield

    def untracked(context: Callable[[], Any]) -> Callable[[], Any]:
        """``context`` with the near-cache's tracking stopped: its listener's PING and
        connection never show in another contender's times or counts."""
        @contextmanager
        def stopped() -> Iterator[None]:
            tracker.close()
            with context():
                yield
        return stopped

    def build_near() -> Callable[[], Any]:
        with tracked():
            hits = tracker.stats()["hits"]
            _served_locally(lambda: load_product(7), product(7), "process near-cache")
            if tracker.stats()["hits"] <= hits:
                raise AssertionError("the near-cache counted no hit")
        tracker.close()  # until this benchmark runs
        return lambda: load_product(7)

    def build_remote() -> Callable[[], Any]:
        @ours.memoize(timeout=300)
        def load_product_remote(pid: int) -> dict[str, Any]:
            return product(pid)

        with apps.ours_app.app_context():
            assert load_product_remote(7) == product(7)
        return lambda: load_product_remote(7)

    def build_fc() -> Callable[[], Any]:
        @fc.memoize(timeout=300)  # type: ignore[untyped-decorator]
        def load_product_fc(pid: int) -> dict[str, Any]:
            return product(pid)

        with apps.fc_app.app_context():
            assert load_product_fc(7) == product(7)
        return lambda: load_product_fc(7)

    contenders = [
        _contender(RAW, "GET + pickle.loads", lambda: lambda: pickle.loads(raw.get(b"raw:product:7")),
                   untracked(nullcontext)),
        _contender(OURS, "@cache.memoize, REDIS_LOCAL_CACHE=\"process\"", build_near, tracked),
        _contender(OURS_REMOTE, "@cache.memoize", build_remote, untracked(apps.ours_app.app_context)),
        _contender(FC, "@cache.memoize (RedisCache)", build_fc, untracked(apps.fc_app.app_context)),
    ]
    return contenders, tracker.close


def _repeat_read_request(apps: Apps) -> list[Contender]:
    raw, ours = apps.raw, apps.ours
    raw.set(b"raw:get", pickle.dumps(PRODUCT, protocol=pickle.HIGHEST_PROTOCOL), ex=300)
    app, local = local_app(apps.url, "request")
    with app.app_context():
        local.set("repeat", PRODUCT, timeout=300)
    with apps.ours_app.app_context():
        ours.set("repeat", PRODUCT, timeout=300)

    # One app context for every batch (pushed again for each): its copies live in its
    # ``g``, so the key stays read once, at build time, and no batch pays that round trip.
    ctx = app.app_context()

    @contextmanager
    def read_before() -> Iterator[None]:
        with ctx:
            if local.get("repeat") != PRODUCT:  # a local hit (a refill if the copy expired)
                raise AssertionError("request-local: the read did not return the value")
            yield

    def build_local() -> Callable[[], Any]:
        with ctx:
            _served_locally(lambda: local.get("repeat"), PRODUCT, "request-local copy")
        return lambda: local.get("repeat")

    return [
        _contender(RAW, "GET + pickle.loads", lambda: lambda: pickle.loads(raw.get(b"raw:get"))),
        _contender(OURS, "cache.get again, REDIS_LOCAL_CACHE=\"request\"", build_local,
                   read_before),
        _contender(OURS_REMOTE, "cache.get", lambda: lambda: ours.get("repeat"), apps.ours_app.app_context),
    ]

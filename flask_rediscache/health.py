"""The health endpoint (``REDIS_HEALTH_ENDPOINT``): JSON 200 or 503, cheap under a flood.

The check itself is :func:`~flask_rediscache.checks.check_target` (PING, then
the write/read/delete probe of each purpose). A frozen Redis makes one check
last up to the timeouts, and such endpoints are often public, so results are
shared: a result at most :data:`MAX_AGE` seconds old is served to every
caller, and only one probe per target is in flight at a time. Callers that
arrive while it runs get the previous result, or wait for this one when there
is none yet. A flood of checks against a hung server therefore costs one
probe, not one worker thread per request.

The body is deliberately small: per purpose ok/latency and the short reason
only (no addresses, versions or exception text).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from flask import Flask, Response, jsonify

from .checks import TargetHealth, check_one
from .masking import mask
from .probes import distinct_targets, settings_secrets
from .state import get_state

logger = logging.getLogger("flask_rediscache")

T = TypeVar("T")

#: Seconds a health result is served to other callers before a new probe runs.
MAX_AGE = 1.0
#: Where the endpoint keeps its results, in :attr:`AppState.extras`.
EXTRAS_KEY = "health_results"


class _Slot(Generic[T]):
    __slots__ = ("at", "lock", "result")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.result: T | None = None
        self.at = float("-inf")


class SharedResults(Generic[T]):
    """Single-flight results per key, reused while younger than ``max_age`` seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._slots: dict[Hashable, _Slot[T]] = {}
        self._guard = threading.Lock()

    def get(self, key: Hashable, run: Callable[[], T], max_age: float) -> T:
        """A fresh enough result for ``key``, running ``run()`` only when no other caller is."""
        with self._guard:
            slot = self._slots.setdefault(key, _Slot())
        result = slot.result
        if result is not None and self._clock() - slot.at < max_age:
            return result
        if slot.lock.acquire(blocking=False):
            try:
                result = run()
                slot.result, slot.at = result, self._clock()
                return result
            finally:
                slot.lock.release()
        if result is not None:  # a probe is in flight: the last result, without waiting
            return result
        with slot.lock:  # the very first probe is in flight: wait for it
            pass
        return slot.result if slot.result is not None else run()


def endpoint_payload(checks: list[TargetHealth]) -> tuple[dict[str, Any], int]:
    """The JSON body and status of the health endpoint."""
    purposes: dict[str, Any] = {}
    reasons = []
    for check in checks:
        for purpose in check.purposes:
            problem = check.problem_for(purpose)
            entry: dict[str, Any] = {"ok": problem is None, "latency_ms": check.latency_ms}
            if problem is not None:
                reason = problem.reason.removeprefix(f"{purpose}: ")
                entry["reason"] = reason
                reasons.append(f"{purpose}: {reason}")
            purposes[purpose] = entry
    ok = not reasons
    body: dict[str, Any] = {"status": "ok" if ok else "error", "checks": purposes}
    if reasons:
        body["reason"] = "; ".join(reasons)
    return body, 200 if ok else 503


def health_view() -> tuple[Response, int]:
    """The ``REDIS_HEALTH_ENDPOINT`` view: 200 ``{"status": "ok"}`` or 503 ``{"status": "error"}``."""
    state = get_state()
    shared: SharedResults[TargetHealth] = state.extras.setdefault(EXTRAS_KEY, SharedResults())
    secrets = settings_secrets(state.settings)
    checks = []
    for target, purposes in distinct_targets(state):
        def run(target: Any = target, purposes: list[str] = purposes) -> TargetHealth:
            check = check_one(state, target, purposes, info=False)
            for problem in check.problems():
                logger.warning("%s", mask(f"flask-rediscache: health check failed for "
                                          f"{'+'.join(check.purposes)} Redis ({check.name}): {problem}",
                                          secrets))
            return check

        checks.append(shared.get(id(target), run, MAX_AGE))
    body, status = endpoint_payload(checks)
    local = state.store.local_stats()
    if local is not None:  # this worker's copies: informational, never a failure (reads fail over to Redis)
        body["local_cache"] = local
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response, status


def register_health_endpoint(app: Flask, path: str) -> None:
    """Serve :func:`health_view` at ``path`` (``REDIS_HEALTH_ENDPOINT``)."""
    app.add_url_rule(path, endpoint="rediscache_health", view_func=health_view, methods=["GET", "HEAD"])

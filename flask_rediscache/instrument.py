"""Timing the session purpose's Redis calls for :data:`~flask_rediscache.signals.session_call`.

The session interface runs each Redis call through its purpose's
:class:`~flask_rediscache.failopen.Boundary`; :func:`observe_session` wraps
that boundary so that, when someone listens to ``session_call`` (the debug
toolbar panel), each call is timed and sent. Nobody listening costs one
attribute check per session call; the boundary itself is unchanged (its
error counter, breaker and handler are the original's).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from . import signals
from .failopen import Boundary, protect

T = TypeVar("T")
R = TypeVar("R")

_SESSION_CALL = signals.session_call
_FAILED = object()


def _size(value: Any) -> int:
    """Bytes of session data read or written (a rough count: names and values)."""
    fields = getattr(value, "fields", None)  # Loaded
    if fields is None:
        fields = getattr(value, "sets", None)  # SavePlan
    if isinstance(fields, dict):
        return sum(len(k) + len(v) for k, v in fields.items())
    return 0


class ObservedBoundary:
    """Delegates to a :class:`Boundary`; times ``call`` when ``session_call`` has receivers."""

    def __init__(self, boundary: Boundary) -> None:
        self._boundary = boundary

    def call(self, method: str, returning: R, func: Callable[..., T], *args: Any) -> T | R:
        boundary = self._boundary
        if not _SESSION_CALL.receivers:
            return boundary.call(method, returning, func, *args)
        start = time.perf_counter()
        result = boundary.call(method, _FAILED, func, *args)
        duration = time.perf_counter() - start
        payload: dict[str, Any] = {}
        if result is _FAILED:
            payload["error"] = True
        first = args[0] if args else None
        key = getattr(first, "key", first)  # a SavePlan, or the Redis key
        size = _size(result) if result is not _FAILED else 0
        size = size or max((_size(a) for a in args), default=0)
        fields = getattr(result, "fields", _FAILED)
        if fields is not _FAILED:
            payload["hit"] = fields is not None
        protect("session_call receiver", _SESSION_CALL.send, boundary.app, key=key,
                operation=getattr(func, "__name__", method), method=method, duration=duration,
                purpose="session", local=False, size=size, **payload)
        return returning if result is _FAILED else cast(T, result)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._boundary, name)


def observe_session(boundary: Boundary) -> Boundary:
    """``boundary``, wrapped so that session calls are sent as ``session_call``."""
    return cast(Boundary, ObservedBoundary(boundary))

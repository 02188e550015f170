"""Where local copies live (``REDIS_LOCAL_CACHE``): per app context or per process.

A :class:`Source` answers :class:`~flask_rediscache.local_store.LocalStore`'s
questions — is there a copy, may this read's result be kept, what does a
write do to the copies — for one mode:

* :class:`RequestSource` (``"request"``, Rails' ``LocalCache``): a
  :class:`~flask_rediscache.local_cache.Copies` in :data:`flask.g`, so one per
  app context, gone at teardown; this context's writes go through to it.
* :class:`ProcessSource` (``"process"``): the process's
  :class:`~flask_rediscache.tracking.Tracker`, kept correct by Redis'
  invalidation messages; this process's writes drop the copy at once (the
  echo of the write's own invalidation would drop a written-through copy
  anyway).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from flask import g, has_app_context

from .local_cache import ABSENT, Copies, Copy, _Absent
from .tracking import Tracker

#: The attribute of :data:`flask.g` holding a request-mode context's copies.
G_ATTR: Final = "_flask_rediscache_local_copies"


class Source:
    """Where local copies live; see :class:`RequestSource` and :class:`ProcessSource`."""

    mode = ""

    def lookup(self, key: bytes) -> Copy | _Absent:
        raise NotImplementedError

    def begin(self, key: bytes) -> int | None:
        raise NotImplementedError

    def finish(self, key: bytes, token: int, raw: Copy | _Absent,
               expires_in: float | None) -> None:
        raise NotImplementedError

    def wrote(self, key: bytes, raw: bytes | None) -> None:
        """This process stored ``raw`` (None: deleted) at ``key``."""
        raise NotImplementedError

    def forget(self, keys: Iterable[bytes]) -> None:
        """``keys`` changed in a way no copy can follow (a counter, a TTL, a failed write)."""
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        """Stop what runs in the background (the process near-cache's listener)."""

    def problem(self, timeout: float) -> str | None:
        """Why no copy can be served (after waiting up to ``timeout``); None: they can."""
        return None


class RequestSource(Source):
    """Copies per app context (in :data:`flask.g`); outside one, nothing is kept."""

    mode = "request"

    def __init__(self, max_entries: int, max_bytes: int, ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries, self.max_bytes, self.ttl = max_entries, max_bytes, ttl
        self._clock = clock
        # Totals over all contexts of this process (approximate under threads: stats only).
        self.hits = 0
        self.misses = 0

    def _copies(self, create: bool) -> Copies | None:
        if not has_app_context():
            return None
        copies: Copies | None = g.get(G_ATTR)
        if copies is None and create:
            copies = Copies(self.max_entries, self.max_bytes, self.ttl)
            setattr(g, G_ATTR, copies)
        return copies

    def lookup(self, key: bytes) -> Copy | _Absent:
        copies = self._copies(False)
        if copies is None:
            if has_app_context():  # the context's first read: a miss like any other
                self.misses += 1
            return ABSENT
        raw = copies.get(key, self._clock())
        if raw is ABSENT:
            self.misses += 1
        else:
            self.hits += 1
        return raw

    def begin(self, key: bytes) -> int | None:
        return 0 if has_app_context() else None

    def finish(self, key: bytes, token: int, raw: Copy | _Absent,
               expires_in: float | None) -> None:
        copies = self._copies(True)
        if copies is not None:
            if raw is ABSENT:
                copies.discard(key)
            else:
                copies.put(key, raw, self._clock(), expires_in)

    def wrote(self, key: bytes, raw: bytes | None) -> None:
        self.finish(key, 0, raw, None)

    def forget(self, keys: Iterable[bytes]) -> None:
        copies = self._copies(False)
        if copies is not None:
            for key in keys:
                copies.discard(key)

    def clear(self) -> None:
        copies = self._copies(False)
        if copies is not None:
            copies.clear()

    def stats(self) -> dict[str, Any]:
        looked = self.hits + self.misses
        return {"mode": "request", "hits": self.hits, "misses": self.misses,
                "hit_ratio": round(self.hits / looked, 4) if looked else None,
                "max_entries": self.max_entries, "max_bytes": self.max_bytes}


class ProcessSource(Source):
    """The process's near-cache: a :class:`~flask_rediscache.tracking.Tracker`."""

    mode = "process"

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.lookup = tracker.lookup  # type: ignore[method-assign]
        self.begin = tracker.begin  # type: ignore[method-assign]
        self.finish = tracker.finish  # type: ignore[method-assign]

    def wrote(self, key: bytes, raw: bytes | None) -> None:
        self.tracker.invalidate((key,))

    def forget(self, keys: Iterable[bytes]) -> None:
        self.tracker.invalidate(keys)

    def clear(self) -> None:
        self.tracker.invalidate_all()

    def stats(self) -> dict[str, Any]:
        return self.tracker.stats()

    def close(self) -> None:
        self.tracker.close()

    def problem(self, timeout: float) -> str | None:
        return self.tracker.wait(timeout)

"""Cache reads: ``get``, ``get_many``, ``get_dict``, ``read_multi``, ``has``, ``ttl``.

Part of :class:`~flask_rediscache.cache.Cache`; the ``cache_read``,
``cache_read_multi`` and ``cache_exist`` payloads are filled from the store's
results here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from . import signals
from .cache_base import CacheBase
from .codec import MISS, Codec, version_bytes
from .keys import make_key
from .stampede import Stale
from .store import MISSING, Entry

_READ, _READ_MULTI, _EXIST = signals.cache_read, signals.cache_read_multi, signals.cache_exist
_peek = Codec.peek


class Reads(CacheBase):
    """The read operations of :class:`~flask_rediscache.cache.Cache`."""

    # -- reads -------------------------------------------------------------
    def get(self, key: str, default: Any = None, *, signed: bool = False, stale: bool = False,
            version: Any = None) -> Any:
        """The value stored at ``key``, or ``default`` when it is missing,
        expired or unreadable (pass a sentinel ``default`` to tell a cached
        ``None`` from a miss).

        ``version`` (``str``/``int``, Rails' recyclable keys): only an entry
        written with that version is a hit; any other entry is a miss (and
        the next versioned write replaces it in place). Without ``version``
        any entry is read, versioned or not.

        ``signed=True`` accepts only entries this package signed (memoize,
        cached and fetch read that way; plain counters written by :meth:`inc`
        are then a miss). ``stale=True`` is the stampede-aware read used by
        :meth:`fetch` and the decorators: an entry past its logical expiry
        comes back as :class:`Stale`, and only a fresh hit is recorded (for
        a miss or a stale entry the caller records exactly one outcome).
        """
        return self._read("get", key, default, signed, stale, version)

    def _read(self, method: str, key: str, default: Any, signed: bool, stale: bool,
              version: Any = None) -> Any:
        rkey = make_key(self.namespace, key)
        if _READ.receivers:
            entry: Entry | None = self._observed(
                _READ, method, None, self.store.read_sized, (rkey, not signed, version_bytes(version)),
                {"key": key}, _read_outcome)
        elif version is None:
            entry = self.boundary.call(method, None, self.store.read, rkey, not signed)
        else:
            entry = self.boundary.call(method, None, self.store.read, rkey, not signed,
                                       version_bytes(version))
        if entry is None or entry.value is MISS:
            if not stale:
                self.record(key, False)
            return default
        if entry.stale:
            if stale:
                return Stale(entry.value)
            self.record(key, False)
            return default
        self.record(key, True, entry.local)
        return entry.value

    def _read_entries(self, method: str, keys: Sequence[str], signed: bool,
                      version: Any) -> list[Entry] | None:
        """One MGET of ``keys`` through the boundary (timed when someone listens)."""
        namespace = self.namespace
        rkeys = [make_key(namespace, k) for k in keys]
        vbytes = version_bytes(version)
        if _READ_MULTI.receivers:
            return self._observed(_READ_MULTI, method, None, self.store.read_many_sized,  # type: ignore[no-any-return]
                                  (rkeys, not signed, vbytes), {"key": list(keys)},
                                  _multi_outcome(keys))
        return self.boundary.call(method, None, self.store.read_many, rkeys, not signed, vbytes)

    def get_many(self, *keys: str, signed: bool = False, version: Any = None) -> list[Any]:
        """The values of ``keys`` in order, ``None`` for each miss; one ``MGET``
        (per hash slot on a cluster). Records one hit or miss per key."""
        if not keys:
            return []
        entries = self._read_entries("get_many", keys, signed, version)
        out: list[Any] = []
        if entries is None:
            for key in keys:
                self.record(key, False)
                out.append(None)
            return out
        if signals.cache_hit.receivers or signals.cache_miss.receivers:
            record = self.record
            for key, entry in zip(keys, entries, strict=True):
                hit = entry.value is not MISS and not entry.stale
                record(key, hit, entry.local)
                out.append(entry.value if hit else None)
            return out
        # Nobody listens: count in bulk (a hundred method calls less per batch).
        append = out.append
        hits = 0
        for entry in entries:
            if entry.value is not MISS and not entry.stale:
                hits += 1
                append(entry.value)
            else:
                append(None)
        self.hits += hits
        self.misses += len(entries) - hits
        return out

    def get_dict(self, *keys: str, version: Any = None) -> dict[str, Any]:
        """:meth:`get_many` as a ``{key: value}`` dict (``None`` for misses)."""
        return dict(zip(keys, self.get_many(*keys, version=version), strict=True))

    def read_multi(self, *keys: str, version: Any = None) -> dict[str, Any]:
        """Rails' ``read_multi``: ``{key: value}`` of the keys *found*, in the
        order of ``keys``, in one ``MGET``. Unlike :meth:`get_dict`, a miss is
        left out (so a cached ``None`` is told apart from a miss)."""
        if not keys:
            return {}
        entries = self._read_entries("read_multi", keys, False, version)
        out: dict[str, Any] = {}
        for key, entry in zip(keys, entries or [MISSING] * len(keys), strict=True):
            hit = entry.value is not MISS and not entry.stale
            self.record(key, hit, entry.local)
            if hit:
                out[key] = entry.value
        return out

    def has(self, key: str, *, version: Any = None) -> bool:
        """Whether ``key`` holds a live entry, as Rails' ``exist?``: an entry
        past its logical expiry (kept only for ``race_condition_ttl``) does
        not count, nor (with ``version``) an entry of another version.
        One ``GETRANGE`` of the entry's header: the value is not transferred
        (its signature is not checked either: ``has`` never unpickles)."""
        rkey = self.key(key)
        vbytes = version_bytes(version)
        if _EXIST.receivers:
            def outcome(head: Any, payload: dict[str, Any]) -> bool:
                payload["exist"] = live = _live(head, vbytes, time.time())
                payload["size"] = len(head)
                return live
            return bool(self._observed(_EXIST, "has", b"", self.store.peek, (rkey,), {"key": key}, outcome))
        return _live(self.boundary.call("has", b"", self.store.peek, rkey), vbytes, time.time())

    def ttl(self, key: str) -> int | None:
        """Seconds until ``key`` expires (django-redis' meaning, rounded up):
        ``None`` when it has no expiry, ``0`` when it is missing (or Redis
        failed). For an entry written with ``race_condition_ttl`` this is its
        *logical* expiry: inside the stale window ``ttl`` is ``0`` and
        :meth:`has` is ``False``. One round trip (``PTTL`` + ``GETRANGE`` of
        the header)."""
        pttl, head = self.boundary.call("ttl", (-2, b""), self.store.pttl_peek, self.key(key))
        if pttl == -2:
            return 0
        if pttl == -1:
            return None
        seconds = math.ceil(pttl / 1000)
        meta = _peek(head)
        if meta is not None and meta[0] is not None:
            logical = meta[0] - time.time()
            return max(0, min(seconds, math.ceil(logical)))
        return max(0, seconds)


def _read_outcome(result: Any, payload: dict[str, Any]) -> Entry | None:
    """Split ``read_sized``'s ``(entry, size)`` for the ``cache_read`` payload."""
    if result is None:
        payload["hit"] = False
        payload["size"] = 0
        return None
    entry, size = result
    payload["hit"] = entry.value is not MISS and not entry.stale
    payload["size"] = size
    payload["local"] = entry.local
    return entry  # type: ignore[no-any-return]


def _multi_outcome(keys: Sequence[str]) -> Callable[[Any, dict[str, Any]], list[Entry] | None]:
    def outcome(result: Any, payload: dict[str, Any]) -> list[Entry] | None:
        if result is None:
            payload.update(hits=[], misses=list(keys), size=0)
            return None
        entries, size = result
        hits = [k for k, e in zip(keys, entries, strict=True) if e.value is not MISS and not e.stale]
        found = set(hits)
        payload.update(hits=hits, misses=[k for k in keys if k not in found], size=size,
                       local=bool(entries) and all(e.local for e in entries))
        return entries  # type: ignore[no-any-return]
    return outcome


def _live(head: bytes, version: bytes | None, now: float) -> bool:
    """Does the header ``head`` (from ``GETRANGE``) belong to a live entry of ``version``?"""
    if not head:
        return False
    meta = _peek(head)
    if meta is None:  # a counter or foreign bytes: present, unversioned
        return version is None
    expires_at, stored = meta
    if version is not None and stored != version:
        return False
    return expires_at is None or expires_at > now

"""Cache writes: ``set``, ``add``, ``set_many``, deletes, counters and expiry.

Part of :class:`~flask_rediscache.cache.Cache`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from . import signals
from .cache_base import CacheBase, epoch_seconds
from .codec import version_bytes
from .config import timeout_seconds
from .errors import UnpicklableError
from .keys import escape_glob

logger = logging.getLogger("flask_rediscache")

_WRITE, _WRITE_MULTI = signals.cache_write, signals.cache_write_multi
_DELETE, _DELETE_MULTI = signals.cache_delete, signals.cache_delete_multi
_DELETE_MATCHED = signals.cache_delete_matched
_INCREMENT, _DECREMENT = signals.cache_increment, signals.cache_decrement


class Writes(CacheBase):
    """The write, delete, counter and expiry operations of :class:`~flask_rediscache.cache.Cache`."""

    # -- expiry --------------------------------------------------------------
    def expire(self, key: str, timeout: Any) -> bool:
        """Give ``key`` a new TTL (seconds or ``timedelta``; ``0`` removes the
        expiry): one ``EXPIRE``, the value is not transferred. ``True`` if the
        key exists (for ``0``: if a TTL was removed). An entry written with
        ``race_condition_ttl`` keeps its logical expiry: fetch/memoize still
        recompute it then."""
        if timeout is None:
            raise ValueError("expire(key, timeout): timeout is required (use touch() for the default)")
        return bool(self.boundary.call("expire", False, self.store.expire, self.key(key),
                                       timeout_seconds(timeout)))

    def expire_at(self, key: str, when: Any) -> bool:
        """Expire ``key`` at ``when`` (an aware ``datetime`` or epoch seconds):
        one ``PEXPIREAT``. ``True`` if the key exists; a time in the past deletes it."""
        when_ms = int(epoch_seconds(when, "when") * 1000)
        return bool(self.boundary.call("expire_at", False, self.store.expire_at_ms, self.key(key), when_ms))

    def persist(self, key: str) -> bool:
        """Remove ``key``'s expiry (``PERSIST``); ``True`` if a TTL was removed."""
        return bool(self.boundary.call("persist", False, self.store.persist, self.key(key)))

    def touch(self, key: str, timeout: Any = None) -> bool:
        """Reset ``key``'s TTL to ``timeout`` (default ``REDIS_DEFAULT_TIMEOUT``;
        ``0`` = no expiry), Django's ``touch``: one command (``EXPIRE``, or
        ``PERSIST`` for 0), no value transferred. ``True`` if the key exists."""
        return bool(self.boundary.call("touch", False, self.store.expire, self.key(key),
                                       self.expiry(timeout)))

    # -- writes --------------------------------------------------------------
    def set(self, key: str, value: Any, timeout: Any = None, *, signed: bool = False,
            race_condition_ttl: float = 0, version: Any = None) -> bool:
        """Store ``value`` (any picklable object) for ``timeout`` seconds or a
        ``timedelta``; ``None`` means ``REDIS_DEFAULT_TIMEOUT``, ``0`` no expiry.
        ``False`` if Redis failed. An unpicklable value raises
        :class:`~flask_rediscache.errors.UnpicklableError` (a ``TypeError``).

        ``version`` is stored inside the entry (see :meth:`get`): the key
        stays the same, so bumping the version replaces the entry in place.
        ``signed=True`` never uses the plain counter form for an ``int``;
        ``race_condition_ttl`` keeps the entry that many seconds past its
        logical expiry (what :meth:`fetch` and ``memoize`` write).
        """
        rkey = self.key(key)
        ttl = self.expiry(timeout)
        store = self.store
        vbytes = version_bytes(version)
        if race_condition_ttl and ttl:
            data = store.encode(rkey, value, signed=True, expires_at=time.time() + ttl, version=vbytes)
            args: tuple[Any, ...] = (rkey, data, ttl, race_condition_ttl)
        else:
            data = store.encode(rkey, value, signed=signed, version=vbytes)
            args = (rkey, data, ttl)
        if _WRITE.receivers:
            return bool(self._observed(_WRITE, "set", False, store.write, args,
                                       {"key": key, "size": len(data)}))
        return bool(self.boundary.call("set", False, store.write, *args))

    def add(self, key: str, value: Any, timeout: Any = None, *, version: Any = None) -> bool:
        """Store ``value`` only if ``key`` is absent, atomically (``SET NX``).
        ``True`` if this call stored it; ``False`` if the key existed or Redis
        failed (the command is never retried, so a lost reply is ``False``,
        never a second attempt that reports the opposite). An entry of another
        ``version`` still counts as present."""
        rkey = self.key(key)
        data = self.store.encode(rkey, value, version=version_bytes(version))
        return bool(self._op(_WRITE, "add", False, self.store.add, rkey, data, self.expiry(timeout),
                             key=key, size=len(data)))

    def _encode_many(self, items: Iterable[tuple[str, Any]], version: Any, *,
                     expires_at: float | None = None,
                     skip: bool = False) -> tuple[list[str], list[tuple[bytes, bytes]]]:
        store = self.store
        vbytes = version_bytes(version)
        names: list[str] = []
        encoded: list[tuple[bytes, bytes]] = []
        for key, value in items:
            rkey = self.key(key)
            try:
                data = store.encode(rkey, value, signed=expires_at is not None, expires_at=expires_at,
                                    version=vbytes)
            except UnpicklableError as exc:
                if not skip:
                    raise
                self.unpicklable(value, exc)
                continue
            names.append(key)
            encoded.append((rkey, data))
        return names, encoded

    def set_many(self, mapping: Mapping[str, Any], timeout: Any = None, *, version: Any = None) -> list[str]:
        """Store every item of ``mapping`` in one round trip (a non-transactional
        pipeline). Returns the keys that were stored (``[]`` if Redis failed)."""
        return self._write_many("set_many", list(mapping.items()), self.expiry(timeout), 0, version)

    def write_multi(self, mapping: Mapping[str, Any], timeout: Any = None, *,
                    version: Any = None) -> list[str]:
        """Rails' ``write_multi``: :meth:`set_many` (one round trip); returns the keys stored."""
        return self._write_many("write_multi", list(mapping.items()), self.expiry(timeout), 0, version)

    def _write_many(self, method: str, items: list[tuple[str, Any]], ttl: int, race_ttl: float,
                    version: Any, *, skip: bool = False) -> list[str]:
        if not items:
            return []
        expires_at = time.time() + ttl if race_ttl and ttl else None
        names, encoded = self._encode_many(items, version, expires_at=expires_at, skip=skip)
        if not encoded:
            return []
        extra = race_ttl if expires_at is not None else 0
        if _WRITE_MULTI.receivers:
            results = self._observed(_WRITE_MULTI, method, None, self.store.write_many, (encoded, ttl, extra),
                                     {"key": names, "size": sum(len(data) for _, data in encoded)})
        else:
            results = self.boundary.call(method, None, self.store.write_many, encoded, ttl, extra)
        if results is None:
            return []
        return [key for key, ok in zip(names, results, strict=True) if ok]

    def delete(self, key: str, *, version: Any = None) -> bool:
        """Delete ``key`` (``UNLINK``: the memory is freed in the background);
        ``True`` if it existed. With ``version``, only an entry of that
        version is deleted (``GET`` then ``UNLINK``)."""
        if version is None:
            return bool(self._op(_DELETE, "delete", 0, self.store.unlink, [self.key(key)], key=key))
        return bool(self._op(_DELETE, "delete", False, self.store.delete_version, self.key(key),
                             version_bytes(version), key=key))

    def delete_many(self, *keys: str) -> int:
        """Delete several keys in one round trip; returns how many existed."""
        if not keys:
            return 0
        return int(self._op(_DELETE_MULTI, "delete_many", 0, self.store.unlink, [self.key(k) for k in keys],
                            key=list(keys)))

    def unlink(self, *keys: str) -> int:
        """Flask-Caching's ``unlink``: delete ``keys`` in one round trip with
        ``UNLINK`` (the memory is freed in the background); returns how many
        existed. :meth:`delete` and :meth:`delete_many` use ``UNLINK`` too."""
        if not keys:
            return 0
        return int(self._op(_DELETE_MULTI, "unlink", 0, self.store.unlink, [self.key(k) for k in keys],
                            key=list(keys)))

    def inc(self, key: str, delta: int = 1, timeout: Any = None) -> int | None:
        """Atomically add ``delta`` (``INCRBY``) and return the new value; a
        missing key counts from 0. ``timeout`` (default ``REDIS_DEFAULT_TIMEOUT``,
        ``0`` = none) sets a TTL only when the key has none, so a rate-limit
        window is not extended by each hit; INCRBY and ``EXPIRE NX`` share one
        round trip. ``None`` if Redis failed (the command is never retried: a
        lost reply must not count twice) or the key holds a non-counter."""
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"delta must be an int, not {type(delta).__name__}")
        return self._incr("inc", _INCREMENT, key, delta, delta, timeout)

    def dec(self, key: str, delta: int = 1, timeout: Any = None) -> int | None:
        """:meth:`inc` by ``-delta``."""
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"delta must be an int, not {type(delta).__name__}")
        return self._incr("dec", _DECREMENT, key, -delta, delta, timeout)

    def _incr(self, method: str, signal: Any, key: str, delta: int, amount: int, timeout: Any) -> int | None:
        result: int | None = self._op(signal, method, None, self.store.incr, self.key(key), delta,
                                      self.expiry(timeout), key=key, amount=amount)
        return result

    def delete_matched(self, pattern: str) -> int:
        """Delete every key of the namespace matching the Redis glob ``pattern``
        (``"user:*"`` deletes ``<namespace>:user:*``) with ``SCAN`` in batches and
        ``UNLINK``, never ``KEYS``, so Redis is not blocked; on a cluster every
        primary is scanned. Returns how many keys were deleted (0 if Redis
        failed). Keys longer than 250 bytes are stored as a head and a
        digest, so match them by their start."""
        if not isinstance(pattern, str):
            raise TypeError(f"pattern must be str, not {type(pattern).__name__}")
        match = (escape_glob(self.namespace) + ":" + pattern).encode("utf-8", "surrogatepass")
        return int(self._op(_DELETE_MATCHED, "delete_matched", 0, self.store.delete_matching, match,
                            key=pattern))

    def clear(self) -> int:
        """Delete every key of the namespace (``delete_matched("*")``); never
        ``FLUSHDB``/``FLUSHALL``, so other data in the same Redis survives."""
        return self.delete_matched("*")

    def unpicklable(self, value: Any, exc: BaseException) -> None:
        """A computed value could not be pickled: it is served uncached; say so once per type."""
        kind = type(value).__name__
        if kind not in self._unpicklable_logged:
            self._unpicklable_logged.add(kind)
            logger.warning("flask-rediscache: a %s result was not cached, it cannot be "
                           "pickled: %s: %s", kind, type(exc).__name__, exc)

"""The cache API on :class:`~flask_rediscache.RedisCache`: ``get``, ``set``, ... ``fetch``, ``lock``.

Part of ``RedisCache``: each method hands its call to the current app's
:class:`~flask_rediscache.cache.Cache` (see there for the details).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .cache import Cache
    from .locks import Lock

T = TypeVar("T")


class CacheAPI:
    """The cache methods of :class:`~flask_rediscache.RedisCache`."""

    if TYPE_CHECKING:
        def app_cache(self) -> Cache: ...

    def get(self, key: str, default: Any = None, *, signed: bool = False, stale: bool = False,
            version: Any = None) -> Any:
        """The value stored at ``key``, or ``default``; with ``version``, only an
        entry written with that version (see :meth:`.Cache.get`)."""
        if version is None:
            return self.app_cache().get(key, default, signed=signed, stale=stale)
        return self.app_cache().get(key, default, signed=signed, stale=stale, version=version)

    def set(self, key: str, value: Any, timeout: Any = None, *, signed: bool = False,
            race_condition_ttl: float = 0, version: Any = None) -> bool:
        """Store ``value``; ``timeout`` in seconds or a timedelta, None = default, 0 = forever;
        ``version`` is stored in the entry (see :meth:`.Cache.set`)."""
        return self.app_cache().set(key, value, timeout, signed=signed, race_condition_ttl=race_condition_ttl,
                                    version=version)

    def delete(self, key: str, *, version: Any = None) -> bool:
        """Delete ``key``; True if it existed. With ``version``, only an entry of that version."""
        return self.app_cache().delete(key, version=version)

    def add(self, key: str, value: Any, timeout: Any = None, *, version: Any = None) -> bool:
        """Store ``value`` only if ``key`` is absent (atomic ``SET NX``); True if stored."""
        return self.app_cache().add(key, value, timeout, version=version)

    def delete_many(self, *keys: str) -> int:
        """Delete several keys in one round trip; returns how many existed
        (Flask-Caching returns the list of keys deleted)."""
        return self.app_cache().delete_many(*keys)

    def unlink(self, *keys: str) -> int:
        """Delete several keys with ``UNLINK`` (Flask-Caching's name); returns how many existed."""
        return self.app_cache().unlink(*keys)

    def has(self, key: str, *, version: Any = None) -> bool:
        """Whether ``key`` holds a live entry (false inside the ``race_condition_ttl``
        stale window, as Rails' ``exist?``; see :meth:`.Cache.has`)."""
        return self.app_cache().has(key, version=version)

    def get_many(self, *keys: str, version: Any = None) -> list[Any]:
        """The values of ``keys`` in order (``None`` for misses), in one round trip."""
        return self.app_cache().get_many(*keys, version=version)

    def get_dict(self, *keys: str, version: Any = None) -> dict[str, Any]:
        """``{key: value}`` for ``keys`` (``None`` for misses), in one round trip."""
        return self.app_cache().get_dict(*keys, version=version)

    def read_multi(self, *keys: str, version: Any = None) -> dict[str, Any]:
        """Rails' ``read_multi``: ``{key: value}`` of the keys found (misses left out), one round trip."""
        return self.app_cache().read_multi(*keys, version=version)

    def set_many(self, mapping: Mapping[str, Any], timeout: Any = None, *, version: Any = None) -> list[str]:
        """Store every item of ``mapping`` in one round trip; returns the keys stored."""
        return self.app_cache().set_many(mapping, timeout, version=version)

    def write_multi(self, mapping: Mapping[str, Any], timeout: Any = None, *,
                    version: Any = None) -> list[str]:
        """Rails' ``write_multi`` (:meth:`set_many`): one round trip; returns the keys stored."""
        return self.app_cache().write_multi(mapping, timeout, version=version)

    def inc(self, key: str, delta: int = 1, timeout: Any = None) -> int | None:
        """Atomically add ``delta``; ``timeout`` sets a TTL only when the key has none."""
        return self.app_cache().inc(key, delta, timeout)

    def dec(self, key: str, delta: int = 1, timeout: Any = None) -> int | None:
        """Atomically subtract ``delta``; ``timeout`` sets a TTL only when the key has none."""
        return self.app_cache().dec(key, delta, timeout)

    def ttl(self, key: str) -> int | None:
        """Seconds until ``key`` expires; ``None`` if it has no expiry, ``0`` if it is missing
        or inside its stale window (see :meth:`.Cache.ttl`)."""
        return self.app_cache().ttl(key)

    def expire(self, key: str, timeout: Any) -> bool:
        """Set ``key``'s TTL (one ``EXPIRE``; ``0`` removes it); True if the key exists."""
        return self.app_cache().expire(key, timeout)

    def expire_at(self, key: str, when: Any) -> bool:
        """Expire ``key`` at an aware ``datetime`` or epoch seconds (one ``PEXPIREAT``)."""
        return self.app_cache().expire_at(key, when)

    def persist(self, key: str) -> bool:
        """Remove ``key``'s expiry (``PERSIST``); True if a TTL was removed."""
        return self.app_cache().persist(key)

    def touch(self, key: str, timeout: Any = None) -> bool:
        """Reset ``key``'s TTL to ``timeout`` (default ``REDIS_DEFAULT_TIMEOUT``): one
        command, no value transferred; True if the key exists."""
        return self.app_cache().touch(key, timeout)

    def fetch(self, key: str, func: Callable[[], T], timeout: Any = None,
              race_condition_ttl: float | None = None, force: bool = False, *,
              skip_nil: bool = False, expires_at: Any = None, version: Any = None) -> T:
        """The cached value of ``key``, or ``func()`` stored and returned, with stampede
        control; ``skip_nil``, ``expires_at``, ``version`` as in :meth:`.Cache.fetch`."""
        return self.app_cache().fetch(key, func, timeout, race_condition_ttl, force, skip_nil=skip_nil,
                                      expires_at=expires_at, version=version)

    def fetch_multi(self, keys: Any, compute: Callable[[list[str]], Mapping[str, Any]], *,
                    timeout: Any = None, race_condition_ttl: float | None = None, skip_nil: bool = False,
                    version: Any = None) -> dict[str, Any]:
        """Rails' ``fetch_multi``: one read round trip, ``compute(missing)`` called once,
        the misses stored in one round trip; ``{key: value}`` in the order of ``keys``
        (see :meth:`.Cache.fetch_multi`)."""
        return self.app_cache().fetch_multi(keys, compute, timeout=timeout,
                                            race_condition_ttl=race_condition_ttl, skip_nil=skip_nil,
                                            version=version)

    def lock(self, name: str, timeout: float | None = 10, blocking_timeout: float | None = 5, *,
             blocking: bool = True, sleep: float = 0.1, thread_local: bool = True) -> Lock:
        """A distributed lock (redis-py's ``Lock``, namespaced): ``with cache.lock("job"): ...``.
        Never fails open: raises :class:`~flask_rediscache.errors.LockError` when Redis is
        unreachable or the lock is not free within ``blocking_timeout`` (see :meth:`.Cache.lock`)."""
        return self.app_cache().lock(name, timeout, blocking_timeout, blocking=blocking, sleep=sleep,
                                     thread_local=thread_local)

    def delete_matched(self, pattern: str) -> int:
        """Delete the namespace's keys matching the glob ``pattern`` (SCAN + UNLINK); returns the count."""
        return self.app_cache().delete_matched(pattern)

    def clear(self) -> int:
        """Delete every key of the namespace (never FLUSHDB); returns the count."""
        return self.app_cache().clear()

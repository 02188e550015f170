"""Named distributed locks (``cache.lock(name)``): redis-py's ``Lock``, never failing open.

:meth:`flask_rediscache.RedisCache.lock` returns a :class:`Lock`: redis-py's
own ``redis.lock.Lock`` (``SET NX PX`` to acquire; token-checked release,
extend and reacquire as Lua scripts registered through the client, so they
need ``+evalsha`` and ``+script|load``, see docs/topologies/acl.rst), on the
primary of the cache purpose, under ``<namespace>:locks:<name>``.

Unlike every other cache operation a lock does **not** fail open: mutual
exclusion cannot be faked. When Redis is unreachable, refuses a command
(``NOPERM``, ``READONLY``, ...) or the lock is not free within
``blocking_timeout``, :class:`~flask_rediscache.errors.LockError` (a subclass
of redis-py's ``LockError``) is raised. Releasing or extending a lock that
is no longer ours (it expired and someone else took it) raises redis-py's
``LockNotOwnedError`` as redis-py does. Acquisition is never retried: a lost
reply must not make us wait on a lock we hold ourselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

import redis.lock
from redis.exceptions import LockError as RedisLockError
from redis.exceptions import RedisClusterException, RedisError

from .errors import LockError

T = TypeVar("T")

#: What a lock turns into :class:`~flask_rediscache.errors.LockError`
#: (redis-py's own lock errors pass through unchanged).
_REDIS_FAILURES: tuple[type[BaseException], ...] = (RedisError, RedisClusterException, OSError)


class Lock(redis.lock.Lock):
    """redis-py's ``Lock`` whose Redis failures raise
    :class:`~flask_rediscache.errors.LockError` (see the module docstring).

    ``with cache.lock("report", timeout=10, blocking_timeout=5): ...``, or
    ``lock.acquire(blocking=False)`` for the non-blocking form, then
    ``lock.extend(seconds)``, ``lock.reacquire()``, ``lock.release()``,
    ``lock.locked()``, ``lock.owned()``.
    """

    def _guard(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except RedisLockError:
            raise
        except _REDIS_FAILURES as exc:
            name = self.name.decode("utf-8", "replace") if isinstance(self.name, bytes) else self.name
            raise LockError(f"could not {what} the lock {name!r}: {type(exc).__name__}: {exc} "
                            "(locks never fail open)") from exc

    def __enter__(self) -> Lock:
        if self.acquire():
            return self
        name = self.name.decode("utf-8", "replace") if isinstance(self.name, bytes) else self.name
        raise LockError(f"the lock {name!r} is held by someone else and was not released within "
                        f"blocking_timeout={self.blocking_timeout}s")

    def acquire(self, sleep: float | None = None, blocking: bool | None = None,
                blocking_timeout: float | None = None, token: Any = None) -> bool:
        """Take the lock; ``False`` if ``blocking=False`` (or ``blocking_timeout``
        passed) and someone else holds it."""
        return bool(self._guard("acquire", lambda: super(Lock, self).acquire(
            sleep=sleep, blocking=blocking, blocking_timeout=blocking_timeout, token=token)))

    def release(self) -> None:
        """Release the lock if it still holds our token (else ``LockNotOwnedError``)."""
        self._guard("release", super().release)

    def extend(self, additional_time: float, replace_ttl: bool = False) -> Literal[True]:
        """Add ``additional_time`` seconds (or set the TTL to it with ``replace_ttl``)."""
        return self._guard("extend", lambda: super(Lock, self).extend(additional_time, replace_ttl))

    def reacquire(self) -> Literal[True]:
        """Reset the TTL to the lock's ``timeout``."""
        return self._guard("reacquire", super().reacquire)

    def locked(self) -> bool:
        """Whether anyone holds the lock."""
        return self._guard("check", super().locked)

    def owned(self) -> bool:
        """Whether this lock object holds it."""
        return self._guard("check", super().owned)

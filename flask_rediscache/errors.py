"""The exceptions flask-rediscache raises itself.

This module imports nothing from the package, so every other module may
import it. Redis' own errors (``redis.exceptions``) pass through unchanged
where the fail-open boundary lets them (``REDIS_FAIL_OPEN = False``).
"""

from __future__ import annotations

import redis.exceptions
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockError as RedisLockError

#: redis-py's exception for an exhausted pool (redis-py >= 5.1); RedisCluster
#: passes it straight up instead of taking the node for dead.
_MaxConnectionsError: type[RedisConnectionError] = getattr(
    redis.exceptions, "MaxConnectionsError", RedisConnectionError)


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the key."""


class PoolExhaustedError(_MaxConnectionsError):  # type: ignore[valid-type,misc]
    """No pooled connection became free within ``REDIS_POOL_TIMEOUT``.

    Raised by our pool instead of redis-py's generic ``ConnectionError``, so
    the boundary can tell "this process is busy" from "the server is down"
    without reading the message text: a pool wait says nothing about the
    server's health, so it neither opens nor closes the circuit breaker.
    """


class CircuitOpenError(RedisConnectionError):
    """Raised instead of sending a command while the circuit breaker is open."""


class LockError(RedisLockError):
    """A :meth:`~flask_rediscache.RedisCache.lock` could not be acquired,
    extended or released because Redis was unreachable or refused it.

    Locks never fail open: mutual exclusion cannot be faked.
    """


class UnpicklableError(TypeError):
    """A value given to the cache cannot be pickled (its cause is pickle's own error).

    ``memoize`` and ``fetch`` serve such a result uncached (logged once per
    type); :meth:`~flask_rediscache.RedisCache.set` raises it.
    """

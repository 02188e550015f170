"""Retrying the commands that are safe to repeat, with redis-py's own ``Retry``.

Connections never retry by themselves (``clients`` gives them
``Retry(NoBackoff(), 0)``): whether a command may be repeated depends on the
command, not the connection. :class:`Retrier` is what the strict stores use for
the idempotent ones (GET, SET without NX, MGET, UNLINK, EXPIRE, TTL, SCAN,
HGETALL, a MULTI/EXEC save guarded by WATCH...). ``INCRBY``, ``SET NX`` and lock
acquisition are sent once and never go through it: once they may have reached
the server, a lost reply must not turn into a second increment, or into "the
key exists" for the very caller that wrote it.

Only ``Retry.call_with_retry(do, fail)`` is used, which every redis-py from
5.0 on has (``is_retryable`` and ``get_retries`` came later).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from redis.backoff import AbstractBackoff, ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from .errors import CircuitOpenError, PoolExhaustedError

T = TypeVar("T")

#: What a retry may help with: the connection was refused, reset or dropped.
#: Timeouts are not retried: against a hung server that only multiplies the
#: wait. The builtin ``ConnectionError`` is what a raw socket raises before
#: redis-py wraps it.
RETRIED: tuple[type[Exception], ...] = (RedisConnectionError, ConnectionError)
#: ConnectionError subclasses that are not network blips: a pool wait or an
#: open breaker. Retrying them only queues longer.
NOT_RETRIED: tuple[type[Exception], ...] = (PoolExhaustedError, CircuitOpenError)


class _Final(Exception):
    """Carries a non-retryable error through ``Retry.call_with_retry``."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _ignore(error: Exception) -> None:
    """The failure callback: redis-py already dropped the broken connection."""


class Retrier:
    """``attempts`` retries of an idempotent command after the first try.

    The first attempt runs outside redis-py's ``Retry`` (one call less on
    every command: this is the hot path of a memoize hit); after a retryable
    failure, a ``Retry`` with ``attempts - 1`` retries takes over, so the
    first retry happens at once (a connection the server closed is usually
    fine on the next try) and later ones back off.
    """

    def __init__(self, attempts: int, backoff: AbstractBackoff) -> None:
        self.attempts = attempts
        self._rest = Retry(backoff, max(0, attempts - 1), supported_errors=RETRIED)

    @classmethod
    def from_settings(cls, settings: Any) -> Retrier:
        """``REDIS_RECONNECT_ATTEMPTS`` retries with ``REDIS_RECONNECT_DELAY(_MAX)`` backoff."""
        return cls(settings.reconnect_attempts,
                   ExponentialBackoff(cap=settings.reconnect_delay_max, base=settings.reconnect_delay))

    def __call__(self, do: Callable[[], T]) -> T:
        try:
            return do()
        except NOT_RETRIED:
            raise
        except RETRIED:
            if not self.attempts:
                raise

        def guarded() -> T:
            try:
                return do()
            except NOT_RETRIED as exc:
                raise _Final(exc) from exc

        try:
            return self._rest.call_with_retry(guarded, _ignore)
        except _Final as final:
            raise final.error from None

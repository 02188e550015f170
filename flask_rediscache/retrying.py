"""Retrying the commands that are safe to repeat, with redis-py's own ``Retry``.

Connections never retry by themselves (:func:`no_retry`): whether a command
may be repeated depends on the command, not on the connection. The strict
stores send the idempotent ones (GET, SET without NX, MGET, UNLINK, EXPIRE,
TTL, SCAN, HGETALL, the session save script...) through a :class:`CommandRetry`
or the cache's :class:`Retrier`; ``INCRBY``, ``SET NX`` and lock acquisition
are sent once: once they may have reached the server, a lost reply must not
turn into a second increment, or into "the key exists" for the very caller
that wrote it.

Each retry checks a connection out of the pool again, which is what moves a
Sentinel client to a newly elected master.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from .errors import CircuitOpenError, PoolExhaustedError

T = TypeVar("T")

#: Errors a retry may help with: the connection was refused, reset or
#: dropped. The builtin ``ConnectionError`` is what a raw socket raises before
#: redis-py wraps it. Timeouts are not retried: against a hung server that
#: only multiplies the wait.
RETRIED_ERRORS: tuple[type[Exception], ...] = (RedisConnectionError, ConnectionError)
#: ConnectionError subclasses that are not network blips: a pool wait or an
#: open breaker. Retrying them only queues longer.
NOT_RETRIED: tuple[type[Exception], ...] = (PoolExhaustedError, CircuitOpenError)


class _Final(Exception):
    """Carries a non-retryable error through redis-py's ``Retry`` loop."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _ignore(error: Exception) -> None:
    """The failure callback: redis-py already dropped the broken connection."""


class CommandRetry(Retry):
    """redis-py's ``Retry`` that never retries :data:`NOT_RETRIED`.

    A pool wait that timed out or an open breaker is raised at once: another
    attempt would only wait again. Works on every redis-py from 5.0 (which
    has no ``is_retryable`` argument) by carrying such errors through the
    loop in an exception type the ``Retry`` does not support.
    """

    def call_with_retry(self, do: Callable[[], T], fail: Callable[..., Any],
                        *args: Any, **kwargs: Any) -> T:
        def guarded() -> T:
            try:
                return do()
            except NOT_RETRIED as exc:
                raise _Final(exc) from exc

        try:
            return super().call_with_retry(guarded, fail, *args, **kwargs)
        except _Final as final:
            error = final.error
            error.__suppress_context__ = True  # the _Final wrapper is noise in a traceback
            raise error  # noqa: B904 - re-raising the original, cause intact


def make_retry(settings: Any, retries: int | None = None) -> CommandRetry:
    """The retry policy of idempotent commands: ``REDIS_RECONNECT_ATTEMPTS``
    (or ``retries``) retries of a connection error, backing off
    ``REDIS_RECONNECT_DELAY`` * 2**n seconds up to ``REDIS_RECONNECT_DELAY_MAX``."""
    return CommandRetry(
        ExponentialBackoff(cap=settings.reconnect_delay_max, base=settings.reconnect_delay),
        settings.reconnect_attempts if retries is None else retries,
        supported_errors=RETRIED_ERRORS,
    )


def no_retry() -> Retry:
    """What every connection gets: no retries inside redis-py at all (redis-py 8
    would otherwise retry every command 3 times, and a connect 10 times)."""
    return Retry(NoBackoff(), 0)


class Retrier:
    """The cache store's retry: :func:`make_retry`'s policy with a fast first attempt.

    The first attempt runs outside redis-py's ``Retry`` (one call less on
    every command: this is the hot path of a memoize hit); after a retryable
    failure it waits the backoff's first delay, as ``Retry`` would, and a
    :class:`CommandRetry` with one retry fewer takes over. Attempts and
    delays are exactly :func:`make_retry`'s. (Retrying at once is not enough:
    right after a Sentinel demotion the immediate retry still reached the
    old master in the tests; after the first delay it reaches the new one.)
    """

    def __init__(self, attempts: int, rest: Retry, first_delay: float) -> None:
        self.attempts = attempts
        self._rest = rest
        self._first_delay = first_delay

    @classmethod
    def from_settings(cls, settings: Any) -> Retrier:
        """``REDIS_RECONNECT_ATTEMPTS`` retries with ``REDIS_RECONNECT_DELAY(_MAX)`` backoff."""
        attempts: int = settings.reconnect_attempts
        backoff = ExponentialBackoff(cap=settings.reconnect_delay_max, base=settings.reconnect_delay)
        return cls(attempts, make_retry(settings, max(0, attempts - 1)), backoff.compute(1))

    def __call__(self, do: Callable[[], T]) -> T:
        try:
            return do()
        except NOT_RETRIED:
            raise
        except RETRIED_ERRORS as error:
            return self.after(error, do)

    def after(self, error: Exception, do: Callable[[], T]) -> T:
        """The retries once a first attempt of ``do`` failed with ``error``
        (for callers that make the first attempt inline, on their hot path)."""
        if not self.attempts or isinstance(error, NOT_RETRIED) or not isinstance(error, RETRIED_ERRORS):
            raise error
        if self._first_delay > 0:
            time.sleep(self._first_delay)
        return self._rest.call_with_retry(do, _ignore)

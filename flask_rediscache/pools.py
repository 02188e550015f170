"""What every topology's connections share: the socket and TLS arguments,
and :class:`BoundedPool`, the bounded pool whose exhaustion is a type.

Used by :mod:`~flask_rediscache.clients` (standalone URLs, Sentinel) and
:mod:`~flask_rediscache.clients_cluster` (each cluster node's pool).
"""

from __future__ import annotations

import os
import queue
from typing import Any

import redis

from .config import Settings
from .errors import PoolExhaustedError
from .retrying import no_retry


def socket_kwargs(settings: Settings) -> dict[str, Any]:
    """Connection arguments of every pool: timeouts, no redis-py retries, and
    ``REDIS_CONNECTION_OPTIONS`` (validated against an allow-list in config)."""
    # redis-py has one socket timeout for reads and writes: REDIS_READ_TIMEOUT,
    # the one that bounds a hung server.
    return {
        **settings.connection_options,
        "socket_connect_timeout": settings.connect_timeout,
        "socket_timeout": settings.read_timeout,
        "retry": no_retry(),
    }


def ssl_kwargs(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"ssl_cert_reqs": settings.ssl_cert_reqs}
    if settings.ssl_ca_certs:
        kwargs["ssl_ca_certs"] = settings.ssl_ca_certs
    if settings.ssl_certfile:
        kwargs["ssl_certfile"] = settings.ssl_certfile
    if settings.ssl_keyfile:
        kwargs["ssl_keyfile"] = settings.ssl_keyfile
    return kwargs



class BoundedPool(redis.ConnectionPool):
    """A bounded pool whose callers wait for a free connection, and whose
    exhaustion is a type, not a message.

    redis-py's ``BlockingConnectionPool`` does the waiting with a
    ``queue.LifoQueue`` (a Python ``Condition`` per get and put: about 3 µs
    on every command, 10 % of a loopback round trip) and reports a wait that
    timed out with a generic ``ConnectionError`` whose only distinguishing
    feature is its text. Here a ``queue.SimpleQueue`` (implemented in C)
    holds ``max_connections`` tokens: a checkout takes one, waiting up to
    ``timeout`` (``REDIS_POOL_TIMEOUT``), else raises
    :class:`~flask_rediscache.errors.PoolExhaustedError` naming the size and
    the wait; :meth:`release` gives it back (at once when the checkout itself
    fails, e.g. a refused connect). The connections themselves are redis-py's
    plain ``ConnectionPool``'s, which the tokens keep within its bound.

    After ``fork()`` redis-py resets the pool in the child (it compares
    ``os.getpid()``); the tokens are per process the same way, so a child
    never inherits slots its parent's threads were holding. Which token queue
    a checkout used is remembered per connection, so a release always returns
    the token where it came from.
    """

    def __init__(self, *args: Any, timeout: float = 5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout = timeout
        self._rediscache_tokens = (os.getpid(), self._new_tokens())
        self._rediscache_held: dict[int, queue.SimpleQueue[None]] = {}

    def _new_tokens(self) -> queue.SimpleQueue[None]:
        tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(self.max_connections):
            tokens.put(None)
        return tokens

    def _tokens(self) -> queue.SimpleQueue[None]:
        pid, tokens = self._rediscache_tokens
        if pid != os.getpid():
            # A forked child: start with every slot free. Two threads racing here
            # each make a queue and one wins; the other's checkout is still bounded
            # by redis-py's own max_connections check, so the bound holds.
            tokens = self._new_tokens()
            self._rediscache_tokens = (os.getpid(), tokens)
            self._rediscache_held = {}
        return tokens

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        tokens = self._tokens()
        try:
            tokens.get(timeout=self.timeout)
        except queue.Empty:
            raise PoolExhaustedError(
                f"all {self.max_connections} pooled connections stayed busy for {self.timeout:g}s "
                f"(REDIS_POOL_SIZE={self.max_connections}, REDIS_POOL_TIMEOUT={self.timeout:g})") from None
        try:
            connection = super().get_connection(*args, **kwargs)
        except BaseException:
            tokens.put(None)
            raise
        self._rediscache_held[id(connection)] = tokens
        return connection

    def release(self, connection: Any) -> None:
        tokens = self._rediscache_held.pop(id(connection), None)
        try:
            super().release(connection)
        finally:
            if tokens is not None:
                tokens.put(None)

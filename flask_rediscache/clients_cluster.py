"""Redis Cluster clients: a ``RedisCluster`` over the seeds with a bounded
pool per node, or, when no seed answers at start, :class:`LazyCluster`,
which connects on first use so ``init_app`` fails open instead of crashing.

:func:`~flask_rediscache.clients.build_target` decides the topology and
calls :func:`cluster_or_lazy`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.exceptions import RedisClusterException

from .config import Settings
from .pools import BoundedPool, socket_kwargs, ssl_kwargs

logger = logging.getLogger("flask_rediscache")

#: What building a ``RedisCluster`` raises when no seed answers.
CLUSTER_START_ERRORS: tuple[type[BaseException], ...] = (RedisClusterException, redis.RedisError, OSError)
_REDIS_PY = tuple(int(part) for part in redis.__version__.split(".")[:2] if part.isdigit())

#: Each cluster node's pool: bounded, and exhaustion is ``MaxConnectionsError``
#: (see :class:`~flask_rediscache.errors.PoolExhaustedError`).
ClusterNodePool = BoundedPool


def _seed_url(seed: str, credentials: str) -> str:
    """``seed`` with the username/password of ``credentials`` when it has none."""
    parts = urlsplit(seed)
    creds = urlsplit(credentials)
    if parts.username or parts.password or not (creds.username or creds.password):
        return parts._replace(path="").geturl()
    userinfo = creds.netloc.rpartition("@")[0]
    return parts._replace(netloc=f"{userinfo}@{parts.netloc}", path="").geturl()


def _cluster(url: str, settings: Settings, replicas: bool = False) -> Any:
    """A ``RedisCluster`` over the seeds, with bounded blocking pools per node.

    The first seed is passed as ``url`` because only then does redis-py build
    each node's pool from ``connection_pool_class`` (a :class:`BoundedPool`
    with ``REDIS_POOL_SIZE``/``REDIS_POOL_TIMEOUT``, like a standalone URL);
    the other seeds are extra startup nodes. Credentials may sit on the seeds
    (config puts ``REDIS_USERNAME``/``REDIS_PASSWORD`` there) or on
    ``REDIS_URL``. The cluster-level retry is off too: a failed command
    still makes redis-py refresh its slot map, and the store's
    :attr:`Target.retry` sends an idempotent command again on the new map.
    """
    from redis.cluster import ClusterNode, RedisCluster

    seeds = [urlsplit(u) for u in settings.cluster]
    kwargs = socket_kwargs(settings)
    if seeds[0].scheme == "rediss":
        kwargs.update(ssl_kwargs(settings))
    if _REDIS_PY < (6, 0):  # before 6.0 the cluster's retry count was this argument
        kwargs["cluster_error_retry_attempts"] = 0
    if replicas:  # REDIS_READ_FROM_REPLICAS: reads round-robin over each shard's replicas
        try:
            from redis.cluster import LoadBalancingStrategy
        except ImportError:  # redis-py < 5.3
            kwargs["read_from_replicas"] = True
        else:
            kwargs["load_balancing_strategy"] = LoadBalancingStrategy.ROUND_ROBIN_REPLICAS
    client = RedisCluster(
        url=_seed_url(settings.cluster[0], url),
        startup_nodes=[ClusterNode(s.hostname or "localhost", s.port or 6379)  # type: ignore[no-untyped-call]
                       for s in seeds[1:]],
        connection_pool_class=ClusterNodePool,
        max_connections=settings.pool_size, timeout=settings.pool_timeout, **kwargs,
    )
    if replicas:
        # mget_nonatomic (get_many's per-slot MGETs) reads only this public flag (the
        # constructor argument is deprecated); it spreads them over primary and replicas.
        client.read_from_replicas = True
    return client


#: Attributes a ``RedisCluster`` never has, which :class:`LazyCluster` must not connect for.
_NOT_ON_A_CLUSTER = frozenset({"connection_pool"})


class LazyCluster:
    """Stands in for a ``RedisCluster`` whose seed nodes were unreachable at start.

    redis-py connects to a cluster in the constructor, so a cluster that is
    down while the app boots would crash ``init_app`` (and every gunicorn
    worker with it): the opposite of failing open. This object builds the
    real client on first use instead, at most once per ``retry_interval``
    seconds; until then every method of ``RedisCluster`` raises a
    ``ConnectionError`` when *called*, so the guard (which calls it) turns it
    into a miss, and the circuit breaker opens as for any dead server.
    """

    def __init__(self, factory: Callable[[], Any], retry_interval: float, error: BaseException) -> None:
        self._factory = factory
        self._retry_interval = retry_interval
        self._lock = threading.Lock()
        self._client: Any = None
        self._error: BaseException = error
        self._next_attempt = time.monotonic() + retry_interval

    def connect(self) -> Any:
        """The real ``RedisCluster``; raises ``ConnectionError`` while unreachable."""
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None and time.monotonic() >= self._next_attempt:
                try:
                    self._client = self._factory()
                except CLUSTER_START_ERRORS as exc:
                    self._error = exc
                    self._next_attempt = time.monotonic() + self._retry_interval
            if self._client is None:
                raise redis.ConnectionError(f"Redis Cluster is unreachable: {self._error}")
            return self._client

    def register_script(self, script: str | bytes) -> Any:
        """A redis-py ``Script`` bound to this stand-in, so it can be made while
        the cluster is down (e.g. at ``init_app``): running it calls
        ``evalsha`` here, which connects then or raises ``ConnectionError``."""
        from redis.commands.core import Script

        # Bytes: Script would otherwise ask the (absent) client for its encoder.
        return Script(self, script.encode() if isinstance(script, str) else script)  # type: ignore[arg-type]

    def close(self) -> None:
        """Close the real client if it was ever built (a stand-in holds no sockets)."""
        if self._client is not None:
            self._client.close()

    def __getattr__(self, name: str) -> Any:
        if name in _NOT_ON_A_CLUSTER or name.startswith("__"):
            # Asking for these is how callers tell a standalone client from a
            # cluster (getattr(client, "connection_pool", None)): answer as a
            # RedisCluster would, without trying to connect.
            raise AttributeError(name)
        try:
            client = self.connect()
        except redis.ConnectionError as exc:
            from redis.cluster import RedisCluster

            if not callable(getattr(RedisCluster, name, None)):
                raise
            message = str(exc)

            def unavailable(*args: Any, **kwargs: Any) -> Any:
                raise redis.ConnectionError(message)

            return unavailable
        return getattr(client, name)

    def __repr__(self) -> str:
        return f"<LazyCluster client={self._client!r}>"


def cluster_or_lazy(url: str, settings: Settings, name: str, replicas: bool = False) -> Any:
    try:
        return _cluster(url, settings, replicas)
    except CLUSTER_START_ERRORS as exc:
        logger.warning("flask-rediscache: %s is unreachable at start (%s); the cache fails open "
                       "and connects on first use", name, exc)
        return LazyCluster(lambda: _cluster(url, settings, replicas),
                           max(settings.breaker_cooldown, settings.reconnect_delay_max), exc)

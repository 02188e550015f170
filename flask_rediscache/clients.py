"""Building the redis-py clients: one per distinct target, pooled and bounded.

The topology (standalone URL, ``memory://``, Sentinel, Cluster) is decided
here and nowhere else; the rest of the package only sees a redis-py client
and whether it is a cluster. Retries use redis-py's own
:class:`~redis.retry.Retry` with :class:`~redis.backoff.ExponentialBackoff`,
and only on connection errors: retrying a *timeout* against a hung server is
what turns a 1 s read timeout into a multi-second stall per call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisClusterException
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection

from .config import ConfigError, Settings, mask_url

logger = logging.getLogger("flask_rediscache")

#: What RedisCluster expects from an exhausted pool (recent redis-py; older ones lack it).
_MaxConnectionsError: type[redis.ConnectionError] = getattr(
    redis.exceptions, "MaxConnectionsError", redis.ConnectionError)
#: What building a ``RedisCluster`` raises when no seed answers.
CLUSTER_START_ERRORS: tuple[type[BaseException], ...] = (RedisClusterException, redis.RedisError, OSError)

#: The oldest redis-py whose Sentinel failover (rediscovery after READONLY and
#: after a killed master) and Cluster node pools pass this package's tests;
#: standalone URLs work from redis-py 5.0.
MIN_REDIS_PY = {"REDIS_SENTINELS": (7, 3), "REDIS_CLUSTER": (7, 0)}

_memory_servers: dict[str, Any] = {}
_memory_lock = threading.Lock()


@dataclass
class Target:
    """A Redis endpoint as the operator configured it (for CLI/health output)."""

    client: Any
    name: str  # masked URL or topology description, safe to print
    kind: str  # "standalone", "memory", "sentinel" or "cluster"
    purposes: list[str] = field(default_factory=list)

    @property
    def is_cluster(self) -> bool:
        return self.kind == "cluster"


#: Errors worth a retry: the connection was refused, reset or dropped. The
#: builtin ``ConnectionError`` is there because redis-py 5 retries the raw
#: socket error of a refused connect before wrapping it. Timeouts are not
#: retried (see the module docstring).
RETRIED_ERRORS: tuple[type[Exception], ...] = (redis.ConnectionError, ConnectionError)


def make_retry(settings: Settings) -> Retry:
    """The explicit retry policy (redis-py 8 would otherwise retry 10 times)."""
    return Retry(
        ExponentialBackoff(cap=settings.reconnect_delay_max, base=settings.reconnect_delay),
        settings.reconnect_attempts,
        supported_errors=RETRIED_ERRORS,
    )


def _socket_kwargs(settings: Settings) -> dict[str, Any]:
    # redis-py has one socket timeout for reads and writes; the contract says
    # it is REDIS_READ_TIMEOUT, the one that bounds a hung server.
    return {
        "socket_connect_timeout": settings.connect_timeout,
        "socket_timeout": settings.read_timeout,
        "retry": make_retry(settings),
        # redis-py 5 retries a failed command only for these (later versions
        # fold them into the Retry's supported errors, where they already are).
        "retry_on_error": list(RETRIED_ERRORS),
    }


def _ssl_kwargs(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"ssl_cert_reqs": settings.ssl_cert_reqs}
    if settings.ssl_ca_certs:
        kwargs["ssl_ca_certs"] = settings.ssl_ca_certs
    if settings.ssl_certfile:
        kwargs["ssl_certfile"] = settings.ssl_certfile
    if settings.ssl_keyfile:
        kwargs["ssl_keyfile"] = settings.ssl_keyfile
    return kwargs


def memory_server(url: str) -> Any:
    """The process-wide fakeredis server behind a ``memory://`` URL."""
    try:
        import fakeredis
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "memory:// needs fakeredis: pip install 'flask-rediscache[memory]'"
        ) from exc
    with _memory_lock:
        server = _memory_servers.get(url)
        if server is None:
            server = _memory_servers[url] = fakeredis.FakeServer()
        return server


def _standalone(url: str, settings: Settings) -> Any:
    kwargs = _socket_kwargs(settings)
    if urlsplit(url).scheme == "rediss":
        kwargs.update(_ssl_kwargs(settings))
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=settings.pool_size, timeout=settings.pool_timeout, **kwargs
    )
    return redis.Redis(connection_pool=pool)


class SentinelConnection(SentinelManagedConnection):
    """A Sentinel-managed connection that asks the sentinels on *every* reconnect.

    redis-py 8 reconnects a dropped connection inside ``send_packed_command``
    by calling ``connect_check_health()`` on the host it last used, bypassing
    ``SentinelManagedConnection.connect()``, the only place that asks the
    sentinels (redis/redis-py#3874). So the retry of a command that failed
    with ``READONLY`` (the master was demoted: redis-py closes the connection
    and raises ``ConnectionError``) went straight back to the demoted server
    and failed again. Reconnecting through ``connect()`` makes that retry
    land on the new master.
    """

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self._sock:
            self.connect()  # type: ignore[no-untyped-call]
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


class SentinelSSLConnection(SentinelConnection, redis.SSLConnection):
    """:class:`SentinelConnection` over TLS."""


class BlockingSentinelConnectionPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """redis-py's Sentinel pool with the blocking pool's bound.

    ``SentinelConnectionPool`` is a plain ``ConnectionPool``, which raises at
    once when ``max_connections`` are busy; mixing in ``BlockingConnectionPool``
    makes a Sentinel master behave like a standalone URL: ``REDIS_POOL_SIZE``
    connections, callers wait up to ``REDIS_POOL_TIMEOUT`` for a free one. The
    Sentinel half still decides where connections go (it asks the sentinels on
    every connect) and which it keeps (``owns_connection`` drops connections
    to a former master when they are released).
    """


def _sentinel(url: str, settings: Settings) -> Any:
    """A client for the Sentinel-managed master.

    Failover is redis-py's: every new connection asks the sentinels for the
    master's address; a connection that gets ``READONLY`` (its server was
    demoted) is closed and turned into a ``ConnectionError``, which the
    explicit :func:`make_retry` retries on a fresh connection, i.e. (with
    :class:`SentinelConnection`) on the new master. The guard fails open for
    whatever is left, e.g. while no master is elected yet.
    """
    parts = urlsplit(url)
    path = parts.path.lstrip("/")
    db = int(path) if path.isdigit() else 0
    kwargs = _socket_kwargs(settings)
    sentinel_kwargs: dict[str, Any] = {**_socket_kwargs(settings), "password": settings.sentinel_password}
    connection_class: type[SentinelConnection] = SentinelConnection
    if parts.scheme == "rediss":
        # With TLS on, the sentinels are reached over TLS too (tls-port on every node).
        connection_class = SentinelSSLConnection
        kwargs.update(_ssl_kwargs(settings))
        sentinel_kwargs.update(_ssl_kwargs(settings), ssl=True)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(settings.sentinels), sentinel_kwargs=sentinel_kwargs,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None, db=db, **kwargs,
    )
    return sentinel.master_for(  # type: ignore[no-untyped-call]
        settings.sentinel_master or "", connection_pool_class=BlockingSentinelConnectionPool,
        connection_class=connection_class, max_connections=settings.pool_size, timeout=settings.pool_timeout,
    )


class ClusterNodePool(redis.BlockingConnectionPool):
    """The pool of one cluster node: blocking, and honest about exhaustion.

    ``BlockingConnectionPool`` reports a wait that timed out as a plain
    ``ConnectionError``, which ``RedisCluster`` takes for a dead node: it drops
    the node's idle connections and reloads the slot map from the cluster,
    more load exactly when the app is already saturated. Raised as
    ``MaxConnectionsError`` (a ``ConnectionError`` too, same message) it is
    passed straight up, and the guard still recognises pool exhaustion.
    """

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except redis.ConnectionError as exc:
            if type(exc) is redis.ConnectionError and "No connection available" in str(exc):
                raise _MaxConnectionsError(str(exc)) from None
            raise


def _seed_url(seed: str, credentials: str) -> str:
    """``seed`` with the username/password of ``credentials`` when it has none."""
    parts = urlsplit(seed)
    creds = urlsplit(credentials)
    if parts.username or parts.password or not (creds.username or creds.password):
        return parts._replace(path="").geturl()
    userinfo = creds.netloc.rpartition("@")[0]
    return parts._replace(netloc=f"{userinfo}@{parts.netloc}", path="").geturl()


def _cluster(url: str, settings: Settings) -> Any:
    """A ``RedisCluster`` over the seeds, with bounded blocking pools per node.

    The first seed is passed as ``url`` because only then does redis-py build
    each node's pool from ``connection_pool_class`` (a blocking
    :class:`ClusterNodePool` with ``REDIS_POOL_SIZE``/``REDIS_POOL_TIMEOUT``,
    like a standalone URL);
    the other seeds are extra startup nodes. Credentials may sit on the seeds
    or on ``REDIS_URL``. ``retry`` is the cluster-level policy (redis-py
    retries a failed command there, after refreshing the slot map).
    """
    from redis.cluster import ClusterNode, RedisCluster

    seeds = [urlsplit(u) for u in settings.cluster]
    kwargs = _socket_kwargs(settings)
    if seeds[0].scheme == "rediss":
        kwargs.update(_ssl_kwargs(settings))
    return RedisCluster(
        url=_seed_url(settings.cluster[0], url),
        startup_nodes=[ClusterNode(s.hostname or "localhost", s.port or 6379)  # type: ignore[no-untyped-call]
                       for s in seeds[1:]],
        connection_pool_class=ClusterNodePool,
        max_connections=settings.pool_size, timeout=settings.pool_timeout, **kwargs,
    )


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

    def __getattr__(self, name: str) -> Any:
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


def _cluster_or_lazy(url: str, settings: Settings, name: str) -> Any:
    try:
        return _cluster(url, settings)
    except CLUSTER_START_ERRORS as exc:
        logger.warning("flask-rediscache: %s is unreachable at start (%s); the cache fails open "
                       "and connects on first use", name, exc)
        return LazyCluster(lambda: _cluster(url, settings),
                           max(settings.breaker_cooldown, settings.reconnect_delay_max), exc)


def require_redis_py(key: str, installed: str | None = None) -> None:
    """Raise :class:`ConfigError` if the installed redis-py is too old for ``key``."""
    version = installed or redis.__version__
    numbers = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    needed = MIN_REDIS_PY[key]
    if numbers < needed:
        wanted = ".".join(map(str, needed))
        raise ConfigError(f"{key} needs redis-py >= {wanted} (installed: {version}): "
                          f"expected pip install 'redis>={wanted}'")


def build_target(url: str, settings: Settings) -> Target:
    """Create the client for ``url`` under ``settings``' topology."""
    if settings.cluster:
        require_redis_py("REDIS_CLUSTER")
    elif settings.sentinels:
        require_redis_py("REDIS_SENTINELS")
    if settings.cluster:
        name = "cluster " + ",".join(map(mask_url, settings.cluster))
        return Target(_cluster_or_lazy(url, settings, name), name, "cluster")
    if settings.sentinels:
        hosts = ",".join(f"{h}:{p}" for h, p in settings.sentinels)
        return Target(_sentinel(url, settings), f"sentinel {settings.sentinel_master}@{hosts}", "sentinel")
    if urlsplit(url).scheme == "memory":
        import fakeredis

        return Target(fakeredis.FakeRedis(server=memory_server(url)), url, "memory")
    return Target(_standalone(url, settings), mask_url(url), "standalone")


def build_targets(settings: Settings) -> dict[str, Target]:
    """One target per purpose; purposes with the same URL share one client and pool."""
    by_url: dict[str, Target] = {}
    out: dict[str, Target] = {}
    for purpose, url in (("cache", settings.cache_url), ("session", settings.session_url)):
        target = by_url.get(url)
        if target is None:
            target = by_url[url] = build_target(url, settings)
        target.purposes.append(purpose)
        out[purpose] = target
    return out

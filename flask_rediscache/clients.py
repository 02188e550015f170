"""Building the redis-py clients: one per distinct target, pooled and bounded.

The topology (standalone URL, ``memory://``, Sentinel, Cluster) is decided
here and nowhere else; the rest of the package only sees a redis-py client,
its kind, and the retry policy of its commands (:attr:`Target.retry`).

Connections never retry by themselves (``Retry(NoBackoff(), 0)``): whether a
command may be sent again depends on the command, which only the store knows
(a lost reply to ``INCRBY`` must not count twice). Pools are bounded and
report exhaustion as :class:`~flask_rediscache.errors.PoolExhaustedError`, a type, so nobody has to read
an error message to tell "this process is busy" from "the server is down".
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.exceptions import RedisClusterException
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from .config import Settings
from .errors import ConfigError, PoolExhaustedError
from .masking import mask_url
from .retrying import make_retry, no_retry

logger = logging.getLogger("flask_rediscache")


#: What building a ``RedisCluster`` raises when no seed answers.
CLUSTER_START_ERRORS: tuple[type[BaseException], ...] = (RedisClusterException, redis.RedisError, OSError)

#: The oldest redis-py whose Sentinel failover (rediscovery after READONLY and
#: after a killed master) and Cluster node pools pass this package's tests;
#: standalone URLs work from redis-py 5.0.
MIN_REDIS_PY = {"REDIS_SENTINELS": (7, 3), "REDIS_CLUSTER": (7, 0)}
_REDIS_PY = tuple(int(part) for part in redis.__version__.split(".")[:2] if part.isdigit())

MEMORY_NEEDS_FAKEREDIS = 'memory:// needs fakeredis: pip install "flask-rediscache[memory]"'

_memory_servers: dict[str, Any] = {}
_memory_lock = threading.Lock()


@dataclass
class Target:
    """A Redis endpoint as the operator configured it, and how to call it.

    ``retry`` is the policy for *idempotent* commands only: the store calls
    ``target.retry.call_with_retry(do, fail)`` for GET, SET without NX, MGET,
    UNLINK, EXPIRE, SCAN, a WATCH-guarded save...; never for INCRBY, SET NX
    or lock acquisition, which are sent once (a lost reply must not apply
    them twice). It retries connection errors only, never
    :class:`~flask_rediscache.errors.PoolExhaustedError` or
    :class:`~flask_rediscache.errors.CircuitOpenError`. Each retry checks a
    fresh connection out of the pool, which under Sentinel asks the sentinels
    for the current master.
    """

    client: Any
    name: str  # masked URL or topology description, safe to print
    kind: str  # "standalone", "memory", "sentinel", "cluster", or "disabled" (a disabled cache: no client)
    retry: Retry
    purposes: list[str] = field(default_factory=list)

    @property
    def is_cluster(self) -> bool:
        return self.kind == "cluster"


def _socket_kwargs(settings: Settings) -> dict[str, Any]:
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
    fakeredis = _import_fakeredis()
    with _memory_lock:
        server = _memory_servers.get(url)
        if server is None:
            server = _memory_servers[url] = fakeredis.FakeServer()
        return server


def _import_fakeredis() -> Any:
    """fakeredis, or the :class:`ConfigError` that says how to install it
    (a bare ``ModuleNotFoundError`` would not say which extra is missing)."""
    try:
        import fakeredis
    except ImportError as exc:
        raise ConfigError(MEMORY_NEEDS_FAKEREDIS) from exc
    return fakeredis


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


#: Each cluster node's pool: bounded, and exhaustion is ``MaxConnectionsError``
#: (see :class:`~flask_rediscache.errors.PoolExhaustedError`).
ClusterNodePool = BoundedPool


def _standalone(url: str, settings: Settings) -> Any:
    kwargs = _socket_kwargs(settings)
    if urlsplit(url).scheme == "rediss":
        kwargs.update(_ssl_kwargs(settings))
    pool = BoundedPool.from_url(url, max_connections=settings.pool_size, timeout=settings.pool_timeout,
                                **kwargs)
    return redis.Redis(connection_pool=pool)


class BlockingSentinelConnectionPool(SentinelConnectionPool, BoundedPool):
    """redis-py's Sentinel pool with :class:`BoundedPool`'s bound.

    ``SentinelConnectionPool`` is a plain ``ConnectionPool``, which raises at
    once when ``max_connections`` are busy; mixing in the bounded pool makes
    a Sentinel master behave like a standalone URL: ``REDIS_POOL_SIZE``
    connections, callers wait up to ``REDIS_POOL_TIMEOUT`` for a free one.
    The Sentinel half still decides where connections go (a new connection
    asks the sentinels for the master) and which it keeps
    (``owns_connection`` drops connections to a former master on release).
    """


def _sentinel(url: str, settings: Settings, replica: bool = False) -> Any:
    """A client for the Sentinel-managed master.

    Failover is redis-py's: a connection that gets ``READONLY`` (its server
    was demoted) is closed and turned into a ``ConnectionError``; the store's
    retry of an idempotent command (:attr:`Target.retry`) checks a connection
    out again, and connecting it asks the sentinels for the new master. The
    fail-open boundary handles whatever is left, e.g. while no master is
    elected yet.
    """
    parts = urlsplit(url)
    path = parts.path.lstrip("/")
    db = int(path) if path.isdigit() else 0
    kwargs = _socket_kwargs(settings)
    sentinel_kwargs: dict[str, Any] = {**_socket_kwargs(settings), "password": settings.sentinel_password}
    pool_kwargs: dict[str, Any] = {}
    if parts.scheme == "rediss":
        # With TLS on, the sentinels are reached over TLS too (tls-port on every node).
        kwargs.update(_ssl_kwargs(settings))
        sentinel_kwargs.update(_ssl_kwargs(settings), ssl=True)
        pool_kwargs["ssl"] = True  # SentinelConnectionPool then uses SentinelManagedSSLConnection
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(settings.sentinels), sentinel_kwargs=sentinel_kwargs,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None, db=db, **kwargs,
    )
    role = sentinel.slave_for if replica else sentinel.master_for  # slave_for falls back to the master
    return role(  # type: ignore[no-untyped-call]
        settings.sentinel_master or "", connection_pool_class=BlockingSentinelConnectionPool,
        max_connections=settings.pool_size, timeout=settings.pool_timeout, **pool_kwargs,
    )


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
    kwargs = _socket_kwargs(settings)
    if seeds[0].scheme == "rediss":
        kwargs.update(_ssl_kwargs(settings))
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


def _cluster_or_lazy(url: str, settings: Settings, name: str, replicas: bool = False) -> Any:
    try:
        return _cluster(url, settings, replicas)
    except CLUSTER_START_ERRORS as exc:
        logger.warning("flask-rediscache: %s is unreachable at start (%s); the cache fails open "
                       "and connects on first use", name, exc)
        return LazyCluster(lambda: _cluster(url, settings, replicas),
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
    retry = make_retry(settings)
    if settings.cluster:
        name = "cluster " + ",".join(map(mask_url, settings.cluster))
        return Target(_cluster_or_lazy(url, settings, name), name, "cluster", retry)
    if settings.sentinels:
        hosts = ",".join(f"{h}:{p}" for h, p in settings.sentinels)
        return Target(_sentinel(url, settings), f"sentinel {settings.sentinel_master}@{hosts}", "sentinel",
                      retry)
    if urlsplit(url).scheme == "memory":
        fakeredis = _import_fakeredis()
        return Target(fakeredis.FakeRedis(server=memory_server(url)), url, "memory", retry)
    return Target(_standalone(url, settings), mask_url(url), "standalone", retry)


def build_replica_reader(url: str, settings: Settings) -> Any:
    """With ``REDIS_READ_FROM_REPLICAS``: a second client for the cache purpose's
    *reads* (a Sentinel ``slave_for`` client, or a ``RedisCluster`` that reads
    from replicas); ``None`` otherwise. Sessions, locks, counters and every
    write keep the primary client."""
    if not settings.read_from_replicas or not settings.cache_enabled:
        return None
    if settings.cluster:
        name = "cluster replicas " + ",".join(map(mask_url, settings.cluster))
        return _cluster_or_lazy(url, settings, name, replicas=True)
    if settings.sentinels:
        return _sentinel(url, settings, replica=True)
    return None


def build_targets(settings: Settings) -> dict[str, Target]:
    """One target per purpose; purposes with the same URL share one client and pool."""
    by_url: dict[str, Target] = {}
    out: dict[str, Target] = {}
    named = [("cable", settings.cable_url), *settings.purposes.items()]
    purposes = [("cache", settings.cache_url), ("session", settings.session_url), *named]
    if not settings.cache_enabled and settings.cache_url not in [url for _, url in purposes[1:]]:
        # A disabled cache (REDIS_CACHE_ENABLED = False) on a server of its own:
        # no client at all, so nothing connects (a RedisCluster would at once).
        out["cache"] = Target(None, f"{mask_url(settings.cache_url)} (cache disabled)", "disabled",
                              make_retry(settings), ["cache"])
        purposes = purposes[1:]
    for purpose, url in purposes:
        target = by_url.get(url)
        if target is None:
            target = by_url[url] = build_target(url, settings)
        target.purposes.append(purpose)
        out[purpose] = target
    return out

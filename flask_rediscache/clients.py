"""Building the redis-py clients: one per distinct target, pooled and bounded.

The topology (standalone URL, ``memory://``, Sentinel, Cluster) is decided
here and nowhere else; the rest of the package only sees a redis-py client,
its kind, and the retry policy of its commands (:attr:`Target.retry`).

Connections never retry by themselves (``Retry(NoBackoff(), 0)``): whether a
command may be sent again depends on the command, which only the store knows
(a lost reply to ``INCRBY`` must not count twice). Pools are bounded and
report exhaustion as :class:`~flask_rediscache.errors.PoolExhaustedError`, a type, so nobody has to read
an error message to tell "this process is busy" from "the server is down".

The pool and the connection arguments are in :mod:`~flask_rediscache.pools`,
the Cluster client in :mod:`~flask_rediscache.clients_cluster`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from .clients_cluster import cluster_or_lazy
from .config import Settings
from .errors import ConfigError
from .masking import mask_url
from .pools import BoundedPool, socket_kwargs, ssl_kwargs
from .retrying import make_retry

logger = logging.getLogger("flask_rediscache")


#: The oldest redis-py whose Sentinel failover (rediscovery after READONLY and
#: after a killed master) and Cluster node pools pass this package's tests;
#: standalone URLs work from redis-py 5.0.
MIN_REDIS_PY = {"REDIS_SENTINELS": (7, 3), "REDIS_CLUSTER": (7, 0)}

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



def _standalone(url: str, settings: Settings) -> Any:
    kwargs = socket_kwargs(settings)
    if urlsplit(url).scheme == "rediss":
        kwargs.update(ssl_kwargs(settings))
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
    kwargs = socket_kwargs(settings)
    sentinel_kwargs: dict[str, Any] = {**socket_kwargs(settings), "password": settings.sentinel_password}
    pool_kwargs: dict[str, Any] = {}
    if parts.scheme == "rediss":
        # With TLS on, the sentinels are reached over TLS too (tls-port on every node).
        kwargs.update(ssl_kwargs(settings))
        sentinel_kwargs.update(ssl_kwargs(settings), ssl=True)
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
        return Target(cluster_or_lazy(url, settings, name), name, "cluster", retry)
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
        return cluster_or_lazy(url, settings, name, replicas=True)
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

"""Building the redis-py clients: one per distinct target, pooled and bounded.

The topology (standalone URL, ``memory://``, Sentinel, Cluster) is decided
here and nowhere else; the rest of the package only sees a redis-py client
and whether it is a cluster. Retries use redis-py's own
:class:`~redis.retry.Retry` with :class:`~redis.backoff.ExponentialBackoff`,
and only on connection errors: retrying a *timeout* against a hung server is
what turns a 1 s read timeout into a multi-second stall per call.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from .config import Settings, mask_url

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


def make_retry(settings: Settings) -> Retry:
    """The explicit retry policy (redis-py 8 would otherwise retry 10 times)."""
    return Retry(
        ExponentialBackoff(cap=settings.reconnect_delay_max, base=settings.reconnect_delay),
        settings.reconnect_attempts,
        supported_errors=(redis.ConnectionError,),
    )


def _socket_kwargs(settings: Settings) -> dict[str, Any]:
    # redis-py has one socket timeout for reads and writes; the contract says
    # it is REDIS_READ_TIMEOUT, the one that bounds a hung server.
    return {
        "socket_connect_timeout": settings.connect_timeout,
        "socket_timeout": settings.read_timeout,
        "retry": make_retry(settings),
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


def _sentinel(url: str, settings: Settings) -> Any:
    from redis.sentinel import Sentinel, SentinelConnectionPool

    parts = urlsplit(url)
    db = int(parts.path.lstrip("/") or 0) if parts.path.lstrip("/").isdigit() else 0
    kwargs = _socket_kwargs(settings)
    if parts.scheme == "rediss":
        kwargs.update(_ssl_kwargs(settings))
        kwargs["ssl"] = True
    sentinel_kwargs = {
        "socket_connect_timeout": settings.connect_timeout,
        "socket_timeout": settings.read_timeout,
        "password": settings.sentinel_password,
    }
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(settings.sentinels), sentinel_kwargs=sentinel_kwargs,
        username=parts.username, password=parts.password, db=db, **kwargs,
    )
    return sentinel.master_for(  # type: ignore[no-untyped-call]
        settings.sentinel_master or "", connection_pool_class=SentinelConnectionPool,
        max_connections=settings.pool_size,
    )


def _cluster(url: str, settings: Settings) -> Any:
    from redis.cluster import ClusterNode, RedisCluster

    seeds = [urlsplit(u) for u in settings.cluster]
    first = seeds[0]
    kwargs = _socket_kwargs(settings)
    if first.scheme == "rediss":
        kwargs.update(_ssl_kwargs(settings))
        kwargs["ssl"] = True
    creds = urlsplit(url)
    return RedisCluster(
        startup_nodes=[ClusterNode(s.hostname or "localhost", s.port or 6379)  # type: ignore[no-untyped-call]
                       for s in seeds],
        username=first.username or creds.username, password=first.password or creds.password,
        max_connections=settings.pool_size, **kwargs,
    )


def build_target(url: str, settings: Settings) -> Target:
    """Create the client for ``url`` under ``settings``' topology."""
    if settings.cluster:
        seeds = ",".join(map(mask_url, settings.cluster))
        return Target(_cluster(url, settings), f"cluster {seeds}", "cluster")
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

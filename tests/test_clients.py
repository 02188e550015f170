"""clients.py against real redis-servers: bounded pools that raise
PoolExhaustedError by type, no retries inside redis-py, Target.retry for
idempotent commands, credentials and connection options on every pool."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import pytest
import redis

from flask_rediscache import clients, clients_cluster
from flask_rediscache.clients import build_target, build_targets
from flask_rediscache.config import ConfigError
from flask_rediscache.config_loader import load_settings
from flask_rediscache.errors import CircuitOpenError, PoolExhaustedError
from flask_rediscache.pools import BoundedPool
from flask_rediscache.retrying import make_retry

from .servers import RedisServer, free_port


def settings_for(url: str, **config: Any):
    return load_settings({"SECRET_KEY": "s", "REDIS_URL": url, **config}, debug=False)


def target_for(url: str, **config: Any) -> clients.Target:
    """The cache purpose's target (its URL carries REDIS_USERNAME/REDIS_PASSWORD)."""
    settings = settings_for(url, **config)
    return build_target(settings.cache_url, settings)


def close(target: clients.Target) -> None:
    pool = getattr(target.client, "connection_pool", None)
    if pool is not None:
        pool.disconnect()


@pytest.fixture
def server(redis_server: RedisServer) -> RedisServer:
    return redis_server


# -- pool exhaustion ---------------------------------------------------------------
def test_exhausted_pool_raises_pool_exhausted_error_after_the_pool_timeout(server):
    target = target_for(server.url, REDIS_POOL_SIZE=2, REDIS_POOL_TIMEOUT=0.2,
                        REDIS_CONNECTION_OPTIONS={"client_name": "exhaust-test"})
    pool = target.client.connection_pool
    assert isinstance(pool, BoundedPool)
    held = [pool.get_connection(), pool.get_connection()]
    started = time.monotonic()
    with pytest.raises(PoolExhaustedError) as err:
        target.client.get("k")
    elapsed = time.monotonic() - started
    assert 0.15 <= elapsed < 1.5
    assert isinstance(err.value, redis.ConnectionError)
    assert isinstance(err.value, getattr(redis.exceptions, "MaxConnectionsError", redis.ConnectionError))
    assert "REDIS_POOL_SIZE=2" in str(err.value) and "REDIS_POOL_TIMEOUT=0.2" in str(err.value)
    ours = [c for c in server.client().client_list() if c["name"] == "exhaust-test"]
    assert len(ours) == 2  # the bound is real: no third socket
    pool.release(held.pop())
    assert target.client.get("k") is None  # a released slot is usable again
    pool.release(held.pop())
    close(target)


def test_pool_exhaustion_is_not_retried(server):
    target = target_for(server.url, REDIS_POOL_SIZE=1, REDIS_POOL_TIMEOUT=0.2, REDIS_RECONNECT_ATTEMPTS=3)
    pool = target.client.connection_pool
    held = pool.get_connection()
    calls = []

    def do() -> Any:
        calls.append(1)
        return target.client.get("k")

    started = time.monotonic()
    with pytest.raises(PoolExhaustedError):
        target.retry.call_with_retry(do, lambda error: None)
    assert len(calls) == 1
    assert time.monotonic() - started < 0.6  # one pool wait, not four
    pool.release(held)
    close(target)


def test_an_open_breaker_is_not_retried_but_a_connection_error_is():
    retry = make_retry(settings_for("redis://127.0.0.1:1/0", REDIS_RECONNECT_ATTEMPTS=2,
                                    REDIS_RECONNECT_DELAY=0))
    for error, expected_calls in ((CircuitOpenError("open"), 1), (redis.ConnectionError("reset"), 3),
                                  (ConnectionRefusedError(), 3), (redis.TimeoutError("slow"), 1)):
        calls: list[int] = []

        def do(error: Exception = error, calls: list[int] = calls) -> None:
            calls.append(1)
            raise error

        with pytest.raises(type(error)) as err:
            retry.call_with_retry(do, lambda e: None)
        assert err.value is error
        assert len(calls) == expected_calls, error


def test_a_failed_checkout_gives_its_slot_back():
    port = free_port()  # nothing listens here
    target = target_for(f"redis://127.0.0.1:{port}/0", REDIS_POOL_SIZE=1, REDIS_POOL_TIMEOUT=0.5,
                        REDIS_CONNECT_TIMEOUT=0.5)
    for _ in range(3):  # each would be PoolExhaustedError if a refused connect kept the slot
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError) as err:
            target.client.get("k")
        assert not isinstance(err.value, PoolExhaustedError)
        assert time.monotonic() - started < 0.4
    close(target)


def test_a_forked_child_gets_every_slot(server):
    target = target_for(server.url, REDIS_POOL_SIZE=1, REDIS_POOL_TIMEOUT=0.2)
    pool = target.client.connection_pool
    held = pool.get_connection()  # the parent's only slot is busy
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: must not inherit the busy slot
        code = 1
        try:
            target.client.set("from-child", "1")
            code = 0
        except BaseException:
            code = 2
        finally:
            os.write(write, bytes([code]))
            os._exit(0)
    os.close(write)
    result = os.read(read, 1)
    os.waitpid(pid, 0)
    os.close(read)
    assert result == b"\x00"
    assert server.client().get("from-child") == b"1"
    with pytest.raises(PoolExhaustedError):  # the parent's gate is unchanged
        target.client.get("k")
    pool.release(held)
    close(target)


# -- no retries inside redis-py; Target.retry ---------------------------------------
def test_connections_never_retry_by_themselves(server):
    target = target_for(server.url, REDIS_RECONNECT_ATTEMPTS=3)
    kwargs = target.client.connection_pool.connection_kwargs
    assert kwargs["retry"].get_retries() == 0
    assert "retry_on_timeout" not in kwargs
    assert target.retry.get_retries() == 3
    close(target)


def test_target_retry_retries_a_refused_connect(redis_factory):
    down = redis_factory()
    down.kill()  # the port is free: connects are refused until it restarts
    target = target_for(down.url, REDIS_RECONNECT_ATTEMPTS=2, REDIS_RECONNECT_DELAY=0.01)
    attempts = []

    def do() -> Any:
        attempts.append(1)
        return target.client.set("k", "v")

    def fail(error: Exception) -> None:
        assert isinstance(error, redis.ConnectionError)
        down.start()  # the server is back for the retry

    assert target.retry.call_with_retry(do, fail) is True
    assert len(attempts) == 2
    assert down.client().get("k") == b"v"
    close(target)


def test_without_target_retry_a_refused_connect_fails_once():
    target = target_for(f"redis://127.0.0.1:{free_port()}/0", REDIS_RECONNECT_ATTEMPTS=5,
                        REDIS_RECONNECT_DELAY=1)
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        target.client.get("k")
    assert time.monotonic() - started < 0.5  # no backoff sleeps: nothing was retried
    close(target)


# -- credentials and options ----------------------------------------------------------
def test_redis_password_authenticates(redis_factory):
    server = redis_factory(password="pw-Zz9")
    plain = f"redis://127.0.0.1:{server.port}/0"
    target = target_for(plain, REDIS_PASSWORD="pw-Zz9")
    assert target.client.ping() is True
    assert "pw-Zz9" not in target.name
    close(target)
    anonymous = target_for(plain)
    with pytest.raises(redis.AuthenticationError):
        anonymous.client.ping()
    close(anonymous)


def test_redis_username_and_password_for_an_acl_user(server):
    admin = server.client()
    admin.acl_setuser("shop", enabled=True, passwords=["+shop-pw"], keys=["cache:*", "session:*"],
                      commands=["+@all"])
    try:
        target = target_for(server.url, REDIS_USERNAME="shop", REDIS_PASSWORD="shop-pw")
        assert target.client.acl_whoami() in (b"shop", "shop")
        close(target)
    finally:
        admin.acl_deluser("shop")


def test_connection_options_apply(server):
    target = target_for(server.url, REDIS_CONNECTION_OPTIONS={"client_name": "shop-web",
                                                               "health_check_interval": 15})
    assert target.client.client_getname() in (b"shop-web", "shop-web")
    assert target.client.connection_pool.connection_kwargs["health_check_interval"] == 15
    close(target)


def test_purposes_sharing_a_url_share_one_pool(server):
    targets = build_targets(settings_for(server.url))
    assert targets["cache"] is targets["session"]
    assert targets["cache"].purposes == ["cache", "session", "cable"]  # the broadcast purpose too
    assert targets["cache"].kind == "standalone"
    close(targets["cache"])


def test_sentinel_and_cluster_pools_are_bounded_pools():
    assert issubclass(clients.BlockingSentinelConnectionPool, BoundedPool)
    assert clients_cluster.ClusterNodePool is BoundedPool
    assert issubclass(PoolExhaustedError, PoolExhaustedError)


# -- 14.1: memory:// without fakeredis --------------------------------------------------
def test_memory_without_fakeredis_is_a_config_error_with_the_install_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "fakeredis", None)  # import fakeredis -> ImportError
    settings = load_settings({"REDIS_URL": "memory://", "SECRET_KEY": "s"}, debug=True)
    with pytest.raises(ConfigError) as err:
        build_targets(settings)
    assert str(err.value) == 'memory:// needs fakeredis: pip install "flask-rediscache[memory]"'


def test_lazy_cluster_scripts_can_be_registered_while_the_cluster_is_down(server):
    """A session store registers its Lua script at init_app; with the cluster
    down at start that must not raise, and the script runs once it is up."""
    state: dict[str, Any] = {"up": False}

    def factory() -> Any:
        if not state["up"]:
            raise redis.ConnectionError("refused")
        return server.client()

    lazy = clients_cluster.LazyCluster(factory, 0, redis.ConnectionError("refused"))
    script = lazy.register_script("return ARGV[1]")
    with pytest.raises(redis.ConnectionError, match="unreachable"):
        script(args=["hi"])
    state["up"] = True
    assert script(args=["hi"]) == b"hi"


def test_lazy_cluster_answers_like_a_cluster_without_connecting():
    def factory() -> Any:
        raise AssertionError("must not connect")

    lazy = clients_cluster.LazyCluster(factory, 3600, redis.ConnectionError("refused"))
    assert getattr(lazy, "connection_pool", None) is None  # no standalone pool, as on RedisCluster
    lazy.close()  # nothing was built: nothing to close, no connection attempt

"""clients.py on Sentinel and Cluster: the same bounded pools, credentials and
connection options as a standalone URL, and no retries inside redis-py."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from flask_rediscache.clients import BlockingSentinelConnectionPool, build_targets
from flask_rediscache.config_loader import load_settings
from flask_rediscache.errors import PoolExhaustedError
from flask_rediscache.pools import BoundedPool

from .topology_servers import RedisClusterNodes, start_sentinel_setup, wait_until

pytestmark = pytest.mark.timeout(90)


def settings_of(**config: Any):
    return load_settings({"SECRET_KEY": "s", **config}, debug=False)


def test_sentinel_master_gets_redis_password_options_and_a_bounded_pool():
    setup = start_sentinel_setup(password="master-Pw9", sentinel_password="sentinel-Pw9")
    try:
        settings = settings_of(
            REDIS_SENTINELS=[f"127.0.0.1:{setup.sentinel.port}"],
            REDIS_SENTINEL_MASTER=setup.sentinel.service,
            REDIS_SENTINEL_PASSWORD="sentinel-Pw9", REDIS_PASSWORD="master-Pw9", REDIS_POOL_SIZE=1,
            REDIS_POOL_TIMEOUT=0.2, REDIS_CONNECTION_OPTIONS={"client_name": "shop-sentinel"})
        target = build_targets(settings)["cache"]
        assert target.kind == "sentinel" and "Pw9" not in target.name
        client = target.client
        assert client.set("k", "v") is True
        assert setup.master.client().get("k") == b"v"
        assert client.client_getname() in (b"shop-sentinel", "shop-sentinel")
        pool = client.connection_pool
        assert isinstance(pool, BlockingSentinelConnectionPool) and isinstance(pool, BoundedPool)
        assert pool.connection_kwargs["retry"].get_retries() == 0
        held = pool.get_connection()
        started = time.monotonic()
        with pytest.raises(PoolExhaustedError):
            target.retry.call_with_retry(lambda: client.get("k"), lambda error: None)
        assert time.monotonic() - started < 1
        pool.release(held)
        assert client.get("k") == b"v"
        pool.disconnect()
    finally:
        setup.stop()


def test_target_retry_of_a_write_after_a_demotion_reaches_the_new_master():
    """SENTINEL FAILOVER demotes the master without killing it: the pooled
    connection gets READONLY, which redis-py's SentinelManagedConnection turns
    into a ConnectionError after closing the connection. One retry through
    Target.retry checks the connection out again, and connecting it asks the
    sentinels: the write lands on the new master (no private socket access)."""
    setup = start_sentinel_setup()
    try:
        settings = settings_of(REDIS_SENTINELS=[f"127.0.0.1:{setup.sentinel.port}"],
                               REDIS_SENTINEL_MASTER=setup.sentinel.service, REDIS_POOL_SIZE=1)
        target = build_targets(settings)["cache"]
        client = target.client
        assert client.set("k", "first") is True
        old, new = setup.master, setup.replica
        assert setup.sentinel.client().sentinel_failover(setup.sentinel.service)
        wait_until(lambda: setup.sentinel.master_address() == ("127.0.0.1", new.port), 10,
                   message="the sentinel to promote the replica")
        old.client().replicaof("127.0.0.1", new.port)  # what the sentinel sends ~8 s later
        wait_until(lambda: old.client().info("replication")["role"] == "slave", 5,
                   message="the old master to be demoted")
        failures: list[Exception] = []
        assert target.retry.call_with_retry(lambda: client.set("k", "second"), failures.append) is True
        assert len(failures) == 1 and isinstance(failures[0], redis.ConnectionError)
        assert new.client().get("k") == b"second"
        client.connection_pool.disconnect()
    finally:
        setup.stop()


@pytest.fixture(scope="module")
def cluster():
    nodes = RedisClusterNodes(3)
    yield nodes
    nodes.stop()


def test_cluster_node_pools_are_bounded_and_exhaustion_is_max_connections(cluster):
    settings = settings_of(REDIS_CLUSTER=cluster.seeds, REDIS_POOL_SIZE=1, REDIS_POOL_TIMEOUT=0.2,
                           REDIS_RECONNECT_ATTEMPTS=2,
                           REDIS_CONNECTION_OPTIONS={"client_name": "shop-cluster"})
    target = build_targets(settings)["cache"]
    client = target.client
    try:
        assert target.kind == "cluster"
        assert client.set("k", "v") is True
        node = client.get_node_from_key("k")
        pool = node.redis_connection.connection_pool
        assert isinstance(pool, BoundedPool)
        assert pool.connection_kwargs["retry"].get_retries() == 0
        assert pool.connection_kwargs["client_name"] == "shop-cluster"
        held = pool.get_connection()
        calls = []

        def do() -> Any:
            calls.append(1)
            return client.get("k")

        started = time.monotonic()
        with pytest.raises(PoolExhaustedError) as err:
            target.retry.call_with_retry(do, lambda error: None)
        assert isinstance(err.value, getattr(redis.exceptions, "MaxConnectionsError", redis.ConnectionError))
        assert len(calls) == 1 and time.monotonic() - started < 1.5
        pool.release(held)
        assert client.get("k") == b"v"
    finally:
        client.close()

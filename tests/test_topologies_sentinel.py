"""Sentinel: the cache reaches the master through real sentinels and follows failovers.

Each test starts its own master, replica and sentinel (tests/topology_servers.py);
nothing is mocked. "Never sees an exception" is literal: any exception out of
a cache call fails the test.
"""

from __future__ import annotations

import time

import pytest
import redis

from flask_rediscache.clients import BlockingSentinelConnectionPool
from flask_rediscache.errors import PoolExhaustedError
from flask_rediscache.state import get_state

from .support import Recorder
from .topology_servers import SentinelSetup, start_sentinel_setup, wait_until

pytestmark = pytest.mark.timeout(60)



@pytest.fixture
def setup():
    started = start_sentinel_setup()
    yield started
    started.stop()


def _wait_for_replication(setup: SentinelSetup) -> None:
    # WAIT is an admin step of the test, not something the cache sends.
    assert setup.master.client().wait(1, 2000) == 1


def test_cache_goes_to_the_master_the_sentinel_names(make_app, setup):
    app = make_app(**setup.config())
    state = get_state(app)
    assert state.targets["cache"].kind == "sentinel"
    assert state.targets["cache"].name == f"sentinel m@127.0.0.1:{setup.sentinel.port}"
    with app.app_context():
        cache = app.extensions["rediscache"]
        assert cache.set("greeting", {"hello": "world"})
        assert cache.get("greeting") == {"hello": "world"}
    assert setup.master.client().exists("cache:greeting") == 1
    _wait_for_replication(setup)
    # The replica only has it by replication: nothing was written there directly.
    assert setup.replica.client().exists("cache:greeting") == 1


def test_pool_size_timeouts_and_retry_reach_the_sentinel_pool(make_app, setup):
    app = make_app(**setup.config(), REDIS_POOL_SIZE=2, REDIS_POOL_TIMEOUT=0.2, REDIS_READ_TIMEOUT=0.7,
                   REDIS_CONNECT_TIMEOUT=0.3, REDIS_RECONNECT_ATTEMPTS=2)
    client = get_state(app).targets["cache"].client
    pool = client.connection_pool
    assert isinstance(pool, BlockingSentinelConnectionPool)
    assert pool.max_connections == 2
    kwargs = pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (0.7, 0.3)
    assert kwargs["retry"].get_retries() == 0  # connections never retry by themselves
    assert get_state(app).targets["cache"].retry.get_retries() == 2  # idempotent commands do
    # The bound is real: with both connections held, a third caller waits
    # REDIS_POOL_TIMEOUT and gets PoolExhaustedError, not a third socket.
    before = {c["id"] for c in _app_connections(setup.master)}  # the setup's own, idle
    held = [pool.get_connection(), pool.get_connection()]
    started = time.monotonic()
    with pytest.raises(PoolExhaustedError):
        pool.get_connection()
    assert 0.15 <= time.monotonic() - started < 2
    for conn in held:
        pool.release(conn)
    assert client.set("cache:after", 1) is True
    assert len([c for c in _app_connections(setup.master) if c["id"] not in before]) <= 2


def _app_connections(server) -> list[dict]:
    """Normal clients on ``server`` other than the sentinel's, the replica and this query."""
    return [c for c in server.client().client_list()
            if c["flags"] == "N" and not c["name"].startswith("sentinel") and c["cmd"] != "client|list"]


def test_passwords_for_master_and_sentinel(make_app):
    setup = start_sentinel_setup(password="master-pw", sentinel_password="sentinel-pw")
    try:
        handler = Recorder()
        app = make_app(**setup.config(), REDIS_ERROR_HANDLER=handler)
        with app.app_context():
            cache = app.extensions["rediscache"]
            assert cache.set("k", 42) is True
            assert cache.get("k") == 42
        assert handler.calls == []
        assert setup.master.client().get("cache:k") is not None
        # Without the sentinel's password the master can't be found: a miss, not an exception.
        config = setup.config()
        del config["REDIS_SENTINEL_PASSWORD"]
        app = make_app(**config, REDIS_ERROR_HANDLER=handler)
        with app.app_context():
            assert app.extensions["rediscache"].get("k") is None
        assert handler.calls and isinstance(handler.calls[0]["exception"], redis.ConnectionError)
    finally:
        setup.stop()


def test_master_killed_fails_open_then_follows_the_new_master(make_app, setup):
    handler = Recorder()
    app = make_app(**setup.config(), REDIS_ERROR_HANDLER=handler, REDIS_CIRCUIT_BREAKER_COOLDOWN=0.5,
                   REDIS_CONNECT_TIMEOUT=0.5, REDIS_READ_TIMEOUT=0.5)
    with app.app_context():
        cache = app.extensions["rediscache"]
        assert cache.set("before", "kept")
        _wait_for_replication(setup)
        setup.master.kill()
        killed_at = time.monotonic()
        recovered_at = None
        i = 0
        while time.monotonic() - killed_at < 10:
            i += 1
            # Any exception here fails the test: the app must never see one.
            if cache.set("during", i) and cache.get("during") == i:
                recovered_at = time.monotonic()
                break
            time.sleep(0.05)
        assert recovered_at is not None, "the cache did not follow the new master within 10 s"
        # It really failed open in between (errors were reported, not raised) ...
        assert handler.calls
        assert all(isinstance(c["exception"], redis.RedisError) for c in handler.calls)
        # ... and now talks to the promoted replica, which kept the replicated data.
        assert setup.sentinel.master_address() == ("127.0.0.1", setup.replica.port)
        assert setup.replica.client().exists("cache:during") == 1
        assert cache.get("before") == "kept"
        assert cache.set("after", 1) and cache.get("after") == 1


def test_demoted_master_readonly_leads_to_rediscovery_without_errors(make_app, setup):
    """SENTINEL FAILOVER demotes the master without killing it: the pooled
    connection to it now gets READONLY. redis-py's SentinelManagedConnection
    closes it and raises ConnectionError, which our explicit Retry retries on
    a new connection, i.e. on the new master: the write succeeds first time."""
    handler = Recorder()
    app = make_app(**setup.config(), REDIS_ERROR_HANDLER=handler, REDIS_POOL_SIZE=1)
    old, new = setup.master, setup.replica
    with app.app_context():
        cache = app.extensions["rediscache"]
        assert cache.set("k", "first")
        pool = cache.client.connection_pool
        conn = pool.get_connection()  # the one pooled connection (REDIS_POOL_SIZE=1)
        pool.release(conn)
        assert conn.port == old.port
        assert setup.sentinel.client().sentinel_failover(setup.sentinel.service)
        wait_until(lambda: setup.sentinel.master_address() == ("127.0.0.1", new.port), 10,
                   message="the sentinel to promote the replica")
        # The sentinel reconfigures the old master only after ~8 s of it claiming
        # the master role; do that step for it (exactly what it would send).
        old.client().replicaof("127.0.0.1", new.port)
        wait_until(lambda: old.client().info("replication")["role"] == "slave", 5,
                   message="the old master to be demoted")
        # The old connection is still open, to a server that now refuses writes.
        assert conn.port == old.port and conn._sock is not None
        with pytest.raises(redis.ReadOnlyError):
            old.client().set("cache:probe", 1)
        assert cache.set("k", "second") is True
        assert handler.calls == []
        assert new.client().exists("cache:k") == 1
        assert cache.get("k") == "second"
        conn = pool.get_connection()
        pool.release(conn)
        assert conn.port == new.port


def test_sentinel_and_master_over_tls(make_app, tmp_path):
    """rediss:// with Sentinel: the sentinels and the master are both reached
    over TLS, with the REDIS_SSL_* settings (every process here is TLS-only)."""
    from .topology_servers import make_certificates

    certs = make_certificates(str(tmp_path))
    setup = start_sentinel_setup(tls=certs)
    try:
        handler = Recorder()
        config = setup.config()
        assert config["REDIS_URL"].startswith("rediss://")
        app = make_app(**config, REDIS_ERROR_HANDLER=handler)
        with app.app_context():
            cache = app.extensions["rediscache"]
            assert cache.set("k", "over tls") is True
            assert cache.get("k") == "over tls"
        assert handler.calls == []
        assert setup.master.client().get("cache:k") is not None
        # The wrong CA: discovery itself fails; a miss, not an exception.
        app = make_app(**{**config, "REDIS_SSL_CA_CERTS": certs.wrong_ca}, REDIS_ERROR_HANDLER=handler)
        with app.app_context():
            assert app.extensions["rediscache"].get("k") is None
        assert handler.calls
    finally:
        setup.stop()


def test_rails_api_through_the_sentinel_master(make_app, setup):
    """Issue 15's calls through a Sentinel-managed master."""
    app = make_app(**setup.config())
    with app.app_context():
        cache = app.extensions["rediscache"]
        calls = []

        def compute(missing):
            calls.append(list(missing))
            return {key: key.upper() for key in missing}

        assert cache.fetch_multi(["a", "b"], compute) == {"a": "A", "b": "B"}
        assert cache.fetch_multi(["a", "b"], compute) == {"a": "A", "b": "B"} and len(calls) == 1
        assert cache.set("v", 1, version="x") and cache.get("v", version="y") is None
        assert cache.touch("v", 100) and 95 <= cache.ttl("v") <= 100
        with cache.lock("job", timeout=5, blocking_timeout=1):
            pass
    assert setup.master.client().exists("cache:a", "cache:b", "cache:v") == 3


def test_local_cache_tracking_follows_a_failover(make_app):
    """REDIS_LOCAL_CACHE="process" (issue 16): tracking moves to the new primary, copies are emptied."""
    setup = start_sentinel_setup()
    try:
        app = make_app(**setup.config(), REDIS_LOCAL_CACHE="process", REDIS_CONNECT_TIMEOUT=0.5,
                       REDIS_READ_TIMEOUT=0.5)
        cache = app.extensions["rediscache"]
        tracker = get_state(app).store.source.tracker
        tracker.lookup(b"-")
        wait_until(lambda: tracker.tracking, 5)
        assert tracker._address == ("127.0.0.1", setup.master.port)
        writer = make_app(**setup.config()).extensions["rediscache"]
        writer.set("k", "v1")
        wait_until(lambda: cache.get("k") == "v1", 1)
        assert cache.get("k") == "v1" and len(tracker.copies) == 1
        assert setup.master.client().wait(1, 2000) == 1
        resets = tracker.resets
        setup.sentinel.client().execute_command("SENTINEL", "FAILOVER", "m")
        wait_until(lambda: setup.sentinel.master_address() == ("127.0.0.1", setup.replica.port), 10)
        # Within a ping interval or two the tracker notices and re-establishes on the new primary.
        wait_until(lambda: tracker.tracking and tracker._address == ("127.0.0.1", setup.replica.port), 10)
        assert tracker.resets > resets
        # Sentinel demotes the old master a moment after promoting the replica; writes
        # that land on it in between are lost by Redis itself, so wait for the demotion.
        wait_until(lambda: setup.master.client().info("replication")["role"] == "slave", 10)
        wait_until(lambda: writer.set("k", "v2") and setup.replica.client().get("cache:k") is not None
                   and writer.get("k") == "v2", 10)
        # The first read after the failover may connect anew (asking the sentinels first).
        wait_until(lambda: cache.get("k") == "v2", 5)
        assert cache.get("k") == "v2"
        writer.set("k", "v3")
        wait_until(lambda: cache.get("k") == "v3", 0.5)
    finally:
        setup.stop()

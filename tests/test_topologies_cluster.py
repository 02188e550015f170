"""Redis Cluster: the whole cache API, memoize and sessions on a real 3-primary cluster.

The cluster is created by the test (three redis-server processes joined with
``redis-cli --cluster create``, tests/topology_servers.py) and shared by this
module; every test flushes it first. Keys of one call land in different hash
slots on different nodes, so any multi-key command that is not split per slot
would fail with CROSSSLOT: the error handler records every swallowed error
and the tests assert there were none.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis
from flask import session
from redis.cluster import RedisCluster

from flask_rediscache.clients_cluster import LazyCluster
from flask_rediscache.errors import PoolExhaustedError
from flask_rediscache.pools import BoundedPool
from flask_rediscache.state import get_state

from .support import Recorder
from .topology_servers import RedisClusterNodes, acl_denials, acl_user, free_port, wait_until

pytestmark = pytest.mark.timeout(90)



@pytest.fixture(scope="module")
def cluster():
    nodes = RedisClusterNodes(3)
    yield nodes
    nodes.stop()


@pytest.fixture
def errors():
    return Recorder()


@pytest.fixture
def app(make_app, cluster, errors):
    cluster.flush()
    return make_app(REDIS_CLUSTER=cluster.seeds, REDIS_ERROR_HANDLER=errors)


@pytest.fixture
def cache(app):
    with app.app_context():
        yield app.extensions["rediscache"]


KEYS = [f"item:{i}" for i in range(40)]
# Handshake commands redis-py sends and ignores when refused (see test_topologies_acl.py).
HANDSHAKE = {"client|setinfo", "client|maint_notifications"}


def _spread(cluster: RedisClusterNodes, pattern: bytes = b"cache:*") -> list[int]:
    return [len(keys) for keys in cluster.keys_per_node(pattern.decode())]


def test_target_is_a_real_cluster_client_with_bounded_pools(app, cluster):
    target = get_state(app).targets["cache"]
    assert target.kind == "cluster" and target.is_cluster
    assert isinstance(target.client, RedisCluster)
    assert get_state(app).store.is_cluster
    with app.app_context():
        app.extensions["rediscache"].set("k", 1)
    for node in target.client.get_primaries():
        pool = node.redis_connection.connection_pool
        assert isinstance(pool, BoundedPool)
        assert pool.max_connections == 5 and pool.timeout == 5
    assert sorted(n.port for n in target.client.get_primaries()) == sorted(n.port for n in cluster.nodes)


def test_exhausted_node_pool_is_not_taken_for_a_dead_node(make_app, cluster):
    """A caller that waits REDIS_POOL_TIMEOUT for a node's only connection gets
    a miss; the cluster client must not treat that as a node failure (drop the
    node's connections, reload the slot map: more load when already saturated)."""
    cluster.flush()
    errors = Recorder()
    app = make_app(REDIS_CLUSTER=cluster.seeds, REDIS_ERROR_HANDLER=errors, REDIS_POOL_SIZE=1,
                   REDIS_POOL_TIMEOUT=0.2, REDIS_CIRCUIT_BREAKER_THRESHOLD=1)
    with app.app_context():
        cache = app.extensions["rediscache"]
        assert cache.set("busy", 1)
        client = cache.client
        pool = client.get_node_from_key("cache:busy").redis_connection.connection_pool
        for node in cluster.nodes:
            node.reset_stats()
        held = pool.get_connection()
        try:
            started = time.monotonic()
            assert cache.get("busy") is None
            assert time.monotonic() - started >= 0.15
        finally:
            pool.release(held)
        assert [isinstance(c["exception"], PoolExhaustedError) for c in errors.calls] == [True]
        # Not a connection failure: the breaker stays closed, the slot map was not reloaded.
        assert get_state(app).boundaries["cache"].breaker.state == "closed"
        assert not any(node.commandstats().get("cluster|slots") for node in cluster.nodes)
        assert held._sock is not None  # the idle connection was not dropped
        assert cache.get("busy") == 1


def test_multi_key_calls_span_slots_and_nodes(cache, cluster, errors):
    values = {key: {"n": i} for i, key in enumerate(KEYS)}
    assert sorted(cache.set_many(values)) == sorted(KEYS)
    spread = _spread(cluster)
    assert sum(spread) == len(KEYS) and all(spread), f"keys not spread over the nodes: {spread}"
    assert cache.get_many(*KEYS, "missing") == [*values.values(), None]
    assert cache.get_dict("item:3", "item:30") == {"item:3": {"n": 3}, "item:30": {"n": 30}}
    assert cache.delete_many(*KEYS[:20], "missing") == 20
    assert cache.get_many(*KEYS[:2], *KEYS[-2:]) == [None, None, {"n": 38}, {"n": 39}]
    assert sum(_spread(cluster)) == 20
    assert errors.calls == []


def test_single_key_api(cache, cluster, errors):
    assert cache.set("a", "x", timeout=100) is True
    assert cache.add("a", "y") is False and cache.get("a") == "x"
    assert cache.add("b", "y") is True
    assert cache.has("a") and not cache.has("zz")
    assert 95 <= cache.ttl("a") <= 100
    assert cache.inc("hits") == 1 and cache.inc("hits", 5, timeout=50) == 6
    assert cache.dec("hits", 2) == 4 and cache.get("hits") == 4
    assert cache.ttl("hits") is not None
    assert cache.delete("a") is True and cache.delete("a") is False
    assert errors.calls == []


def test_clear_empties_every_primary_of_the_namespace_only(cache, cluster, errors):
    cache.set_many({key: key for key in KEYS})
    # A foreign key on every node, including one that matches the glob if the
    # namespace were not part of it.
    foreign = [f"other:{i}" for i in range(12)] + ["cachex:1", "item:1"]
    admin = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    try:
        for key in foreign:
            admin.set(key, "keep")
        assert all(_spread(cluster, b"other:*"))
        assert cache.delete_matched("item:1*") == 11  # item:1, item:10..19
        assert cache.get("item:1") is None and cache.get("item:2") == "item:2"
        assert cache.clear() == len(KEYS) - 11
        assert _spread(cluster) == [0, 0, 0]
        assert all(admin.get(key) == b"keep" for key in foreign)
    finally:
        admin.close()
    assert errors.calls == []


def test_memoize_and_delete_memoized(cache, cluster, errors):
    calls = []

    @cache.memoize(timeout=60)
    def square(n):
        calls.append(n)
        return n * n

    assert [square(n) for n in range(12)] == [n * n for n in range(12)]
    assert [square(n) for n in range(12)] == [n * n for n in range(12)]
    assert calls == list(range(12))
    assert all(_spread(cluster)), "memoized entries should span the nodes"
    cache.delete_memoized(square, 3)
    assert square(3) == 9 and calls[-1] == 3
    cache.delete_memoized(square)  # every entry: a SCAN on every primary
    assert sum(_spread(cluster)) == 0
    square(4)
    assert calls[-1] == 4
    assert errors.calls == []


def test_fetch_with_race_condition_ttl_and_lock(cache, cluster, errors):
    assert cache.fetch("report", lambda: "v1", timeout=1, race_condition_ttl=5) == "v1"
    assert cache.fetch("report", lambda: "never") == "v1"
    time.sleep(1.1)
    # Logically expired: one caller holds the lock and recomputes slowly while
    # the others get the stale value at once.
    started = threading.Event()
    results = []

    def slow():
        started.set()
        time.sleep(0.5)
        return "v2"

    app = cache.state().cache.app

    def worker():
        with app.app_context():
            results.append(cache.fetch("report", slow, timeout=1, race_condition_ttl=5))

    thread = threading.Thread(target=worker)
    thread.start()
    assert started.wait(5)
    t0 = time.monotonic()
    assert cache.fetch("report", lambda: "other", timeout=1, race_condition_ttl=5) == "v1"
    assert time.monotonic() - t0 < 0.3
    thread.join(5)
    assert results == ["v2"]
    assert cache.fetch("report", lambda: "never", timeout=1, race_condition_ttl=5) == "v2"
    assert errors.calls == []


def test_sessions_on_the_cluster(app, cluster, errors):
    @app.post("/login/<name>")
    def login(name):
        session["user"] = name
        session["cart"] = [1, 2]
        return "ok"

    @app.get("/me")
    def me():
        return {"user": session.get("user"), "cart": session.get("cart")}

    clients = [app.test_client() for _ in range(8)]
    for i, client in enumerate(clients):
        assert client.post(f"/login/u{i}").status_code == 200
    for i, client in enumerate(clients):
        assert client.get("/me").json == {"user": f"u{i}", "cart": [1, 2]}
    spread = _spread(cluster, b"session:*")
    assert sum(spread) == 8 and sum(1 for n in spread if n) >= 2, spread
    assert errors.calls == []


def test_cluster_down_at_start_fails_open_and_connects_later(make_app):
    """redis-py connects to a cluster in its constructor; a cluster that is
    down while the app boots must not crash init_app."""
    nodes = RedisClusterNodes(3)
    try:
        for node in nodes.nodes:
            node.kill()
        errors = Recorder()
        app = make_app(REDIS_CLUSTER=nodes.seeds, REDIS_ERROR_HANDLER=errors,
                       REDIS_CIRCUIT_BREAKER_COOLDOWN=0.2, REDIS_RECONNECT_DELAY_MAX=0.2)
        client = get_state(app).targets["cache"].client
        assert isinstance(client, LazyCluster)
        with app.app_context():
            cache = app.extensions["rediscache"]
            assert cache.get("k") is None
            assert cache.set("k", 1) is False
            assert cache.get_many("a", "b") == [None, None]
            assert cache.fetch("f", lambda: "computed") == "computed"
            assert errors.calls and all(isinstance(c["exception"], redis.ConnectionError)
                                        for c in errors.calls)
            for node in nodes.nodes:  # same ports, same nodes.conf: the cluster comes back
                node.start()
            wait_until(nodes._all_ok, 15, message="the restarted cluster")
            wait_until(lambda: cache.set("k", 2), 5, message="the cache to connect")
            assert cache.get("k") == 2
            assert isinstance(client.connect(), RedisCluster)
    finally:
        nodes.stop()


def test_whole_cluster_dying_fails_open(make_app):
    """With every node gone RedisCluster raises RedisClusterException, which
    is not a RedisError: the guard must swallow it too."""
    nodes = RedisClusterNodes(3)
    try:
        errors = Recorder()
        app = make_app(REDIS_CLUSTER=nodes.seeds, REDIS_ERROR_HANDLER=errors)
        with app.app_context():
            cache = app.extensions["rediscache"]
            cache.set_many({key: 1 for key in KEYS})
            for node in nodes.nodes:
                node.kill()
            for _ in range(3):  # no exception may escape
                assert cache.get("item:1") is None
                assert cache.set("item:1", 2) is False
                assert cache.get_many(*KEYS[:5]) == [None] * 5
                assert cache.set_many({"a": 1, "b": 2}) == []
                assert cache.delete_many("a", "b") == 0
                assert cache.inc("n") is None
                assert cache.clear() == 0
            assert errors.calls
            kinds = {type(c["exception"]).__name__ for c in errors.calls}
            assert kinds <= {"ConnectionError", "RedisClusterException", "CircuitOpenError",
                             "ClusterDownError", "TimeoutError"}, kinds
    finally:
        nodes.stop()


def test_unreachable_seed_list_is_named_without_password(make_app, caplog):
    port = free_port()
    app = make_app(REDIS_CLUSTER=[f"redis://:hunter2@127.0.0.1:{port}"])
    target = get_state(app).targets["cache"]
    assert target.name == f"cluster redis://:***@127.0.0.1:{port}"
    assert "hunter2" not in caplog.text
    with app.app_context():
        assert app.extensions["rediscache"].get("k") is None


def test_least_privilege_user_on_the_cluster(make_app, cluster):
    """The cache itself needs only @read/@write; the cluster client also needs
    CLUSTER SLOTS and COMMAND to learn the topology (docs/topologies/acl.rst)."""
    cluster.flush()
    rules = ("~cache:*", "~session:*", "+@read", "+@write", "+evalsha", "+script|load", "+cluster|slots",
             "+command")
    for node in cluster.nodes:
        node.client().acl_log_reset()
        acl_user(node, "app", "pw", *rules)
    try:
        errors = Recorder()
        app = make_app(REDIS_URL="redis://app:pw@cluster/0", REDIS_CLUSTER=cluster.seeds,
                       REDIS_ERROR_HANDLER=errors)

        @app.post("/login")
        def login():
            session["user"] = "ada"
            return "ok"

        with app.app_context():
            cache = app.extensions["rediscache"]
            assert cache.set_many({key: key for key in KEYS}) and all(_spread(cluster))
            assert cache.get_many(*KEYS[:3]) == KEYS[:3]
            assert cache.delete_many(*KEYS[:3]) == 3
            assert cache.inc("n", timeout=10) == 1
            assert cache.fetch("f", lambda: 1, timeout=1, race_condition_ttl=2) == 1

            @cache.memoize()
            def f(n):
                return n

            assert f(1) == 1 and f(1) == 1
            assert cache.clear() == len(KEYS) - 3 + 3
        assert app.test_client().post("/login").status_code == 200
        assert errors.calls == []
        denied = [(e["reason"], e["object"]) for node in cluster.nodes
                  for e in acl_denials(node, "app") if e["object"] not in HANDSHAKE]
        assert denied == []
        # Without the topology commands the client cannot start: the cache fails open.
        for node in cluster.nodes:
            acl_user(node, "app", "pw", "~cache:*", "+@read", "+@write")
        app = make_app(REDIS_URL="redis://app:pw@cluster/0", REDIS_CLUSTER=cluster.seeds,
                       REDIS_ERROR_HANDLER=errors)
        with app.app_context():
            assert app.extensions["rediscache"].set("k", 1) is False
        assert errors.calls
    finally:
        for node in cluster.nodes:
            node.client().acl_deluser("app")


def test_rails_api_on_the_cluster(cache, cluster, errors):
    """Issue 15's calls on a 3-primary cluster: fetch_multi reads per slot
    group and writes its misses, versions, TTL control and a named lock."""
    computed = []

    def compute(missing):
        computed.append(list(missing))
        return {key: {"k": key} for key in missing}

    cache.set_many({key: {"k": key} for key in KEYS[:10]})
    got = cache.fetch_multi(KEYS, compute)
    assert list(got) == KEYS and all(got[key] == {"k": key} for key in KEYS)
    assert computed == [KEYS[10:]]  # one compute call with exactly the misses
    assert all(_spread(cluster))  # the keys really span the nodes
    assert cache.fetch_multi(KEYS, compute) == got and len(computed) == 1  # all hits now
    assert cache.read_multi("item:1", "missing") == {"item:1": {"k": "item:1"}}
    assert cache.set("v", "one", version=1) and cache.get("v", version=2) is None
    assert cache.get("v", version=1) == "one"
    assert cache.touch("v", 100) and 95 <= cache.ttl("v") <= 100
    assert cache.persist("v") and cache.ttl("v") is None
    assert cache.expire("v", 50) and 45 <= cache.ttl("v") <= 50
    with cache.lock("report", timeout=5, blocking_timeout=1):
        assert not cache.lock("report", blocking=False).acquire()  # held: a second holder waits
    assert cache.lock("report", blocking=False).acquire()  # released on exit
    assert errors.calls == []

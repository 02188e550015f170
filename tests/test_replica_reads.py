"""REDIS_READ_FROM_REPLICAS: cache reads go to replicas (Sentinel, Cluster); writes,
counters, locks and sessions stay on the primary."""

from __future__ import annotations

import pytest
from flask import session

from flask_rediscache.errors import ConfigError

from .topology_servers import RedisClusterNodes, start_sentinel_setup, wait_until

pytestmark = pytest.mark.timeout(90)

READS = {"get", "mget", "getrange", "pttl"}


def calls(server, names):
    stats = server.commandstats()
    return {name: stats[name] for name in names if stats.get(name)}


def test_refused_without_sentinel_or_cluster(make_app, redis_server):
    with pytest.raises(ConfigError, match="REDIS_READ_FROM_REPLICAS"):
        make_app(REDIS_URL=redis_server.url, REDIS_READ_FROM_REPLICAS=True)
    with pytest.raises(ConfigError, match="REDIS_READ_FROM_REPLICAS"):
        make_app(REDIS_URL=redis_server.url, REDIS_READ_FROM_REPLICAS="yes")


def test_sentinel_cache_reads_go_to_the_replica(make_app):
    setup = start_sentinel_setup()
    try:
        app = make_app(**setup.config(), REDIS_READ_FROM_REPLICAS=True)
        cache = app.extensions["rediscache"]

        @app.get("/login")
        def login():
            session["user"] = "ada"
            return "ok"

        @app.get("/me")
        def me():
            return session.get("user", "nobody")

        with app.app_context():
            assert cache.set("k", {"v": 1}) and cache.set_many({"a": "A"})
            assert setup.master.client().wait(1, 2000) == 1
            for server in (setup.master, setup.replica):
                server.reset_stats()
            assert cache.get("k") == {"v": 1}
            assert cache.get_many("k", "a") == [{"v": 1}, "A"]
            assert cache.has("k") and cache.ttl("k") > 0
            assert cache.fetch("a", lambda: pytest.fail("replica read missed")) == "A"
            assert calls(setup.replica, READS) == {"get": 2, "mget": 1, "getrange": 2, "pttl": 1}
            assert calls(setup.master, READS) == {}
            # Writes, counters and locks: sent to the master (a replica only
            # replays them, and a client write there would be refused: READONLY).
            assert cache.inc("n") == 1
            with cache.lock("job", timeout=5):
                pass
            master = calls(setup.master, {"set", "incrby", "evalsha"})
            assert master["set"] == 1 and master["incrby"] == 1 and master["evalsha"] >= 1
            assert calls(setup.replica, READS) == {"get": 2, "mget": 1, "getrange": 2, "pttl": 1}
        # Sessions: the master only (a replica could return a session older than the last save).
        client = app.test_client()
        setup.replica.reset_stats()
        assert client.get("/login").data == b"ok" and client.get("/me").data == b"ada"
        assert calls(setup.replica, READS) == {}
    finally:
        setup.stop()


def test_cluster_cache_reads_go_to_replicas(make_app):
    nodes = RedisClusterNodes(3, replicas=1)
    try:
        app = make_app(REDIS_CLUSTER=nodes.seeds, REDIS_READ_FROM_REPLICAS=True)
        cache = app.extensions["rediscache"]
        keys = [f"item:{i}" for i in range(30)]
        with app.app_context():
            assert cache.set_many({k: k.upper() for k in keys}) == keys
            primaries, replicas = nodes.roles()
            assert len(primaries) == 3 and len(replicas) == 3
            for primary in primaries:
                primary.client().wait(1, 2000)
            wait_until(lambda: sum(r.client().dbsize() for r in replicas) == len(keys), 10,
                       message="the replicas to have every key")
            for node in nodes.nodes:
                node.reset_stats()
            assert cache.get_many(*keys) == [k.upper() for k in keys]
            assert cache.get("item:1") == "ITEM:1" and cache.has("item:2")
            replica_reads = sum(sum(calls(r, READS).values()) for r in replicas)
            primary_reads = sum(sum(calls(p, READS).values()) for p in primaries)
            # get and has: a replica. get_many's MGETs (one per slot group): redis-py's
            # mget_nonatomic spreads them round-robin over each shard's primary and replicas.
            assert replica_reads + primary_reads == len(keys) + 2
            assert replica_reads >= 2 + len(keys) // 3
            for node in nodes.nodes:
                node.reset_stats()
            assert cache.get("item:3") == "ITEM:3" and cache.ttl("item:3") > 0
            assert all(calls(p, READS) == {} for p in primaries)
            assert cache.inc("counter") == 1 and cache.set("w", "x") and cache.get("w") == "x"
            assert sum(calls(p, {"incrby"}).get("incrby", 0) for p in primaries) == 1
            assert all(calls(p, READS) == {} for p in primaries)
    finally:
        nodes.stop()

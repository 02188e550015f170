"""``flask redis ...`` through Flask's CLI runner, against real redis-server processes.

What an operator relies on: exit codes (health as a container healthcheck),
one clear line per failure and never a traceback, passwords masked in every
line, ``clear`` touching the namespace only, and ``doctor`` verdicts that
follow the server's real configuration.
"""

from __future__ import annotations

import json

import pytest
from flask import Flask

from flask_rediscache import cli as cli_module
from flask_rediscache.state import get_state

from .topology_servers import RedisClusterNodes, acl_user

PASSWORD = "s3cret-Pa55-word"


def run(app: Flask, *args: str, input: str | None = None):
    return app.test_cli_runner().invoke(args=["redis", *args], input=input)


def no_traceback(result) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


def findings(app: Flask, *args: str) -> dict[str, list[dict]]:
    result = run(app, "doctor", "--json", *args)
    no_traceback(result)
    data = json.loads(result.stdout)
    by_check: dict[str, list[dict]] = {}
    for finding in data["findings"]:
        by_check.setdefault(finding["check"], []).append(finding)
    assert result.exit_code == (1 if data["status"] == "fail" else 0)
    return by_check


@pytest.fixture(autouse=True)
def _no_thread_hints(monkeypatch):
    for name in ("GUNICORN_THREADS", "THREADS", "GUNICORN_CMD_ARGS", "WEB_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)


# -- health ----------------------------------------------------------------------
def test_health_up_exits_0_with_server_facts(app, redis_server):
    result = run(app, "health")
    no_traceback(result)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1  # cache and session share the server: one line
    version = redis_server.client().info()["redis_version"]
    assert lines[0].startswith("OK")
    assert "cache+session" in lines[0] and f"redis {version}" in lines[0] and "master" in lines[0]

    result = run(app, "health", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["status"] == "ok"
    [target] = data["targets"]
    assert target["purposes"] == ["cache", "session"]
    assert target["version"] == version and target["role"] == "master"
    assert target["maxmemory_policy"] == "noeviction"
    assert target["used_memory"] > 0 and target["latency_ms"] >= 0


def test_health_down_exits_1_with_one_line(redis_factory, make_app):
    server = redis_factory()
    app = make_app(REDIS_URL=server.url)
    server.kill()
    result = run(app, "health")
    no_traceback(result)
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("FAIL") and "connection refused" in line and f":{server.port}" in line

    result = run(app, "health", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["status"] == "error"
    assert data["targets"][0]["reason"] == "connection refused"


def test_health_one_line_per_purpose_when_separate(redis_factory, make_app):
    cache_server, session_server = redis_factory(), redis_factory()
    app = make_app(REDIS_CACHE_URL=cache_server.url, REDIS_SESSION_URL=session_server.url)
    session_server.kill()
    result = run(app, "health")
    no_traceback(result)
    assert result.exit_code == 1  # one unhealthy purpose is enough
    cache_line, session_line = result.output.strip().splitlines()
    assert cache_line.startswith("OK") and f":{cache_server.port}" in cache_line
    assert session_line.startswith("FAIL") and "session" in session_line
    assert f":{session_server.port}" in session_line


def test_wrong_password_is_one_clear_line(redis_factory, make_app):
    server = redis_factory(password=PASSWORD)
    app = make_app(REDIS_URL=f"redis://:wrong-Pa55-word@127.0.0.1:{server.port}/0")
    result = run(app, "health")
    no_traceback(result)
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert "authentication failed" in line and "wrong password" in line
    assert "wrong-Pa55-word" not in line and "redis://:***@" in line


def test_missing_password_says_so(redis_factory, make_app):
    server = redis_factory(password=PASSWORD)
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{server.port}/0")
    result = run(app, "health")
    assert result.exit_code == 1
    assert "authentication required (the URL has no password)" in result.output


def test_memory_url_is_healthy(make_app):
    app = make_app(REDIS_URL="memory://cli-health")
    result = run(app, "health")
    assert result.exit_code == 0, result.output
    assert "in-process (memory://)" in result.output


# -- least-privilege ACL user ----------------------------------------------------
def test_acl_user_gets_no_permission_lines_not_tracebacks(redis_factory, make_app):
    server = redis_factory(password=PASSWORD)
    url = acl_user(server, "app", "app-Pa55-word", "~cache:*", "~session:*", "+@read", "+@write")
    app = make_app(REDIS_URL=url)
    with app.app_context():
        app.extensions["rediscache"].set("k", 1)

    result = run(app, "health")
    no_traceback(result)
    assert result.exit_code == 0, result.output  # the server answered: reachable and authenticated
    assert "no permission for PING" in result.output
    assert "no permission for INFO" in result.output

    result = run(app, "doctor")
    no_traceback(result)
    assert "skipped: no permission for INFO or CONFIG GET" in result.output
    assert "FAIL" not in result.output
    assert result.exit_code == 0

    result = run(app, "stats", "--json")
    no_traceback(result)
    data = json.loads(result.stdout)
    assert data["targets"][0]["keys"]["cache:"] == 1
    assert data["targets"][0]["notes"] == ["no permission for INFO: server counters not shown"]
    assert "app-Pa55-word" not in result.output and PASSWORD not in result.output


def test_keys_size_falls_back_to_strlen_without_memory_usage(redis_factory, make_app):
    server = redis_factory()
    url = acl_user(server, "app", "app-Pa55-word", "~cache:*", "+@read", "+@write", "-memory")
    app = make_app(REDIS_URL=url)
    server.client().set("cache:raw", "12345")
    result = run(app, "keys", "--json")
    no_traceback(result)
    data = json.loads(result.stdout)
    assert data["keys"] == [{"key": "cache:raw", "ttl": None, "size": 5, "size_source": "strlen"}]
    assert "MEMORY USAGE refused" in data["notes"][0]


# -- clear -----------------------------------------------------------------------
def _fill(app: Flask, server, n: int = 3) -> None:
    with app.app_context():
        for i in range(n):
            app.extensions["rediscache"].set(f"item:{i}", i)
    client = server.client()
    client.set("other:keep", "1")
    client.set("cachex:keep", "1")  # shares the prefix but not the "cache:" namespace
    client.set("session:keep", "1")


def test_clear_removes_exactly_the_namespace(app, redis_server):
    _fill(app, redis_server, 3)
    result = run(app, "clear", "--yes")
    no_traceback(result)
    assert result.exit_code == 0, result.output
    assert "Removed 3 keys under cache:" in result.output
    assert sorted(redis_server.client().keys("*")) == [b"cachex:keep", b"other:keep", b"session:keep"]
    assert "flushdb" not in redis_server.commandstats()


def test_clear_asks_first_and_respects_no(app, redis_server):
    _fill(app, redis_server, 2)
    result = run(app, "clear", input="n\n")
    no_traceback(result)
    assert result.exit_code == 1
    assert "Delete 2 keys under cache:" in result.output and "nothing was deleted" in result.output
    assert len(redis_server.client().keys("cache:*")) == 2

    result = run(app, "clear", input="y\n")
    assert result.exit_code == 0, result.output
    assert redis_server.client().keys("cache:*") == []
    assert redis_server.client().exists("other:keep")


def test_clear_empty_namespace_does_not_ask(app, redis_server):
    redis_server.client().set("other:keep", "1")
    result = run(app, "clear")
    assert result.exit_code == 0
    assert "Nothing to clear" in result.output
    assert redis_server.client().exists("other:keep")


def test_clear_shows_progress_on_a_large_namespace(app, redis_server, monkeypatch):
    monkeypatch.setattr(cli_module, "PROGRESS_MIN_KEYS", 100)
    client = redis_server.client()
    pipe = client.pipeline(transaction=False)
    for i in range(3000):
        pipe.set(f"cache:bulk:{i}", "v")
    pipe.set("other:keep", "1")
    pipe.execute()
    result = run(app, "clear", "--yes")
    no_traceback(result)
    assert result.exit_code == 0, result.output
    assert "Counting cache:* keys" in result.stderr and "Deleting cache:* keys" in result.stderr
    assert "Removed 3000 keys" in result.stdout
    assert client.dbsize() == 1


def test_clear_reports_a_refused_delete_in_one_line(redis_factory, make_app):
    # An ACL user that may read (SCAN) but not write (UNLINK): clear() fails open
    # inside the cache, and the command must still say so and exit 1.
    server = redis_factory()
    server.client().set("cache:a", "1")
    url = acl_user(server, "reader", "reader-Pa55", "~cache:*", "+@read")
    app = make_app(REDIS_URL=url)
    result = run(app, "clear", "--yes")
    no_traceback(result)
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert "clearing stopped after removing 0 keys: no permission for UNLINK" in line
    assert "reader-Pa55" not in line
    assert server.client().exists("cache:a")


# -- keys ------------------------------------------------------------------------
def test_keys_lists_namespace_keys_with_ttl_and_size(app, redis_server):
    with app.app_context():
        cache = app.extensions["rediscache"]
        cache.set("user:1", {"name": "ada"}, timeout=600)
        cache.set("user:2", "x" * 100, timeout=0)
        cache.set("page:/", "<html>", timeout=60)
    redis_server.client().set("other:user:3", "1")

    result = run(app, "keys", "user:*", "--json")
    no_traceback(result)
    data = json.loads(result.stdout)
    keys = {k["key"]: k for k in data["keys"]}
    assert set(keys) == {"cache:user:1", "cache:user:2"}
    assert 590 <= keys["cache:user:1"]["ttl"] <= 600
    assert keys["cache:user:2"]["ttl"] is None
    for key in keys.values():
        real = redis_server.client().memory_usage(key["key"])
        assert key["size"] == real and key["size_source"] == "memory"
    assert data["truncated"] is False

    result = run(app, "keys", "--limit", "2")
    assert result.exit_code == 0
    assert "more match, raise --limit" in result.output
    assert len([line for line in result.output.splitlines() if "cache:" in line and "B  " in line]) == 2
    assert "other:" not in result.output

    result = run(app, "keys", "nothing-*")
    assert "No keys under cache: match 'nothing-*'" in result.output


# -- stats -----------------------------------------------------------------------
def test_stats_reports_server_and_process_counters(app, redis_server):
    with app.app_context():
        cache = app.extensions["rediscache"]
        for i in range(4):
            cache.set(f"k{i}", i)
        hits = sum(cache.get(f"k{i}") is not None for i in range(6))
    redis_server.client().set("session:abc", "1")
    result = run(app, "stats", "--json")
    no_traceback(result)
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    [target] = data["targets"]
    assert target["keys"] == {"cache:": 4, "session:": 1}
    info = redis_server.client().info("stats")
    assert target["keyspace_hits"] <= info["keyspace_hits"] and target["keyspace_hits"] >= 4
    assert target["hit_ratio"] == round(target["keyspace_hits"] / (target["keyspace_hits"]
                                                                   + target["keyspace_misses"]), 4)
    assert data["process"]["cache_hits"] == hits == 4
    assert data["process"]["cache_misses"] == 2
    assert data["process"]["errors"] == {"cache": 0, "session": 0, "cable": 0}

    text = run(app, "stats").output
    assert "keys under cache:" in text and "hit ratio" in text and "evicted keys" in text


def test_stats_on_a_dead_server_exits_1(redis_factory, make_app):
    server = redis_factory()
    app = make_app(REDIS_URL=server.url)
    server.kill()
    result = run(app, "stats")
    no_traceback(result)
    assert result.exit_code == 1 and "connection refused" in result.output


# -- doctor ----------------------------------------------------------------------
def test_doctor_flags_unbounded_cache_until_fixed(redis_factory, make_app):
    server = redis_factory()
    app = make_app(REDIS_URL=server.url)
    found = findings(app)
    assert found["maxmemory"][0]["status"] == "fail"
    assert found["eviction-policy"][0]["status"] == "fail"
    assert "noeviction" in found["eviction-policy"][0]["message"]
    assert "allkeys-lru" in found["eviction-policy"][0]["fix"]
    result = run(app, "doctor")
    assert result.exit_code == 1 and "FAIL  maxmemory" in result.output

    server.client().config_set("maxmemory", "64mb")
    server.client().config_set("maxmemory-policy", "allkeys-lru")
    found = findings(app)
    assert found["maxmemory"][0]["status"] == "pass"
    assert found["eviction-policy"][0]["status"] == "pass"
    assert all(f["status"] != "fail" for group in found.values() for f in group)
    assert run(app, "doctor").exit_code == 0


def test_doctor_warns_about_keys_without_ttl(app, redis_server):
    with app.app_context():
        app.extensions["rediscache"].set("forever", 1, timeout=0)
        app.extensions["rediscache"].set("soon", 1, timeout=60)
    [ttl] = [f for f in findings(app)["ttl"] if "cache:" in f["message"]]
    assert ttl["status"] == "warn" and "1 of 2 sampled keys" in ttl["message"]
    assert "cache:forever" in ttl["message"]
    redis_server.client().expire("cache:forever", 60)
    [ttl] = [f for f in findings(app)["ttl"] if "cache:" in f["message"]]
    assert ttl["status"] == "pass"


def test_doctor_pool_against_worker_threads(app, monkeypatch):
    assert findings(app)["pool"][0]["status"] == "skip"
    # A pool smaller than the threads is a warning (docs/operations.rst): exit 0, not a failed deploy gate.
    assert findings(app, "--threads", "8")["pool"][0]["status"] == "warn"
    result = run(app, "doctor", "--threads", "8")
    assert "WARN  pool" in result.output and "set REDIS_POOL_SIZE >= 8" in result.output
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "--workers 2 --threads 4")
    pool = findings(app)["pool"][0]
    assert pool["status"] == "pass" and "GUNICORN_CMD_ARGS" in pool["message"]


def test_doctor_separate_purposes(redis_factory, make_app, redis_server):
    shared = findings(make_app(REDIS_URL=redis_server.url))["separate-purposes"][0]
    assert shared["status"] == "warn"
    one_server_two_dbs = make_app(REDIS_CACHE_URL=redis_server.url,
                                  REDIS_SESSION_URL=redis_server.url.replace("/0", "/1"))
    found = findings(one_server_two_dbs)["separate-purposes"][0]
    assert found["status"] == "warn" and "same server" in found["message"]
    other = redis_factory()
    separate = make_app(REDIS_CACHE_URL=redis_server.url, REDIS_SESSION_URL=other.url)
    assert findings(separate)["separate-purposes"][0]["status"] == "pass"


def test_doctor_unreachable_server_fails_without_traceback(redis_factory, make_app):
    server = redis_factory(password=PASSWORD)
    app = make_app(REDIS_URL=f"redis://:bad-Pa55-word@127.0.0.1:{server.port}/0")
    found = findings(app)
    assert found["connect"][0]["status"] == "fail"
    assert "authentication failed" in found["connect"][0]["message"]


def test_doctor_error_handler_only_matters_in_production(redis_server):
    from flask_rediscache import RedisCache

    prod = Flask("prod")
    prod.config.update(SECRET_KEY="s", REDIS_URL=redis_server.url)
    RedisCache(prod)
    assert findings(prod)["error-handler"][0]["status"] == "warn"
    handled = Flask("handled")
    handled.config.update(SECRET_KEY="s", REDIS_URL=redis_server.url,
                          REDIS_ERROR_HANDLER=lambda **kw: None)
    RedisCache(handled)
    assert findings(handled)["error-handler"][0]["status"] == "pass"


# -- cluster ---------------------------------------------------------------------
def test_cli_on_a_cluster_sums_every_primary(make_app):
    nodes = RedisClusterNodes(3)
    try:
        app = make_app(REDIS_CLUSTER=nodes.seeds)
        with app.app_context():
            for i in range(30):  # spread over the slots of all three primaries
                app.extensions["rediscache"].set(f"k{i}", i)
        client = get_state(app).targets["cache"].client
        client.set("other:keep", "1")
        per_node = [len(keys) for keys in nodes.keys_per_node("cache:*")]
        assert sum(per_node) == 30 and min(per_node) > 0

        result = run(app, "health")
        assert result.exit_code == 0, result.output
        assert "cluster of 3 primaries" in result.output

        data = json.loads(run(app, "stats", "--json").stdout)
        assert data["targets"][0]["keys"]["cache:"] == 30
        assert data["targets"][0]["dbsize"] == 31 == sum(node.client().dbsize() for node in nodes.nodes)

        result = run(app, "clear", "--yes")
        assert result.exit_code == 0, result.output
        assert "Removed 30 keys" in result.output
        assert nodes.keys_per_node("cache:*") == [[], [], []]
        assert client.get("other:keep") == b"1"
    finally:
        nodes.stop()

"""Issue 14.4: doctor's levels and exit codes are the ones docs/operations.rst documents.

The "Doctor checks" table is parsed; doctor runs against real servers in
situations that reach its checks' levels; every (check, level) it produces
must be in the table (or be a pass), every documented check must exist, and
the exit code must follow the table's rule (1 only when something fails).
Also issue 12.18: doctor prints the worst case of one call.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask import Flask

from flask_rediscache import RedisCache, doctor_config
from flask_rediscache.doctor_config import worst_case_seconds
from flask_rediscache.state import get_state

from .topology_servers import acl_user

DOCS = Path(__file__).resolve().parent.parent / "docs" / "operations.rst"


def documented() -> list[tuple[str, str, int]]:
    """``(check, level, exit code)`` rows of the "Doctor checks" list-table."""
    text = DOCS.read_text()
    section = text.split("Doctor checks\n-------------\n", 1)[1].split("\n.. _failure-semantics:", 1)[0]
    rows = []
    for block in re.split(r"\n   \* - ", section)[2:]:  # [0] is the intro, [1] the header row
        cells = [cell.strip() for cell in re.split(r"\n     - ", block)]
        check, level, code = cells[0].strip("`"), cells[2], int(cells[3])
        rows.append((check, level, code))
    return rows


def run_doctor(app: Flask, *args: str) -> tuple[list[dict], int]:
    result = app.test_cli_runner().invoke(args=["redis", "doctor", "--json", *args])
    assert "Traceback" not in result.output
    return json.loads(result.stdout)["findings"], result.exit_code


@pytest.fixture(autouse=True)
def _no_thread_hints(monkeypatch):
    for name in ("GUNICORN_THREADS", "THREADS", "GUNICORN_CMD_ARGS", "WEB_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)


def test_the_table_is_well_formed():
    rows = documented()
    assert len(rows) >= 20
    for check, level, code in rows:
        assert level in ("warn", "fail", "skip"), (check, level)
        assert code == (1 if level == "fail" else 0), (check, level, code)
    pool = [level for check, level, _ in rows if check == "pool"]
    assert pool == ["warn", "skip"]  # what the docs and examples/gunicorn.conf.py promise


def test_doctor_levels_match_the_documented_table(redis_factory, make_app, monkeypatch):
    seen: set[tuple[str, str]] = set()

    def collect(app: Flask, *args: str) -> int:
        found, code = run_doctor(app, *args)
        statuses = {f["status"] for f in found}
        assert code == (1 if "fail" in statuses else 0)  # the exit code rule of the table
        seen.update((f["check"], f["status"]) for f in found)
        return code

    # A default redis-server: no maxmemory, noeviction; keys without TTL; too few connections.
    server = redis_factory("--maxclients", "8")
    app = make_app(REDIS_URL=server.url, REDIS_DEFAULT_TIMEOUT=0, REDIS_READ_TIMEOUT=6,
                   REDIS_RECONNECT_ATTEMPTS=3)
    with app.app_context():
        app.extensions["rediscache"].set("forever", 1)
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    assert collect(app, "--threads", "8") == 1
    monkeypatch.delenv("WEB_CONCURRENCY")
    collect(app)  # threads unknown

    # A well-configured server, production app: only warnings, so exit code 0.
    good = redis_factory("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
    prod = Flask("prod")
    prod.config.update(SECRET_KEY="s", REDIS_URL=good.url)
    RedisCache(prod)
    assert collect(prod, "--threads", "8") == 0  # pool smaller than threads: a warning

    # A declared purpose (REDIS_PURPOSES) on the cache's server and db.
    collect(make_app(REDIS_URL=good.url, REDIS_PURPOSES=["queue"]))

    # Separate servers: a session-only server with allkeys-lru, a volatile cache policy.
    cache_server = redis_factory("--maxmemory", "64mb", "--maxmemory-policy", "volatile-lru")
    collect(make_app(REDIS_CACHE_URL=cache_server.url, REDIS_SESSION_URL=good.url))

    # An ACL user limited to another prefix, and one that may not read INFO/CONFIG.
    acl = redis_factory()
    collect(make_app(REDIS_URL=acl_user(acl, "shop", "shop-Pa55", "~shop:*", "+@all")))
    collect(make_app(REDIS_URL=acl_user(acl, "app", "app-Pa55", "~cache:*", "~session:*",
                                        "+@read", "+@write", "-scan")))

    # The process near-cache for a user that may not track keys.
    collect(make_app(REDIS_URL=acl_user(acl, "near", "near-Pa55", "~cache:*", "~session:*",
                                        "+@read", "+@write", "+info", "+dbsize", "+scan", "+ttl",
                                        "+config|get", "+evalsha", "+script|load"),
                     REDIS_LOCAL_CACHE="process"))

    # A replica; memory:// in testing and in production; a dead server.
    replica = redis_factory("--replicaof", "127.0.0.1", str(good.port))
    collect(make_app(REDIS_URL=replica.url))
    collect(make_app(REDIS_URL="memory://doctor-table"))
    memory_prod = Flask("memory-prod")
    memory_prod.config.update(SECRET_KEY="s", REDIS_URL="memory://doctor-table-prod")
    RedisCache(memory_prod)
    assert collect(memory_prod) == 1
    dead = redis_factory()
    dead_app = make_app(REDIS_URL=dead.url)
    dead.kill()
    collect(dead_app)

    # URL-only checks, without a server.
    for url in ("redis://10.0.0.5:6379/0", "redis://:pw@cache.example.com:6379/0"):
        state = get_state(make_app(REDIS_URL=url))
        seen.update((f.check, f.status) for f in doctor_config.security_findings(state, ["cache"]))
    state = get_state(make_app(REDIS_URL="rediss://:pw@cache.example.com/0", REDIS_SSL_CERT_REQS="none"))
    seen.update((f.check, f.status) for f in doctor_config.security_findings(state, ["cache"]))

    rows = documented()
    table = {(check, level) for check, level, _ in rows}
    checks = {check for check, _, _ in rows}
    undocumented = {pair for pair in seen if pair[1] != "pass" and pair not in table}
    assert not undocumented, f"doctor levels missing from docs/operations.rst: {sorted(undocumented)}"
    assert {check for check, _ in seen} == checks
    reached = {pair for pair in seen if pair[1] != "pass"}
    # Every documented level was reached here, except a read failing right after a good connect.
    assert table - reached <= {("ttl", "fail"), ("maxmemory", "fail")}, sorted(table - reached)


def test_doctor_prints_the_worst_case_of_one_call(app):
    findings, _ = run_doctor(app)
    [finding] = [f for f in findings if f["check"] == "worst-case"]
    settings = get_state(app).settings
    seconds = worst_case_seconds(settings)
    # Defaults: pool wait 5 s + 2 attempts x (connect 2 s + read 1 s) + 0.1 s backoff.
    assert seconds >= settings.pool_timeout + 2 * (settings.connect_timeout + settings.read_timeout)
    assert f"up to {seconds:.1f}s" in finding["message"]
    assert "pool wait 5s + 2 attempts x (connect 2s + read 1s) + backoff" in finding["message"]
    assert finding["status"] == "pass"


def test_a_long_worst_case_warns(make_app):
    app = make_app(REDIS_URL="memory://worst-case", REDIS_RECONNECT_ATTEMPTS=10)
    finding = doctor_config.worst_case_finding(get_state(app).settings)
    assert finding.status == "warn" and "REDIS_RECONNECT_ATTEMPTS" in finding.fix

"""The per-target health check (checks.py), error descriptions (probes.py) and the endpoint (health.py)."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from flask_rediscache import health
from flask_rediscache.checks import check_all
from flask_rediscache.probes import Problem, describe_error
from flask_rediscache.state import get_state

from .servers import free_port
from .topology_servers import acl_user

PASSWORD = "endpoint-Pa55-word"


def state_of(app):
    return get_state(app)


@pytest.fixture
def no_reuse(monkeypatch):
    """Every endpoint call probes again (the 1 s reuse is tested on its own below)."""
    monkeypatch.setattr(health, "MAX_AGE", 0)


# -- the endpoint ----------------------------------------------------------------
def test_endpoint_200_then_503(redis_factory, make_app, caplog, no_reuse):
    server = redis_factory(password=PASSWORD)
    app = make_app(REDIS_URL=server.url, REDIS_HEALTH_ENDPOINT="/health/redis")
    client = app.test_client()
    response = client.get("/health/redis")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["checks"]["cache"]["ok"] is True and body["checks"]["session"]["ok"] is True
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers

    server.kill()
    with caplog.at_level(logging.WARNING, logger="flask_rediscache"):
        response = client.get("/health/redis")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "error"
    assert body["reason"] == "cache: connection refused; session: connection refused"
    assert body["checks"]["cache"] == {"ok": False, "latency_ms": None, "reason": "connection refused"}
    text = response.get_data(as_text=True)
    assert PASSWORD not in text and "127.0.0.1" not in text  # no addresses on a public endpoint
    [record] = [r for r in caplog.records if "health check failed" in r.getMessage()]
    assert "redis://:***@127.0.0.1" in record.getMessage() and PASSWORD not in record.getMessage()

    server.start()
    assert client.get("/health/redis").status_code == 200


def test_endpoint_only_when_configured(app):
    assert app.test_client().get("/health/redis").status_code == 404


def test_endpoint_sees_one_failed_purpose(redis_factory, make_app, no_reuse):
    cache_server, session_server = redis_factory(), redis_factory()
    app = make_app(REDIS_CACHE_URL=cache_server.url, REDIS_SESSION_URL=session_server.url,
                   REDIS_HEALTH_ENDPOINT="/healthz")
    cache_server.kill()
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"]["cache"]["ok"] is False and body["checks"]["session"]["ok"] is True
    assert body["reason"] == "cache: connection refused"


def test_endpoint_ignores_session_server_when_sessions_are_off(redis_factory, make_app, no_reuse):
    cache_server, session_server = redis_factory(), redis_factory()
    app = make_app(REDIS_CACHE_URL=cache_server.url, REDIS_SESSION_URL=session_server.url,
                   REDIS_SESSION=False, REDIS_HEALTH_ENDPOINT="/healthz")
    session_server.kill()
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert set(response.get_json()["checks"]) == {"cache"}


def test_endpoint_reuses_a_result_for_up_to_a_second(redis_factory, make_app):
    server = redis_factory()
    app = make_app(REDIS_URL=server.url, REDIS_HEALTH_ENDPOINT="/healthz")
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    server.kill()
    assert client.get("/healthz").status_code == 200  # the result of a moment ago
    time.sleep(health.MAX_AGE + 0.1)
    assert client.get("/healthz").status_code == 503


def test_a_flood_of_checks_against_a_frozen_redis_costs_one_probe(redis_factory, make_app, monkeypatch):
    # Issue 12.13: 20 concurrent requests while Redis is frozen (SIGSTOP) must not
    # each hold a worker for a timeout: one probe runs, the others share its result.
    server = redis_factory()
    app = make_app(REDIS_URL=server.url, REDIS_HEALTH_ENDPOINT="/healthz", REDIS_READ_TIMEOUT=0.5,
                   REDIS_CONNECT_TIMEOUT=0.5, REDIS_POOL_TIMEOUT=5)
    probes = []
    real = health.check_one

    def counting(*args, **kwargs):
        probes.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(health, "check_one", counting)
    statuses: list[int] = []
    start = threading.Barrier(20)

    def request() -> None:
        client = app.test_client()
        start.wait()
        statuses.append(client.get("/healthz").status_code)

    server.pause()
    try:
        threads = [threading.Thread(target=request) for _ in range(20)]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        elapsed = time.monotonic() - began
    finally:
        server.resume()
    assert statuses == [503] * 20
    assert len(probes) == 1
    assert elapsed < 1.5, elapsed  # one probe (~0.5 s read timeout), not 20 in a pool of 5


# -- check_target ----------------------------------------------------------------
def test_check_reports_server_facts(app, redis_server):
    [check] = check_all(state_of(app))
    info = redis_server.client().info()
    assert check.ok and check.error is None
    assert check.purposes == ["cache", "session"]
    assert check.version == info["redis_version"]
    assert check.role == "master"
    assert check.maxmemory == 0 and check.maxmemory_policy == "noeviction"
    assert check.latency_ms is not None and check.latency_ms < 1000


def test_check_replica_role(redis_factory, make_app):
    primary = redis_factory()
    replica = redis_factory("--replicaof", "127.0.0.1", str(primary.port))
    [check] = check_all(state_of(make_app(REDIS_URL=replica.url)))
    # A replica answers, but refuses the write probe: the cache and sessions could not work.
    assert not check.ok and check.role == "replica"
    assert check.access["cache"].reason == "cache: server is a read-only replica"


def test_hung_server_is_a_timeout_within_the_read_timeout(redis_factory, make_app):
    server = redis_factory()
    app = make_app(REDIS_URL=server.url, REDIS_READ_TIMEOUT=0.3)
    server.client().ping()
    server.pause()
    try:
        started = time.monotonic()
        [check] = check_all(state_of(app))
        elapsed = time.monotonic() - started
    finally:
        server.resume()
    assert not check.ok
    assert check.error is not None and check.error.reason.startswith("timeout")
    assert elapsed < 2


def test_noperm_on_ping_and_info_is_a_note(redis_factory, make_app):
    server = redis_factory()
    url = acl_user(server, "app", "app-Pa55", "~cache:*", "~session:*", "+@read", "+@write")
    [check] = check_all(state_of(make_app(REDIS_URL=url)))
    assert check.ok and check.version is None
    assert any("no permission for PING" in note for note in check.notes)
    assert any("no permission for INFO" in note for note in check.notes)


# -- describe_error --------------------------------------------------------------
def test_describe_real_errors(redis_factory):
    server = redis_factory(password=PASSWORD)
    once = Retry(NoBackoff(), 0)  # redis-py 8 would otherwise retry 10 times
    cases = {
        "authentication failed (wrong password or user)":
            lambda: redis.Redis(port=server.port, password="nope-nope", retry=once).ping(),
        "connection refused": lambda: redis.Redis(port=free_port(), retry=once).ping(),
    }
    for reason, call in cases.items():
        with pytest.raises(redis.RedisError) as info:
            call()
        problem = describe_error(info.value, "PING")
        assert problem.reason == reason
        assert "\n" not in str(problem)
    acl_user(server, "r", "r-Pa55-word", "~*", "+@read")
    with pytest.raises(redis.RedisError) as info:
        redis.Redis(port=server.port, username="r", password="r-Pa55-word").config_get("maxmemory")
    problem = describe_error(info.value, "config get")
    assert problem == Problem("no permission for CONFIG GET", problem.detail, permission=True)


def test_describe_masks_urls_and_literal_passwords():
    exc = redis.ConnectionError("Error connecting to redis://u:hunter2-xyz@h:1 (password hunter2-xyz)")
    text = str(describe_error(exc, "PING", secrets=("hunter2-xyz",)))
    assert "hunter2-xyz" not in text
    assert "redis://u:***@h:1" in text


def test_describe_is_one_line_even_for_multiline_messages():
    problem = describe_error(RuntimeError("first line\nsecond\nthird"), "INFO")
    assert str(problem) == "INFO failed (RuntimeError): first line"


# -- small helpers ----------------------------------------------------------------

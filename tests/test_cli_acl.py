"""Issue 12.15: a wrong ACL key pattern is reported, not mistaken for healthy.

The user may use ``~shop:*`` while the namespace is ``cache``: PING, INFO and
DBSIZE all work, yet every cache write fails with NOPERM. Health, the
endpoint and doctor write, read and delete a probe key under each purpose's
prefix, so all three say so.
"""

from __future__ import annotations

import json

from flask_rediscache import health

from .topology_servers import acl_user


def run(app, *args):
    return app.test_cli_runner().invoke(args=["redis", *args])


def test_wrong_key_pattern_fails_health_endpoint_and_doctor(redis_factory, make_app, monkeypatch):
    monkeypatch.setattr(health, "MAX_AGE", 0)
    server = redis_factory()
    url = acl_user(server, "shop", "shop-Pa55-word", "~shop:*", "+@all")
    app = make_app(REDIS_URL=url, REDIS_HEALTH_ENDPOINT="/health/redis")

    result = run(app, "health")
    assert result.exit_code == 1, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith("FAIL")
    assert "cache: ACL refuses keys under cache: (NOPERM on SET)" in line
    assert "key pattern must allow ~cache:*" in line
    assert "session: ACL refuses keys under session:" in line
    data = json.loads(run(app, "health", "--json").stdout)
    assert data["status"] == "error"
    assert "~cache:*" in data["targets"][0]["access"]["cache"]

    response = app.test_client().get("/health/redis")
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"]["cache"]["ok"] is False
    assert body["checks"]["cache"]["reason"].startswith("ACL refuses keys under cache:")

    data = json.loads(run(app, "doctor", "--json").stdout)
    access = {f["message"].split(":")[0]: f for f in data["findings"] if f["check"] == "access"}
    assert access["cache"]["status"] == "fail" and "~cache:*" in access["cache"]["fix"]
    assert access["session"]["status"] == "fail"
    assert data["status"] == "fail"
    assert run(app, "doctor").exit_code == 1
    assert server.client().keys("*") == []  # the probes left nothing behind


def test_right_key_patterns_pass(redis_factory, make_app):
    server = redis_factory()
    url = acl_user(server, "shop", "shop-Pa55-word", "~cache:*", "~session:*", "+@read", "+@write")
    app = make_app(REDIS_URL=url, REDIS_HEALTH_ENDPOINT="/health/redis")
    assert run(app, "health").exit_code == 0
    assert app.test_client().get("/health/redis").status_code == 200
    data = json.loads(run(app, "doctor", "--json").stdout)
    assert [f["status"] for f in data["findings"] if f["check"] == "access"] == ["pass", "pass"]


def test_missing_write_permission_names_the_command(redis_factory, make_app):
    server = redis_factory()
    url = acl_user(server, "reader", "reader-Pa55", "~cache:*", "~session:*", "+@read")
    app = make_app(REDIS_URL=url)
    result = run(app, "health")
    assert result.exit_code == 1
    assert "cache: ACL refuses SET (NOPERM); the user needs +@read +@write" in result.output

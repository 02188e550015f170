"""Health covers the broadcast purpose once configured, and every REDIS_PURPOSES name."""

from __future__ import annotations

from flask_rediscache.checks import check_all
from flask_rediscache.state import get_state

from .servers import free_port


def test_cable_is_checked_only_once_configured(make_app, redis_server):
    plain = make_app(REDIS_URL=redis_server.url)
    assert {p for c in check_all(get_state(plain)) for p in c.purposes} == {"cache", "session"}
    live = make_app(REDIS_URL=redis_server.url, REDIS_CHANNEL_PREFIX="live")
    checks = check_all(get_state(live))
    assert {p for c in checks for p in c.purposes} == {"cache", "session", "cable"}
    assert all(c.ok for c in checks)


def test_a_declared_purpose_is_checked_for_connectivity(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_PURPOSES=["queue"],
                   REDIS_QUEUE_URL=f"redis://127.0.0.1:{free_port()}/0")
    checks = {tuple(c.purposes): c for c in check_all(get_state(app))}
    assert checks[("queue",)].ok is False
    assert "refused" in str(checks[("queue",)].error)
    assert checks[("cache", "session")].ok is True


def test_doctor_warns_when_a_declared_purpose_shares_a_server_and_db(make_app, redis_server):
    from flask_rediscache.doctor import doctor

    shared = make_app(REDIS_URL=redis_server.url, REDIS_PURPOSES=["queue"])
    findings = {f.check: f for f in doctor(shared, get_state(shared))}
    assert findings["declared-purposes"].status == "warn"
    assert "queue and cache" in findings["declared-purposes"].message
    own = make_app(REDIS_URL=redis_server.url, REDIS_PURPOSES=["queue"],
                   REDIS_QUEUE_URL=redis_server.url.replace("/0", "/5"))
    assert {f.check: f for f in doctor(own, get_state(own))}["declared-purposes"].status == "pass"


def test_cable_configured_through_the_instance_config_is_checked(redis_server):
    from flask import Flask

    from flask_rediscache import RedisCache

    app = Flask("instance-config")
    app.config.update(SECRET_KEY="s", REDIS_URL=redis_server.url)
    RedisCache(app, config={"REDIS_CHANNEL_PREFIX": "live"})
    try:
        assert {p for c in check_all(get_state(app)) for p in c.purposes} == {"cache", "session", "cable"}
    finally:
        get_state(app).close()

"""flask_rediscache.doctor: checks that read the config alone (the live checks are in test_cli.py)."""

from __future__ import annotations

import pytest

from flask_rediscache import doctor, doctor_config
from flask_rediscache.doctor_config import thread_hint
from flask_rediscache.state import get_state


def state_of(app):
    return get_state(app)


@pytest.mark.parametrize(("option", "environ", "expected"), [
    (None, {}, (None, "")),
    (6, {"GUNICORN_THREADS": "2"}, (6, "--threads")),
    (None, {"GUNICORN_THREADS": "3"}, (3, "GUNICORN_THREADS")),
    (None, {"THREADS": "7"}, (7, "THREADS")),
    (None, {"GUNICORN_CMD_ARGS": "-w 4 --threads=9"}, (9, "GUNICORN_CMD_ARGS")),
    (None, {"GUNICORN_CMD_ARGS": "--threads 12 --bind :8000"}, (12, "GUNICORN_CMD_ARGS")),
    (None, {"GUNICORN_THREADS": "many"}, (None, "")),
])
def test_thread_hint(option, environ, expected):
    assert thread_hint(option, environ) == expected


@pytest.mark.parametrize(("url", "password", "tls"), [
    ("redis://127.0.0.1:6390/0", "pass", "pass"),
    ("unix:///tmp/redis.sock", "pass", "pass"),
    ("redis://10.0.0.5:6379/0", "fail", "warn"),
    ("redis://:pw@redis:6379/0", "pass", "warn"),  # docker-compose service name: private
    ("redis://:pw@cache.example.com:6379/0", "pass", "fail"),
    ("rediss://:pw@cache.example.com:6379/0", "pass", "pass"),
    ("rediss://cache.example.com:6379/0", "fail", "pass"),
])
def test_security_findings_from_the_url(make_app, url, password, tls):
    # Building the app does not connect; the security checks read the URL only.
    app = make_app(REDIS_URL=url)
    found = {f.check: f for f in doctor_config.security_findings(state_of(app), ["cache", "session"])}
    assert found["password"].status == password
    assert found["tls"].status == tls
    assert "pw" not in found["password"].message + found["tls"].message


def test_tls_without_verification_is_a_warning(make_app):
    app = make_app(REDIS_URL="rediss://:pw@cache.example.com/0", REDIS_SSL_CERT_REQS="none")
    found = {f.check: f for f in doctor_config.security_findings(state_of(app), ["cache"])}
    assert found["tls"].status == "warn" and "REDIS_SSL_CERT_REQS" in found["tls"].message


def test_memory_findings_for_session_only_server():
    [finding] = doctor._memory_findings(["session"], 10**8, "allkeys-lru")
    assert finding.status == "warn" and "logged out" in finding.message
    [finding] = doctor._memory_findings(["session"], 10**8, "noeviction")
    assert finding.status == "pass"
    statuses = [f.status for f in doctor._memory_findings(["cache"], 10**8, "volatile-lru")]
    assert statuses == ["pass", "warn"]


def test_long_timeouts_warn(make_app):
    app = make_app(REDIS_URL="memory://timeouts", REDIS_READ_TIMEOUT=30)
    settings = state_of(app).settings
    found = doctor_config.timeouts_finding(settings.connect_timeout, settings.read_timeout)
    assert found.status == "warn" and "REDIS_READ_TIMEOUT=30s" in found.message

"""Issue 12.14: no CLI output, JSON, endpoint body or log line ever shows the password.

The password is given the ways platforms hand it out: as a ``?password=``
query value, as URL userinfo, and as ``REDIS_PASSWORD``. Every command runs
against the live server, then against the dead one (errors are where drivers
like to echo their connection details).
"""

from __future__ import annotations

import logging
from dataclasses import fields

import pytest
from flask import Flask

from flask_rediscache import health
from flask_rediscache.config import Settings

SECRET = "Sup3rSecretPw"

COMMANDS = (["health"], ["health", "--json"], ["stats"], ["stats", "--json"], ["keys"],
            ["keys", "--json"], ["doctor"], ["doctor", "--json"], ["clear"], ["clear", "--yes"],
            ["clear", "--yes", "--json"])


def run(app: Flask, *args: str, input: str | None = None):
    return app.test_cli_runner().invoke(args=["redis", *args], input=input)


def _has_password_setting() -> bool:
    return "password" in {f.name for f in fields(Settings)}


@pytest.mark.parametrize("form", ["query", "userinfo", "setting"])
def test_password_never_appears_in_any_output(redis_factory, make_app, caplog, monkeypatch, form):
    if form == "setting" and not _has_password_setting():
        pytest.skip("REDIS_PASSWORD is not supported by this build yet")
    monkeypatch.setattr(health, "MAX_AGE", 0)
    server = redis_factory(password=SECRET)
    config = {
        "query": {"REDIS_URL": f"redis://127.0.0.1:{server.port}/0?password={SECRET}"},
        "userinfo": {"REDIS_URL": f"redis://default:{SECRET}@127.0.0.1:{server.port}/0"},
        "setting": {"REDIS_URL": f"redis://127.0.0.1:{server.port}/0", "REDIS_PASSWORD": SECRET},
    }[form]
    app = make_app(REDIS_HEALTH_ENDPOINT="/health/redis", **config)
    with app.app_context():
        assert app.extensions["rediscache"].set("k", "v")
    outputs = []
    with caplog.at_level(logging.DEBUG, logger="flask_rediscache"):
        for args in COMMANDS:
            result = run(app, *args, input="n\n")
            assert "Traceback" not in result.output, result.output
            outputs.append(result.output)
        assert run(app, "health").exit_code == 0
        outputs.append(app.test_client().get("/health/redis").get_data(as_text=True))

        server.kill()
        for args in COMMANDS:
            result = run(app, *args, input="y\n")
            assert "Traceback" not in result.output, result.output
            assert result.exit_code == 1, (args, result.output)
            outputs.append(result.output)
        response = app.test_client().get("/health/redis")
        assert response.status_code == 503
        outputs.append(response.get_data(as_text=True))
        with app.app_context():
            assert app.extensions["rediscache"].get("k") is None  # fails open, logs a line
    assert any("***" in text for text in outputs)  # the address is shown, masked
    logged = [record.getMessage() for record in caplog.records]
    assert any("health check failed" in line for line in logged)
    leaks = [text for text in outputs + logged if SECRET in text]
    assert not leaks, leaks[0]

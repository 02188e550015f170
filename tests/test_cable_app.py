"""A minimal app for the broadcast tests that run under gunicorn (no tests here).

``gunicorn --chdir tests test_cable_app:app``; configured by the environment:
``REDIS_URL``, ``CABLE_HEARTBEAT`` and ``CABLE_MAX_SECONDS`` (stream
defaults) and any numeric ``REDIS_*`` key.
"""

from __future__ import annotations

import json
import os
from typing import Any

from flask import Flask, jsonify, request

from flask_rediscache import RedisCache


def create_app() -> Flask:
    app = Flask("cable-test-app")
    app.config.update(SECRET_KEY="cable-test", REDIS_URL=os.environ.get("REDIS_URL", "memory://"))
    for key, value in os.environ.items():
        if key.startswith("REDIS_") and key != "REDIS_URL":
            app.config[key] = json.loads(value) if value[:1].isdigit() else value
    cache = RedisCache(app)
    heartbeat = float(os.environ.get("CABLE_HEARTBEAT", "15"))
    max_seconds = float(os.environ.get("CABLE_MAX_SECONDS", "120"))

    @app.get("/pid")
    def pid() -> Any:
        return jsonify(pid=os.getpid())

    @app.get("/stream/<channel>")
    def stream(channel: str) -> Any:
        response = cache.stream(channel, heartbeat=heartbeat, max_seconds=max_seconds)
        response.headers["X-Pid"] = str(os.getpid())
        return response

    @app.post("/broadcast/<channel>")
    def broadcast(channel: str) -> Any:
        message_id = cache.broadcast(channel, request.get_json(force=True))
        return jsonify(id=message_id, pid=os.getpid())  # id None: Redis failed, the page still works

    @app.get("/cable")
    def cable() -> Any:
        """What this worker's reader watches, and its thread count."""
        import threading

        reader = cache.state().extras["cable"].reader
        return jsonify(pid=os.getpid(), watched=reader.watched(), running=reader.running,
                       threads=threading.active_count())

    return app


def __getattr__(name: str) -> Any:
    # gunicorn's "test_cable_app:app": built on demand, so pytest collecting this file builds nothing.
    if name == "app":
        return create_app()
    raise AttributeError(name)

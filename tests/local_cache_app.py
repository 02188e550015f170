"""The app of tests/test_local_cache_gunicorn.py (no tests here).

``gunicorn --chdir <repo> 'tests.local_cache_app:create_app()'``; configured by
the environment: ``REDIS_URL``, and ``PRELOAD_READ=1`` to read the cache (and
wait for the near-cache's tracking) while the app is built, i.e. in gunicorn's
master under ``--preload``, before the workers are forked.

``GET /setting/<name>`` serves a memoized "database" lookup (the database is a
raw Redis key ``db:<name>``, outside the cache's namespace) and a plain
``cache.get("flag")``, with the worker's pid and near-cache counters.
"""

from __future__ import annotations

import os
from typing import Any

import redis
from flask import Flask, current_app, jsonify

from flask_rediscache import RedisCache
from flask_rediscache.state import get_state

SECRET_KEY = "local-cache-gunicorn"
DB = "local_cache_app.db"

cache = RedisCache()


@cache.memoize(timeout=300, name="local_cache_app.load_setting")
def load_setting(name: str) -> dict[str, Any]:
    raw = current_app.extensions[DB].get(f"db:{name}")
    return {"name": name, "value": int(raw or 0)}


def create_app(url: str | None = None, local_cache: str | bool = "process") -> Flask:
    url = url or os.environ["REDIS_URL"]
    app = Flask("local-cache-app")
    app.config.update(SECRET_KEY=SECRET_KEY, REDIS_URL=url, REDIS_LOCAL_CACHE=local_cache)
    cache.init_app(app)
    app.extensions[DB] = redis.Redis.from_url(url)

    @app.get("/pid")
    def pid() -> Any:
        return jsonify(pid=os.getpid())

    @app.get("/setting/<name>")
    def setting(name: str) -> Any:
        value = load_setting(name)
        flag = cache.get("flag")
        stats = cache.local_cache_stats() or {}
        return jsonify(pid=os.getpid(), setting=value, flag=flag, hits=stats.get("hits"),
                       tracking=stats.get("tracking"))

    if os.environ.get("PRELOAD_READ") == "1":
        with app.app_context():
            cache.get("preload")
            problem = get_state(app).store.local_problem(10)
            assert problem is None, problem
    return app

"""Shared fixtures: real redis-server processes and apps wired to them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from flask_rediscache import RedisCache
from flask_rediscache.state import get_state

from .servers import RedisServer


@pytest.fixture(scope="session")
def shared_redis() -> Iterator[RedisServer]:
    """One server for the whole run, for tests that neither pause nor kill it."""
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def redis_server(shared_redis: RedisServer) -> RedisServer:
    """The shared server, emptied and with fresh command statistics."""
    shared_redis.client().flushall()
    shared_redis.reset_stats()
    return shared_redis


@pytest.fixture
def redis_factory() -> Iterator[Callable[..., RedisServer]]:
    """Start private servers (for fault tests); all are stopped afterwards."""
    started: list[RedisServer] = []

    def start(*args: str, **kwargs: Any) -> RedisServer:
        server = RedisServer(args, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def make_app() -> Iterator[Callable[..., Flask]]:
    """Build an app with ``REDIS_*`` config and a RedisCache initialised on it;
    every app's pools are closed afterwards."""
    apps: list[Flask] = []

    def make(**config: Any) -> Flask:
        app = Flask("rediscache-test")
        app.config.update(SECRET_KEY="test-secret", TESTING=True)
        app.config.update(config)
        RedisCache(app)
        apps.append(app)
        return app

    yield make
    for app in apps:
        get_state(app).close()


@pytest.fixture
def two_apps(redis_server: RedisServer) -> Iterator[tuple[RedisCache, list[Flask]]]:
    """One RedisCache object initialised on two apps (namespaces "one" and "two")."""
    cache = RedisCache()
    apps = []
    for namespace in ("one", "two"):
        app = Flask(namespace)
        app.config.update(SECRET_KEY="s", REDIS_URL=redis_server.url, REDIS_NAMESPACE=namespace)
        cache.init_app(app)
        apps.append(app)
    yield cache, apps
    for app in apps:
        get_state(app).close()


@pytest.fixture
def app(make_app: Callable[..., Flask], redis_server: RedisServer) -> Flask:
    """An app on the shared real server."""
    return make_app(REDIS_URL=redis_server.url)


@pytest.fixture
def cache(app: Flask) -> Iterator[RedisCache]:
    """The app's RedisCache, inside an app context."""
    with app.app_context():
        yield app.extensions["rediscache"]

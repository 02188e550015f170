"""The extension object: init_app, memory://, several apps on one object."""

from __future__ import annotations

import pytest
import redis
from flask import Flask

from flask_rediscache import ConfigError, RedisCache
from flask_rediscache.clients import memory_server
from flask_rediscache.state import get_state


def test_registered_in_extensions(make_app):
    app = make_app(REDIS_URL="memory://ext-test")
    assert isinstance(app.extensions["rediscache"], RedisCache)


def test_memory_url_needs_no_server():
    app = Flask(__name__)
    app.config.update(SECRET_KEY="s", REDIS_URL="memory://no-server")
    cache = RedisCache(app)
    with app.app_context():
        assert cache.set("k", {"a": [1, 2]})
        assert cache.get("k") == {"a": [1, 2]}
        assert cache.delete("k") is True
        assert cache.get("k") is None
    # Purposes and apps on the same memory:// URL share one in-process server.
    state = get_state(app)
    assert state.targets["cache"] is state.targets["session"]
    assert memory_server("memory://no-server") is memory_server("memory://no-server")


def test_unset_url_in_testing_uses_memory():
    app = Flask(__name__)
    app.config.update(SECRET_KEY="s", TESTING=True)
    cache = RedisCache(app)
    with app.app_context():
        assert cache.set("k", 1) and cache.get("k") == 1


def test_one_object_serves_several_apps(redis_server, two_apps):
    cache, apps = two_apps
    with apps[0].app_context():
        cache.set("k", "first")
    with apps[1].app_context():
        assert cache.get("k") is None
        cache.set("k", "second")
    with apps[0].app_context():
        assert cache.get("k") == "first"
    keys = sorted(redis_server.client().keys("*"))
    assert keys == [b"one:k", b"two:k"]


def test_app_passed_to_constructor_works_outside_context(redis_server):
    app = Flask(__name__)
    app.config.update(SECRET_KEY="s", REDIS_URL=redis_server.url)
    cache = RedisCache(app)
    assert cache.set("k", 5)
    assert cache.get("k") == 5


def test_separate_urls_get_separate_pools(redis_factory, make_app):
    a, b = redis_factory(), redis_factory()
    app = make_app(REDIS_CACHE_URL=a.url, REDIS_SESSION_URL=b.url)
    state = get_state(app)
    assert state.targets["cache"].client is not state.targets["session"].client
    with app.app_context():
        app.extensions["rediscache"].set("k", 1)
    assert a.client().exists("cache:k") and not b.client().exists("cache:k")


@pytest.mark.parametrize(("key", "config"), [
    ("REDIS_SENTINELS", {"REDIS_SENTINELS": ["127.0.0.1:1"], "REDIS_SENTINEL_MASTER": "m"}),
    ("REDIS_CLUSTER", {"REDIS_CLUSTER": ["redis://127.0.0.1:1"]}),
])
def test_topology_on_too_old_redis_py_is_a_clear_error(make_app, monkeypatch, key, config):
    monkeypatch.setattr(redis, "__version__", "5.0.8")
    with pytest.raises(ConfigError, match=rf"{key} needs redis-py >= 7\.\d \(installed: 5\.0\.8\)"):
        make_app(**config)


def test_standalone_needs_no_recent_redis_py(make_app, monkeypatch):
    monkeypatch.setattr(redis, "__version__", "5.0.8")
    app = make_app(REDIS_URL="memory://old-redis-py")
    with app.app_context():
        assert app.extensions["rediscache"].set("k", 1)

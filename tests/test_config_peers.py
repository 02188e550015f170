"""Flask-Caching's ``CACHE_*`` and Flask-Session's ``SESSION_*`` keys (issue 13, items 16-18).

An app migrating from either library keeps its configuration: each key is
honoured when no ``REDIS_*`` equivalent is set, one info line names the
``REDIS_*`` keys to move to, and one warning names the keys that mean nothing
here. ``REDIS_CACHE_ENABLED = False`` (or ``CACHE_TYPE = "NullCache"``) is a
disabled cache that never connects.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from flask import Flask, session

from flask_rediscache import ConfigError, RedisCache
from flask_rediscache.config import DEFAULTS
from flask_rediscache.config_loader import load_settings
from flask_rediscache.config_peers import peer_keys
from flask_rediscache.state import get_state

from .servers import RedisServer

LOGGER = "flask_rediscache"


def settings(**config: Any) -> Any:
    return load_settings({"SECRET_KEY": "s", **config}, debug=False)


#: The one warning every app configured for the peers gets (see the last test).
DIFFERENCES = "differs from what this app was configured for"


def lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    """Log lines at ``level``, without the documented-differences warning."""
    return [r.getMessage() for r in caplog.records
            if r.name == LOGGER and r.levelno == level and DIFFERENCES not in r.getMessage()]


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger=LOGGER)
    return caplog


class Listener:
    """A TCP port that counts the connections made to it (and closes them)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.accepted = 0
        self.url = f"redis://127.0.0.1:{self.sock.getsockname()[1]}/0"
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    found = Listener()
    yield found
    found.close()


# -- Flask-Caching's keys -------------------------------------------------------

@pytest.mark.parametrize(("config", "attribute", "expected"), [
    ({"CACHE_REDIS_URL": "redis://cachehost:6380/2"}, "cache_url", "redis://cachehost:6380/2"),
    ({"CACHE_REDIS_URL": "redis://cachehost:6380", "CACHE_REDIS_DB": 4}, "cache_url",
     "redis://cachehost:6380/4"),
    ({"CACHE_REDIS_URL": "redis://cachehost:6380/1", "CACHE_REDIS_DB": 4}, "cache_url",
     "redis://cachehost:6380/1"),
    ({"CACHE_REDIS_HOST": "h", "CACHE_REDIS_PORT": 7000, "CACHE_REDIS_DB": 3}, "cache_url",
     "redis://h:7000/3"),
    ({"CACHE_REDIS_HOST": "h"}, "session_url", "redis://h:6379/0"),
    ({"CACHE_REDIS_URL": "redis://h/0", "CACHE_REDIS_PASSWORD": "pw"}, "password", "pw"),
    ({"CACHE_REDIS_URL": "redis://h/0", "CACHE_DEFAULT_TIMEOUT": 60}, "default_timeout", 60),
    ({"CACHE_REDIS_URL": "redis://h/0", "CACHE_DEFAULT_TIMEOUT": timedelta(minutes=2)},
     "default_timeout", 120),
    ({"CACHE_REDIS_URL": "redis://h/0", "CACHE_DEFAULT_TIMEOUT": 60, "CACHE_OPTIONS": {"default_timeout": 9}},
     "default_timeout", 9),
    ({"CACHE_REDIS_URL": "redis://h/0", "CACHE_KEY_PREFIX": "myapp_"}, "namespace", "myapp_"),
    ({"CACHE_REDIS_URL": "redis://h/0", "CACHE_KEY_PREFIX": "myapp:"}, "namespace", "myapp"),
    ({"CACHE_REDIS_URL": "redis://h/0", "CACHE_OPTIONS": {"health_check_interval": 30}},
     "connection_options", {"health_check_interval": 30}),
    ({"CACHE_REDIS_URL": "redis://h/0", "CACHE_OPTIONS": {"socket_timeout": 0.5}}, "read_timeout", 0.5),
    ({"CACHE_REDIS_URL": "redis://h/0", "CACHE_OPTIONS": {"max_connections": 9}}, "pool_size", 9),
    ({"CACHE_REDIS_URL": "redis://h/0", "CACHE_ENABLE_SIGNALS": True}, "enable_signals", True),
    ({"CACHE_REDIS_URL": "redis://h/0", "CACHE_SOURCE_CHECK": True}, "source_check", True),
    ({"CACHE_REDIS_URL": "redis://h/0", "CACHE_TYPE": "NullCache"}, "cache_enabled", False),
    ({"CACHE_REDIS_URL": "redis://h/0", "CACHE_TYPE": "null"}, "cache_enabled", False),
    ({"CACHE_REDIS_URL": "redis://h/0", "CACHE_TYPE": "flask_caching.backends.nullcache.NullCache"},
     "cache_enabled", False),
    ({"CACHE_REDIS_URL": "redis://h/0", "CACHE_TYPE": "RedisCache"}, "cache_enabled", True),
    ({"CACHE_TYPE": "RedisSentinelCache", "CACHE_REDIS_SENTINELS": [("s1", 26379), ("s2", 26380)],
      "CACHE_REDIS_SENTINEL_MASTER": "primary"}, "sentinels", (("s1", 26379), ("s2", 26380))),
    ({"CACHE_TYPE": "RedisSentinelCache", "CACHE_REDIS_SENTINELS": [("s1", 26379)],
      "CACHE_REDIS_SENTINEL_MASTER": "primary"}, "sentinel_master", "primary"),
    ({"CACHE_TYPE": "RedisSentinelCache"}, "sentinels", (("127.0.0.1", 26379),)),  # Flask-Caching's default
    ({"CACHE_TYPE": "RedisSentinelCache"}, "sentinel_master", "mymaster"),
    ({"CACHE_TYPE": "RedisSentinelCache", "CACHE_REDIS_SENTINEL_PASSWORD": "spw"},
     "sentinel_password", "spw"),
])
def test_flask_caching_keys_are_honoured(config: dict[str, Any], attribute: str, expected: Any) -> None:
    found = getattr(settings(**config), attribute)
    assert (dict(found) if attribute == "connection_options" else found) == expected


def test_cluster_seeds_come_from_cache_redis_cluster_or_the_url() -> None:
    seeds = peer_keys({"CACHE_TYPE": "RedisClusterCache", "CACHE_REDIS_CLUSTER": "n1:7000, n2:7001"})
    assert seeds.overlay == {"REDIS_CLUSTER": ["redis://n1:7000", "redis://n2:7001"]}
    # Flask-Caching's RedisClusterCache prefers CACHE_REDIS_URL when both are set.
    url = peer_keys({"CACHE_TYPE": "RedisClusterCache", "CACHE_REDIS_CLUSTER": "n1:7000",
                     "CACHE_REDIS_URL": "redis://n3:7002"})
    assert url.overlay == {"REDIS_CLUSTER": ["redis://n3:7002"]}


def test_redis_keys_win_and_the_shadowed_keys_are_named(logs: pytest.LogCaptureFixture) -> None:
    found = settings(REDIS_URL="redis://mine/0", REDIS_NAMESPACE="mine", REDIS_DEFAULT_TIMEOUT=5,
                     CACHE_REDIS_URL="redis://theirs/0", CACHE_KEY_PREFIX="theirs_", CACHE_DEFAULT_TIMEOUT=60)
    # CACHE_REDIS_URL is the cache's own URL: with REDIS_URL set it becomes REDIS_CACHE_URL.
    assert (found.cache_url, found.session_url) == ("redis://theirs/0", "redis://mine/0")
    assert (found.namespace, found.default_timeout) == ("mine", 5)
    [warning] = lines(logs, logging.WARNING)
    assert "CACHE_KEY_PREFIX (REDIS_NAMESPACE is set)" in warning
    assert "CACHE_DEFAULT_TIMEOUT (REDIS_DEFAULT_TIMEOUT is set)" in warning
    both = settings(REDIS_URL="redis://mine/0", REDIS_CACHE_URL="redis://mine/1", CACHE_REDIS_URL="redis://x/0")
    assert both.cache_url == "redis://mine/1"


def test_one_line_names_every_key_to_move_to_and_one_warning_the_meaningless(
        logs: pytest.LogCaptureFixture) -> None:
    settings(CACHE_TYPE="RedisCache", CACHE_REDIS_URL="redis://h:6379/0", CACHE_DEFAULT_TIMEOUT=60,
             CACHE_KEY_PREFIX="myapp_", CACHE_OPTIONS={"health_check_interval": 5, "decode_responses": False},
             CACHE_ENABLE_SIGNALS=True, CACHE_THRESHOLD=500, CACHE_IGNORE_ERRORS=True, CACHE_DIR="/tmp/x",
             SESSION_TYPE="redis", SESSION_KEY_PREFIX="session:", SESSION_USE_SIGNER=True,
             SESSION_CLEANUP_N_REQUESTS=100, SESSION_SERIALIZATION_FORMAT="json",
             SESSION_COOKIE_NAME="sid", SESSION_REFRESH_EACH_REQUEST=True)
    [info] = lines(logs, logging.INFO)
    for move in ("CACHE_REDIS_URL -> REDIS_URL", "CACHE_DEFAULT_TIMEOUT -> REDIS_DEFAULT_TIMEOUT",
                 "CACHE_KEY_PREFIX -> REDIS_NAMESPACE", "CACHE_ENABLE_SIGNALS -> REDIS_ENABLE_SIGNALS",
                 "CACHE_OPTIONS['health_check_interval'] -> REDIS_CONNECTION_OPTIONS",
                 "SESSION_KEY_PREFIX -> REDIS_SESSION_PREFIX"):
        assert move in info
    for dropped in ("CACHE_TYPE", "SESSION_TYPE", "SESSION_USE_SIGNER"):
        assert dropped in info.partition("remove")[2]
    [warning] = lines(logs, logging.WARNING)
    for ignored in ("CACHE_THRESHOLD", "CACHE_IGNORE_ERRORS", "CACHE_DIR",
                    "CACHE_OPTIONS['decode_responses']", "SESSION_CLEANUP_N_REQUESTS",
                    "SESSION_SERIALIZATION_FORMAT"):
        assert ignored in warning
    for flask_own in ("SESSION_COOKIE_NAME", "SESSION_REFRESH_EACH_REQUEST"):
        assert flask_own not in warning + info


def test_no_line_without_other_libraries_keys(logs: pytest.LogCaptureFixture) -> None:
    settings(REDIS_URL="redis://h/0", SESSION_COOKIE_NAME="sid", CACHE_SOURCE_CHECK=True,
             SESSION_PERMANENT=False)
    assert lines(logs, logging.INFO) == [] and lines(logs, logging.WARNING) == []


@pytest.mark.parametrize(("key", "value"), [
    ("CACHE_TYPE", "SimpleCache"), ("CACHE_TYPE", "FileSystemCache"), ("CACHE_TYPE", "memcached"),
    ("SESSION_TYPE", "filesystem"), ("SESSION_TYPE", "sqlalchemy"),
])
def test_other_backends_are_named_as_ignored(logs: pytest.LogCaptureFixture, key: str, value: str) -> None:
    found = settings(REDIS_URL="redis://h/0", **{key: value})
    [warning] = lines(logs, logging.WARNING)
    assert f"{key}={value!r}" in warning and "Redis here" in warning
    assert found.cache_enabled


def test_session_keys_are_not_named_when_sessions_are_left_to_flask_session(
        logs: pytest.LogCaptureFixture) -> None:
    settings(REDIS_URL="redis://h/0", REDIS_SESSION=False, SESSION_TYPE="filesystem", SESSION_USE_SIGNER=True)
    assert lines(logs, logging.INFO) == [] and lines(logs, logging.WARNING) == []


def test_a_bad_mapped_value_names_the_key_the_app_set() -> None:
    with pytest.raises(ConfigError, match=r"CACHE_DEFAULT_TIMEOUT='soon' \(read as REDIS_DEFAULT_TIMEOUT\)"):
        settings(REDIS_URL="redis://h/0", CACHE_DEFAULT_TIMEOUT="soon")
    with pytest.raises(ConfigError, match="CACHE_REDIS_URL"):
        settings(CACHE_REDIS_URL="http://h/0")


def test_a_mapped_password_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ConfigError) as info:
        settings(CACHE_REDIS_URL="redis://h/0", CACHE_REDIS_PASSWORD="hunter2-secret", REDIS_POOL_SIZE=0)
    assert "hunter2-secret" not in str(info.value)


def test_debug_app_with_only_cache_redis_url_uses_it(
        make_app: Callable[..., Flask], redis_server: RedisServer, logs: pytest.LogCaptureFixture) -> None:
    app = make_app(CACHE_TYPE="RedisCache", CACHE_REDIS_URL=redis_server.url, CACHE_KEY_PREFIX="myapp_")
    assert app.debug or app.testing
    assert not any("memory://" in line for line in lines(logs, logging.WARNING))
    cache = app.extensions["rediscache"]
    with app.app_context():
        assert cache.set("k", 1)
        assert cache.get("k") == 1
    # CACHE_KEY_PREFIX "myapp_" is the namespace: the key is "myapp_:k", inside Flask-Caching's "myapp_*".
    assert redis_server.client().keys("*") == [b"myapp_:k"]
    assert get_state(app).settings.cache_url == redis_server.url
    assert "REDIS_URL" not in app.config and "REDIS_NAMESPACE" not in app.config  # nothing written


def test_cache_key_prefix_with_a_colon_keeps_one_separator(
        make_app: Callable[..., Flask], redis_server: RedisServer) -> None:
    app = make_app(CACHE_REDIS_URL=redis_server.url, CACHE_KEY_PREFIX="myapp:")
    with app.app_context():
        app.extensions["rediscache"].set("k", 1)
    assert redis_server.client().keys("*") == [b"myapp:k"]


# -- a disabled cache ------------------------------------------------------------

def _exercise_disabled(cache: RedisCache) -> list[int]:
    calls: list[int] = []

    @cache.memoize(timeout=60)
    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    assert cache.get("k") is None
    assert cache.set("k", 1) is True          # Flask-Caching's NullCache: set and add return True
    assert cache.get("k") is None
    assert cache.add("k", 1) is True
    assert cache.has("k") is False
    assert cache.delete("k") is True
    assert cache.get_many("a", "b") == [None, None]
    assert cache.set_many({"a": 1, "b": 2}) == ["a", "b"]
    assert cache.inc("n") == 1 and cache.inc("n") == 1
    assert cache.ttl("k") == 0
    assert cache.fetch("f", lambda: 5) == 5
    assert cache.clear() == 0
    assert double(2) == 4 and double(2) == 4
    return calls


def test_disabled_cache_never_connects(make_app: Callable[..., Flask], redis_server: RedisServer,
                                       listener: Listener, logs: pytest.LogCaptureFixture) -> None:
    app = make_app(REDIS_CACHE_ENABLED=False, REDIS_CACHE_URL=listener.url,
                   REDIS_SESSION_URL=redis_server.url)
    cache: RedisCache = app.extensions["rediscache"]

    @app.get("/")
    @cache.cached(timeout=60)
    def index() -> str:
        rendered.append(1)
        session["seen"] = session.get("seen", 0) + 1
        return str(session["seen"])

    rendered: list[int] = []
    with app.app_context():
        assert _exercise_disabled(cache) == [2, 2]
    client = app.test_client()
    assert [client.get("/").text for _ in range(3)] == ["1", "2", "3"]  # sessions still work
    assert len(rendered) == 3
    assert listener.accepted == 0
    assert lines(logs, logging.WARNING) == []  # REDIS_CACHE_ENABLED=False says so without a warning


def test_null_cache_type_disables_the_cache_and_warns_as_flask_caching(
        make_app: Callable[..., Flask], listener: Listener, logs: pytest.LogCaptureFixture) -> None:
    app = make_app(CACHE_TYPE="NullCache", CACHE_REDIS_URL=listener.url, REDIS_SESSION=False)
    with app.app_context():
        assert _exercise_disabled(app.extensions["rediscache"]) == [2, 2]
    assert listener.accepted == 0
    assert any("NullCache" in line for line in lines(logs, logging.WARNING))
    assert "CACHE_TYPE='NullCache' -> REDIS_CACHE_ENABLED=False" in lines(logs, logging.INFO)[0]


def test_cache_no_null_warning_silences_it(make_app: Callable[..., Flask],
                                           logs: pytest.LogCaptureFixture) -> None:
    make_app(CACHE_TYPE="NullCache", CACHE_NO_NULL_WARNING=True, REDIS_URL="memory://peers")
    assert lines(logs, logging.WARNING) == []


def test_enabled_cache_is_untouched_by_the_switch(make_app: Callable[..., Flask],
                                                  redis_server: RedisServer) -> None:
    app = make_app(REDIS_URL=redis_server.url, REDIS_CACHE_ENABLED=True)
    with app.app_context():
        cache = app.extensions["rediscache"]
        assert cache.set("k", 1) and cache.get("k") == 1
    assert type(get_state(app).store).__name__ == "Store"


def test_new_flags_have_defaults_and_are_validated() -> None:
    assert DEFAULTS["REDIS_CACHE_ENABLED"] is True and DEFAULTS["REDIS_ENABLE_SIGNALS"] is False
    plain = settings(REDIS_URL="redis://h/0")
    assert (plain.cache_enabled, plain.enable_signals, plain.source_check) == (True, False, False)
    with pytest.raises(ConfigError, match="REDIS_CACHE_ENABLED='no' is invalid: expected True or False"):
        settings(REDIS_URL="redis://h/0", REDIS_CACHE_ENABLED="no")
    with pytest.raises(ConfigError, match="CACHE_SOURCE_CHECK"):
        settings(REDIS_URL="redis://h/0", CACHE_SOURCE_CHECK="yes")


def test_enable_signals_reaches_the_decorators(make_app: Callable[..., Flask]) -> None:
    for config, expected in (({}, False), ({"CACHE_ENABLE_SIGNALS": True}, True),
                             ({"REDIS_ENABLE_SIGNALS": True}, True), ({"CACHE_SOURCE_CHECK": True}, False)):
        app = make_app(REDIS_URL="memory://signals", **config)
        with app.app_context():
            assert app.extensions["rediscache"].decorator_defaults().enable_signals is expected


# -- Flask-Session's keys -----------------------------------------------------------

def test_session_key_prefix_drops_its_trailing_colon() -> None:
    assert settings(REDIS_URL="redis://h/0", SESSION_KEY_PREFIX="session:").session_prefix == "session"
    assert settings(REDIS_URL="redis://h/0", SESSION_KEY_PREFIX="app_sess_").session_prefix == "app_sess_"


def test_session_permanent_and_id_length() -> None:
    assert settings(REDIS_URL="redis://h/0").session_permanent is None  # Flask's default: not permanent
    # A Flask-Session app (SESSION_TYPE set) gets Flask-Session's default, permanent sessions.
    assert settings(REDIS_URL="redis://h/0", SESSION_TYPE="redis").session_permanent is True
    explicit = settings(REDIS_URL="redis://h/0", SESSION_PERMANENT=False, SESSION_TYPE="redis")
    assert explicit.session_permanent is False
    assert settings(REDIS_URL="redis://h/0").session_id_bytes == 32
    assert settings(REDIS_URL="redis://h/0", SESSION_ID_LENGTH=64).session_id_bytes == 64
    for bad in (8, 129, "32", True):
        with pytest.raises(ConfigError, match="SESSION_ID_LENGTH"):
            settings(REDIS_URL="redis://h/0", SESSION_ID_LENGTH=bad)


def test_session_redis_must_be_a_bytes_client() -> None:
    with pytest.raises(ConfigError, match=r"SESSION_REDIS=.*expected a redis\.Redis client"):
        settings(REDIS_URL="redis://h/0", SESSION_REDIS="redis://h/0")
    with pytest.raises(ConfigError, match="decode_responses=True"):
        settings(REDIS_URL="redis://h/0", SESSION_REDIS=redis.Redis(decode_responses=True))


def test_session_redis_alone_serves_sessions_and_points_the_cache_at_its_server(
        make_app: Callable[..., Flask], redis_server: RedisServer, logs: pytest.LogCaptureFixture) -> None:
    client = redis.from_url(redis_server.url)
    app = Flask("peers")
    app.config.update(SECRET_KEY="s", SESSION_TYPE="redis", SESSION_REDIS=client)  # production: no TESTING
    RedisCache(app)
    try:
        state = get_state(app)
        assert state.targets["session"].client is client
        assert state.settings.cache_url == redis_server.url
        [info] = lines(logs, logging.INFO)
        assert "SESSION_REDIS -> REDIS_SESSION_URL" in info and "SESSION_TYPE" in info

        @app.post("/login")
        def login() -> str:
            session["user"] = "ada"
            return "ok"

        web = app.test_client()
        web.post("/login")
        [key] = redis_server.client().keys("session:*")
        assert redis_server.client().hgetall(key) == {b"user": b'"ada"', b"_permanent": b"true"}
        cookie = web.get_cookie("session")
        assert cookie is not None and cookie.expires is not None  # SESSION_PERMANENT's default
    finally:
        get_state(app).close()


def test_session_redis_is_ignored_when_redis_session_url_is_set(
        redis_server: RedisServer, logs: pytest.LogCaptureFixture) -> None:
    found = settings(REDIS_URL="redis://h/0", REDIS_SESSION_URL="redis://s/0",
                     SESSION_REDIS=redis.from_url(redis_server.url))
    assert found.session_client is None and found.session_url == "redis://s/0"
    assert "SESSION_REDIS (REDIS_SESSION_URL is set)" in lines(logs, logging.WARNING)[0]


def test_session_id_length_sets_the_length_of_new_ids(
        make_app: Callable[..., Flask], redis_server: RedisServer) -> None:
    app = make_app(REDIS_URL=redis_server.url, SESSION_ID_LENGTH=16)
    seen: list[str] = []

    @app.post("/login")
    def login() -> str:
        seen.append(session.sid)  # type: ignore[attr-defined]
        session["user"] = "ada"
        return "ok"

    @app.get("/me")
    def me() -> str:
        seen.append(session.sid)  # type: ignore[attr-defined]
        return str(session.get("user"))

    client = app.test_client()
    client.post("/login")
    assert client.get("/me").text == "ada"
    assert len(seen[0]) == 22 and seen[0] == seen[1]


def test_a_disabled_cache_on_its_own_cluster_url_builds_no_client(make_app, redis_server):
    """REDIS_CACHE_ENABLED = False with REDIS_CACHE_URL of its own: no client,
    nothing connects (a RedisCluster would connect in its constructor), and
    health checks only the sessions."""
    from flask_rediscache.checks import check_all
    from flask_rediscache.state import get_state

    from .servers import free_port

    app = make_app(REDIS_URL=redis_server.url, REDIS_CACHE_URL=f"redis://127.0.0.1:{free_port()}/0",
                   REDIS_CACHE_ENABLED=False)
    state = get_state(app)
    assert state.targets["cache"].client is None and state.targets["cache"].kind == "disabled"
    with app.app_context():
        assert app.extensions["rediscache"].get("k") is None
    checks = check_all(state)
    assert [c.purposes for c in checks] == [["session"]] and checks[0].ok


def test_cli_on_a_disabled_cache_says_so_in_one_line(make_app, redis_server):
    from .servers import free_port

    app = make_app(REDIS_URL=redis_server.url, REDIS_CACHE_URL=f"redis://127.0.0.1:{free_port()}/0",
                   REDIS_CACHE_ENABLED=False)
    runner = app.test_cli_runner()
    for args in (["redis", "keys"], ["redis", "clear", "--yes"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 1
        assert "the cache is disabled" in result.output and "Traceback" not in result.output
    assert runner.invoke(args=["redis", "health"]).exit_code == 0  # sessions only


def test_apps_coming_from_the_peers_are_warned_of_the_documented_differences(caplog):
    import logging

    from flask import Flask

    from flask_rediscache import RedisCache

    app = Flask("migrating")
    app.config.update(SECRET_KEY="s", DEBUG=True, CACHE_TYPE="RedisCache", SESSION_TYPE="redis",
                      CACHE_REDIS_URL="memory://migrating")
    with caplog.at_level(logging.INFO, logger="flask_rediscache"):
        RedisCache(app)
    found = [r.getMessage() for r in caplog.records if DIFFERENCES in r.getMessage()]
    assert len(found) == 1
    assert "cache_none=False" in found[0] and "logs in once more" in found[0]
    caplog.clear()
    plain = Flask("fresh")
    plain.config.update(SECRET_KEY="s", REDIS_URL="memory://fresh")
    with caplog.at_level(logging.INFO, logger="flask_rediscache"):
        RedisCache(plain)
    assert not [r for r in caplog.records if DIFFERENCES in r.getMessage()]

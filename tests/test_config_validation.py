"""Config validation added for issues 11, 12.5, 12.17-12.20 and 14.2/14.6: every
bad value is a ConfigError that names the key and says what is accepted."""

from __future__ import annotations

import logging
import math

import pytest
from flask import Flask

from flask_rediscache import RedisCache, errors
from flask_rediscache import config as config_module
from flask_rediscache.config import DEFAULTS, ConfigError, worst_case_call_seconds
from flask_rediscache.config_loader import load_settings
from flask_rediscache.state import get_state

URL = "redis://127.0.0.1:6379/0"


def settings(debug: bool = True, **config):
    return load_settings({"SECRET_KEY": "s", **config}, debug=debug)


def error_of(debug: bool = True, **config) -> str:
    with pytest.raises(ConfigError) as err:
        settings(debug=debug, **config)
    return str(err.value)


def test_config_error_is_the_one_in_errors():
    assert config_module.ConfigError is errors.ConfigError


def test_missing_keys_read_as_defaults_without_writing_app_config():
    s = load_settings({"REDIS_URL": URL, "SECRET_KEY": "s"}, debug=False)
    assert (s.pool_size, s.namespace, s.fail_open, dict(s.connection_options)) == (5, "cache", True, {})
    app = Flask(__name__)
    app.config.update(SECRET_KEY="s", REDIS_URL="memory://no-setdefault", TESTING=True)
    before = dict(app.config)
    RedisCache(app)
    try:
        assert dict(app.config) == before
    finally:
        get_state(app).close()


# -- 12.17: URLs -------------------------------------------------------------
@pytest.mark.parametrize("value", [
    "redis:/localhost", " redis://localhost:6379/0", "redis://localhost:6379/0 ", "redis://localhost:71500/0",
    "redis://localhost:0/0", "redis://localhost:6379/zero", "redis://localhost/0/1", "REDIS://localhost",
    "redis//localhost", "localhost:6379", "http://localhost", "", "unix://", "unix:///",
    "redis://localhost/0?db=x", "redis://localhost/0?socket_timeout=5", "redis://localhost/0?retry_on_timeout=1",
    "redis://localhost/0?max_connections=1000", "redis://localhost/0?protocol=x", "redis://[::1/0",
])
@pytest.mark.parametrize("key", ["REDIS_URL", "REDIS_CACHE_URL", "REDIS_SESSION_URL"])
def test_bad_urls_name_the_key_and_the_schemes(key, value):
    message = error_of(**{"REDIS_URL": URL, key: value})
    assert message.startswith(f"{key}=")
    assert "expected" in message
    assert repr(value) in message


@pytest.mark.parametrize("value", ["redis:/localhost", "http://localhost", "localhost:6379", 6379, object])
def test_scheme_errors_list_every_accepted_scheme(value):
    message = error_of(REDIS_URL=value)
    for scheme in ("redis://", "rediss://", "unix://", "memory://"):
        assert scheme in message


@pytest.mark.parametrize("value", [6379, 1.5, True, ["redis://h"], {"url": "redis://h"}, b"redis://h"])
def test_non_string_urls_are_refused(value):
    message = error_of(REDIS_CACHE_URL=value, REDIS_URL=URL)
    assert "REDIS_CACHE_URL" in message and "a URL string" in message


@pytest.mark.parametrize("value", [
    "redis://localhost", "redis://localhost:6380", "redis://localhost:6379/", "redis://localhost:6379/15",
    "rediss://user:pw@host:6380/2", "unix:///run/redis.sock", "unix:///run/redis.sock?db=3", "memory://",
    "memory://anything", "redis://h/0?password=x", "redis://h/0?client_name=app&health_check_interval=30",
    "redis://[::1]:6379/0",
])
def test_good_urls_are_kept_as_written(value):
    assert settings(REDIS_URL=value).cache_url == value


# -- 12.18: bounds -----------------------------------------------------------
@pytest.mark.parametrize(("key", "value", "range_text"), [
    ("REDIS_POOL_SIZE", 1e9, "an integer from 1 to 1000"),
    ("REDIS_POOL_SIZE", 1001, "an integer from 1 to 1000"),
    ("REDIS_POOL_SIZE", "1e9", "an integer from 1 to 1000"),
    ("REDIS_RECONNECT_ATTEMPTS", 10**6, "an integer from 0 to 10"),
    ("REDIS_RECONNECT_ATTEMPTS", 11, "an integer from 0 to 10"),
    ("REDIS_CONNECT_TIMEOUT", 301, "> 0 and <= 300"),
    ("REDIS_READ_TIMEOUT", 0, "> 0 and <= 300"),
    ("REDIS_WRITE_TIMEOUT", math.inf, "> 0 and <= 300"),
    ("REDIS_POOL_TIMEOUT", 301, "from 0 to 300"),
    ("REDIS_CIRCUIT_BREAKER_THRESHOLD", 1001, "an integer from 1 to 1000"),
    ("REDIS_CIRCUIT_BREAKER_COOLDOWN", 3601, "from 0 to 3600"),
    ("REDIS_RECONNECT_DELAY", 61, "from 0 to 60"),
    ("REDIS_RECONNECT_DELAY_MAX", "nan", "from 0 to 60"),
])
def test_absurd_numbers_name_the_accepted_range(key, value, range_text):
    message = error_of(REDIS_URL=URL, **{key: value})
    assert message.startswith(f"{key}=")
    assert range_text in message


def test_numbers_at_the_edges_and_from_the_environment():
    s = settings(REDIS_URL=URL, REDIS_POOL_SIZE="1000", REDIS_RECONNECT_ATTEMPTS=0, REDIS_POOL_TIMEOUT=0,
                 REDIS_CONNECT_TIMEOUT=300, REDIS_CIRCUIT_BREAKER_THRESHOLD=1.0)
    assert (s.pool_size, s.reconnect_attempts, s.pool_timeout, s.connect_timeout) == (1000, 0, 0.0, 300.0)
    assert s.breaker_threshold == 1 and isinstance(s.breaker_threshold, int)


def test_worst_case_call_seconds():
    s = settings(REDIS_URL=URL)
    # pool wait 5 + 2 attempts x (connect 2 + read 1) + one backoff min(1, 0.05 * 2)
    assert worst_case_call_seconds(s) == pytest.approx(5 + 2 * 3 + 0.1)
    s = settings(REDIS_URL=URL, REDIS_RECONNECT_ATTEMPTS=3, REDIS_RECONNECT_DELAY=0.5, REDIS_POOL_TIMEOUT=0)
    assert worst_case_call_seconds(s) == pytest.approx(4 * 3 + 1 + 1 + 1)


# -- 12.19 and the SECRET_KEY -------------------------------------------------
@pytest.mark.parametrize("value", ["zq-old-7", b"zq-old-7", 5, {"zq-old-7": 1}, ["ok", ""], ["ok", None]])
def test_secret_key_fallbacks_must_be_a_list_of_keys(value):
    message = error_of(REDIS_URL=URL, SECRET_KEY_FALLBACKS=value)
    assert "SECRET_KEY_FALLBACKS" in message and "expected a list" in message
    assert "zq-old-7" not in message


def test_secret_keys_as_bytes():
    s = settings(REDIS_URL=URL, SECRET_KEY="current", SECRET_KEY_FALLBACKS=["old", b"older"])
    assert s.secret_key == b"current"
    assert s.secret_key_fallbacks == (b"old", b"older")
    assert settings(REDIS_URL=URL).secret_key_fallbacks == ()


def test_missing_secret_key_in_production_is_an_error():
    with pytest.raises(ConfigError, match="SECRET_KEY is not set"):
        load_settings({"REDIS_URL": URL}, debug=False)


def test_missing_secret_key_in_debug_is_random_per_process_and_not_in_app_config(caplog):
    with caplog.at_level(logging.WARNING, logger="flask_rediscache"):
        one = load_settings({"REDIS_URL": URL}, debug=True)
        two = load_settings({"REDIS_URL": URL, "SECRET_KEY": ""}, debug=True)
    assert one.secret_key == two.secret_key and len(one.secret_key) == 32
    assert "SECRET_KEY is not set" in caplog.text
    app = Flask(__name__)
    app.config.update(REDIS_URL="memory://random-secret", TESTING=True)
    RedisCache(app)
    try:
        assert app.config["SECRET_KEY"] is None
    finally:
        get_state(app).close()


def test_repr_hides_secrets():
    s = settings(REDIS_URL="redis://:urlpass@h/0", SECRET_KEY="signing-key",
                 REDIS_SENTINEL_PASSWORD="sentpass")
    text = repr(s)
    assert "urlpass" not in text and "signing-key" not in text and "sentpass" not in text
    assert "cache_url='redis://:***@h/0'" in text


# -- 12.20: values from app.config.from_prefixed_env() -------------------------
def test_numbers_for_text_settings_are_their_string_form():
    s = settings(REDIS_URL=URL, REDIS_NAMESPACE=2024, REDIS_SESSION_PREFIX=7, REDIS_SENTINEL_PASSWORD=12345,
                 REDIS_PASSWORD=999, REDIS_USERNAME=42)
    assert (s.namespace, s.session_prefix, s.sentinel_password, s.password, s.username) == (
        "2024", "7", "12345", "999", "42")


@pytest.mark.parametrize("key", ["REDIS_SESSION_PREFIX", "REDIS_NAMESPACE", "REDIS_PASSWORD",
                                 "REDIS_SENTINEL_MASTER", "REDIS_HEALTH_ENDPOINT", "REDIS_USERNAME"])
def test_a_boolean_for_a_text_setting_says_to_quote_it(key):
    message = error_of(REDIS_URL=URL, **{key: True})
    assert key in message and "quote" in message


def test_from_prefixed_env_end_to_end(monkeypatch):
    monkeypatch.setenv("FLASK_REDIS_URL", "memory://prefixed-env")
    monkeypatch.setenv("FLASK_REDIS_NAMESPACE", "2024")
    monkeypatch.setenv("FLASK_REDIS_POOL_SIZE", "7")
    monkeypatch.setenv("FLASK_REDIS_FAIL_OPEN", "false")
    app = Flask(__name__)
    app.config.from_prefixed_env()
    s = load_settings(app.config, debug=True)
    assert (s.namespace, s.pool_size, s.fail_open) == ("2024", 7, False)
    monkeypatch.setenv("FLASK_REDIS_SESSION_PREFIX", "true")
    app.config.from_prefixed_env()
    with pytest.raises(ConfigError, match=r"REDIS_SESSION_PREFIX=True .*quote"):
        load_settings(app.config, debug=True)


# -- new settings ---------------------------------------------------------------
def test_fail_open():
    assert settings(REDIS_URL=URL).fail_open is True
    assert settings(REDIS_URL=URL, REDIS_FAIL_OPEN=False).fail_open is False
    assert "REDIS_FAIL_OPEN" in error_of(REDIS_URL=URL, REDIS_FAIL_OPEN="no")


def test_credentials_apply_to_every_url_without_their_own():
    s = settings(REDIS_URL="redis://h:1/0", REDIS_SESSION_URL="redis://u:own@h2:2/1",
                 REDIS_USERNAME="app", REDIS_PASSWORD="p@ss/w:rd")
    assert s.cache_url == "redis://app:p%40ss%2Fw%3Ard@h:1/0"
    assert s.session_url == "redis://u:own@h2:2/1"
    assert settings(REDIS_URL="redis://h/0?password=q", REDIS_PASSWORD="x").cache_url == "redis://h/0?password=q"
    assert settings(REDIS_URL="unix:///tmp/r.sock", REDIS_PASSWORD="pw").cache_url == "unix://:pw@/tmp/r.sock"
    assert settings(REDIS_URL="memory://", REDIS_PASSWORD="pw").cache_url == "memory://"


def test_credentials_reach_cluster_seeds_and_sentinel_masters():
    s = settings(REDIS_CLUSTER=["redis://n1:7000", "redis://u:own@n2:7001"], REDIS_PASSWORD="pw")
    assert s.cluster == ("redis://:pw@n1:7000", "redis://u:own@n2:7001")
    s = settings(REDIS_SENTINELS=["h:26379"], REDIS_SENTINEL_MASTER="m", REDIS_PASSWORD="pw", debug=False)
    assert s.cache_url == s.session_url == "redis://:pw@"


@pytest.mark.parametrize(("options", "named"), [
    ({"retry_on_timeout": True}, "retry_on_timeout"),
    ({"socket_timeout": 5}, "REDIS_READ_TIMEOUT"),
    ({"max_connections": 50}, "REDIS_POOL_SIZE"),
    ({"decode_responses": True}, "decode_responses"),
    ({"nonsense": 1}, "nonsense"),
    ({"client_name": "has space"}, "client_name"),
    ({"protocol": 4}, "protocol"),
    ({"health_check_interval": -1}, "health_check_interval"),
    ({"socket_keepalive": "yes"}, "socket_keepalive"),
    ("health_check_interval=30", "a dict"),
])
def test_connection_options_outside_the_allow_list_are_refused(options, named):
    message = error_of(REDIS_URL=URL, REDIS_CONNECTION_OPTIONS=options)
    assert "REDIS_CONNECTION_OPTIONS" in message and named in message


def test_connection_options_accepted():
    options = {"health_check_interval": 30, "socket_keepalive": True, "client_name": "shop-web",
               "protocol": 3, "socket_keepalive_options": {1: 5}}
    assert dict(settings(REDIS_URL=URL, REDIS_CONNECTION_OPTIONS=options).connection_options) == options


# -- 14.2 and 14.6 ---------------------------------------------------------------
def test_missing_url_says_how_to_get_debug_behaviour():
    message = error_of(debug=False)
    assert "REDIS_URL is not set" in message
    assert "app.run(debug=True)" in message
    assert "FLASK_DEBUG=1" in message and 'app.config["DEBUG"] = True' in message
    assert "memory://" in message


def test_a_cache_url_alone_is_enough_without_sessions():
    s = settings(debug=False, REDIS_CACHE_URL="redis://h:1/0", REDIS_SESSION=False)
    assert s.cache_url == s.session_url == "redis://h:1/0"


@pytest.mark.parametrize(("key", "hint"), [
    ("REDIS_KEY_PREFIX", "use REDIS_NAMESPACE"), ("REDIS_PREFIX", "use REDIS_NAMESPACE"),
    ("REDIS_MAX_CONNECTIONS", "use REDIS_POOL_SIZE"), ("REDIS_SSL", "rediss://"),
    ("REDIS_NAMESPCE", "did you mean REDIS_NAMESPACE"),
])
def test_hints_for_other_libraries_names(caplog, key, hint):
    with caplog.at_level(logging.WARNING, logger="flask_rediscache"):
        settings(REDIS_URL=URL, **{key: "x"})
    assert key in caplog.text and hint in caplog.text
    assert "REDIS_SESSION_PREFIX" not in caplog.text or key in ("REDIS_KEY_PREFIX", "REDIS_PREFIX")


def test_password_and_username_are_real_settings(caplog):
    with caplog.at_level(logging.WARNING, logger="flask_rediscache"):
        settings(REDIS_URL=URL, REDIS_PASSWORD="pw", REDIS_USERNAME="u", REDIS_CONNECTION_OPTIONS={})
    assert "REDIS_PASSWORD" not in caplog.text and "REDIS_USERNAME" not in caplog.text
    assert "did you mean" not in caplog.text


def test_host_port_db_aliases_build_the_url(caplog):
    with caplog.at_level(logging.INFO, logger="flask_rediscache"):
        s = settings(debug=False, REDIS_HOST="redis.internal", REDIS_PORT="6380", REDIS_DB=2,
                     REDIS_PASSWORD="pw")
    assert s.cache_url == s.session_url == "redis://:pw@redis.internal:6380/2"
    assert "prefer setting REDIS_URL" in caplog.text and "pw" not in caplog.text
    assert settings(REDIS_HOST="::1").cache_url == "redis://[::1]:6379/0"
    assert "REDIS_PORT" in error_of(REDIS_HOST="h", REDIS_PORT=70000)
    assert "REDIS_HOST" in error_of(REDIS_HOST="h/0")


def test_host_alias_is_ignored_when_redis_url_is_set(caplog):
    with caplog.at_level(logging.WARNING, logger="flask_rediscache"):
        s = settings(REDIS_URL=URL, REDIS_HOST="elsewhere")
    assert s.cache_url == URL
    assert "REDIS_HOST ignored because REDIS_URL is set" in caplog.text


# -- 12.5: overlapping prefixes ---------------------------------------------------
@pytest.mark.parametrize(("namespace", "prefix"), [
    ("shop", "shop:session"), ("shop:session", "shop"), ("same", "same"), ("a:b", "a:b:c:d"),
])
def test_overlapping_prefixes_on_one_server_and_db_name_both_keys(namespace, prefix):
    message = error_of(REDIS_URL=URL, REDIS_NAMESPACE=namespace, REDIS_SESSION_PREFIX=prefix)
    assert "REDIS_NAMESPACE" in message and "REDIS_SESSION_PREFIX" in message and "overlap" in message


@pytest.mark.parametrize(("cache_url", "session_url"), [
    ("redis://localhost:6379/0", "redis://127.0.0.1/0"),
    ("redis://:a@h:6379", "redis://h:6379/0"),
    ("redis://h/1", "redis://h/0?db=1"),
    ("memory://x", "memory://x/"),
])
def test_same_server_and_db_is_recognised_across_spellings(cache_url, session_url):
    message = error_of(REDIS_CACHE_URL=cache_url, REDIS_SESSION_URL=session_url,
                       REDIS_NAMESPACE="app", REDIS_SESSION_PREFIX="app")
    assert "REDIS_NAMESPACE" in message and "REDIS_SESSION_PREFIX" in message


@pytest.mark.parametrize("config", [
    {"REDIS_NAMESPACE": "shop", "REDIS_SESSION_PREFIX": "shopping"},
    {"REDIS_NAMESPACE": "shop", "REDIS_SESSION_PREFIX": "shop", "REDIS_SESSION": False},
    {"REDIS_NAMESPACE": "shop", "REDIS_SESSION_PREFIX": "shop", "REDIS_SESSION_URL": "redis://127.0.0.1/1"},
    {"REDIS_NAMESPACE": "shop", "REDIS_SESSION_PREFIX": "shop", "REDIS_SESSION_URL": "redis://other/0"},
    {"REDIS_NAMESPACE": "shop", "REDIS_SESSION_PREFIX": "shop", "REDIS_SESSION_URL": "redis://127.0.0.1:6380"},
])
def test_distinct_prefixes_or_places_are_fine(config):
    settings(REDIS_URL=URL, **config)


def test_overlap_under_sentinel_and_cluster():
    assert "overlap" in error_of(REDIS_SENTINELS=["h:26379"], REDIS_SENTINEL_MASTER="m",
                                 REDIS_NAMESPACE="x", REDIS_SESSION_PREFIX="x:s")
    assert "overlap" in error_of(REDIS_CLUSTER=["redis://n:7000"], REDIS_NAMESPACE="x",
                                 REDIS_SESSION_PREFIX="x", REDIS_SESSION_URL="redis://elsewhere/0")
    settings(REDIS_SENTINELS=["h:26379"], REDIS_SENTINEL_MASTER="m", REDIS_NAMESPACE="x",
             REDIS_SESSION_PREFIX="x", REDIS_SESSION_URL="redis:///1")


def test_defaults_table_has_the_new_keys():
    assert DEFAULTS["REDIS_FAIL_OPEN"] is True
    assert DEFAULTS["REDIS_USERNAME"] is None and DEFAULTS["REDIS_PASSWORD"] is None
    assert DEFAULTS["REDIS_CONNECTION_OPTIONS"] == {}

"""Config validation: every bad value names its key; typos get a hint."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from flask import Flask

from flask_rediscache import ConfigError, RedisCache
from flask_rediscache.config import DEFAULTS
from flask_rediscache.config_loader import load_settings
from flask_rediscache.masking import mask_url


def settings(debug: bool = True, **config):
    merged = dict(DEFAULTS)
    merged.update(config)
    return load_settings(merged, debug=debug)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("REDIS_URL", "http://localhost:6379"),
        ("REDIS_URL", 6379),
        ("REDIS_CACHE_URL", "mysql://x"),
        ("REDIS_POOL_SIZE", -1),
        ("REDIS_POOL_SIZE", 0),
        ("REDIS_POOL_SIZE", "many"),
        ("REDIS_POOL_SIZE", 2.5),
        ("REDIS_CONNECT_TIMEOUT", "soon"),
        ("REDIS_READ_TIMEOUT", -1),
        ("REDIS_READ_TIMEOUT", 0),
        ("REDIS_WRITE_TIMEOUT", None),
        ("REDIS_POOL_TIMEOUT", -0.5),
        ("REDIS_RECONNECT_ATTEMPTS", -1),
        ("REDIS_RECONNECT_DELAY", "x"),
        ("REDIS_DEFAULT_TIMEOUT", -5),
        ("REDIS_DEFAULT_TIMEOUT", "1h"),
        ("REDIS_RACE_CONDITION_TTL", -1),
        ("REDIS_COMPRESS_THRESHOLD", -1),
        ("REDIS_CIRCUIT_BREAKER_THRESHOLD", 0),
        ("REDIS_CIRCUIT_BREAKER_COOLDOWN", -1),
        ("REDIS_ERROR_HANDLER", "not callable"),
        ("REDIS_NAMESPACE", ""),
        ("REDIS_NAMESPACE", "ca*che"),
        ("REDIS_SESSION_PREFIX", "has space"),
        ("REDIS_SESSION", "yes"),
        ("REDIS_SSL_CERT_REQS", "sometimes"),
        ("REDIS_SENTINELS", ["no-port"]),
        ("REDIS_CLUSTER", ["http://node:1"]),
        ("REDIS_HEALTH_ENDPOINT", "health"),
    ],
)
def test_bad_value_names_the_key(key, value):
    with pytest.raises(ConfigError) as err:
        settings(**{"REDIS_URL": "redis://127.0.0.1:6379/0", key: value})
    assert key in str(err.value)
    assert "expected" in str(err.value)


def test_bad_value_raised_from_init_app():
    app = Flask(__name__)
    app.config.update(SECRET_KEY="s", REDIS_URL="redis://x", REDIS_POOL_SIZE=-3)
    with pytest.raises(ConfigError, match="REDIS_POOL_SIZE=-3"):
        RedisCache(app)


def test_bad_url_password_is_masked_in_error():
    with pytest.raises(ConfigError) as err:
        settings(REDIS_URL="http://user:hunter2@db:1/0")
    assert "hunter2" not in str(err.value)
    assert "REDIS_URL" in str(err.value)


def test_defaults_match_contract():
    s = settings(REDIS_URL="redis://127.0.0.1:6379/0")
    assert (s.connect_timeout, s.read_timeout, s.write_timeout) == (2, 1, 1)
    assert (s.reconnect_attempts, s.reconnect_delay, s.reconnect_delay_max) == (1, 0.05, 1)
    assert (s.pool_size, s.pool_timeout) == (5, 5)
    assert (s.namespace, s.default_timeout, s.compress_threshold) == ("cache", 300, 1024)
    assert (s.breaker_threshold, s.breaker_cooldown) == (5, 5)
    assert (s.session, s.session_prefix, s.ssl_cert_reqs) == (True, "session", "required")
    assert s.cache_url == s.session_url == "redis://127.0.0.1:6379/0"


def test_per_purpose_urls_and_timedelta():
    s = settings(REDIS_URL="redis://a:1/0", REDIS_SESSION_URL="redis://b:2/1",
                 REDIS_DEFAULT_TIMEOUT=timedelta(minutes=2), REDIS_READ_TIMEOUT="0.5")
    assert s.cache_url == "redis://a:1/0"
    assert s.session_url == "redis://b:2/1"
    assert s.default_timeout == 120
    assert s.read_timeout == 0.5


def test_unset_url_is_memory_in_debug_with_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="flask_rediscache"):
        s = settings(debug=True)
    assert s.cache_url == "memory://"
    assert "REDIS_URL is not set" in caplog.text


def test_unset_url_in_production_is_an_error():
    with pytest.raises(ConfigError, match="REDIS_URL"):
        settings(debug=False)


def test_typo_gets_closest_key(caplog):
    with caplog.at_level(logging.WARNING, logger="flask_rediscache"):
        settings(REDIS_URL="memory://", REDIS_NAMESPCE="x")
    assert "REDIS_NAMESPCE" in caplog.text
    assert "did you mean REDIS_NAMESPACE" in caplog.text


def test_sentinels_parsed():
    s = settings(REDIS_SENTINELS=["127.0.0.1:26379", "h2:26380"], REDIS_SENTINEL_MASTER="m")
    assert s.sentinels == (("127.0.0.1", 26379), ("h2", 26380))
    with pytest.raises(ConfigError, match="REDIS_SENTINEL_MASTER"):
        settings(REDIS_SENTINELS=["127.0.0.1:26379"])


def test_missing_secret_key_in_production():
    app = Flask(__name__)
    app.config.update(REDIS_URL="redis://127.0.0.1:1/0")
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        RedisCache(app)


def test_mask_url():
    assert mask_url("redis://user:pw@h:1/0") == "redis://user:***@h:1/0"
    assert mask_url("redis://:pw@h/0") == "redis://:***@h/0"
    assert mask_url("redis://h:1/0") == "redis://h:1/0"

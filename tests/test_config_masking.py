"""Issue 12.14: no ConfigError message ever prints a password, whatever shape
the bad value has; and :func:`flask_rediscache.masking.mask` itself."""

from __future__ import annotations

import pytest

from flask_rediscache.config import ConfigError
from flask_rediscache.config_loader import load_settings
from flask_rediscache.masking import mask, mask_url

SECRET = "Zebra-9-Quartz"
URL = "redis://127.0.0.1:6379/0"

BAD_CONFIGS = {
    "bad scheme, userinfo": {"REDIS_URL": f"http://user:{SECRET}@h:1/0"},
    "bad port, userinfo": {"REDIS_URL": f"redis://:{SECRET}@h:71500/0"},
    "bad db, query password": {"REDIS_URL": f"redis://h/zero?password={SECRET}"},
    "leading space": {"REDIS_URL": f" redis://:{SECRET}@h/0"},
    "password with @ and /": {"REDIS_URL": f"redis://u:a@b/{SECRET}@h:99999/0"},
    "single slash": {"REDIS_URL": f"redis:/:{SECRET}@localhost"},
    "unknown query option": {"REDIS_URL": f"redis://:{SECRET}@h/0?socket_timeout=3"},
    "non-string cache url (dict)": {"REDIS_URL": URL, "REDIS_CACHE_URL": {"host": "h", "password": SECRET}},
    "non-string cache url (list)": {"REDIS_URL": URL, "REDIS_CACHE_URL": [f"redis://:{SECRET}@h/0"]},
    "non-string cache url (bytes)": {"REDIS_URL": URL, "REDIS_CACHE_URL": f"redis://:{SECRET}@h/0".encode()},
    "cluster seed with bad scheme": {"REDIS_CLUSTER": [f"http://:{SECRET}@n1:7000"]},
    "cluster seed with bad port": {"REDIS_CLUSTER": [f"redis://:{SECRET}@n1:70000"]},
    "cluster seed, other seed bad": {"REDIS_CLUSTER": [f"redis://:{SECRET}@n1:7000", "ftp://n2"],
                                     "REDIS_NAMESPACE": "x"},
    "cluster not a list": {"REDIS_CLUSTER": {f"redis://:{SECRET}@n1:7000": 1}},
    "sentinel given as URL": {"REDIS_SENTINELS": [f"redis://:{SECRET}@h:26379x"],
                              "REDIS_SENTINEL_MASTER": "m"},
    "sentinel password a bool": {"REDIS_URL": f"redis://:{SECRET}@h/0", "REDIS_SENTINEL_PASSWORD": True},
    "sentinel password a list": {"REDIS_URL": URL, "REDIS_SENTINEL_PASSWORD": [SECRET]},
    "sentinel password a dict": {"REDIS_URL": URL, "REDIS_SENTINEL_PASSWORD": {"pw": SECRET}},
    "password a list": {"REDIS_URL": URL, "REDIS_PASSWORD": [SECRET]},
    "password echoed by another key": {"REDIS_URL": URL, "REDIS_PASSWORD": SECRET,
                                       "REDIS_NAMESPACE": f"ns {SECRET}"},
    "sentinel password echoed": {"REDIS_URL": URL, "REDIS_SENTINEL_PASSWORD": SECRET,
                                 "REDIS_SESSION_PREFIX": f"{SECRET}*"},
    "connection option password": {"REDIS_URL": URL, "REDIS_CONNECTION_OPTIONS": {"password": SECRET}},
    "connection options with a secret name": {"REDIS_URL": URL, "REDIS_CONNECTION_OPTIONS": {SECRET: 1},
                                              "REDIS_PASSWORD": SECRET},
    "overlap on a URL with a password": {"REDIS_URL": f"redis://:{SECRET}@h/0", "REDIS_NAMESPACE": "a",
                                         "REDIS_SESSION_PREFIX": "a"},
    "missing master, URL password": {"REDIS_URL": f"redis://:{SECRET}@h/0", "REDIS_SENTINELS": ["h:1"]},
    "percent-encoded secret": {"REDIS_URL": URL, "REDIS_PASSWORD": "p@ss " + SECRET,
                               "REDIS_HEALTH_ENDPOINT": "p%40ss%20" + SECRET},
}


@pytest.mark.parametrize("config", BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_no_config_error_prints_a_password(config):
    with pytest.raises(ConfigError) as err:
        load_settings({"SECRET_KEY": "s", **config}, debug=True)
    message = str(err.value)
    assert SECRET not in message, message
    assert "expected" in message


def test_the_secret_key_is_never_printed():
    for value in (12345678, ["x"], object()):
        with pytest.raises(ConfigError) as err:
            load_settings({"REDIS_URL": URL, "SECRET_KEY": value}, debug=False)
        assert "12345678" not in str(err.value) and "SECRET_KEY" in str(err.value)


@pytest.mark.parametrize(("text", "expected"), [
    ("redis://user:pw@h:1/0", "redis://user:***@h:1/0"),
    ("redis://:pw@h/0", "redis://:***@h/0"),
    ("redis://h:1/0", "redis://h:1/0"),
    ("redis://u:p@ss@h/0", "redis://u:***@h/0"),
    ("redis://h/0?password=s3cret&db=1", "redis://h/0?password=***&db=1"),
    ("redis://h/0?db=1&PASSWORD=s3cret", "redis://h/0?db=1&PASSWORD=***"),
    ("Connection(host=h, password='s3 cret', db=0)", "Connection(host=h, password=***, db=0)"),
    ("sentinel_password=s3cret failed", "sentinel_password=*** failed"),
    ("{'host': 'h', 'password': 's3cret'}", "{'host': 'h', 'password': '***'}"),
    ('{"password": "s3cret", "db": 0}', '{"password": "***", "db": 0}'.replace('"***"', "'***'")),
    ("error at redis://h:6379, seeds redis://u:pw@x:1,redis://y:2",
     "error at redis://h:6379, seeds redis://u:***@x:1,redis://y:2"),
    ("no password: set REDIS_PASSWORD", "no password: set REDIS_PASSWORD"),
])
def test_mask_patterns(text, expected):
    assert mask(text) == expected


def test_mask_literal_secrets_and_their_url_encoding():
    assert mask("AUTH failed for hunter2!", ["hunter2"]) == "AUTH failed for ***!"
    assert mask("redis://h/0 p%40ss%2Fx", ["p@ss/x"]) == "redis://h/0 ***"
    assert mask("the ab word", ["ab", None, ""]) == "the ab word"  # too short to replace safely
    assert mask_url("rediss://u:p%40ss@h:6380/2") == "rediss://u:***@h:6380/2"

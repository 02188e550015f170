"""Property-based fuzzing (hypothesis) of everything that comes from outside:
session cookies, the bytes stored in Redis, cache keys and config values.

Each property runs a bounded number of examples against a real redis-server
(the shared one, emptied once per test), so the whole file runs in seconds.
"""

from __future__ import annotations

import math
import pickle
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask, jsonify, session
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from flask_rediscache import ConfigError
from flask_rediscache.config import DEFAULTS, Settings
from flask_rediscache.config_loader import load_settings

FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
NAMESPACE = "fuzz"
COOKIE = "session"

#: Printable ASCII: what a browser can put in a cookie header at all.
cookie_text = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                                             exclude_characters=";,\\\""), max_size=400)


# -- session cookies -----------------------------------------------------------
def _session_app(make_app: Any, url: str, secret: str = "test-secret") -> Flask:
    app = make_app(REDIS_URL=url, SECRET_KEY=secret)

    @app.post("/login")
    def login() -> Any:
        session["user"] = "alice"
        return jsonify(dict(session))

    @app.get("/me")
    def me() -> Any:
        return jsonify(dict(session))

    return app


@pytest.fixture
def session_app(make_app, redis_server):
    return _session_app(make_app, redis_server.url)


@pytest.fixture
def valid_cookie(session_app):
    client = session_app.test_client()
    assert client.post("/login").status_code == 200
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None and client.get("/me").get_json() == {"user": "alice"}
    return cookie.value


def _present(app: Flask, server: Any, cookie: str) -> tuple[Any, dict[str, int], list[str]]:
    """GET /me with ``cookie``: (JSON body, Redis commands sent, Set-Cookie headers)."""
    server.reset_stats()
    client = app.test_client()
    client.set_cookie(COOKIE, cookie)
    response = client.get("/me")
    assert response.status_code == 200, response.data[:300]
    return response.get_json(), server.commands_since_reset(), response.headers.getlist("Set-Cookie")


@pytest.mark.filterwarnings("ignore:The 'session' cookie is too large")
@FUZZ
@given(cookie=cookie_text)
@example(cookie="")
@example(cookie=".")
@example(cookie="a" * 43 + ".")
@example(cookie="a" * 43 + "." + "A" * 43)
@example(cookie="x" * 5000)
def test_random_cookie_is_a_fresh_session_without_redis(session_app, redis_server, valid_cookie, cookie):
    assume(cookie != valid_cookie)
    body, commands, set_cookies = _present(session_app, redis_server, cookie)
    assert body == {}
    assert commands == {}, f"a garbage cookie reached Redis: {commands}"
    assert set_cookies == []  # an empty session sets (and replaces) nothing


@FUZZ
@given(data=st.data())
def test_mutated_cookie_is_either_the_same_session_or_a_fresh_one(session_app, redis_server, valid_cookie,
                                                                 data):
    pos = data.draw(st.integers(0, len(valid_cookie) - 1), label="position")
    how = data.draw(st.sampled_from(["replace", "delete", "insert", "truncate"]), label="how")
    char = data.draw(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=";,\\\""),
                     label="char")
    if how == "replace":
        cookie = valid_cookie[:pos] + char + valid_cookie[pos + 1:]
    elif how == "delete":
        cookie = valid_cookie[:pos] + valid_cookie[pos + 1:]
    elif how == "insert":
        cookie = valid_cookie[:pos] + char + valid_cookie[pos:]
    else:
        cookie = valid_cookie[:pos]
    assume(cookie != valid_cookie)
    body, commands, _ = _present(session_app, redis_server, cookie)
    if body == {}:
        assert commands == {}, f"a forged cookie {cookie!r} reached Redis: {commands}"
    else:
        # Base64 ignores the unused low bits of a signature's last character,
        # so a few mutations decode to the very same signed id: same session.
        assert body == {"user": "alice"}


def test_cookie_signed_with_another_secret_is_not_accepted(make_app, redis_server):
    other = _session_app(make_app, redis_server.url, secret="another-secret")
    client = other.test_client()
    client.post("/login")
    foreign = client.get_cookie(COOKIE)
    assert foreign is not None
    mine = _session_app(make_app, redis_server.url)
    body, commands, set_cookies = _present(mine, redis_server, foreign.value)
    assert (body, commands, set_cookies) == ({}, {}, [])
    # ... while the other app still reads it: the data is there, only unreachable.
    assert _present(other, redis_server, foreign.value)[0] == {"user": "alice"}


# -- stored entry bytes ----------------------------------------------------------
EFFECTS: list[str] = []


def _side_effect(tag: str) -> str:
    EFFECTS.append(tag)
    return tag


class Evil:
    """Unpickling this appends to EFFECTS: visible proof that bytes were unpickled."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_side_effect, ("unpickled!",))


EVIL = pickle.dumps(Evil(), protocol=pickle.HIGHEST_PROTOCOL)

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50)
    | st.binary(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    | st.tuples(inner, inner),
    max_leaves=20,
)


@pytest.fixture
def fuzz_cache(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_NAMESPACE=NAMESPACE, REDIS_COMPRESS_THRESHOLD=64)
    with app.app_context():
        yield app.extensions["rediscache"]


@pytest.fixture(autouse=True)
def _no_effects():
    EFFECTS.clear()
    yield
    assert EFFECTS == [], "something unpickled bytes flask-rediscache did not sign"


def test_the_evil_payload_is_visible_when_unpickled():
    # The control: if the cache did unpickle it, EFFECTS would say so.
    assert pickle.loads(EVIL) == "unpickled!"
    assert EFFECTS == ["unpickled!"]
    EFFECTS.clear()


def _counter(raw: bytes) -> int | None:
    """The int a Redis counter ``raw`` holds (what INCRBY would accept), else None."""
    digits = raw[1:] if raw[:1] == b"-" else raw
    if digits.isdigit() and digits.isascii() and len(raw) <= 20:
        return int(raw)
    return None


@FUZZ
@given(raw=st.binary(max_size=300))
@example(raw=EVIL)
@example(raw=b"\xf1\x00" + b"\x00" * 16 + EVIL)
@example(raw=b"\xf1\x02" + b"\x00" * 24 + EVIL)
@example(raw=b"\xf1\x01" + b"\x00" * 16 + b"x\x9c")
@example(raw=b"\xf1")
@example(raw=b"-")
@example(raw=b"12_3")
@example(raw=b" 12")
@example(raw=b"99999999999999999999999")
def test_foreign_bytes_are_a_miss_or_a_counter(fuzz_cache, redis_server, raw):
    fuzz_cache.client.set(f"{NAMESPACE}:k", raw)
    got = fuzz_cache.get("k")
    counter = _counter(raw)
    if counter is None:
        assert got is None
    else:
        assert got == counter and type(got) is int
    # The next write replaces whatever was there.
    assert fuzz_cache.set("k", {"fresh": True}) is True
    assert fuzz_cache.get("k") == {"fresh": True}


@FUZZ
@given(value=values, data=st.data())
def test_mutated_entries_are_a_miss_or_the_original(fuzz_cache, redis_server, value, data):
    assert fuzz_cache.set("m", value) is True
    rkey = f"{NAMESPACE}:m"
    stored = redis_server.client().get(rkey)
    assert stored is not None
    how = data.draw(st.sampled_from(["flip", "truncate", "append", "insert", "evil-payload", "splice"]))
    pos = data.draw(st.integers(0, len(stored) - 1))
    if how == "flip":
        bit = data.draw(st.integers(1, 255))
        mutated = stored[:pos] + bytes([stored[pos] ^ bit]) + stored[pos + 1:]
    elif how == "truncate":
        mutated = stored[:pos]
    elif how == "append":
        mutated = stored + data.draw(st.binary(min_size=1, max_size=20))
    elif how == "insert":
        mutated = stored[:pos] + data.draw(st.binary(min_size=1, max_size=20)) + stored[pos:]
    elif how == "evil-payload":  # keep the header and MAC, swap the pickle
        mutated = stored[:min(pos, 26)] + EVIL
    else:  # an entry signed for another key, moved here
        fuzz_cache.set("other", Evil.__name__)
        mutated = redis_server.client().get(f"{NAMESPACE}:other")
    assume(mutated != stored)
    redis_server.client().set(rkey, mutated)
    got = fuzz_cache.get("m")
    counter = _counter(mutated)
    if counter is not None:
        assert got == counter
    elif got is not None:
        assert got == value and type(got) is type(value)
    # and the miss is healed by the next write
    fuzz_cache.set("m", value)
    assert fuzz_cache.get("m") == value


@FUZZ
@given(value=values)
def test_every_value_round_trips_with_its_type(fuzz_cache, value):
    assert fuzz_cache.set("v", value) is True
    got = fuzz_cache.get("v")
    assert got == value and type(got) is type(value)


# -- cache keys --------------------------------------------------------------------
keys = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=400)


@FUZZ
@given(key=keys, other=keys)
@example(key="", other=" ")
@example(key="*", other="?")
@example(key="a" * 1000, other="a" * 999)
@example(key="\ud800", other="\udfff")
@example(key="é" * 200, other="e" * 200)
def test_any_key_round_trips_inside_the_namespace(fuzz_cache, redis_server, key, other):
    assume(key != other)
    assert fuzz_cache.set(key, ["value of", key]) is True
    assert fuzz_cache.set(other, ["value of", other]) is True
    assert fuzz_cache.get(key) == ["value of", key]
    assert fuzz_cache.get(other) == ["value of", other]
    stored = list(redis_server.client().scan_iter(count=1000))
    for rkey in stored:
        assert rkey.startswith(f"{NAMESPACE}:".encode()), rkey
        assert len(rkey) <= 250, (len(rkey), rkey[:80])
    assert fuzz_cache.delete(key) is True
    assert fuzz_cache.get(key) is None
    assert fuzz_cache.get(other) == ["value of", other]


# -- config values -----------------------------------------------------------------
config_values = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10**20), st.floats(),
    st.text(max_size=30), st.binary(max_size=10),
    st.sampled_from(["redis://localhost:6379/0", "rediss://h:1/2", "unix:///tmp/r.sock", "memory://",
                     "http://x", "redis://:pw@host:6379/0", "0", "1.5", "-1", "1e3", "true",
                     "required", "none", "/health", "host:26379", "a b", "ns*", "nan", "inf", "1e300"]),
    st.lists(st.text(max_size=20), max_size=3),
    st.lists(st.sampled_from(["host:26379", "redis://h:7000", "h:1", ("h", 1), "bad"]), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.builds(timedelta, seconds=st.integers(-100, 10**10)),
    st.just(print), st.just(object()),
)

#: A value valid on its own may make another key required (its error names that key).
DEPENDS = {"REDIS_SENTINELS": {"REDIS_SENTINEL_MASTER"}}
NUMBERS = ("connect_timeout", "read_timeout", "write_timeout", "reconnect_delay", "reconnect_delay_max",
           "pool_timeout", "breaker_cooldown")


def _check(config: dict[str, Any], fuzzed: set[str]) -> None:
    full = {**DEFAULTS, "REDIS_URL": "memory://", **config}
    try:
        result = load_settings(full, debug=True)
    except ConfigError as exc:
        named = set().union(fuzzed, *(DEPENDS.get(k, set()) for k in fuzzed))
        assert any(key in str(exc) for key in named), f"{exc} does not name any of {sorted(fuzzed)}"
        return
    assert isinstance(result, Settings)
    # "Valid" must mean usable: sane numbers, not NaN, not negative.
    for name in NUMBERS:
        number = getattr(result, name)
        assert isinstance(number, float) and math.isfinite(number) and number >= 0, (name, number)
    assert isinstance(result.pool_size, int) and result.pool_size >= 1
    assert isinstance(result.default_timeout, int) and result.default_timeout >= 0
    assert isinstance(result.namespace, str) and result.namespace


@FUZZ
@given(key=st.sampled_from(sorted(DEFAULTS)), value=config_values)
def test_one_random_config_value_is_valid_or_named(key, value):
    _check({key: value}, {key})


@FUZZ
@given(config=st.dictionaries(st.sampled_from(sorted(DEFAULTS)), config_values, min_size=2, max_size=5))
def test_several_random_config_values_are_valid_or_named(config):
    _check(config, set(config))


@FUZZ
@given(key=st.sampled_from(["REDIS_POOL_SIZE", "REDIS_NAMESPACE", "REDIS_DEFAULT_TIMEOUT",
                            "REDIS_COMPRESS_THRESHOLD", "REDIS_READ_TIMEOUT", "REDIS_SESSION_PREFIX",
                            "REDIS_CIRCUIT_BREAKER_THRESHOLD", "REDIS_RECONNECT_ATTEMPTS"]),
       value=config_values)
def test_init_app_with_a_random_value_starts_or_names_the_key(key, value):
    app = Flask("fuzz-config")
    app.config.update(SECRET_KEY="s", TESTING=True, REDIS_URL="memory://fuzz-config", **{key: value})
    from flask_rediscache import RedisCache

    try:
        RedisCache(app)
    except ConfigError as exc:
        assert key in str(exc)
        return
    with app.app_context():
        cache = app.extensions["rediscache"]
        assert cache.set("k", 1) is True and cache.get("k") == 1


FLOAT_KEYS = ("REDIS_CONNECT_TIMEOUT", "REDIS_READ_TIMEOUT", "REDIS_WRITE_TIMEOUT", "REDIS_RECONNECT_DELAY",
              "REDIS_RECONNECT_DELAY_MAX", "REDIS_POOL_TIMEOUT", "REDIS_CIRCUIT_BREAKER_COOLDOWN",
              "REDIS_DEFAULT_TIMEOUT", "REDIS_RACE_CONDITION_TTL")


def test_non_finite_and_huge_numbers_are_rejected():
    """Found by the fuzzing above (fixed in config.MAX_NUMBER): REDIS_CONNECT_TIMEOUT="nan" used to
    pass validation and then every cache.get raised ValueError (fail-open broken);
    REDIS_CIRCUIT_BREAKER_COOLDOWN=inf kept an opened breaker open forever."""
    wrong = []
    for key in FLOAT_KEYS:
        for value in (math.inf, math.nan, "nan", "inf", 1e300, 10**20):
            try:
                load_settings({**DEFAULTS, "REDIS_URL": "memory://", key: value}, debug=True)
                wrong.append(f"{key}={value!r} accepted")
            except ConfigError as exc:
                assert key in str(exc)
            except Exception as exc:
                wrong.append(f"{key}={value!r} raised {type(exc).__name__}: {exc}")
    assert not wrong, "\n".join(wrong)

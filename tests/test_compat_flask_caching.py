"""Side by side with the real Flask-Caching: the same calls, the same observable results.

Each scenario runs once against Flask-Caching 2.x (``CACHE_TYPE="RedisCache"``,
key prefix ``fc_``) and once against flask-rediscache (namespace ``ours``),
both on the same test redis-server, and compares what a user can see: return
values, how often the wrapped function ran, which keys exist and their TTLs,
and the signals received. Where flask-rediscache differs on purpose (see
docs/migrating-flask-caching.rst) the test asserts the documented difference.

The numbers in the section titles are the items of issue 13.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import flask_caching
import pytest
from flask import Flask, make_response, render_template_string, request

from flask_rediscache import CachedResponse as OurCachedResponse
from flask_rediscache import RedisCache
from flask_rediscache import make_template_fragment_key as our_fragment_key
from flask_rediscache import signals as our_signals
from flask_rediscache.state import get_state

from .servers import RedisServer


class Side:
    """One library on its own app: the cache object and how to look at Redis."""

    def __init__(self, name: str, app: Flask, cache: Any, server: RedisServer, prefix: str) -> None:
        self.name = name
        self.app = app
        self.cache = cache
        self.server = server
        self.prefix = prefix
        self.client = app.test_client()

    @property
    def ours(self) -> bool:
        return self.name == "ours"

    def raw(self, key: str) -> bytes:
        return f"{self.prefix}{key}".encode()

    def exists(self, key: str) -> bool:
        return bool(self.server.client().exists(self.raw(key)))

    def ttl(self, key: str) -> int:
        return int(self.server.client().ttl(self.raw(key)))

    def keys(self) -> list[bytes]:
        return sorted(self.server.client().keys(self.prefix.encode() + b"*"))

    @property
    def CachedResponse(self) -> type:
        return OurCachedResponse if self.ours else flask_caching.CachedResponse


def _their_app(server: RedisServer, **config: Any) -> Flask:
    app = Flask("flask-caching-side")
    app.config.update(SECRET_KEY="s", CACHE_TYPE="RedisCache", CACHE_REDIS_URL=server.url,
                      CACHE_KEY_PREFIX="fc_", CACHE_DEFAULT_TIMEOUT=300, **config)
    return app


@pytest.fixture
def build(redis_server: RedisServer) -> Iterator[Callable[..., tuple[Side, Side]]]:
    """``build(**config)`` -> (theirs, ours); ``config`` goes to both apps."""
    ours_apps: list[Flask] = []

    def make(**config: Any) -> tuple[Side, Side]:
        app = _their_app(redis_server, **config)
        theirs = Side("theirs", app, flask_caching.Cache(app), redis_server, "fc_")
        our_app = Flask("rediscache-side")
        our_app.config.update(SECRET_KEY="s", REDIS_URL=redis_server.url, REDIS_NAMESPACE="ours", **config)
        ours_apps.append(our_app)
        ours = Side("ours", our_app, RedisCache(our_app), redis_server, "ours:")
        return theirs, ours

    yield make
    for app in ours_apps:
        get_state(app).close()


@pytest.fixture
def both(build: Callable[..., tuple[Side, Side]]) -> tuple[Side, Side]:
    return build()


def same(both: tuple[Side, Side], scenario: Callable[[Side], Any]) -> Any:
    """Run ``scenario`` on both sides; their results must be equal."""
    theirs, ours = both
    expected = scenario(theirs)
    assert scenario(ours) == expected
    return expected


# -- 1. @cached on a helper called in a request returns the helper's value ----------
def test_cached_helper_in_a_request_returns_its_value(both):
    def scenario(side: Side) -> Any:
        calls: list[str] = []

        @side.cache.cached(timeout=60, key_prefix="comments")
        def comments():
            calls.append("comments")
            return ["first", "second"]

        @side.cache.cached(timeout=60, key_prefix="count")
        def count():
            calls.append("count")
            return 3

        @side.cache.cached(timeout=60, key_prefix="chunks")
        def chunks():
            calls.append("chunks")
            yield "a"
            yield "b"

        @side.app.get("/page")
        def page():
            return {"comments": comments(), "count": count(), "chunks": chunks()}

        bodies = [side.client.get("/page").json for _ in range(2)]
        return bodies, calls, [side.ttl(k) > 55 for k in ("comments", "count", "chunks")]

    bodies, calls, ttls = same(both, scenario)
    assert bodies[0] == {"comments": ["first", "second"], "count": 3, "chunks": "ab"}
    assert calls == ["comments", "count", "chunks"] and all(ttls)


def test_cached_helper_returning_none_differs_by_default(both):
    """Documented difference: ``None`` is cached unless ``cache_none=False``."""
    def scenario(side: Side, **options: Any) -> int:
        calls = []

        @side.cache.cached(timeout=60, key_prefix=f"nothing{len(options)}", **options)
        def nothing():
            calls.append(1)

        with side.app.test_request_context("/"):
            assert nothing() is None
            assert nothing() is None
        return len(calls)

    theirs, ours = both
    assert (scenario(theirs), scenario(ours)) == (2, 1)
    assert scenario(theirs) == scenario(ours, cache_none=False) == 2


# -- 2. outside an app context the constructor's app is used -----------------------
def test_calls_outside_an_app_context(both):
    def scenario(side: Side) -> Any:
        side.cache.set("k", {"a": 1}, timeout=30)
        return side.cache.get("k"), side.cache.has("k"), side.ttl("k") > 25

    assert same(both, scenario) == ({"a": 1}, True, True)


# -- 3. unlink and delete_cached -----------------------------------------------------
def test_unlink(both):
    def scenario(side: Side) -> Any:
        with side.app.app_context():
            side.cache.set("a", 1)
            side.cache.set("b", 2)
            removed = side.cache.unlink("a", "b", "missing")
            return removed, side.cache.has("a"), side.cache.has("b")

    assert same(both, scenario) == (2, False, False)


def test_delete_cached_with_path_and_query_args(both):
    def scenario(side: Side) -> Any:
        renders = []

        @side.app.get("/works")
        @side.cache.cached(timeout=60, query_string=True)
        def works():
            renders.append(dict(request.args))
            return f"render {len(renders)}"

        side.client.get("/works?limit=15&mock=true")
        side.client.get("/works?mock=true&limit=15")
        with side.app.app_context():
            deleted = side.cache.delete_cached(works, "/works", {"limit": 15, "mock": "true"})
            again = side.cache.delete_cached(works, "/works", "mock=true&limit=15")
        side.client.get("/works?limit=15&mock=true")
        return deleted, again, len(renders)

    assert same(both, scenario) == (True, False, 2)


def test_delete_cached_with_view_args(both):
    def scenario(side: Side) -> Any:
        renders = []

        @side.app.get("/item/<int:ident>")
        @side.cache.cached(timeout=60)
        def item(ident):
            renders.append(ident)
            return f"item {ident}"

        side.client.get("/item/3")
        side.client.get("/item/4")
        with side.app.test_request_context():
            deleted = side.cache.delete_cached(item, ident=3)
        side.client.get("/item/3")
        side.client.get("/item/4")
        return deleted, renders

    assert same(both, scenario) == (True, [3, 4, 3])


def test_delete_cached_by_endpoint_and_query_string_alias(both):
    """Ours also takes an endpoint name, and ``query_string=`` for the query."""
    _, ours = both
    renders = []

    @ours.app.get("/search", endpoint="search")
    @ours.cache.cached(timeout=60, query_string=True)
    def search():
        renders.append(1)
        return "found"

    ours.client.get("/search?b=2&a=1")
    with ours.app.test_request_context():
        assert ours.cache.delete_cached("search", query_string="a=1&b=2") is True
        with pytest.raises(ValueError, match="no endpoint"):
            ours.cache.delete_cached("nope")
        with pytest.raises(TypeError, match="not decorated"):
            ours.cache.delete_cached(lambda: None)
    ours.client.get("/search?a=1&b=2")
    assert len(renders) == 2


# -- 4. attributes of decorated functions ---------------------------------------------
def test_memoize_attributes(both):
    def scenario(side: Side) -> Any:
        calls = []

        def area(w, h=2):
            calls.append((w, h))
            return w * h

        memo = side.cache.memoize(timeout=30)(area)
        with side.app.app_context():
            attributes = (memo.uncached is area, memo.cache_timeout)
            memo.cache_timeout = 120  # assigned after decoration: used for the next write
            memo(3)
            ttl = side.ttl(memo.make_cache_key(memo.uncached, 3))
            memo(3)
            memo.delete_memoized()
            memo(3)
        return attributes, 115 <= ttl <= 120, calls

    assert same(both, scenario) == ((True, 30), True, [(3, 2), (3, 2)])


def test_memoize_make_cache_key_assigned_after_decoration(both):
    """Documented difference: Flask-Caching's memoize builds its key itself and
    uses an assigned ``make_cache_key`` only in ``delete_memoized``; ours uses
    it for every call too."""
    def scenario(side: Side) -> Any:
        @side.cache.memoize(timeout=60)
        def double(x):
            return 2 * x

        double.make_cache_key = lambda f, *args, **kwargs: f"custom-{args[0]}"
        with side.app.app_context():
            assert double(4) == 8
            present = side.exists("custom-4")
            deleted = side.cache.delete_memoized(double, 4)
        return present, deleted

    theirs, ours = both
    assert scenario(theirs)[0] is False
    assert scenario(ours) == (True, 1)


def test_cached_attributes(both):
    def scenario(side: Side) -> Any:
        renders = []

        @side.app.get("/a")
        @side.cache.cached(timeout=30)
        def a():
            renders.append("a")
            return "a"

        @side.app.get("/b")
        @side.cache.cached(timeout=30)
        def b():
            renders.append("b")
            return "b"

        attributes = (a.uncached.__name__, a.cache_timeout, callable(a.make_cache_key))
        a.cache_timeout = 90
        b.make_cache_key = lambda *args, **kwargs: "b-key"
        for _ in range(2):
            side.client.get("/a")
            side.client.get("/b")
        with side.app.test_request_context():
            key = a.make_cache_key(path="/a")
        return attributes, 85 <= side.ttl(key) <= 90, side.exists("b-key"), renders

    assert same(both, scenario) == (("a", 30, True), True, True, ["a", "b"])


# -- 5. CachedResponse --------------------------------------------------------------
def test_cached_response_carries_its_timeout(both):
    def scenario(side: Side) -> Any:
        @side.app.get("/long")
        @side.cache.cached(timeout=60)
        def long():
            return side.CachedResponse(make_response("long"), 500)

        @side.app.get("/default")
        @side.cache.cached(timeout=60)
        def default():
            return side.CachedResponse(make_response("default"), None)

        texts = [side.client.get(path).text for path in ("/long", "/default", "/long")]
        return texts, 495 <= side.ttl("view//long") <= 500, 55 <= side.ttl("view//default") <= 60

    assert same(both, scenario) == (["long", "default", "long"], True, True)


# -- 6. response_filter, forced_update, unless, is_stale, cache_none, hash_method, source_check
def test_response_filter_receives_what_the_view_returned(both):
    def scenario(side: Side) -> Any:
        seen = []

        def keep(rv):
            seen.append(rv)
            return rv != "skip"

        @side.app.get("/text/<word>")
        @side.cache.cached(timeout=60, response_filter=keep)
        def text(word):
            return word

        @side.app.get("/pair")
        @side.cache.cached(timeout=60, response_filter=keep)
        def pair():
            return "body", 200, {"X-A": "1"}

        for path in ("/text/skip", "/text/skip", "/text/ok", "/text/ok", "/pair", "/pair"):
            side.client.get(path)
        return seen

    assert same(both, scenario) == ["skip", "skip", "ok", ("body", 200, {"X-A": "1"})]


def test_forced_update_and_unless_receive_the_arguments(both):
    def scenario(side: Side) -> Any:
        calls = []
        seen = []

        def force(x, scale=1):
            seen.append(("force", x, scale))
            return x == 2

        def skip(f, x, scale=1):
            seen.append(("unless", f.__name__, x))
            return x == 3

        @side.cache.memoize(timeout=60, forced_update=force, unless=skip)
        def scaled(x, scale=1):
            calls.append(x)
            return x * scale

        with side.app.app_context():
            for x in (1, 1, 2, 2, 3, 3):
                scaled(x, scale=10)
        return calls, seen

    calls, seen = same(both, scenario)
    assert calls == [1, 2, 2, 3, 3]
    assert ("force", 2, 10) in seen and ("unless", "scaled", 3) in seen


def test_cached_forced_update_with_the_view_arguments(both):
    def scenario(side: Side) -> Any:
        renders = []

        @side.app.get("/n/<int:n>")
        @side.cache.cached(timeout=60, forced_update=lambda n: n == 0)
        def number(n):
            renders.append(n)
            return str(n)

        for path in ("/n/0", "/n/0", "/n/1", "/n/1"):
            side.client.get(path)
        return renders

    assert same(both, scenario) == [0, 0, 1]


def test_is_stale(both):
    def scenario(side: Side) -> Any:
        calls = []

        @side.cache.memoize(timeout=60, is_stale=lambda value: value["version"] < 2)
        def doc(x):
            calls.append(x)
            return {"version": len(calls)}

        @side.cache.memoize(timeout=60, is_stale=lambda value, x: x == "always")
        def other(x):
            calls.append(x)
            return x

        @side.cache.cached(timeout=60, key_prefix="helper", is_stale=lambda value: value == 1)
        def helper():
            calls.append("helper")
            return calls.count("helper")

        with side.app.app_context():
            results = [doc("a"), doc("a"), doc("a"), other("always"), other("always"), other("once"),
                       other("once")]
        with side.app.test_request_context("/"):
            results += [helper(), helper(), helper()]
        return results, calls

    results, _ = same(both, scenario)
    assert results[:3] == [{"version": 1}, {"version": 2}, {"version": 2}]
    assert results[-3:] == [1, 2, 2]


def test_memoize_cache_none(both):
    """Documented difference: memoize caches ``None`` unless ``cache_none=False``."""
    def scenario(side: Side, x: int, **options: Any) -> int:
        calls = []

        @side.cache.memoize(timeout=60, **options)
        def find(x):
            calls.append(x)

        with side.app.app_context():
            find(x)
            find(x)
        return len(calls)

    theirs, ours = both
    assert (scenario(theirs, 1), scenario(ours, 1)) == (2, 1)
    # A None cached before is a miss for cache_none=False, as in Flask-Caching.
    assert scenario(theirs, 1, cache_none=False) == scenario(ours, 1, cache_none=False) == 2
    assert scenario(theirs, 2, cache_none=False) == scenario(ours, 2, cache_none=False) == 2
    assert scenario(theirs, 3, cache_none=True) == scenario(ours, 3, cache_none=True) == 1


def test_hash_method(both):
    def scenario(side: Side) -> Any:
        calls = []

        @side.cache.memoize(timeout=60, hash_method=hashlib.md5)
        def f(x):
            calls.append(x)
            return x

        @side.app.get("/q")
        @side.cache.cached(timeout=60, query_string=True, hash_method=hashlib.md5)
        def q():
            calls.append("q")
            return "q"

        with side.app.app_context():
            f("x" * 500)
            f("x" * 500)
        side.client.get("/q?a=1")
        side.client.get("/q?a=1")
        return calls

    assert same(both, scenario) == ["x" * 500, "q"]


def _versions() -> tuple[Callable[[int], str], Callable[[int], str]]:
    """Two functions with one module and qualified name but different code."""
    def compute(x):
        return f"one {x}"

    first = compute

    def compute(x):  # redefined on purpose: new code, same name
        return f"two {x}"

    return first, compute


@pytest.mark.parametrize("source_check", [False, True])
def test_memoize_source_check(build, source_check):
    def scenario(side: Side) -> Any:
        first, second = _versions()
        with side.app.app_context():
            return (side.cache.memoize(timeout=60, source_check=source_check)(first)(1),
                    side.cache.memoize(timeout=60, source_check=source_check)(second)(1))

    expected = ("one 1", "two 1") if source_check else ("one 1", "one 1")
    assert same(build(), scenario) == expected


def test_source_check_default_from_the_config(build):
    def scenario(side: Side) -> Any:
        first, second = _versions()
        with side.app.app_context():
            return side.cache.memoize(timeout=60)(first)(1), side.cache.memoize(timeout=60)(second)(1)

    assert same(build(CACHE_SOURCE_CHECK=True), scenario) == ("one 1", "two 1")


def test_cached_source_check(both):
    def scenario(side: Side) -> Any:
        first, second = _versions()
        with side.app.test_request_context("/"):
            return (side.cache.cached(timeout=60, key_prefix="src", source_check=True)(first)(1),
                    side.cache.cached(timeout=60, key_prefix="src", source_check=True)(second)(1),
                    side.cache.cached(timeout=60, key_prefix="nosrc")(first)(1),
                    side.cache.cached(timeout=60, key_prefix="nosrc")(second)(1))

    assert same(both, scenario) == ("one 1", "two 1", "one 1", "one 1")


# -- 7. __caching_id__ ----------------------------------------------------------------
def test_caching_id_is_used_for_instances(both):
    def scenario(side: Side) -> Any:
        calls = []

        class User:
            def __init__(self, ident):
                self.ident = ident

            def __caching_id__(self):
                return f"user-{self.ident}"

            @side.cache.memoize(timeout=60)
            def profile(self):
                calls.append(self.ident)
                return {"id": self.ident}

        with side.app.app_context():
            values = [User(1).profile(), User(1).profile(), User(2).profile()]
        return values, calls

    assert same(both, scenario) == ([{"id": 1}, {"id": 1}, {"id": 2}], [1, 2])


# -- 8. delete_memoized forms ------------------------------------------------------------
def test_delete_memoized_explicit_forms(both):
    def scenario(side: Side) -> Any:
        calls = []

        class Adder:
            def __init__(self, base):
                self.base = base

            def __repr__(self):
                return f"Adder({self.base})"

            @side.cache.memoize(timeout=60)
            def add(self, x):
                calls.append(("add", self.base, x))
                return self.base + x

            @classmethod
            @side.cache.memoize(timeout=60)
            def total(cls, a, b):
                calls.append(("total", a, b))
                return a + b

        one, two = Adder(1), Adder(2)
        errors = []
        with side.app.app_context():
            for obj in (one, two):
                obj.add(3)
            Adder.total(1, 2)
            side.cache.delete_memoized(one.add, one, 3)  # explicit instance
            one.add(3)
            side.cache.delete_memoized(two.add, 3)  # implied instance
            two.add(3)
            side.cache.delete_memoized(Adder.add, one, 3)  # through the class
            one.add(3)
            side.cache.delete_memoized(Adder.total, Adder, 1, 2)
            Adder.total(1, 2)
            try:
                side.cache.delete_memoized(Adder.total, 1, 2)
            except ValueError:
                errors.append("ValueError")
            Adder.total(1, 2)  # still cached
            side.cache.delete_memoized(one.add)  # every entry of one
            one.add(3)
            two.add(3)
        return calls, errors

    calls, errors = same(both, scenario)
    assert errors == ["ValueError"]
    assert calls == [("add", 1, 3), ("add", 2, 3), ("total", 1, 2), ("add", 1, 3), ("add", 2, 3),
                     ("add", 1, 3), ("total", 1, 2), ("add", 1, 3)]


# -- 9. memoized generators ---------------------------------------------------------------
def test_memoized_generator_is_joined_and_cached(both):
    def scenario(side: Side) -> Any:
        calls = []

        @side.cache.memoize(timeout=60)
        def text(n):
            calls.append(n)
            for i in range(n):
                yield f"<{i}>"

        @side.cache.memoize(timeout=60)
        def raw(n):
            calls.append(n)
            yield b"a"
            yield b"b"

        @side.cache.memoize(timeout=60)
        def items(n):
            calls.append(n)
            yield from range(n)

        with side.app.app_context():
            values = [text(2), text(2), raw(1), raw(1), items(3), items(3)]
        return values, calls

    assert same(both, scenario) == (["<0><1>", "<0><1>", b"ab", b"ab", [0, 1, 2], [0, 1, 2]], [2, 1, 3])


# -- 10. Flask-Caching's signals ---------------------------------------------------------------
def _record(side: Side, events: list[tuple[Any, ...]]) -> list[tuple[Any, Callable[..., None]]]:
    module = our_signals if side.ours else flask_caching.signals
    hooks = []
    for name in ("cache_view_hit", "cache_view_miss", "cache_memoize_hit", "cache_memoize_miss"):
        def receiver(sender, _name=name, **kwargs):
            assert kwargs.pop("cache") is side.cache
            assert isinstance(kwargs.pop("cache_key"), str)
            f = kwargs.pop("f", None)
            events.append((_name, getattr(f, "__name__", None), kwargs["args"], kwargs["kwargs"]))

        signal = getattr(module, name)
        signal.connect(receiver)
        hooks.append((signal, receiver))
    return hooks


def _signal_scenario(side: Side) -> list[tuple[Any, ...]]:
    events: list[tuple[Any, ...]] = []

    @side.cache.memoize(timeout=60)
    def square(x, power=2):
        return x ** power

    @side.app.get("/v/<int:n>")
    @side.cache.cached(timeout=60)
    def view(n):
        return str(n)

    hooks = _record(side, events)
    try:
        with side.app.app_context():
            square(3, power=2)
            square(3, power=2)
        side.client.get("/v/1")
        side.client.get("/v/1")
    finally:
        for signal, receiver in hooks:
            signal.disconnect(receiver)
    return events


@pytest.mark.parametrize("setting", ["CACHE_ENABLE_SIGNALS", "REDIS_ENABLE_SIGNALS"])
def test_signals_with_their_payloads(build, setting):
    theirs, ours = build(**{setting: True})
    events = _signal_scenario(ours)
    if setting == "CACHE_ENABLE_SIGNALS":
        assert _signal_scenario(theirs) == events
    assert events == [
        ("cache_memoize_miss", "square", (3,), {"power": 2}),
        ("cache_memoize_hit", "square", (3,), {"power": 2}),
        ("cache_view_miss", None, (), {"n": 1}),
        ("cache_view_hit", None, (), {"n": 1}),
    ]


def test_signals_are_off_by_default_and_our_own_stay(both):
    assert same(both, _signal_scenario) == []
    _, ours = both
    seen = []
    with our_signals.cache_hit.connected_to(lambda sender, **kw: seen.append(kw["key"])), \
            ours.app.app_context():
        ours.cache.set("k", 1)
        ours.cache.get("k")
    assert seen == ["k"]


# -- 11. a subclass overriding get sees the decorators' reads ------------------------------------
def test_a_subclass_sees_the_decorators_reads(redis_server):
    def scenario(base: type, app: Flask) -> list[str]:
        reads: list[str] = []

        class Spy(base):  # type: ignore[misc, valid-type]
            def get(self, key, *args, **kwargs):
                reads.append(key)
                return super().get(key, *args, **kwargs)

        cache = Spy(app)

        @cache.memoize(timeout=60)
        def f(x):
            return x

        with app.app_context():
            f(1)
            reads.clear()
            f(1)
        return reads

    their_app = _their_app(redis_server)
    our_app = Flask("spy")
    our_app.config.update(SECRET_KEY="s", REDIS_URL=redis_server.url, REDIS_SESSION=False)
    try:
        assert len(scenario(flask_caching.Cache, their_app)) == 1
        assert len(scenario(RedisCache, our_app)) == 1
    finally:
        get_state(our_app).close()


# -- 12. query_string: repeated parameters in any order are one entry ------------------------------
def test_query_string_order_and_repeats(both):
    def scenario(side: Side) -> Any:
        renders = []

        @side.app.get("/s")
        @side.cache.cached(timeout=60, query_string=True)
        def search():
            renders.append(request.query_string)
            return "s"

        for query in ("a=1&b=2&b=3", "b=3&a=1&b=2", "b=2&b=3&a=1", "a=1&b=3", "a=2&b=2&b=3"):
            side.client.get(f"/s?{query}")
        return len(renders)

    assert same(both, scenario) == 3


# -- 13. cache.app; delete_many and clear --------------------------------------------------------
def test_cache_app(both):
    def scenario(side: Side) -> bool:
        return side.cache.app is side.app

    assert same(both, scenario) is True


def test_delete_many_and_clear_return_values(both):
    """Documented difference: counts instead of Flask-Caching's list and bool."""
    def scenario(side: Side) -> Any:
        with side.app.app_context():
            side.cache.set_many({"a": 1, "b": 2, "c": 3})
            deleted = side.cache.delete_many("a", "b", "missing")
            left = side.cache.get_many("a", "b", "c")
            cleared = side.cache.clear()
            return deleted, left, cleared, side.keys()

    theirs, ours = both
    assert scenario(theirs) == (["a", "b", "missing"], [None, None, 3], True, [])
    assert scenario(ours) == (2, [None, None, 3], 1, [])


# -- 14. the {% cache %} template tag -------------------------------------------------------------
def test_template_fragment_cache(both):
    def scenario(side: Side) -> Any:
        renders = []

        def count():
            renders.append(1)
            return len(renders)

        page = "{% cache 60, 'sidebar', user %}<p>{{ count() }}</p>{% endcache %}|{{ count() }}"
        with side.app.test_request_context("/"):
            out = [render_template_string(page, count=count, user=user) for user in ("ann", "ann", "bob")]
            key = (our_fragment_key if side.ours else flask_caching.make_template_fragment_key)("sidebar",
                                                                                           ["ann"])
            present = side.exists(key), 55 <= side.ttl(key) <= 60
            deleting = "{% cache 'del', 'sidebar', user %}x{% endcache %}"
            out.append(render_template_string(deleting, user="ann"))
            gone = not side.exists(key)
            out.append(render_template_string("{% cache None %}{{ count() }}{% endcache %}", count=count))
        return out, key, present, gone

    out, key, present, gone = same(both, scenario)
    assert out == ["<p>1</p>|2", "<p>1</p>|3", "<p>4</p>|5", "x", "6"]
    assert key == "_template_fragment_cache_sidebar_ann" and present == (True, True) and gone


def test_template_fragment_cache_fails_open(make_app):
    from .servers import free_port

    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_RECONNECT_ATTEMPTS=0,
                   REDIS_SESSION=False)
    with app.test_request_context("/"):
        assert render_template_string("{% cache 60, 'k' %}body{% endcache %}") == "body"
        assert render_template_string("{% cache 'del', 'k' %}body{% endcache %}") == "body"


# -- 15. config= and two instances on one app -----------------------------------------------------
def test_instance_config_and_two_instances_on_one_app(redis_server):
    their_app = Flask("two-theirs")
    settings = {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": redis_server.url}
    theirs = [flask_caching.Cache(their_app, config={**settings, "CACHE_KEY_PREFIX": f"{name}_"})
              for name in ("a", "b")]
    our_app = Flask("two-ours")
    our_app.config.update(SECRET_KEY="s", REDIS_URL=redis_server.url)
    before = dict(our_app.config)
    first = RedisCache(our_app, config={"REDIS_NAMESPACE": "a"})
    second = RedisCache()
    second.init_app(our_app, config={"REDIS_NAMESPACE": "b", "REDIS_DEFAULT_TIMEOUT": 30})
    try:
        for caches, app in ((theirs, their_app), ((first, second), our_app)):
            with app.app_context():
                caches[0].set("k", "from a")
                caches[1].set("k", "from b")
                assert [c.get("k") for c in caches] == ["from a", "from b"]
        client = redis_server.client()
        assert client.exists("a_k", "b_k", "a:k", "b:k") == 4
        assert 25 <= client.ttl("b:k") <= 30 and client.ttl("a:k") > 250
        assert dict(our_app.config) == before  # nothing written into app.config
        assert our_app.extensions["rediscache"] is first
        assert our_app.session_interface is get_state(our_app).extras["session_interface"]
        with pytest.raises(RuntimeError, match="already"):
            second.init_app(our_app)
        with pytest.raises(ValueError, match="config"):
            RedisCache(config=["not", "a", "dict"])  # type: ignore[arg-type]
    finally:
        for cache in (first, second):
            cache.state(our_app).close()


# -- 16/18. The same Flask-Caching configuration, given to each library ---------------
@pytest.mark.parametrize("prefix", ["app_", "app:"])
def test_the_same_cache_config_gives_the_same_timeouts_and_keys(redis_server, prefix):
    """An app's existing CACHE_* block, unchanged, drives both libraries: the
    default timeout, the server and the key prefix (ours adds a ':' after a
    prefix that has none: documented in configuration.rst, "peer keys")."""
    config = {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": redis_server.url,
              "CACHE_DEFAULT_TIMEOUT": 42, "CACHE_KEY_PREFIX": prefix}
    results = {}
    for name, build in (("theirs", flask_caching.Cache), ("ours", RedisCache)):
        app = Flask(f"{name}-config")
        app.config.update(SECRET_KEY="s", DEBUG=True, **config)  # debug: ours may not fall back to memory://
        cache = build(app)
        with app.app_context():
            assert cache.set("k", name) is True
            assert cache.get("k") == name
        found = [k for k in redis_server.client().keys("app*") if k.endswith(b"k")]
        results[name] = (found, [redis_server.client().ttl(k) for k in found])
        redis_server.client().delete(*found)
        if name == "ours":
            get_state(app).close()
    (their_keys, their_ttls), (our_keys, our_ttls) = results["theirs"], results["ours"]
    assert their_ttls == our_ttls == [42]
    assert their_keys == [f"{prefix}k".encode()]
    assert our_keys == [(prefix if prefix.endswith(":") else prefix + ":").encode() + b"k"]


def test_null_cache_type_misses_and_calls_through_on_both(redis_server):
    calls = {"theirs": 0, "ours": 0}
    for name, build in (("theirs", flask_caching.Cache), ("ours", RedisCache)):
        app = Flask(f"{name}-null")
        app.config.update(SECRET_KEY="s", REDIS_URL=redis_server.url, CACHE_TYPE="NullCache",
                          CACHE_NO_NULL_WARNING=True)
        cache = build(app)

        @cache.memoize()
        def f(x: int, side: str = name) -> int:
            calls[side] += 1
            return x

        with app.app_context():
            cache.set("k", "v")
            assert cache.get("k") is None
            assert f(1) == 1 and f(1) == 1
        if name == "ours":
            get_state(app).close()
    assert calls == {"theirs": 2, "ours": 2}
    assert redis_server.client().keys("*") == []

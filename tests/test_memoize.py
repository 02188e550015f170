"""@cache.memoize against a real redis-server: keys, binding, methods, async, deletion, cost."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from flask_rediscache import signals

from .servers import free_port
from .support import commands


class Calls:
    """A function's call log."""

    def __init__(self):
        self.args = []

    def __len__(self):
        return len(self.args)


def memo_keys(server, name=""):
    return sorted(k for k in server.client().keys("cache:memoize:*") if name.encode() in k)


# -- binding ------------------------------------------------------------------
def test_arguments_bound_to_the_signature_share_one_entry(cache, redis_server):
    calls = Calls()

    @cache.memoize()
    def f(a, b=2):
        calls.args.append((a, b))
        return a + b

    assert [f(1), f(1, 2), f(a=1, b=2), f(b=2, a=1), f(1, b=2), f(a=1)] == [3] * 6
    assert len(calls) == 1
    assert f(1, 3) == 4 and f(b=3, a=1) == 4
    assert len(calls) == 2
    assert len(memo_keys(redis_server, "f")) == 2


@pytest.mark.parametrize("call", [
    lambda g: g(1, 2, 3, x=1, y=2),
    lambda g: g(1, 2, 3, y=2, x=1),
    lambda g: g(1, 2, 3, y=2, x=1, z=9),
])
def test_variadic_signatures(cache, call):
    calls = Calls()

    @cache.memoize()
    def g(a, *rest, z=9, **options):
        calls.args.append(1)
        return (a, rest, z, sorted(options.items()))

    first = call(g)
    assert g(1, 2, 3, x=1, y=2) == first
    assert g(1, 2, 3, y=2, x=1, z=9) == first
    assert len(calls) == 1
    g(1, 2, 3, x=1, y=3)
    g(1, 2, x=1, y=2)
    assert len(calls) == 3


def test_keyword_only_and_positional_only(cache):
    calls = Calls()

    @cache.memoize()
    def h(a, /, b, *, c=3):
        calls.args.append(1)
        return a + b + c

    assert h(1, 2) == h(1, b=2) == h(1, 2, c=3) == h(1, b=2, c=3) == 6
    assert len(calls) == 1
    assert h(1, 2, c=4) == 7
    assert len(calls) == 2


def test_a_call_that_does_not_fit_raises_like_the_function(cache):
    @cache.memoize()
    def f(a, b=2):
        return a

    with pytest.raises(TypeError):
        f()
    with pytest.raises(TypeError):
        f(1, 2, 3)
    with pytest.raises(TypeError):
        f(1, c=3)
    with pytest.raises(TypeError):
        f(1, a=1)


def test_arguments_of_different_types_do_not_collide(cache):
    @cache.memoize()
    def ident(x):
        return x

    for value in (1, "1", 1.0, True, (1,), [1], None, b"1"):
        assert ident(value) == value and type(ident(value)) is type(value)


def test_none_results_are_cached(cache):
    calls = Calls()

    @cache.memoize()
    def nothing(x):
        calls.args.append(x)

    assert nothing(1) is None and nothing(1) is None
    assert len(calls) == 1


def test_cache_none_false_recomputes_none(cache):
    calls = Calls()

    @cache.memoize(cache_none=False)
    def nothing(x):
        calls.args.append(x)

    nothing(1)
    nothing(1)
    assert len(calls) == 2


def test_uncached(cache):
    calls = Calls()

    @cache.memoize()
    def f(x):
        calls.args.append(x)
        return x

    f(1)
    assert f.uncached(1) == 1
    assert len(calls) == 2
    assert f.__name__ == "f"


def test_long_arguments_are_digested_and_still_deletable(cache, redis_server):
    @cache.memoize()
    def f(text):
        return len(text)

    assert f("x" * 5000) == 5000
    (key,) = memo_keys(redis_server)
    assert len(key) <= 250 and b"test_memoize" in key
    assert cache.delete_memoized(f) == 1


def test_timeouts(cache, redis_server):
    @cache.memoize(timeout=50)
    def short(x):
        return x

    @cache.memoize(timeout=0)
    def forever(x):
        return x

    short(1)
    forever(1)
    r = redis_server.client()
    (short_key,) = memo_keys(redis_server, "short")
    (forever_key,) = memo_keys(redis_server, "forever")
    assert 45 <= r.ttl(short_key) <= 50
    assert r.ttl(forever_key) == -1
    with pytest.raises(ValueError, match="timeout"):
        cache.memoize(timeout=-3)


# -- cost ---------------------------------------------------------------------
def test_a_hit_is_exactly_one_get(cache, redis_server):
    @cache.memoize()
    def load(pid):
        return {"id": pid}

    load(7)
    load(7)  # warm: the connection is open
    redis_server.reset_stats()
    assert load(7) == {"id": 7}
    assert commands(redis_server) == {"get": 1}


def test_a_miss_is_get_then_set(cache, redis_server):
    @cache.memoize()
    def load(pid):
        return {"id": pid}

    load(0)
    redis_server.reset_stats()
    load(8)
    assert commands(redis_server) == {"get": 1, "set": 1}


# -- methods ------------------------------------------------------------------
class Repo:
    def __init__(self, ident, calls):
        self.ident = ident
        self.calls = calls

    def __cache_key__(self):
        return f"repo-{self.ident}"

    def load(self, x, y=0):
        self.calls.args.append((self.ident, x))
        return (self.ident, x + y)


class Plain:
    calls = Calls()

    def __init__(self, ident):
        self.ident = ident

    def __repr__(self):
        return f"Plain({self.ident})"

    def load(self, x):
        Plain.calls.args.append((self.ident, x))
        return self.ident * x

    @classmethod
    def build(cls, x):
        Plain.calls.args.append(("cls", x))
        return f"{cls.__name__}{x}"


def test_method_keyed_on_cache_key(cache, monkeypatch):
    calls = Calls()
    monkeypatch.setattr(Repo, "cached_load", cache.memoize()(Repo.load), raising=False)
    a1, a2, b = Repo(1, calls), Repo(1, calls), Repo(2, calls)
    assert a1.cached_load(5) == (1, 5)
    assert a2.cached_load(5) == (1, 5)  # same __cache_key__: same entry
    assert a1.cached_load(x=5, y=0) == (1, 5)
    assert b.cached_load(5) == (2, 5)
    assert len(calls) == 2


def test_method_keyed_on_repr_and_classmethod(cache, monkeypatch):
    monkeypatch.setattr(Plain, "calls", Calls())
    monkeypatch.setattr(Plain, "cached_load", cache.memoize()(Plain.load), raising=False)
    monkeypatch.setattr(Plain, "cached_build", classmethod(cache.memoize()(Plain.build.__func__)),
                        raising=False)
    assert Plain(2).cached_load(3) == 6
    assert Plain(2).cached_load(3) == 6
    assert Plain(3).cached_load(3) == 9
    assert Plain.cached_build(1) == "Plain1" and Plain.cached_build(1) == "Plain1"
    assert len(Plain.calls) == 3


def test_delete_memoized_on_methods(cache, monkeypatch):
    calls = Calls()
    monkeypatch.setattr(Repo, "cached_load", cache.memoize()(Repo.load), raising=False)
    a, b = Repo(1, calls), Repo(2, calls)
    for obj in (a, b):
        obj.cached_load(1)
        obj.cached_load(2)
    assert len(calls) == 4
    assert cache.delete_memoized(a.cached_load, 1) == 1  # that entry only
    a.cached_load(1)
    a.cached_load(2)
    assert len(calls) == 5
    assert cache.delete_memoized(a.cached_load) == 2  # every entry of a, none of b
    a.cached_load(1)
    b.cached_load(1)
    assert len(calls) == 6
    assert cache.delete_memoized(Repo.cached_load, b, 1) == 1  # unbound + instance
    assert cache.delete_memoized(Repo.cached_load) == 2  # every instance: a(1) and b(2)


def test_args_to_ignore_self_shares_between_instances(cache):
    calls = Calls()

    class Service:
        @cache.memoize(args_to_ignore=["self", "trace"])
        def get(self, x, trace=None):
            calls.args.append(x)
            return x

    Service().get(1, trace="a")
    Service().get(1, trace="b")
    assert len(calls) == 1
    with pytest.raises(ValueError, match="nope"):
        cache.memoize(args_to_ignore=["nope"])(lambda x: x)


# -- deletion -----------------------------------------------------------------
def test_delete_memoized_with_and_without_arguments(cache, redis_server):
    calls = Calls()

    @cache.memoize()
    def f(a, b=2):
        calls.args.append(a)
        return a

    @cache.memoize()
    def f2(a):  # its prefix extends f's name: must survive f's deletion
        return a

    for i in range(3):
        f(i)
    f("*")
    f2(1)
    cache.set("unrelated", 1)
    assert cache.delete_memoized(f, 1) == 1
    assert cache.delete_memoized(f, a=1, b=2) == 0  # same entry, already gone
    f(1)
    assert len(calls) == 5
    assert cache.delete_memoized(f) == 4
    assert memo_keys(redis_server, "f2") and cache.get("unrelated") == 1
    f(0)
    assert len(calls) == 6
    with pytest.raises(TypeError, match="not decorated"):
        cache.delete_memoized(lambda: 1)
    with pytest.raises(TypeError):
        cache.delete_memoized(f, 1, 2, 3)


# -- options ------------------------------------------------------------------
def test_unless_forms(cache):
    calls = Calls()
    skip = {"on": False}

    @cache.memoize(unless=lambda: skip["on"])
    def f(x):
        calls.args.append(x)
        return x

    @cache.memoize(unless=lambda func, x: x < 0)
    def g(x):
        calls.args.append(x)
        return x

    f(1)
    f(1)
    skip["on"] = True
    f(1)
    g(-1)
    g(-1)
    g(1)
    g(1)
    assert len(calls) == 5


def test_forced_update_and_response_filter(cache):
    calls = Calls()
    force = {"on": False}

    @cache.memoize(forced_update=lambda: force["on"], response_filter=lambda v: v != "bad")
    def f(x):
        calls.args.append(x)
        return "bad" if x == 0 else f"v{len(calls)}"

    assert f(1) == "v1" and f(1) == "v1"
    force["on"] = True
    assert f(1) == "v2"
    force["on"] = False
    assert f(1) == "v2"
    f(0)
    f(0)
    assert len(calls) == 4


def test_make_name(cache, redis_server):
    @cache.memoize(make_name=lambda name: "custom.name")
    def f(x):
        return x

    f(1)
    assert memo_keys(redis_server) == [b"cache:memoize:custom.name:(1,)"]
    assert cache.delete_memoized(f) == 1


# -- async --------------------------------------------------------------------
def test_async_def(cache, app):
    calls = Calls()

    @cache.memoize()
    async def fetch_user(uid, full=False):
        calls.args.append(uid)
        await asyncio.sleep(0)
        return {"uid": uid, "full": full}

    async def main():
        a = await fetch_user(1)
        b = await fetch_user(1, full=False)
        c = await fetch_user(uid=2)
        return a, b, c

    a, b, c = asyncio.run(main())
    assert a == b == {"uid": 1, "full": False} and c["uid"] == 2
    assert len(calls) == 2
    assert asyncio.run(fetch_user.uncached(1)) == a
    assert cache.delete_memoized(fetch_user, 1) == 1
    asyncio.run(fetch_user(1))
    assert len(calls) == 4  # one for uncached, one after the deletion


def test_async_def_in_an_async_view(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url)
    cache = app.extensions["rediscache"]
    calls = Calls()

    @cache.memoize()
    async def slow(x):
        calls.args.append(x)
        return x * 2

    @app.get("/<int:x>")
    async def view(x):
        return {"value": await slow(x)}

    client = app.test_client()
    assert client.get("/4").json == {"value": 8}
    assert client.get("/4").json == {"value": 8}
    assert len(calls) == 1


# -- apps, signals, failure ---------------------------------------------------
def test_one_decorated_function_serves_several_apps(redis_server, two_apps):
    cache, apps = two_apps
    calls = Calls()

    @cache.memoize()
    def f(x):
        calls.args.append(x)
        return x

    for app in apps:
        with app.app_context():
            f(1)
            f(1)
    assert len(calls) == 2
    keys = sorted(redis_server.client().keys("*"))
    assert [k.split(b":")[0] for k in keys] == [b"one", b"two"]


def test_signals_once_per_call(cache, app):
    events = []

    @cache.memoize()
    def f(x):
        return x

    with signals.cache_hit.connected_to(lambda s, **kw: events.append(("hit", s, kw["key"]))), \
            signals.cache_miss.connected_to(lambda s, **kw: events.append(("miss", s, kw["key"]))):
        f(1)
        f(1)
    assert [(e[0], e[1]) for e in events] == [("miss", app), ("hit", app)]
    assert events[0][2] == events[1][2] and "memoize" in events[0][2] and events[0][2].endswith("(1,)")


def test_corrupt_entry_is_recomputed_and_replaced(cache, redis_server):
    calls = Calls()

    @cache.memoize()
    def f(x):
        calls.args.append(x)
        return {"x": x}

    f(1)
    (key,) = memo_keys(redis_server)
    redis_server.client().set(key, b"\xf1\x00" + b"\x00" * 40)
    assert f(1) == {"x": 1}
    assert f(1) == {"x": 1}
    assert len(calls) == 2


def test_unpicklable_result_is_returned_uncached(cache, caplog):
    calls = Calls()

    @cache.memoize()
    def f(x):
        calls.args.append(x)
        return threading.Lock()

    with caplog.at_level(logging.WARNING, logger="flask_rediscache"):
        f(1)
        f(1)
    assert len(calls) == 2
    assert sum("cannot be pickled" in r.getMessage() for r in caplog.records) == 1


def test_redis_down_calls_the_function(make_app):
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_RECONNECT_ATTEMPTS=0,
                   REDIS_RACE_CONDITION_TTL=5)
    cache = app.extensions["rediscache"]
    calls = Calls()

    @cache.memoize()
    def f(x):
        calls.args.append(x)
        return x + 1

    @cache.memoize()
    async def g(x):
        calls.args.append(x)
        return x + 2

    with app.app_context():
        assert f(1) == 2 and f(1) == 2
        assert asyncio.run(g(1)) == 3
        assert cache.delete_memoized(f, 1) == 0
        assert cache.delete_memoized(f) == 0
    assert len(calls) == 3


def test_redis_hung_costs_little_once_the_breaker_opens(make_app, redis_factory):
    server = redis_factory()
    app = make_app(REDIS_URL=server.url, REDIS_READ_TIMEOUT=0.2, REDIS_RECONNECT_ATTEMPTS=0,
                   REDIS_CIRCUIT_BREAKER_THRESHOLD=2)
    cache = app.extensions["rediscache"]

    @cache.memoize()
    def f(x):
        return x

    with app.app_context():
        f(1)
        server.pause()
        try:
            f(1)
            f(1)  # two timeouts open the breaker
            start = time.perf_counter()
            for _ in range(100):
                assert f(1) == 1
            assert time.perf_counter() - start < 0.5
        finally:
            server.resume()


def _forms(*params):
    """Every way to pass the first k parameters positionally and the rest by keyword."""
    for k in range(len(params) + 1):
        yield tuple(v for _, v in params[:k]), {n: v for n, v in params[k:]}


@pytest.mark.parametrize("define", [
    lambda: (lambda a, b=2, c=3: None),
    lambda: (lambda a, /, b, c=3: None),
    lambda: (lambda a, b=2, *, c=3, d=4: None),
    lambda: (lambda a=1, b=2: None),
])
def test_fast_binder_agrees_with_signature_bind(define):
    import inspect

    from flask_rediscache.memoize_keys import _Binder

    func = define()
    binder = _Binder(func)
    sig = inspect.signature(func)
    names = list(sig.parameters)
    values = {n: f"v{i}" for i, n in enumerate(names)}
    seen = 0
    for drop in range(len(names) + 1):  # also leave out trailing parameters with defaults
        params = [(n, values[n]) for n in names[:len(names) - drop]]
        for args, kwargs in _forms(*params):
            try:
                bound = sig.bind(*args, **kwargs)
            except TypeError:
                assert binder.bind(args, kwargs) is None, (args, kwargs)
                continue
            bound.apply_defaults()
            assert binder.bind(args, kwargs) == tuple(bound.arguments.values()), (args, kwargs)
            seen += 1
    assert seen >= 3

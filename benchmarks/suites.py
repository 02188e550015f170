"""What is measured: the same operations for raw redis-py, flask-rediscache
and its peers (Flask-Caching, Flask-Session, Flask's cookie session).

Every contender talks to the same local redis-server, in its own key space.
A contender whose library lacks a feature is listed as unavailable with the
reason, instead of being silently dropped. Before a request benchmark is
timed, its responses are checked (the session really holds the user, the
counter really increments), so a broken contender cannot look fast.
The local cache's benchmarks (``REDIS_LOCAL_CACHE``) are in :mod:`benchmarks.local`.
"""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
from flask import Flask, jsonify, session

from flask_rediscache import RedisCache

SECRET = "benchmark-secret-key"
PRODUCT: dict[str, Any] = {"id": 7, "name": "Pour-over kettle", "price": "39.00", "stock": 12,
                           "tags": ["kettle", "brewing", "gooseneck"]}
BATCH = 100
PAGE_ITEMS = 20

OURS = "flask-rediscache"
#: flask-rediscache with a receiver on the instrumentation signals.
OURS_OBSERVED = "flask-rediscache (observed)"
RAW = "redis-py"
#: Raw redis-py on the bounded pool flask-rediscache uses (REDIS_POOL_SIZE/REDIS_POOL_TIMEOUT).
RAW_BLOCKING = "redis-py (bounded pool)"
FC = "Flask-Caching"
FS = "Flask-Session"
COOKIE = "cookie session"
COOKIE_RT = "cookie session + 1 GET"
PLAIN = "no cache"
SINGLES = "singles"


def product(pid: int) -> dict[str, Any]:
    return {**PRODUCT, "id": pid}


def render_page() -> str:
    items = "".join(f"<li>{PRODUCT['name']} #{i}</li>" for i in range(PAGE_ITEMS))
    return f"<html><body><ul>{items}</ul></body></html>"


def _register_session_views(app: Flask) -> None:
    @app.post("/login")
    def login() -> Any:
        session["user"] = "alice"
        session["cart"] = [1, 2, 3]
        return jsonify(ok=True)

    @app.get("/me")
    def me() -> Any:
        return jsonify(user=session.get("user"), cart=session.get("cart"))

    @app.post("/bump")
    def bump() -> Any:
        session["n"] = session.get("n", 0) + 1
        return jsonify(n=session["n"])


class Apps:
    """The apps and clients of every contender, all on one redis-server."""

    def __init__(self, url: str) -> None:
        self.url = url
        # Any: redis-py types replies as a union including str; these are bytes (no decoding).
        self.raw: Any = redis.Redis.from_url(url)
        self.ours_app, self.ours = self._ours()
        self.fc_app, self.fc = self._flask_caching()
        self.fs_app, self.fs_error = self._flask_session()
        self.cookie_app = self._plain("bench-cookie")
        raw = self.raw
        raw.set(b"raw:small", b"hello")

        @self.cookie_app.get("/me-plus-get")
        def me_plus_get() -> Any:
            raw.get(b"raw:small")
            return jsonify(user=session.get("user"), cart=session.get("cart"))

    # -- the apps ----------------------------------------------------------
    def _ours(self) -> tuple[Flask, RedisCache]:
        app = Flask("bench-ours")
        app.config.update(SECRET_KEY=SECRET, REDIS_URL=self.url, REDIS_NAMESPACE="ours")
        cache = RedisCache(app)
        _register_session_views(app)
        return app, cache

    def _flask_caching(self) -> tuple[Flask, Any]:
        from flask_caching import Cache

        app = Flask("bench-flask-caching")
        app.config.update(SECRET_KEY=SECRET)
        cache = Cache(app, config={"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": self.url,
                                   "CACHE_KEY_PREFIX": "fc:", "CACHE_DEFAULT_TIMEOUT": 300})
        return app, cache

    def _flask_session(self) -> tuple[Flask, str | None]:
        app = Flask("bench-flask-session")
        app.config.update(SECRET_KEY=SECRET, SESSION_TYPE="redis", SESSION_KEY_PREFIX="fsession:",
                          SESSION_REDIS=redis.Redis.from_url(self.url))
        try:
            from flask_session import Session
        except ImportError as exc:  # pragma: no cover - depends on the install
            return app, f"Flask-Session not installed: {exc}"
        Session(app)
        _register_session_views(app)
        return app, None

    @staticmethod
    def _plain(name: str) -> Flask:
        app = Flask(name)
        app.config.update(SECRET_KEY=SECRET)
        _register_session_views(app)
        return app

    def ours_sessions(self) -> str | None:
        """Why our session interface can't be measured, or None."""
        interface = type(self.ours_app.session_interface)
        if not interface.__module__.startswith("flask_rediscache"):
            return "flask-rediscache session interface not registered (flask_rediscache.sessions missing)"
        return None


def _needs(obj: Any, *names: str) -> str | None:
    missing = [n for n in names if not hasattr(obj, n)]
    return f"not implemented yet: {', '.join(missing)}" if missing else None


def _contender(key: str, label: str, build: Callable[[], Callable[[], Any]],
               context: Callable[[], Any] | None = None, needs: str | None = None) -> Any:
    from .harness import Contender

    if needs is not None:
        return Contender(key, label, unavailable=needs)
    try:
        op = build()
    except Exception as exc:  # a broken contender is reported, not fatal
        return Contender(key, label, unavailable=f"{type(exc).__name__}: {exc}")
    if context is None:
        return Contender(key, label, op)
    return Contender(key, label, op, context=context)


# -- the benchmarks -----------------------------------------------------------
def build(apps: Apps) -> list[Any]:
    from . import local
    from .harness import Benchmark

    return [
        Benchmark("round_trip", "One Redis round trip", "op", RAW, [_round_trip(apps)],
                  "raw GET of a 5-byte value, no decoding: the unit the other figures are "
                  "compared with"),
        Benchmark("memoize_hit", "memoize hit", "call", RAW, _memoize_hit(apps),
                  "a memoized function returning a small dict, already cached; the baseline is "
                  "one GET and pickle.loads by hand, with redis-py's default pool and with the "
                  "bounded BlockingConnectionPool flask-rediscache uses"),
        Benchmark("memoize_miss", "memoize miss", "call", RAW, _memoize_miss(apps),
                  "a new argument every call: look up, call the (trivial) function, store"),
        Benchmark("get", "get (hit)", "op", RAW, _get(apps), "a small dict"),
        Benchmark("set", "set", "op", RAW, _set(apps), "a small dict, 300 s TTL"),
        Benchmark("get_many", f"get_many({BATCH})", "batch", RAW, _get_many(apps),
                  f"{BATCH} cached small dicts in one call, against {BATCH} single gets"),
        Benchmark("set_many", f"set_many({BATCH})", "batch", RAW, _set_many(apps),
                  f"{BATCH} small dicts in one call, against {BATCH} single sets"),
        Benchmark("cached_view", "cached view (hit)", "request", PLAIN, _cached_view(apps),
                  "a test-client GET of a cached page; the baseline renders it every time"),
        Benchmark("session_read", "read-only session request", "request", COOKIE,
                  _session(apps, "read"),
                  "a test-client GET that reads the user and cart from the session"),
        Benchmark("session_write", "writing session request", "request", COOKIE,
                  _session(apps, "write"),
                  "a test-client POST that increments a counter in the session"),
        *local.build(apps),
    ]


def _round_trip(apps: Apps) -> Any:
    raw = apps.raw
    raw.set(b"raw:small", b"hello")
    return _contender(RAW, "GET", lambda: lambda: raw.get(b"raw:small"))


def _memoize_hit(apps: Apps) -> list[Any]:
    raw, fc, ours = apps.raw, apps.fc, apps.ours
    raw.set(b"raw:product:7", pickle.dumps(product(7), protocol=pickle.HIGHEST_PROTOCOL), ex=300)

    def build_raw() -> Callable[[], Any]:
        return lambda: pickle.loads(raw.get(b"raw:product:7"))

    def build_blocking() -> Callable[[], Any]:
        pool = redis.BlockingConnectionPool.from_url(apps.url, max_connections=5, timeout=5)
        client: Any = redis.Redis(connection_pool=pool)
        return lambda: pickle.loads(client.get(b"raw:product:7"))

    def build_ours() -> Callable[[], Any]:
        @ours.memoize(timeout=300)
        def load_product(pid: int) -> dict[str, Any]:
            return product(pid)

        with apps.ours_app.app_context():
            assert load_product(7) == product(7)
        return lambda: load_product(7)

    def build_fc() -> Callable[[], Any]:
        @fc.memoize(timeout=300)  # type: ignore[untyped-decorator]
        def load_product(pid: int) -> dict[str, Any]:
            return product(pid)

        with apps.fc_app.app_context():
            assert load_product(7) == product(7)
        return lambda: load_product(7)

    return [
        _contender(RAW, "GET + pickle.loads", build_raw),
        _contender(RAW_BLOCKING, "GET + pickle.loads, BlockingConnectionPool", build_blocking),
        _contender(OURS, "@cache.memoize", build_ours, apps.ours_app.app_context, _needs(ours, "memoize")),
        _contender(OURS_OBSERVED, "@cache.memoize, a cache_read receiver connected", build_ours,
                   lambda: _observed(apps.ours_app)),
        _contender(FC, "@cache.memoize (RedisCache)", build_fc, apps.fc_app.app_context),
    ]


@contextmanager
def _observed(app: Flask) -> Iterator[None]:
    """The app context with a no-op receiver on the timed read signal (what a
    metrics exporter or the debug toolbar adds), for this contender's batches only."""
    from flask_rediscache import signals

    def receiver(sender: Any, **kwargs: Any) -> None:
        pass

    with app.app_context(), signals.cache_read.connected_to(receiver):
        yield


def _memoize_miss(apps: Apps) -> list[Any]:
    raw, fc, ours = apps.raw, apps.fc, apps.ours

    def build_raw() -> Callable[[], Any]:
        counter = itertools.count()

        def miss() -> Any:
            key = b"raw:miss:%d" % next(counter)
            data = raw.get(key)
            if data is not None:
                return pickle.loads(data)
            value = product(1)
            raw.set(key, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), ex=300)
            return value
        return miss

    def build_ours() -> Callable[[], Any]:
        counter = itertools.count()

        @ours.memoize(timeout=300)
        def load_product(pid: int) -> dict[str, Any]:
            return product(pid)
        return lambda: load_product(next(counter))

    def build_fc() -> Callable[[], Any]:
        counter = itertools.count()

        @fc.memoize(timeout=300)  # type: ignore[untyped-decorator]
        def load_product(pid: int) -> dict[str, Any]:
            return product(pid)
        return lambda: load_product(next(counter))

    return [
        _contender(RAW, "GET, then SET + pickle.dumps", build_raw),
        _contender(OURS, "@cache.memoize", build_ours, apps.ours_app.app_context, _needs(ours, "memoize")),
        _contender(OURS_OBSERVED, "@cache.memoize, a cache_read receiver connected", build_ours,
                   lambda: _observed(apps.ours_app)),
        _contender(FC, "@cache.memoize (RedisCache)", build_fc, apps.fc_app.app_context),
    ]


def _get(apps: Apps) -> list[Any]:
    raw, fc, ours = apps.raw, apps.fc, apps.ours
    raw.set(b"raw:get", pickle.dumps(PRODUCT, protocol=pickle.HIGHEST_PROTOCOL), ex=300)
    with apps.ours_app.app_context():
        ours.set("get", PRODUCT)
    with apps.fc_app.app_context():
        fc.set("get", PRODUCT)
    return [
        _contender(RAW, "GET + pickle.loads", lambda: lambda: pickle.loads(raw.get(b"raw:get"))),
        _contender(OURS, "cache.get", lambda: lambda: ours.get("get"), apps.ours_app.app_context),
        _contender(FC, "cache.get", lambda: lambda: fc.get("get"), apps.fc_app.app_context),
    ]


def _set(apps: Apps) -> list[Any]:
    raw, fc, ours = apps.raw, apps.fc, apps.ours

    def raw_set() -> Any:
        return raw.set(b"raw:set", pickle.dumps(PRODUCT, protocol=pickle.HIGHEST_PROTOCOL), ex=300)

    return [
        _contender(RAW, "SET EX + pickle.dumps", lambda: raw_set),
        _contender(OURS, "cache.set", lambda: lambda: ours.set("set", PRODUCT), apps.ours_app.app_context),
        _contender(FC, "cache.set", lambda: lambda: fc.set("set", PRODUCT), apps.fc_app.app_context),
    ]


def _keys(prefix: str) -> list[str]:
    return [f"{prefix}{i}" for i in range(BATCH)]


def _get_many(apps: Apps) -> list[Any]:
    raw, fc, ours = apps.raw, apps.fc, apps.ours
    keys = _keys("many:")
    raw_keys = [f"raw:{k}".encode() for k in keys]
    blob = pickle.dumps(PRODUCT, protocol=pickle.HIGHEST_PROTOCOL)
    raw.mset(dict.fromkeys(raw_keys, blob))
    with apps.ours_app.app_context():
        for k in keys:
            ours.set(k, PRODUCT)
    with apps.fc_app.app_context():
        for k in keys:
            fc.set(k, PRODUCT)

    def raw_mget() -> Any:
        return [pickle.loads(v) for v in raw.mget(raw_keys)]

    def singles() -> Any:
        return [ours.get(k) for k in keys]

    def build_ours() -> Callable[[], Any]:
        with apps.ours_app.app_context():
            got = ours.get_many(*keys)
        if got != [PRODUCT] * BATCH:
            raise AssertionError("get_many did not return the stored values")
        return lambda: ours.get_many(*keys)

    return [
        _contender(RAW, "MGET + pickle.loads", lambda: raw_mget),
        _contender(OURS, "cache.get_many", build_ours, apps.ours_app.app_context,
                   _needs(ours, "get_many")),
        _contender(FC, "cache.get_many", lambda: lambda: fc.get_many(*keys), apps.fc_app.app_context),
        _contender(SINGLES, f"{BATCH} × cache.get", lambda: singles, apps.ours_app.app_context),
    ]


def _set_many(apps: Apps) -> list[Any]:
    raw, fc, ours = apps.raw, apps.fc, apps.ours
    mapping = dict.fromkeys(_keys("setmany:"), PRODUCT)

    def raw_pipeline() -> Any:
        pipe = raw.pipeline(transaction=False)
        for k, v in mapping.items():
            pipe.set(f"raw:{k}", pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL), ex=300)
        return pipe.execute()

    def singles() -> Any:
        return [ours.set(k, v) for k, v in mapping.items()]

    return [
        _contender(RAW, "pipeline of SET EX + pickle.dumps", lambda: raw_pipeline),
        _contender(OURS, "cache.set_many", lambda: lambda: ours.set_many(mapping),
                   apps.ours_app.app_context, _needs(ours, "set_many")),
        _contender(FC, "cache.set_many", lambda: lambda: fc.set_many(mapping), apps.fc_app.app_context),
        _contender(SINGLES, f"{BATCH} × cache.set", lambda: singles, apps.ours_app.app_context),
    ]


def _get_ok(client: Any, path: str) -> Callable[[], Any]:
    def op() -> Any:
        return client.get(path)
    first, second = op(), op()
    if first.status_code != 200 or second.data != first.data:
        raise AssertionError(f"GET {path} answered {first.status_code}/{second.status_code}")
    return op


def _cached_view(apps: Apps) -> list[Any]:
    ours, fc = apps.ours, apps.fc
    plain = Flask("bench-plain")
    plain.add_url_rule("/page", "page", render_page)
    fc_app = apps.fc_app
    fc_app.add_url_rule("/page", "page", fc.cached(timeout=300)(render_page))

    def build_ours() -> Callable[[], Any]:
        apps.ours_app.add_url_rule("/page", "page", ours.cached(timeout=300)(render_page))
        return _get_ok(apps.ours_app.test_client(), "/page")

    return [
        _contender(PLAIN, "renders every time", lambda: _get_ok(plain.test_client(), "/page")),
        _contender(OURS, "@cache.cached", build_ours, needs=_needs(ours, "cached")),
        _contender(FC, "@cache.cached", lambda: _get_ok(fc_app.test_client(), "/page")),
    ]


def _session_op(app: Flask, mode: str, path: str = "/me") -> Callable[[], Any]:
    client = app.test_client()
    login = client.post("/login")
    if login.status_code != 200:
        raise AssertionError(f"POST /login answered {login.status_code}")
    if mode == "read":
        def op() -> Any:
            return client.get(path)
        body = op().get_json()
        if body != {"user": "alice", "cart": [1, 2, 3]} or op().get_json() != body:
            raise AssertionError(f"the session did not keep the login: {body}")
        return op

    def bump() -> Any:
        return client.post("/bump")
    first, second = bump().get_json()["n"], bump().get_json()["n"]
    if second != first + 1:
        raise AssertionError(f"the session did not keep the counter: {first} then {second}")
    return bump


def _session(apps: Apps, mode: str) -> list[Any]:
    contenders = [
        _contender(COOKIE, "Flask's signed cookie", lambda: _session_op(apps.cookie_app, mode)),
        _contender(OURS, "server-side, Redis", lambda: _session_op(apps.ours_app, mode),
                   needs=apps.ours_sessions()),
        _contender(FS, "SESSION_TYPE='redis'", lambda: _session_op(apps.fs_app, mode),
                   needs=apps.fs_error),
    ]
    if mode == "read":
        # "Within one Redis round trip of the cookie session", measured as such:
        # the cookie session's request plus one raw GET in the same view.
        contenders.insert(1, _contender(COOKIE_RT, "signed cookie + one raw GET in the view",
                                        lambda: _session_op(apps.cookie_app, mode, "/me-plus-get")))
    return contenders

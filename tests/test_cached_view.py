"""@cache.cached on views: what is cached, what never is, keys, replay, failure."""

from __future__ import annotations

import pytest
from flask import Response, make_response, request, session, stream_with_context

from flask_rediscache import signals

from .servers import free_port
from .support import commands


class Views:
    """Counts renders per view name."""

    def __init__(self):
        self.renders = {}

    def hit(self, name):
        self.renders[name] = self.renders.get(name, 0) + 1
        return self.renders[name]


@pytest.fixture
def views(app):
    return Views()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def ext(app):
    return app.extensions["rediscache"]


def test_get_is_cached_and_replayed(app, ext, views, client, redis_server):
    @app.get("/page")
    @ext.cached(timeout=60)
    def page():
        n = views.hit("page")
        response = make_response(f"<p>render {n}</p>")
        response.headers["X-Custom"] = "yes"
        return response

    first = client.get("/page")
    second = client.get("/page")
    assert views.renders["page"] == 1
    assert first.status_code == second.status_code == 200
    assert second.data == first.data == b"<p>render 1</p>"
    assert second.headers["X-Custom"] == "yes"
    assert second.headers["Content-Type"] == first.headers["Content-Type"]
    assert redis_server.client().exists(b"cache:view//page")
    assert 55 <= redis_server.client().ttl(b"cache:view//page") <= 60


def test_head_shares_the_get_entry(app, ext, views, client):
    @app.get("/page")
    @ext.cached()
    def page():
        return f"render {views.hit('page')}"

    head = client.head("/page")
    assert head.status_code == 200
    assert client.get("/page").data == b"render 1"
    assert views.renders["page"] == 1


def test_other_methods_bypass_the_cache(app, ext, views, client, redis_server):
    @app.route("/form", methods=["GET", "POST"])
    @ext.cached()
    def form():
        return f"{request.method} {views.hit('form')}"

    assert client.get("/form").data == b"GET 1"
    redis_server.reset_stats()
    assert client.post("/form").data == b"POST 2"
    assert client.post("/form").data == b"POST 3"
    assert commands(redis_server) == {}  # not even read
    assert client.get("/form").data == b"GET 1"


@pytest.mark.parametrize("status", [201, 204, 301, 404, 500])
def test_only_200_is_cached(app, ext, views, client, status):
    @app.get("/status")
    @ext.cached()
    def status_view():
        return f"{views.hit('s')}", status

    client.get("/status")
    client.get("/status")
    assert views.renders["s"] == 2


def test_response_setting_a_cookie_is_not_cached(app, ext, views, client):
    @app.get("/cookie")
    @ext.cached()
    def cookie():
        response = make_response(f"{views.hit('c')}")
        response.set_cookie("tracking", "abc")
        return response

    assert client.get("/cookie").headers.get("Set-Cookie")
    client.get("/cookie")
    assert views.renders["c"] == 2


@pytest.mark.parametrize("touch", ["read", "write", "get"])
def test_view_that_touched_the_session_is_not_cached(app, ext, views, client, touch):
    @app.get("/me")
    @ext.cached()
    def me():
        if touch == "read":
            name = session.get("user", "anon")
        elif touch == "write":
            session["seen"] = True
            name = "w"
        else:
            name = "user" in session
        return f"{name} {views.hit('me')}"

    client.get("/me")
    client.get("/me")
    assert views.renders["me"] == 2


def test_session_untouched_is_cached_with_the_session_interface_in_place(app, ext, views, client):
    @app.get("/public")
    @ext.cached()
    def public():
        return f"{views.hit('p')}"

    with client.session_transaction() as s:  # the visitor has a session
        s["user"] = "alice"
    client.get("/public")
    client.get("/public")
    assert views.renders["p"] == 1


@pytest.mark.parametrize("directive", ["private", "no-store"])
def test_private_or_no_store_is_not_cached(app, ext, views, client, directive):
    @app.get("/cc")
    @ext.cached()
    def cc():
        response = make_response(f"{views.hit('cc')}")
        response.headers["Cache-Control"] = directive
        return response

    client.get("/cc")
    client.get("/cc")
    assert views.renders["cc"] == 2


def test_streamed_response_is_not_cached(app, ext, views, client):
    @app.get("/stream")
    @ext.cached()
    def stream():
        views.hit("st")

        def chunks():
            yield "a"
            yield "b"
        return Response(stream_with_context(chunks()))

    assert client.get("/stream").data == b"ab"
    client.get("/stream")
    assert views.renders["st"] == 2


def test_query_string_ignored_by_default(app, ext, views, client):
    """Flask-Caching's behaviour: the key is the path only."""
    @app.get("/search")
    @ext.cached()
    def search():
        return f"{request.args.get('q')} {views.hit('q')}"

    assert client.get("/search?q=a").data == b"a 1"
    assert client.get("/search?q=b").data == b"a 1"


def test_query_string_sorted(app, ext, views, client):
    @app.get("/search")
    @ext.cached(query_string=True)
    def search():
        return f"{sorted(request.args.items(multi=True))} {views.hit('q')}"

    first = client.get("/search?a=1&b=2&b=3").data
    assert client.get("/search?b=2&a=1&b=3").data == first
    assert client.get("/search?b=2&b=3&a=1").data == first
    assert views.renders["q"] == 1
    client.get("/search?a=2&b=2&b=3")
    client.get("/search?a=1&b=3&b=2")  # repeated parameters, any order: one entry
    client.get("/search")
    assert views.renders["q"] == 3


def test_key_prefix_make_cache_key_and_delete(app, ext, views, client, redis_server):
    @app.get("/a")
    @ext.cached(key_prefix="custom-%s")
    def a():
        return f"{views.hit('a')}"

    @app.get("/b/<name>")
    @ext.cached(make_cache_key=lambda name: f"b:{name.lower()}")
    def b(name):
        return f"{views.hit('b')}"

    @app.get("/c")
    @ext.cached(key_prefix=lambda: "fixed")
    def c():
        return f"{views.hit('c')}"

    client.get("/a")
    client.get("/b/X")
    client.get("/b/x")
    client.get("/c")
    assert views.renders == {"a": 1, "b": 1, "c": 1}
    keys = sorted(redis_server.client().keys("*"))
    assert keys == [b"cache:b:x", b"cache:custom-/a", b"cache:fixed"]
    with app.app_context():
        assert ext.delete("custom-/a")
    client.get("/a")
    assert views.renders["a"] == 2


def test_delete_with_the_flask_caching_key(app, ext, views, client):
    @app.get("/about")
    @ext.cached()
    def about():
        return f"{views.hit('about')}"

    client.get("/about")
    with app.app_context():
        assert ext.delete("view//about") is True
    client.get("/about")
    assert views.renders["about"] == 2


def test_unless_forced_update_response_filter_hit_header(app, ext, views, client):
    flags = {"skip": False, "force": False}

    @app.get("/x")
    @ext.cached(unless=lambda: flags["skip"], forced_update=lambda: flags["force"],
                response_filter=lambda rv: rv != "nocache", response_hit_indication=True)
    def x():
        n = views.hit("x")
        return "nocache" if request.args.get("bad") else f"{n}"

    assert "hit_cache" not in client.get("/x").headers
    assert client.get("/x").headers["hit_cache"] == "True"
    flags["skip"] = True
    assert client.get("/x").data == b"2"
    flags["skip"], flags["force"] = False, True
    assert client.get("/x").data == b"3"
    flags["force"] = False
    assert client.get("/x").data == b"3"
    with app.app_context():
        ext.clear()
    client.get("/x?bad=1")
    client.get("/x?bad=1")
    assert views.renders["x"] == 5


def test_after_request_hooks_run_on_hits(app, ext, views, client):
    @app.after_request
    def stamp(response):
        response.headers["X-Hook"] = str(views.hit("hook"))
        return response

    @app.get("/h")
    @ext.cached()
    def h():
        return "body"

    assert client.get("/h").headers["X-Hook"] == "1"
    assert client.get("/h").headers["X-Hook"] == "2"


def test_value_set_by_hand_is_served(app, ext, client):
    @app.get("/warm")
    @ext.cached()
    def warm():
        return "rendered"

    with app.app_context():
        ext.set("view//warm", "prewarmed")
    assert client.get("/warm").data == b"prewarmed"


def test_async_view(app, ext, views, client):
    @app.get("/async")
    @ext.cached()
    async def page():
        return f"async {views.hit('async')}"

    assert client.get("/async").data == b"async 1"
    assert client.get("/async").data == b"async 1"


def test_signals(app, ext, client):
    events = []

    @app.get("/sig")
    @ext.cached()
    def sig():
        return "s"

    with signals.cache_hit.connected_to(lambda s, **kw: events.append(("hit", kw["key"]))), \
            signals.cache_miss.connected_to(lambda s, **kw: events.append(("miss", kw["key"]))):
        client.get("/sig")
        client.get("/sig")
    assert events == [("miss", "view//sig"), ("hit", "view//sig")]


def test_non_view_function_is_cached_under_its_key_prefix(app, ext, views):
    @ext.cached(key_prefix="sidebar")
    def sidebar():
        return {"render": views.hit("sidebar")}

    with app.app_context():
        assert sidebar() == {"render": 1}
        assert sidebar() == {"render": 1}
        assert ext.get("sidebar") == {"render": 1}


def test_redis_down_renders_the_view(make_app):
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", REDIS_RECONNECT_ATTEMPTS=0,
                   REDIS_SESSION=False)
    ext = app.extensions["rediscache"]
    views = Views()

    @app.get("/down")
    @ext.cached()
    def down():
        return f"{views.hit('down')}"

    client = app.test_client()
    assert client.get("/down").data == b"1"
    assert client.get("/down").data == b"2"

"""A small catalog shop: flask-rediscache's example app.

It shows the three things the extension is for, each the way a production app
would use it:

* ``GET /`` is a whole page cached for 30 seconds (``@cache.cached``). The page
  is the same for everyone, so it must not show anything from the session.
* ``GET /products/<id>`` reads a product through a slow, memoized "database"
  lookup (``@cache.memoize``): the first request pays ``CATALOG_DB_DELAY``,
  the next ones cost one Redis round trip.
* ``/login``, ``/logout``, ``/me`` and ``/cart/<id>`` keep a user and a cart in
  a server-side session stored in Redis.
* ``GET /products/<id>/live`` is a product page that updates without reloading:
  its stock and how many people are viewing it arrive over server-sent events
  (``EventSource`` on ``/products/<id>/events``, served by ``cache.stream``).
  ``POST /products/<id>/buy`` sells one and broadcasts the new stock to every
  open page, in every worker; so does the shell:
  ``flask --app examples/catalog/app.py redis broadcast product:3 '{"stock": 2}'``
  (with a shared ``REDIS_URL``; on ``memory://`` only the worker's own
  broadcasts reach its pages). Each open page holds one gunicorn thread: see
  ``docs/live-updates.rst`` for the worker settings.

Configuration comes from the environment, so the same file runs on a laptop
(no Redis needed: ``memory://``) and under gunicorn against a real Redis:

``REDIS_URL``
    Default ``memory://`` (in-process, per worker). Point it at a real Redis in
    production, e.g. ``redis://:password@redis:6379/0``.
``SECRET_KEY``
    Signs the session id cookie and the cache entries. A development default is
    used, with a warning, when it is unset.
``CATALOG_DB_DELAY``
    Seconds of fake database latency on a cache miss (default ``0.05``).
Any other ``REDIS_*`` key
    e.g. ``REDIS_POOL_SIZE=8``; values are parsed as JSON when they are JSON
    (``8``, ``true``, ``["a", "b"]``), else used as strings.

Run it with ``flask --app examples/catalog/app.py run`` (or ``./dev.sh example``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, abort, current_app, jsonify, render_template_string, request, session

from flask_rediscache import RedisCache
from flask_rediscache.config import DEFAULTS

logger = logging.getLogger("catalog")

DEV_SECRET_KEY = "catalog-dev-secret-do-not-use-in-production"

#: The "database". A real app would query SQL here; the lookup below sleeps
#: ``CATALOG_DB_DELAY`` to make the cost of a cache miss visible.
PRODUCTS: dict[int, dict[str, Any]] = {
    1: {"id": 1, "name": "Espresso cup", "price": "8.50", "stock": 40},
    2: {"id": 2, "name": "Pour-over kettle", "price": "39.00", "stock": 12},
    3: {"id": 3, "name": "Burr grinder", "price": "129.00", "stock": 5},
    4: {"id": 4, "name": "Paper filters (100)", "price": "4.20", "stock": 300},
    5: {"id": 5, "name": "Milk jug", "price": "14.90", "stock": 25},
    6: {"id": 6, "name": "Digital scale", "price": "24.00", "stock": 18},
}

# One extension object for every app the factory builds: it resolves the
# current app on each call, so the decorators below can be applied at import.
cache = RedisCache()

INDEX = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Catalog</title></head>
<body>
  <h1>Catalog</h1>
  <p>Rendered at {{ rendered_at }} (cached for 30 seconds).</p>
  <ul>
  {% for p in products %}
    <li><a href="{{ url_for('product', pid=p.id) }}">{{ p.name }}</a>: {{ p.price }} EUR</li>
  {% endfor %}
  </ul>
</body>
</html>
"""


LIVE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{{ product.name }}</title></head>
<body>
  <h1>{{ product.name }}</h1>
  <p>{{ product.price }} EUR</p>
  <p>In stock: <strong id="stock">{{ stock }}</strong></p>
  <p><span id="viewers">{{ viewers }}</span> people viewing this product</p>
  <p><button id="buy" type="button">Buy one</button> <small id="status">connecting...</small></p>
  <ul id="news"></ul>
  <script>
    const $ = (id) => document.getElementById(id);
    function apply(update) {
      if ("stock" in update) $("stock").textContent = update.stock;
      if ("viewers" in update) $("viewers").textContent = update.viewers;
      if ("message" in update) {
        const item = document.createElement("li");
        item.textContent = update.message;  // text, never HTML: broadcasts are data
        $("news").append(item);
      }
    }
    // EventSource reconnects by itself and sends Last-Event-ID: nothing broadcast
    // meanwhile is lost (the stream replays it).
    const source = new EventSource({{ url_for("product_events", pid=product.id)|tojson }});
    source.onopen = () => { $("status").textContent = "live"; };
    source.onerror = () => { $("status").textContent = "reconnecting..."; };
    source.onmessage = (event) => apply(JSON.parse(event.data));
    source.addEventListener("stock", (event) => apply(JSON.parse(event.data)));
    $("buy").onclick = () => fetch({{ url_for("buy", pid=product.id)|tojson }}, {method: "POST"});
  </script>
</body>
</html>
"""


def _env_value(raw: str) -> Any:
    """``8`` → 8, ``true`` → True, ``["a"]`` → list; anything else stays a string."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def settings_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The app's configuration, read from the environment."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {key: _env_value(environ[key]) for key in DEFAULTS if key in environ}
    # An explicit default, independent of app.debug: the example runs anywhere
    # without a Redis server. Production sets REDIS_URL.
    config["REDIS_URL"] = environ.get("REDIS_URL") or "memory://"
    config["REDIS_HEALTH_ENDPOINT"] = environ.get("REDIS_HEALTH_ENDPOINT") or "/health/redis"
    config["CATALOG_DB_DELAY"] = float(environ.get("CATALOG_DB_DELAY", "0.05"))
    if environ.get("SECRET_KEY"):
        config["SECRET_KEY"] = environ["SECRET_KEY"]
    return config


@cache.memoize(timeout=60)
def load_product(pid: int) -> dict[str, Any] | None:
    """The slow lookup. ``None`` (unknown id) is cached too, so a flood of
    requests for a missing product does not reach the database either."""
    time.sleep(current_app.config["CATALOG_DB_DELAY"])
    product = PRODUCTS.get(pid)
    return dict(product) if product is not None else None


def _cart() -> list[int]:
    return list(session.get("cart", []))


def channel(pid: int) -> str:
    """The broadcast channel of one product's live page."""
    return f"product:{pid}"


def stock_of(product: dict[str, Any]) -> int:
    """Stock left: the catalog's figure minus the sales counted in Redis (shared by
    every worker; ``inc`` keeps a plain integer, so it is atomic)."""
    sold = cache.get(f"sold:{product['id']}") or 0
    return max(0, int(product["stock"]) - int(sold))


def register_routes(app: Flask) -> None:
    @app.get("/")
    @cache.cached(timeout=30)
    def index() -> str:
        # Same page for everyone: never read the session in a cached view.
        time.sleep(current_app.config["CATALOG_DB_DELAY"])
        return render_template_string(INDEX, products=list(PRODUCTS.values()),
                                      rendered_at=time.strftime("%H:%M:%S"))

    @app.get("/products/<int:pid>")
    def product(pid: int) -> Any:
        found = load_product(pid)
        if found is None:
            abort(404)
        return jsonify(found)

    @app.post("/login")
    def login() -> Any:
        username = (request.form.get("username") or "").strip()
        if not username:
            return jsonify(error="form field 'username' is required"), 400
        session["user"] = username
        # A new session id after login, so an id planted before it is worthless.
        current_app.session_interface.regenerate(session)  # type: ignore[attr-defined]
        return jsonify(user=username, cart=_cart())

    @app.post("/logout")
    def logout() -> Any:
        session.clear()  # deletes the data in Redis and the cookie
        return jsonify(user=None, cart=[])

    @app.get("/me")
    def me() -> Any:
        # Read-only: one Redis round trip, nothing written.
        return jsonify(user=session.get("user"), cart=_cart())

    @app.post("/cart/<int:pid>")
    def add_to_cart(pid: int) -> Any:
        if load_product(pid) is None:
            abort(404)
        # Assigning a new value is Flask's way to mark the session modified
        # (flask-rediscache also notices in-place changes, Flask's cookie
        # sessions do not).
        session["cart"] = [*_cart(), pid]
        return jsonify(user=session.get("user"), cart=session["cart"])

    # -- live updates ------------------------------------------------------
    @app.get("/products/<int:pid>/live")
    def live(pid: int) -> str:
        found = load_product(pid)
        if found is None:
            abort(404)
        viewers = cache.get(f"viewers:{pid}") or 0
        # "+ 1": this page's own arrival is announced before its stream starts listening.
        return render_template_string(LIVE, product=found, stock=stock_of(found), viewers=int(viewers) + 1)

    @app.get("/products/<int:pid>/events")
    def product_events(pid: int) -> Response:
        if load_product(pid) is None:
            abort(404)
        # A public channel: anyone may watch a product. A private one (orders of a
        # user) would check the session here first, e.g. channel f"user:{session['user']}".
        key = f"viewers:{pid}"
        viewers = cache.inc(key, timeout=3600)  # a TTL, so a crashed worker's viewers fade away
        if viewers is not None:
            cache.broadcast(channel(pid), {"viewers": viewers})
        response = cache.stream(channel(pid))
        app_ = current_app._get_current_object()  # type: ignore[attr-defined]

        def left() -> None:  # the stream ended: the browser went away, or max lifetime
            with app_.app_context():
                remaining = cache.dec(key)
                if remaining is not None:
                    cache.broadcast(channel(pid), {"viewers": max(0, remaining)})

        response.call_on_close(left)
        return response

    @app.post("/products/<int:pid>/buy")
    def buy(pid: int) -> Any:
        found = load_product(pid)
        if found is None:
            abort(404)
        if stock_of(found) <= 0:
            return jsonify(error="sold out", stock=0), 409
        sold = cache.inc(f"sold:{pid}")
        if sold is None:  # Redis is down: nothing was sold, and the page says so
            return jsonify(error="please try again in a moment"), 503
        stock = max(0, int(found["stock"]) - sold)
        cache.broadcast(channel(pid), {"stock": stock}, event="stock")
        return jsonify(stock=stock)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: environment first, then ``config`` (tests pass theirs here)."""
    app = Flask(__name__)
    app.config.update(settings_from_env())
    if config:
        app.config.update(config)
    if not app.config.get("SECRET_KEY"):
        logger.warning("catalog: SECRET_KEY is not set; using the development key. "
                       "Set SECRET_KEY to a long random string in production.")
        app.config["SECRET_KEY"] = DEV_SECRET_KEY
    cache.init_app(app)
    register_routes(app)
    if app.debug:
        enable_debug_toolbar(app)
    return app


def enable_debug_toolbar(app: Flask) -> None:
    """With ``DEBUG`` (``flask run --debug``) and flask-debugtoolbar installed: the
    toolbar, with flask-rediscache's panel listing every cache and session call."""
    try:
        from flask_debugtoolbar import DebugToolbarExtension
    except ImportError:
        return
    app.config.setdefault("DEBUG_TB_INTERCEPT_REDIRECTS", False)
    app.config.setdefault("DEBUG_TB_PANELS", [
        "flask_debugtoolbar.panels.versions.VersionDebugPanel",
        "flask_debugtoolbar.panels.timer.TimerDebugPanel",
        "flask_debugtoolbar.panels.headers.HeaderDebugPanel",
        "flask_debugtoolbar.panels.request_vars.RequestVarsDebugPanel",
        "flask_debugtoolbar.panels.template.TemplateDebugPanel",
        "flask_debugtoolbar.panels.route_list.RouteListDebugPanel",
        "flask_rediscache.contrib.debug_toolbar.RedisCachePanel",
    ])
    DebugToolbarExtension(app)


app = create_app()

"""Gunicorn settings for the catalog example (and a template for your app).

Run from the repository root::

    gunicorn -c examples/gunicorn.conf.py

Sizing: each worker process has its own connection pool of ``REDIS_POOL_SIZE``
connections per purpose. A request holds at most one connection at a time, so
``threads = REDIS_POOL_SIZE`` means no thread ever waits for a connection
(``flask redis doctor --threads N`` warns, with exit code 0, when
``REDIS_POOL_SIZE`` is smaller than ``threads``). Live pages (server-sent
events) are the exception: each holds a thread but no connection, so this
file adds 16 threads for them (see docs/live-updates.rst).
Redis then sees at most ``workers * REDIS_POOL_SIZE`` connections per purpose
and per host; keep that well below the server's ``maxclients``.

Environment: ``PORT`` (default 8000), ``HOST`` (default 127.0.0.1; 0.0.0.0 in
a container), or ``BIND`` for a full address; ``WEB_CONCURRENCY`` (workers,
default 2); ``REDIS_POOL_SIZE`` (default 5, the extension's default).
"""

import logging
import os

_here = os.path.dirname(os.path.abspath(__file__))

# The app: examples/catalog/app.py, module-level ``app``.
pythonpath = os.path.join(_here, "catalog")
wsgi_app = "app:app"

bind = os.environ.get("BIND") or f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Each open live page (/products/<id>/live, server-sent events) holds a thread
# for as long as it is open, but no Redis connection (one reader per process
# serves every stream): so threads = REDIS_POOL_SIZE + the live pages you
# expect per worker. THREADS overrides it.
threads = int(os.environ.get("THREADS") or int(os.environ.get("REDIS_POOL_SIZE", "5")) + 16)

# A hung request is killed after this; the Redis timeouts (1 s reads, and a
# circuit breaker after that) keep Redis far below it.
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = os.environ.get("ACCESS_LOG", "-") or None  # ACCESS_LOG= (empty) turns it off


def on_starting(server: object) -> None:
    """Warn when several workers would each get a private ``memory://`` store."""
    url = os.environ.get("REDIS_URL", "")
    if workers > 1 and (not url or url.startswith("memory://")):
        logging.getLogger("gunicorn.error").warning(
            "REDIS_URL is not a shared Redis: each of the %d workers has its own memory:// "
            "cache and sessions, so a session set in one worker is unknown to the others. "
            "Set REDIS_URL=redis://... (or WEB_CONCURRENCY=1).", workers)

"""Named purposes (``REDIS_PURPOSES``) and ``client_for``: the guide's separate Sidekiq
instance, here an RQ queue on its own Redis."""

from __future__ import annotations

import pytest

from flask_rediscache import ConfigError


def add(a: int, b: int) -> int:
    """The job the RQ smoke test runs (importable by the worker)."""
    return a + b


def test_rq_enqueues_and_runs_a_job_on_the_queue_purpose(make_app, redis_server, redis_factory):
    rq = pytest.importorskip("rq", reason="rq is in the test extra")
    queue_server = redis_factory()
    app = make_app(REDIS_URL=redis_server.url, REDIS_PURPOSES=["queue"], REDIS_QUEUE_URL=queue_server.url)
    with app.app_context():
        connection = app.extensions["rediscache"].client_for("queue")
        queue = rq.Queue("default", connection=connection)
        job = queue.enqueue(add, 2, 3)
        worker = rq.SimpleWorker([queue], connection=connection)
        assert worker.work(burst=True)
        job.refresh()
        assert job.get_status() == "finished" and job.return_value() == 5
    assert queue_server.client().keys("rq:*"), "the jobs live on the queue's own Redis"
    assert not redis_server.client().keys("rq:*")


def test_purposes_are_validated_and_default_to_redis_url(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, REDIS_PURPOSES=["queue", "ratelimit"])
    cache = app.extensions["rediscache"]
    with app.app_context():
        assert cache.client_for("ratelimit") is cache.client_for("cache")  # same URL: one pool
    for bad in (["cache"], ["Queue"], ["a b"], "queue,queue", [1], {"queue": 1}):
        with pytest.raises(ConfigError, match="REDIS_PURPOSES"):
            make_app(REDIS_URL=redis_server.url, REDIS_PURPOSES=bad)
    with pytest.raises(ConfigError, match="REDIS_QUEUE_URL"):
        make_app(REDIS_URL=redis_server.url, REDIS_PURPOSES=["queue"], REDIS_QUEUE_URL="http://x")


def test_cable_settings_are_validated(make_app, redis_server):
    for key, bad in (("REDIS_CABLE_HISTORY", 0), ("REDIS_CABLE_HISTORY", "many"),
                     ("REDIS_CABLE_MAX_STREAM_SECONDS", 0), ("REDIS_CHANNEL_PREFIX", "has space"),
                     ("REDIS_CABLE_URL", "http://nope")):
        with pytest.raises(ConfigError, match=key):
            make_app(REDIS_URL=redis_server.url, **{key: bad})
    # The stream prefix may not overlap another purpose's keys on the same server and db.
    with pytest.raises(ConfigError, match="REDIS_CHANNEL_PREFIX"):
        make_app(REDIS_URL=redis_server.url, REDIS_NAMESPACE="{shop}", REDIS_CHANNEL_PREFIX="{shop}")


def test_cable_url_is_its_own_purpose(make_app, redis_server, redis_factory):
    cable_server = redis_factory(password="c4ble-pw")
    app = make_app(REDIS_URL=redis_server.url, REDIS_CABLE_URL=cable_server.url, REDIS_CHANNEL_PREFIX="shop")
    cache = app.extensions["rediscache"]
    with app.app_context():
        assert cache.broadcast("news", 1)
        assert cache.client_for("cable") is not cache.client
    assert cable_server.client().keys("*") == [b"{shop}:news"]
    assert redis_server.client().keys("*") == []
    assert "c4ble-pw" not in repr(app.extensions["rediscache"].state(app).settings)

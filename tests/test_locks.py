"""cache.lock(): namespaced redis-py locks that raise instead of failing open."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
from redis.exceptions import LockError as RedisLockError
from redis.exceptions import LockNotOwnedError

from flask_rediscache.errors import LockError
from flask_rediscache.locks import Lock

from .topology_servers import acl_user


def test_lock_is_namespaced_and_released(cache, redis_server):
    r = redis_server.client()
    with cache.lock("report", timeout=10) as lock:
        assert isinstance(lock, Lock)
        assert r.exists(b"cache:locks:report") and 9 <= r.ttl(b"cache:locks:report") <= 10
        assert lock.owned() and lock.locked()
        assert lock.extend(20) and r.ttl(b"cache:locks:report") > 20
        assert lock.reacquire() and r.ttl(b"cache:locks:report") <= 10
    assert not r.exists(b"cache:locks:report")


def test_non_blocking_and_blocking_timeout(cache):
    holder = cache.lock("job", timeout=10)
    assert holder.acquire(blocking=False)
    other = cache.lock("job", timeout=10, blocking_timeout=0.3)
    assert other.acquire(blocking=False) is False
    started = time.monotonic()
    with pytest.raises(LockError, match="held by someone else"), other:
        pytest.fail("entered a held lock")
    assert 0.15 <= time.monotonic() - started < 2  # redis-py stops before oversleeping the bound
    assert isinstance(LockError("x"), RedisLockError)
    holder.release()
    assert other.acquire(blocking=False)
    other.release()


def test_another_holders_token_cannot_release_it(cache, redis_server):
    first = cache.lock("shared", timeout=0.5)
    assert first.acquire()
    time.sleep(0.7)  # first's lock expired ...
    second = cache.lock("shared", timeout=10)
    assert second.acquire(blocking=False)  # ... and second took it
    with pytest.raises(LockNotOwnedError):
        first.extend(5)
    with pytest.raises(LockNotOwnedError):
        first.release()
    assert second.owned() and redis_server.client().exists(b"cache:locks:shared")
    second.release()


def test_a_lock_held_by_a_dead_process_is_released_by_its_timeout(cache, redis_server, tmp_path):
    script = tmp_path / "holder.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from flask import Flask
        from flask_rediscache import RedisCache
        app = Flask("holder")
        app.config.update(SECRET_KEY="test-secret", REDIS_URL={redis_server.url!r})
        cache = RedisCache(app)
        with app.app_context():
            cache.lock("nightly", timeout=1.5).acquire()
            print("held", flush=True)
            time.sleep(60)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        proc.kill()
        proc.wait(5)
        waiter = cache.lock("nightly", timeout=10, blocking_timeout=5, sleep=0.05)
        assert waiter.locked()  # the dead process still holds it ...
        started = time.monotonic()
        with waiter:  # ... until its timeout frees it
            waited = time.monotonic() - started
        assert 0.3 < waited < 2.5
    finally:
        if proc.poll() is None:
            proc.kill()


def test_redis_down_raises_lock_error_never_fails_open(make_app, redis_factory):
    server = redis_factory()
    app = make_app(REDIS_URL=server.url)  # REDIS_FAIL_OPEN is True: locks still raise
    cache = app.extensions["rediscache"]
    with app.app_context():
        held = cache.lock("job", timeout=10)
        assert held.acquire()
        server.kill()
        with pytest.raises(LockError, match="could not acquire"), cache.lock("job"):
            pytest.fail("a lock failed open")
        with pytest.raises(LockError, match="could not release"):
            held.release()
        with pytest.raises(LockError):
            cache.lock("other").acquire(blocking=False)


def test_acl_without_scripting_raises_lock_error(make_app, redis_server):
    url = acl_user(redis_server, "cacheonly", "pw", "~cache:*", "+@read", "+@write")
    app = make_app(REDIS_URL=url)
    cache = app.extensions["rediscache"]
    with app.app_context():
        lock = cache.lock("job", timeout=5)
        assert lock.acquire()  # SET NX PX is @write
        with pytest.raises(LockError, match=r"NOPERM|permission"):
            lock.release()  # the release script needs +evalsha
    redis_server.client().delete(b"cache:locks:job")


def test_locks_on_memory_url(make_app):
    app = make_app(REDIS_URL="memory://locks")
    cache = app.extensions["rediscache"]
    with app.app_context(), cache.lock("m", timeout=5) as lock:
        assert lock.owned()
        assert cache.lock("m").acquire(blocking=False) is False


def test_disabled_cache_lock_raises(make_app):
    app = make_app(REDIS_URL="memory://off", REDIS_CACHE_ENABLED=False)
    with app.app_context(), pytest.raises(LockError, match="disabled"):
        app.extensions["rediscache"].lock("x")

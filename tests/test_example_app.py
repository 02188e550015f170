"""The catalog example app (examples/catalog/app.py), page by page.

Every route is driven with the Flask test client against a real redis-server,
and the whole flow once more on ``memory://``; the gunicorn config is run for
real with two workers; the docker-compose Redis command is started as a real
server to prove its settings are what the comments claim.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil
import pytest
import redis
import requests
from redis.backoff import NoBackoff
from redis.retry import Retry

from flask_rediscache import signals

from .servers import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
APP_FILE = EXAMPLES / "catalog" / "app.py"
ENV_KEYS = ("REDIS_URL", "SECRET_KEY", "CATALOG_DB_DELAY", "REDIS_POOL_SIZE", "REDIS_HEALTH_ENDPOINT")


def load_module(name: str = "catalog_example_app") -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, APP_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def catalog() -> Iterator[ModuleType]:
    """The example module, imported the way ``flask --app`` does: no environment."""
    with pytest.MonkeyPatch.context() as mp:
        for key in ENV_KEYS:
            mp.delenv(key, raising=False)
        yield load_module()


def make(catalog: ModuleType, url: str, **extra: Any) -> Any:
    config = {"REDIS_URL": url, "SECRET_KEY": "example-test-secret", "CATALOG_DB_DELAY": 0.2,
              "PROPAGATE_EXCEPTIONS": True}
    config.update(extra)
    return catalog.create_app(config)


def commands(server: RedisServer) -> dict[str, int]:
    """Commands the app sent since the last reset (handshakes and our INFO calls left out)."""
    return server.commands_since_reset()


def write_commands(server: RedisServer) -> set[str]:
    """Commands sent since the last reset that Redis flags as writes."""
    table = server.client().command()
    called = commands(server)
    return {name for name in called if "write" in table.get(name.split("|")[0], {}).get("flags", [])}


# -- the flow, on any backend ---------------------------------------------

def drive_every_page(app: Any, catalog: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every route once, asserting what a user would see."""
    client = app.test_client()

    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    for product in catalog.PRODUCTS.values():
        assert product["name"] in page.text
    # The page is cached: a renamed product does not show until it expires.
    monkeypatch.setitem(catalog.PRODUCTS[2], "name", "Renamed kettle")
    again = client.get("/")
    assert again.status_code == 200 and again.text == page.text
    assert "Renamed kettle" not in again.text

    started = time.perf_counter()
    first = client.get("/products/3")
    cold = time.perf_counter() - started
    assert first.status_code == 200 and first.json == catalog.PRODUCTS[3]
    assert cold >= 0.2  # CATALOG_DB_DELAY was paid on the miss
    monkeypatch.setitem(catalog.PRODUCTS[3], "price", "1.00")
    started = time.perf_counter()
    hit = client.get("/products/3")
    warm = time.perf_counter() - started
    assert hit.json["price"] == "129.00" and warm < 0.1  # served from the cache

    assert client.get("/products/999").status_code == 404
    # None is memoized too: a product added later stays unknown until expiry.
    monkeypatch.setitem(catalog.PRODUCTS, 999, {"id": 999, "name": "x", "price": "1", "stock": 1})
    assert client.get("/products/999").status_code == 404

    assert client.get("/me").json == {"user": None, "cart": []}
    assert client.get_cookie("session") is None  # an empty session sets no cookie
    assert client.post("/cart/1").json["cart"] == [1]
    anonymous_cookie = client.get_cookie("session").value
    assert client.post("/cart/4").json["cart"] == [1, 4]
    assert client.post("/cart/12345").status_code == 404

    assert client.post("/login", data={}).status_code == 400
    login = client.post("/login", data={"username": "ada"})
    assert login.status_code == 200 and login.json == {"user": "ada", "cart": [1, 4]}
    # Session fixation: the id changed at login, and the old one is dead.
    assert client.get_cookie("session").value != anonymous_cookie
    assert client.get("/me").json == {"user": "ada", "cart": [1, 4]}
    replay = app.test_client()
    replay.set_cookie("session", anonymous_cookie)
    assert replay.get("/me").json == {"user": None, "cart": []}

    assert client.post("/cart/2").json == {"user": "ada", "cart": [1, 4, 2]}

    logout = client.post("/logout")
    assert logout.status_code == 200 and logout.json == {"user": None, "cart": []}
    assert client.get_cookie("session") is None
    assert client.get("/me").json == {"user": None, "cart": []}

    health = client.get("/health/redis")
    assert health.status_code == 200 and health.json["status"] == "ok"


def test_every_page_on_real_redis(catalog, redis_server, monkeypatch):
    app = make(catalog, redis_server.url)
    drive_every_page(app, catalog, monkeypatch)
    keys = redis_server.client().keys("*")
    assert keys, "nothing reached Redis"
    # Cache entries under the namespace; after logout no session is left.
    assert all(k.startswith(b"cache:") for k in keys), keys


def test_every_page_on_memory(catalog, monkeypatch):
    app = make(catalog, "memory://catalog-example-test")
    drive_every_page(app, catalog, monkeypatch)


# -- the properties the docs promise, measured on the real server ------------

def test_memoized_hit_is_one_round_trip_and_reads_only(catalog, redis_server):
    app = make(catalog, redis_server.url)
    client = app.test_client()
    assert client.get("/products/1").status_code == 200
    redis_server.reset_stats()
    assert client.get("/products/1").json == catalog.PRODUCTS[1]
    assert commands(redis_server) == {"get": 1}
    assert not write_commands(redis_server)


def test_cached_page_hit_sends_cache_hit_signal(catalog, redis_server):
    app = make(catalog, redis_server.url)
    client = app.test_client()
    hits: list[str] = []

    def on_hit(sender: Any, key: str, **extra: Any) -> None:
        hits.append(key)

    with signals.cache_hit.connected_to(on_hit, sender=app):
        client.get("/")
        assert hits == []
        client.get("/")
    assert len(hits) == 1


def test_reading_the_session_rewrites_nothing(catalog, redis_server):
    app = make(catalog, redis_server.url)
    client = app.test_client()
    client.post("/login", data={"username": "grace"})
    client.post("/cart/5")
    before = {k: redis_server.client().dump(k) for k in redis_server.client().keys("session:*")}
    assert len(before) == 1
    redis_server.reset_stats()
    assert client.get("/me").json == {"user": "grace", "cart": [5]}
    # One command, nothing written: the TTL slides only once the cookie is
    # half the lifetime old (docs/sessions.rst).
    assert commands(redis_server) == {"hgetall": 1}
    assert write_commands(redis_server) == set()
    after = {k: redis_server.client().dump(k) for k in redis_server.client().keys("session:*")}
    assert after == before


def test_login_deletes_the_pre_login_session(catalog, redis_server):
    app = make(catalog, redis_server.url)
    client = app.test_client()
    client.post("/cart/1")
    assert len(redis_server.client().keys("session:*")) == 1
    client.post("/login", data={"username": "ada"})
    assert len(redis_server.client().keys("session:*")) == 1
    client.post("/logout")
    assert redis_server.client().keys("session:*") == []


def test_pages_still_work_when_redis_is_down(catalog, redis_factory):
    server = redis_factory()
    app = make(catalog, server.url, CATALOG_DB_DELAY=0)
    client = app.test_client()
    server.kill()
    assert client.get("/").status_code == 200
    assert client.get("/products/1").json == catalog.PRODUCTS[1]
    assert client.get("/me").json == {"user": None, "cart": []}
    assert client.get("/health/redis").status_code == 503


# -- configuration from the environment ----------------------------------------

def test_module_app_runs_without_redis_or_env(catalog, caplog):
    # `flask --app examples/catalog/app.py run` with nothing set: memory://.
    assert catalog.app.config["REDIS_URL"] == "memory://"
    assert catalog.app.config["SECRET_KEY"] == catalog.DEV_SECRET_KEY
    assert catalog.app.debug is False
    client = catalog.app.test_client()
    assert client.get("/").status_code == 200
    assert client.post("/login", data={"username": "ada"}).status_code == 200
    assert client.get("/me").json["user"] == "ada"
    with caplog.at_level(logging.WARNING, logger="catalog"):
        catalog.create_app()
    assert "SECRET_KEY is not set" in caplog.text


def test_settings_from_env_parses_values(catalog):
    env = {"REDIS_URL": "redis://:pw@redis:6379/0", "SECRET_KEY": "s3", "CATALOG_DB_DELAY": "0.5",
           "REDIS_POOL_SIZE": "8", "REDIS_SESSION": "true", "REDIS_NAMESPACE": "shop",
           "REDIS_SENTINELS": '["a:26379", "b:26379"]', "UNRELATED": "1"}
    config = catalog.settings_from_env(env)
    assert config == {
        "REDIS_URL": "redis://:pw@redis:6379/0", "SECRET_KEY": "s3", "CATALOG_DB_DELAY": 0.5,
        "REDIS_POOL_SIZE": 8, "REDIS_SESSION": True, "REDIS_NAMESPACE": "shop",
        "REDIS_SENTINELS": ["a:26379", "b:26379"], "REDIS_HEALTH_ENDPOINT": "/health/redis",
    }
    assert catalog.settings_from_env({}) == {
        "REDIS_URL": "memory://", "CATALOG_DB_DELAY": 0.05, "REDIS_HEALTH_ENDPOINT": "/health/redis",
    }


def test_bad_redis_config_from_env_fails_at_start(catalog, monkeypatch):
    from flask_rediscache import ConfigError

    monkeypatch.setenv("REDIS_POOL_SIZE", "many")
    with pytest.raises(ConfigError, match="REDIS_POOL_SIZE"):
        catalog.create_app()


# -- gunicorn and docker-compose ---------------------------------------------

def test_gunicorn_config_serves_shared_sessions_across_workers(redis_server, tmp_path):
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_server.url, "SECRET_KEY": "gunicorn-test", "PORT": str(port),
           "WEB_CONCURRENCY": "2", "REDIS_POOL_SIZE": "3", "CATALOG_DB_DELAY": "0", "ACCESS_LOG": "",
           "PYTHONPATH": str(ROOT)}
    log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(EXAMPLES / "gunicorn.conf.py")],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(base + "/health/redis", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "gunicorn.log").read_text()[-3000:]
            time.sleep(0.1)
        with requests.Session() as http:
            assert http.post(base + "/login", data={"username": "ada"}, timeout=5).json()["user"] == "ada"
            for pid in (1, 2, 3, 4, 5, 6):
                assert http.post(f"{base}/cart/{pid}", timeout=5).status_code == 200
            cookie = http.cookies["session"]
        workers = psutil.Process(proc.pid).children()
        assert len(workers) == 2
        served: set[int] = set()
        for _ in range(200):
            # A fresh connection each time, so either worker may answer; whichever
            # does must know the session another worker wrote.
            me = requests.get(base + "/me", cookies={"session": cookie}, timeout=5,
                              headers={"Connection": "close"}).json()
            assert me == {"user": "ada", "cart": [1, 2, 3, 4, 5, 6]}
            served = {w.pid for w in workers if any(
                c.raddr and c.raddr[1] == redis_server.port for c in w.net_connections("tcp"))}
            if len(served) == 2:
                break
        assert len(served) == 2, "one worker answered every request"
        text = (tmp_path / "gunicorn.log").read_text()
        assert "Using worker: gthread" in text
        assert text.count("Booting worker") == 2
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


def compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    data: dict[str, Any] = yaml.safe_load((EXAMPLES / "docker-compose.yml").read_text())
    return data


def test_compose_redis_command_runs_with_the_promised_settings(redis_factory):
    services = compose()["services"]
    argv = shlex.split(services["redis"]["command"].replace("${REDIS_PASSWORD:?set REDIS_PASSWORD}", "pw"))
    assert argv[0] == "redis-server"
    args = argv[1:]
    assert args[args.index("--requirepass") + 1] == "pw"
    server = redis_factory(*args, password="pw")
    client = server.client()
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    assert client.config_get("maxmemory") == {"maxmemory": str(256 * 1024 * 1024)}
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=server.port, retry=Retry(NoBackoff(), 0)).ping()
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert services["redis"]["environment"]["REDISCLI_AUTH"] == "${REDIS_PASSWORD}"
    assert "ports" not in services["redis"]  # Redis is not published on the host


def test_compose_web_service_points_at_the_redis_service():
    services = compose()["services"]
    web = services["web"]
    assert web["environment"]["REDIS_URL"] == "redis://:${REDIS_PASSWORD}@redis:6379/0"
    assert web["depends_on"]["redis"]["condition"] == "service_healthy"
    assert web["command"] == ["gunicorn", "-c", "examples/gunicorn.conf.py"]
    context = (EXAMPLES / web["build"]["context"]).resolve()
    assert context == ROOT and (context / web["build"]["dockerfile"]).is_file()
    dockerfile = (EXAMPLES / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source

"""TLS (``rediss://``) against a real redis-server speaking TLS only.

The test PKI (a CA, a server certificate for 127.0.0.1/localhost signed by
it, a client certificate, and an unrelated "wrong" CA) is generated with
openssl per module (tests/topology_servers.py). A certificate problem must
never reach the app: cache calls fail open.
"""

from __future__ import annotations

import threading

import pytest
import redis

from flask_rediscache.config import ConfigError
from flask_rediscache.state import get_state

from .support import Recorder
from .topology_servers import Certificates, TLSRedisServer, make_certificates

pytestmark = pytest.mark.timeout(60)



@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certificates:
    return make_certificates(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture
def tls_server(certs):
    """TLS only (``--port 0``), no client certificate required."""
    servers: list[TLSRedisServer] = []

    def start(auth_clients: str = "no", password: str | None = None) -> TLSRedisServer:
        server = TLSRedisServer(certs, auth_clients, password=password)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _ssl_errors(calls: list[dict]) -> list[str]:
    return [str(c["exception"]) for c in calls]


def test_verified_tls_connection(make_app, tls_server, certs):
    server = tls_server()
    errors = Recorder()
    app = make_app(REDIS_URL=server.url, REDIS_SSL_CA_CERTS=certs.ca, REDIS_ERROR_HANDLER=errors,
                   REDIS_POOL_SIZE=4)
    assert get_state(app).targets["cache"].name == server.url
    with app.app_context():
        cache = app.extensions["rediscache"]
        assert cache.set("k", {"tls": True}) is True
        assert cache.get("k") == {"tls": True}
        assert cache.set_many({"a": 1, "b": 2}) and cache.get_many("a", "b") == [1, 2]
        assert cache.inc("n", timeout=10) == 1
        assert cache.clear() == 4
    assert errors.calls == []
    assert server.client().dbsize() == 0


def test_many_new_tls_connections_then_reuse(make_app, tls_server, certs):
    """Several connections opened at once, then reused many times: each new
    TLS connection's handshake leaves nothing unread behind (redis-py 8 would
    otherwise raise "Connection has data" when a pooled one is reused)."""
    server = tls_server()
    errors = Recorder()
    app = make_app(REDIS_URL=server.url.replace("127.0.0.1", "localhost"), REDIS_SSL_CA_CERTS=certs.ca,
                   REDIS_ERROR_HANDLER=errors, REDIS_POOL_SIZE=4,
                   REDIS_CONNECTION_OPTIONS={"client_name": "tls-pool-test"})
    barrier = threading.Barrier(4)
    failures: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with app.app_context():
                cache = app.extensions["rediscache"]
                barrier.wait(5)
                for i in range(50):
                    assert cache.set(f"w{n}:{i}", i) is True
                    assert cache.get(f"w{n}:{i}") == i
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert failures == [] and errors.calls == []
    # Several connections were opened (the barrier made the threads overlap),
    # never more than the pool's bound.
    opened = [c for c in server.client().client_list() if c.get("name") == "tls-pool-test"]
    assert 2 <= len(opened) <= 4
    assert server.client().dbsize() == 200


def test_wrong_ca_fails_open(make_app, tls_server, certs):
    server = tls_server()
    errors = Recorder()
    app = make_app(REDIS_URL=server.url, REDIS_SSL_CA_CERTS=certs.wrong_ca, REDIS_ERROR_HANDLER=errors)
    calls = []
    with app.app_context():
        cache = app.extensions["rediscache"]
        assert cache.get("k") is None
        assert cache.set("k", 1) is False
        assert cache.fetch("f", lambda: calls.append(1) or "computed") == "computed"

        @cache.memoize()
        def double(n):
            calls.append(n)
            return 2 * n

        assert double(4) == 8
    assert calls == [1, 4]
    assert errors.calls
    assert all(isinstance(c["exception"], (redis.ConnectionError, OSError)) for c in errors.calls)
    assert "certificate verify failed" in _ssl_errors(errors.calls)[0]
    # Nothing got through to the server.
    assert server.client().dbsize() == 0


def test_plain_redis_url_against_a_tls_port_fails_open(make_app, tls_server):
    server = tls_server()
    errors = Recorder()
    app = make_app(REDIS_URL=server.url.replace("rediss://", "redis://"), REDIS_ERROR_HANDLER=errors,
                   REDIS_READ_TIMEOUT=0.5, REDIS_CONNECT_TIMEOUT=0.5)
    with app.app_context():
        assert app.extensions["rediscache"].get("k") is None
    assert errors.calls


def test_client_certificate(make_app, tls_server, certs):
    server = tls_server("yes")
    errors = Recorder()
    without = make_app(REDIS_URL=server.url, REDIS_SSL_CA_CERTS=certs.ca, REDIS_ERROR_HANDLER=errors)
    with without.app_context():
        assert without.extensions["rediscache"].set("k", 1) is False
    assert errors.calls
    errors.calls.clear()
    with_cert = make_app(REDIS_URL=server.url, REDIS_SSL_CA_CERTS=certs.ca,
                         REDIS_SSL_CERTFILE=certs.client_cert, REDIS_SSL_KEYFILE=certs.client_key,
                         REDIS_ERROR_HANDLER=errors)
    with with_cert.app_context():
        cache = with_cert.extensions["rediscache"]
        assert cache.set("k", 1) is True and cache.get("k") == 1
    assert errors.calls == []


def test_cert_reqs_none_skips_verification(make_app, tls_server, certs):
    server = tls_server()
    app = make_app(REDIS_URL=server.url, REDIS_SSL_CA_CERTS=certs.wrong_ca, REDIS_SSL_CERT_REQS="none")
    with app.app_context():
        cache = app.extensions["rediscache"]
        assert cache.set("k", 1) is True and cache.get("k") == 1


def test_tls_with_password_and_separate_session_url(make_app, tls_server, certs):
    server = tls_server(password="s3cret")
    app = make_app(REDIS_CACHE_URL=server.url, REDIS_SESSION_URL=server.url.replace("/0", "/1"),
                   REDIS_SSL_CA_CERTS=certs.ca)
    targets = get_state(app).targets
    assert targets["cache"] is not targets["session"]
    assert "s3cret" not in targets["cache"].name
    with app.app_context():
        assert app.extensions["rediscache"].set("k", 1) is True

    from flask import session

    @app.get("/in")
    def login():
        session["user"] = "ada"
        return "ok"

    client = app.test_client()
    assert client.get("/in").status_code == 200
    assert server.client(db=1).keys("session:*")
    assert server.client(db=0).keys("cache:*") == [b"cache:k"]


def test_bad_cert_reqs_is_a_config_error(make_app, certs):
    with pytest.raises(ConfigError, match="REDIS_SSL_CERT_REQS"):
        make_app(REDIS_URL="rediss://127.0.0.1:1/0", REDIS_SSL_CERT_REQS="sometimes")


def test_health_names_the_certificate_problem(make_app, tls_server, certs):
    server = tls_server()
    app = make_app(REDIS_URL=server.url, REDIS_SSL_CA_CERTS=certs.wrong_ca, REDIS_SESSION=False)
    result = app.test_cli_runner().invoke(args=["redis", "health"])
    assert result.exit_code == 1, result.output
    assert "TLS certificate problem" in result.output
    assert "certificate verify failed" in result.output
    assert "Traceback" not in result.output
    good = make_app(REDIS_URL=server.url, REDIS_SSL_CA_CERTS=certs.ca, REDIS_SESSION=False)
    result = good.test_cli_runner().invoke(args=["redis", "health"])
    assert result.exit_code == 0, result.output

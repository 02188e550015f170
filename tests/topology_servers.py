"""Real Redis topologies for the tests: Sentinel, Cluster, TLS and ACL users.

Everything here builds on :class:`tests.servers.RedisServer` (one process on a
free loopback port, nothing on disk but its temp dir). The helpers start the
real engines the way an operator would (``redis-server sentinel.conf
--sentinel``, ``redis-cli --cluster create``, ``--tls-port`` with
certificates made by ``openssl``), and every fixture stops what it started.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from .servers import REDIS_CLI, RedisServer, free_port

OPENSSL = shutil.which("openssl")


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05,
               message: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
        except (redis.RedisError, OSError) as exc:
            last_exc, result = exc, None
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}"
                         + (f" (last error: {last_exc!r})" if last_exc else ""))


def require_tool(path: str | None, name: str) -> str:
    """A command-line tool the topology needs; missing fails in CI, skips elsewhere."""
    if path is None:
        message = f"{name} is not installed"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


# -- Sentinel ----------------------------------------------------------------
class SentinelServer(RedisServer):
    """``redis-server sentinel.conf --sentinel`` monitoring ``master`` as ``name``.

    Sentinel rewrites its config file, so it gets one of its own in the
    server's temp dir. ``down_after`` and ``failover_timeout`` are kept low
    so a killed master is replaced within a second or two.
    """

    def __init__(self, master_port: int, name: str = "m", *, down_after_ms: int = 500,
                 failover_timeout_ms: int = 2000, master_password: str | None = None,
                 password: str | None = None, tls: Certificates | None = None) -> None:
        self.tls = tls
        self.master_port = master_port
        self.service = name
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.master_password = master_password
        super().__init__(password=password)

    def command_line(self) -> list[str]:
        conf = os.path.join(self.dir, "sentinel.conf")
        if not os.path.exists(conf):
            lines = [
                f"port {self.port}" if self.tls is None else "port 0",
                "bind 127.0.0.1",
                f"dir {self.dir}",
                f"sentinel monitor {self.service} 127.0.0.1 {self.master_port} 1",
                f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}",
                f"sentinel failover-timeout {self.service} {self.failover_timeout_ms}",
                f"sentinel parallel-syncs {self.service} 1",
            ]
            if self.master_password:
                lines.append(f"sentinel auth-pass {self.service} {self.master_password}")
            if self.password:
                lines.append(f"requirepass {self.password}")
            if self.tls is not None:
                lines += [f"tls-port {self.port}", f"tls-cert-file {self.tls.server_cert}",
                          f"tls-key-file {self.tls.server_key}", f"tls-ca-cert-file {self.tls.ca}",
                          "tls-auth-clients no", "tls-replication yes"]
            with open(conf, "w") as fh:
                fh.write("\n".join(lines) + "\n")
        return [self.binary, conf, "--sentinel", "--daemonize", "no",
                "--logfile", os.path.join(self.dir, "redis.log")]

    def client(self, **kwargs: Any) -> redis.Redis:
        if self.tls is not None:
            kwargs.setdefault("ssl", True)
            kwargs.setdefault("ssl_ca_certs", self.tls.ca)
        return super().client(**kwargs)

    def master_address(self) -> tuple[str, int] | None:
        addr = self.client().sentinel_get_master_addr_by_name(self.service)
        return (addr[0].decode() if isinstance(addr[0], bytes) else addr[0], int(addr[1])) if addr else None


@dataclass
class SentinelSetup:
    master: RedisServer
    replica: RedisServer
    sentinel: SentinelServer

    @property
    def servers(self) -> list[RedisServer]:
        return [self.master, self.replica, self.sentinel]

    def config(self) -> dict[str, Any]:
        """The app config that reaches the master through the sentinel."""
        config: dict[str, Any] = {"REDIS_SENTINELS": [f"127.0.0.1:{self.sentinel.port}"],
                                  "REDIS_SENTINEL_MASTER": self.sentinel.service}
        if self.sentinel.tls is not None:
            config["REDIS_URL"] = f"rediss://{self.sentinel.service}/0"
            config["REDIS_SSL_CA_CERTS"] = self.sentinel.tls.ca
        if self.master.password:
            # With Sentinel the URL only carries credentials (and the db).
            config["REDIS_URL"] = f"redis://:{self.master.password}@{self.sentinel.service}/0"
        if self.sentinel.password:
            config["REDIS_SENTINEL_PASSWORD"] = self.sentinel.password
        return config

    def current_master(self) -> RedisServer:
        """The server the sentinel names as master now."""
        address = self.sentinel.master_address()
        return next(s for s in (self.master, self.replica) if address and s.port == address[1])

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def start_sentinel_setup(*, down_after_ms: int = 500, password: str | None = None,
                         sentinel_password: str | None = None,
                         tls: Certificates | None = None) -> SentinelSetup:
    """A master, one replica of it, and one sentinel (quorum 1) watching them.

    ``password`` protects master and replica (``requirepass``/``masterauth``),
    ``sentinel_password`` the sentinel; with ``tls`` every process speaks TLS
    only (replication and the sentinel's links included). Returns once the
    sentinel knows the replica, so a failover can happen.
    """
    # Redis 7 waits 5 s before a diskless full sync by default; the tests can't.
    common = ["--repl-diskless-sync-delay", "0"] + (["--masterauth", password] if password else [])

    def server(*args: str) -> RedisServer:
        if tls is None:
            return RedisServer(args, password=password)
        return TLSRedisServer(tls, "no", [*args, "--tls-replication", "yes"], password=password)

    master = server(*common)
    replica = sentinel = None
    try:
        replica = server("--replicaof", "127.0.0.1", str(master.port), *common)
        wait_until(lambda: replica.client().info("replication").get("master_link_status") == "up",
                   10, message="the replica to sync")
        sentinel = SentinelServer(master.port, down_after_ms=down_after_ms, master_password=password,
                                  password=sentinel_password, tls=tls)
        sentinel_client = sentinel.client()

        def replica_known() -> bool:
            replicas = sentinel_client.sentinel_slaves(sentinel.service)
            # Connected and INFO-refreshed, or the sentinel won't promote it (NOGOODSLAVE).
            return any(int(r["port"]) == replica.port and not r["is_sdown"] and not r["is_disconnected"]
                       and r["runid"] and r["master-link-status"] == "ok" for r in replicas)

        wait_until(replica_known, 10, message="the sentinel to discover the replica")
    except BaseException:
        for server in (master, replica, sentinel):
            if server is not None:
                server.stop()
        raise
    return SentinelSetup(master, replica, sentinel)


# -- Cluster -----------------------------------------------------------------
class RedisClusterNodes:
    """``n`` primaries joined by ``redis-cli --cluster create``, each with
    ``replicas`` replicas (default none)."""

    def __init__(self, n: int = 3, args: Sequence[str] = (), replicas: int = 0) -> None:
        cli = require_tool(REDIS_CLI, "redis-cli")
        self.nodes: list[RedisServer] = []
        try:
            for _ in range(n * (1 + replicas)):
                # The config file is relative to the server's --dir, its own temp dir.
                # An explicit bus port: the default (port + 10000) may be taken or > 65535.
                self.nodes.append(RedisServer(["--cluster-enabled", "yes", "--cluster-config-file",
                                               "nodes.conf", "--cluster-node-timeout", "2000",
                                               "--cluster-port", str(free_port()), *args]))
            addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
            subprocess.run([cli, "--cluster", "create", *addresses, "--cluster-replicas", str(replicas),
                            "--cluster-yes"], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=30)
            wait_until(self._all_ok, 15, message="cluster_state:ok on every node")
            if replicas:
                wait_until(self._replicas_synced, 15, message="every replica to sync")
        except BaseException:
            self.stop()
            raise

    def _replicas_synced(self) -> bool:
        infos = [node.client().info("replication") for node in self.nodes]
        if not all(info.get("master_link_status") == "up" for info in infos if info["role"] == "slave"):
            return False
        # ... and every node's CLUSTER SLOTS lists them (gossip), or clients never see them.
        for node in self.nodes:
            ranges = node.client().execute_command("CLUSTER SLOTS")
            if not ranges or any(len(entry) < 4 for entry in ranges):
                return False
        return True

    def roles(self) -> tuple[list[RedisServer], list[RedisServer]]:
        """(primaries, replicas) as the nodes say now."""
        primaries, replicas = [], []
        for node in self.nodes:
            role = node.client().info("replication")["role"]
            (primaries if role == "master" else replicas).append(node)
        return primaries, replicas

    def _all_ok(self) -> bool:
        return all(node.client().cluster("info")["cluster_state"] == "ok" for node in self.nodes)

    @property
    def seeds(self) -> list[str]:
        return [f"redis://127.0.0.1:{node.port}" for node in self.nodes]

    def keys_per_node(self, pattern: str = "*") -> list[list[bytes]]:
        """Every node's keys matching ``pattern`` (SCAN on each node directly)."""
        return [sorted(node.client().scan_iter(match=pattern, count=1000)) for node in self.nodes]

    def flush(self) -> None:
        for node in self.nodes:
            node.client().flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


# -- TLS ---------------------------------------------------------------------
@dataclass
class Certificates:
    """A CA, a server certificate it signed (CN/SAN 127.0.0.1 and localhost),
    a client certificate it signed, and an unrelated CA (the "wrong" one)."""

    dir: str
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    wrong_ca: str


def _openssl(*args: str, cwd: str) -> None:
    openssl = require_tool(OPENSSL, "openssl")
    subprocess.run([openssl, *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)


def _make_ca(name: str, cwd: str) -> None:
    # The extensions Python 3.13's strict X.509 checks (VERIFY_X509_STRICT) require of a CA.
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-sha256",
             "-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj", f"/CN=rediscache test {name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-addext", "subjectKeyIdentifier=hash", cwd=cwd)


def _make_leaf(name: str, ca: str, cn: str, ext: str, cwd: str) -> None:
    with open(os.path.join(cwd, f"{name}.ext"), "w") as fh:
        fh.write(ext + "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                 "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={cn}", cwd=cwd)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "2", "-sha256", "-out", f"{name}.crt",
             "-extfile", f"{name}.ext", cwd=cwd)


def make_certificates(directory: str) -> Certificates:
    """Generate the test PKI with openssl in ``directory``."""
    _make_ca("ca", directory)
    _make_ca("wrong-ca", directory)
    _make_leaf("server", "ca", "127.0.0.1",
               "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n", directory)
    _make_leaf("client", "ca", "rediscache-client", "extendedKeyUsage=clientAuth\n", directory)
    path = lambda name: os.path.join(directory, name)  # noqa: E731
    return Certificates(directory, path("ca.crt"), path("server.crt"), path("server.key"),
                        path("client.crt"), path("client.key"), path("wrong-ca.crt"))


class TLSRedisServer(RedisServer):
    """redis-server speaking TLS only (``--port 0 --tls-port P``).

    ``auth_clients`` is redis' ``tls-auth-clients``: "no", "optional" or
    "yes" (then a client certificate signed by the CA is required).
    """

    def __init__(self, certs: Certificates, auth_clients: str = "no",
                 args: Sequence[str] = (), password: str | None = None) -> None:
        self.certs = certs
        self.auth_clients = auth_clients
        super().__init__(args, password=password)

    def command_line(self) -> list[str]:
        cmd = super().command_line()
        cmd[cmd.index("--port") + 1] = "0"
        return [*cmd, "--tls-port", str(self.port), "--tls-cert-file", self.certs.server_cert,
                "--tls-key-file", self.certs.server_key, "--tls-ca-cert-file", self.certs.ca,
                "--tls-auth-clients", self.auth_clients]

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"rediss://{auth}127.0.0.1:{self.port}/0"

    def client(self, **kwargs: Any) -> redis.Redis:
        kwargs.setdefault("ssl", True)
        kwargs.setdefault("ssl_ca_certs", self.certs.ca)
        kwargs.setdefault("ssl_certfile", self.certs.client_cert)
        kwargs.setdefault("ssl_keyfile", self.certs.client_key)
        return super().client(**kwargs)


# -- ACL ---------------------------------------------------------------------
def acl_user(server: RedisServer, name: str, password: str, *rules: str) -> str:
    """Create ACL user ``name`` on ``server`` with ``rules``; returns its URL."""
    server.client().acl_setuser(name, enabled=True, reset=True, passwords=[f"+{password}"],
                                **_acl_rules(rules))
    return f"redis://{name}:{password}@127.0.0.1:{server.port}/0"


def _acl_rules(rules: Sequence[str]) -> dict[str, Any]:
    # redis-py's acl_setuser takes rules split by kind; accept the redis.conf spelling.
    keys = [r[1:] for r in rules if r.startswith("~")]
    categories = [r for r in rules if r.startswith(("+@", "-@"))]
    commands = [r for r in rules if r[:1] in "+-" and not r.startswith(("+@", "-@"))]
    return {"keys": keys, "categories": categories, "commands": commands}


def acl_denials(server: RedisServer, user: str) -> list[dict[str, Any]]:
    """ACL LOG entries for ``user`` (commands or keys it was refused)."""
    entries = server.client().acl_log(count=100)
    return [e for e in entries if e.get("username") == user]

"""Real redis-server processes on free loopback ports, for the tests.

Every fixture that starts a server lives here or in conftest.py. Servers keep
nothing on disk, bind 127.0.0.1 only, and can be paused (SIGSTOP), resumed,
killed and restarted on the same port by the fault tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import pytest
import redis

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
#: Commands that measuring (INFO, CONFIG RESETSTAT) and connecting (HELLO, AUTH,
#: CLIENT SETINFO: redis-py sends them on every new connection) add to the stats.
HANDSHAKE = ("info", "config|resetstat", "client|setinfo", "hello", "auth")


def require_redis_server() -> str:
    """Path of redis-server; missing means failure in CI, skip elsewhere."""
    if REDIS_SERVER is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return REDIS_SERVER


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process. ``args`` are extra ``--name value`` options."""

    def __init__(self, args: Sequence[str] = (), port: int | None = None, password: str | None = None):
        self.binary = require_redis_server()
        self.port = port or free_port()
        self.password = password
        self.args = list(args)
        self.dir = tempfile.mkdtemp(prefix="rediscache-test-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    # -- lifecycle --------------------------------------------------------
    def command_line(self) -> list[str]:
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", self.dir, "--daemonize", "no",
               "--logfile", os.path.join(self.dir, "redis.log")]
        if self.password:
            cmd += ["--requirepass", self.password]
        return cmd + self.args

    def start(self, timeout: float = 10) -> None:
        self.proc = subprocess.Popen(self.command_line(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                with open(os.path.join(self.dir, "redis.log")) as fh:
                    log = fh.read()[-2000:]
                raise RuntimeError(f"redis-server exited at start: {log}")
            try:
                if self.client().ping():
                    return
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(5)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- access -----------------------------------------------------------
    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self, **kwargs: Any) -> redis.Redis:
        kwargs.setdefault("socket_timeout", 2)
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, **kwargs)

    def commandstats(self) -> dict[str, int]:
        """Calls per command since the last :meth:`reset_stats` (lower-case names)."""
        info = self.client().info("commandstats")
        return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in info.items()}

    def reset_stats(self) -> None:
        self.client().config_resetstat()

    def commands_since_reset(self, ignore: Sequence[str] = HANDSHAKE) -> dict[str, int]:
        """Calls per command since :meth:`reset_stats`, minus ``ignore`` (by default
        what the measuring client and every new connection's handshake send)."""
        return {k: v for k, v in self.commandstats().items() if k not in ignore}

    def connected_clients(self) -> int:
        return int(self.client().info("clients")["connected_clients"]) - 1  # minus ours

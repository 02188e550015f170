"""Helpers for the broadcast tests: a raw-socket server-sent-events client and gunicorn.

No tests here. The SSE client speaks HTTP/1.1 over a plain socket (chunked
bodies included), so a test controls exactly when a "browser" connects,
what ``Last-Event-ID`` it sends and when it goes away.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from .servers import free_port

ROOT = Path(__file__).resolve().parent.parent
_HAS_CONTROL_SOCKET = "--control-socket" in subprocess.run(
    [sys.executable, "-m", "gunicorn", "--help"], capture_output=True, text=True, check=False).stdout
TESTS = ROOT / "tests"


@dataclass
class Event:
    id: str | None
    event: str | None
    data: str
    at: float = field(default_factory=time.perf_counter)


class SSEClient:
    """One EventSource-like connection: events land in :attr:`events` as they arrive."""

    def __init__(self, port: int, path: str, *, last_event_id: str | None = None,
                 host: str = "127.0.0.1", timeout: float = 30) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Accept: text/event-stream",
                 "Cache-Control: no-cache"]
        if last_event_id:
            lines.append(f"Last-Event-ID: {last_event_id}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.events: queue.Queue[Event] = queue.Queue()
        self.comments: list[str] = []
        self.retry: int | None = None
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.opened = threading.Event()
        self.ended = threading.Event()
        self.first_byte_at: float | None = None
        self.error: BaseException | None = None
        self.started = time.perf_counter()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    # -- reading -------------------------------------------------------------
    def _run(self) -> None:
        try:
            reader = self.sock.makefile("rb")
            status = reader.readline().decode("latin-1").split()
            self.status = int(status[1])
            while True:
                line = reader.readline().decode("latin-1").strip()
                if not line:
                    break
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()
            self.opened.set()
            chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
            pending = b""
            while True:
                if chunked:
                    size_line = reader.readline()
                    if not size_line:
                        break
                    size = int(size_line.split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        break
                    data = reader.read(size)
                    reader.readline()
                else:
                    data = reader.read1(65536) if hasattr(reader, "read1") else reader.read(1)
                    if not data:
                        break
                if self.first_byte_at is None:
                    self.first_byte_at = time.perf_counter()
                pending += data
                while b"\n\n" in pending:
                    block, pending = pending.split(b"\n\n", 1)
                    self._dispatch(block.decode("utf-8"))
        except (OSError, ValueError) as exc:
            self.error = exc
        finally:
            self.opened.set()
            self.ended.set()

    def _dispatch(self, block: str) -> None:
        event_id = event = None
        data: list[str] = []
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "":
                self.comments.append(value)
            elif name == "id":
                event_id = value
            elif name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "retry":
                self.retry = int(value)
        if data:
            self.events.put(Event(event_id, event, "\n".join(data)))

    # -- for the tests -----------------------------------------------------------
    def next(self, timeout: float = 10) -> Event:
        return self.events.get(timeout=timeout)

    def collect(self, n: int, timeout: float = 10) -> list[Event]:
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                out.append(self.events.get(timeout=left))
            except queue.Empty:
                break
        return out

    def drain(self, wait: float = 0.3) -> list[Event]:
        time.sleep(wait)
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def wait_open(self, timeout: float = 10) -> None:
        assert self.opened.wait(timeout), "no response headers"
        assert self.status == 200, self.status

    def wait_ready(self, timeout: float = 10) -> None:
        """Until the ``retry:`` line arrived (the server has registered the stream)."""
        self.wait_open(timeout)
        deadline = time.monotonic() + timeout
        while self.retry is None and time.monotonic() < deadline and not self.ended.is_set():
            time.sleep(0.005)
        assert self.retry is not None, "no retry: line"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class Gunicorn:
    """``tests/test_cable_app.py`` (or another app) under gunicorn gthread on a free port."""

    def __init__(self, workdir: Path, env: dict[str, str], *, app: str = "test_cable_app:app",
                 chdir: Path = TESTS, workers: int = 2, threads: int = 8,
                 extra: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "gunicorn.log"
        cmd = [sys.executable, "-m", "gunicorn", "--chdir", str(chdir), "--worker-class", "gthread",
               "--workers", str(workers), "--threads", str(threads), "--bind", f"127.0.0.1:{self.port}",
               "--timeout", "60", "--graceful-timeout", "3",
               # its own control socket: gunicorn 25+ shares ~/.gunicorn/gunicorn.ctl otherwise
               *(["--control-socket", str(workdir / "gunicorn.ctl")] if _HAS_CONTROL_SOCKET else []),
               *extra, app]
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=workdir, env={**os.environ, **env}, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def wait_ready(self, path: str = "/pid", timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"gunicorn exited at start:\n{self.log_tail()}")
            try:
                if requests.get(self.base + path, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        pytest.fail(f"gunicorn did not answer within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")[-n:]

    def worker_pids(self) -> list[int]:
        import psutil

        return [child.pid for child in psutil.Process(self.proc.pid).children()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def wait_for(predicate: Any, timeout: float = 10, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)

"""``./dev.sh example`` twice on a fresh checkout: the second call runs no pip and starts fast.

The checkout is a copy of this working tree (tracked and new files, nothing ignored) in a temporary
directory, so ``.venv`` starts empty exactly as on a clean clone and the developer's own ``.venv``
is left alone. Whether pip ran is measured, not inferred from dev.sh's messages: pip appends to
the file named by ``PIP_LOG`` whenever it runs.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                       reason="needs a git checkout"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def checkout_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def run_example(repo: Path, pip_log: Path, limit: float) -> tuple[float, str]:
    """Start ``./dev.sh example`` and stop it once it answers HTTP; (seconds until then, output)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in {"VIRTUAL_ENV", "PYTHONPATH", "FLASK_APP", "CI"} and not k.startswith("REDIS_")}
    env.update(PIP_LOG=str(pip_log), CATALOG_DB_DELAY="0")
    out = repo / f"dev-sh-{port}.log"
    start = time.monotonic()
    with out.open("w") as log:
        proc = subprocess.Popen(["./dev.sh", "example", "--port", str(port)], cwd=repo, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while True:
            elapsed = time.monotonic() - start
            if proc.poll() is not None:
                raise AssertionError(f"./dev.sh example exited {proc.returncode}:\n{out.read_text()}")
            if elapsed > limit:
                raise AssertionError(f"./dev.sh example did not answer within {limit}s:\n{out.read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/products/1", timeout=1) as response:
                    assert response.status == 200
                break
            except OSError:
                time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    return elapsed, out.read_text()


def test_second_example_run_installs_nothing_and_starts_in_under_5s(tmp_path: Path) -> None:
    repo = checkout_copy(tmp_path / "repo")

    first_log = tmp_path / "pip-first.log"
    _, first = run_example(repo, first_log, limit=400)
    assert first_log.exists(), "the first run on a fresh checkout should have installed with pip"
    assert "installing example into .venv" in first, first
    assert "Editable installation" not in first and "!!" not in first, first  # no setuptools box
    for tool in ("gunicorn", "sphinx-build", "flask"):  # what the READMEs run from .venv
        assert (repo / ".venv" / "bin" / tool).exists(), tool

    second_log = tmp_path / "pip-second.log"
    elapsed, second = run_example(repo, second_log, limit=30)
    assert not second_log.exists(), "the second run invoked pip:\n" + second_log.read_text()
    assert "installing" not in second, second
    assert elapsed < 5, f"second ./dev.sh example took {elapsed:.1f}s to answer"

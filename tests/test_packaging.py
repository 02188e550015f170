"""The release path: build, check, install into a fresh venv, build the docs from the sdist.

These tests walk what a user and a docs host do with the published files:

* ``python -m build`` makes an sdist and a wheel (the wheel built from the sdist), and
  ``twine check --strict`` accepts both;
* a brand-new venv with only ``pip install <wheel>`` (no extras) and ``REDIS_URL=memory://``
  gets the one-line ``ConfigError`` that names the ``memory`` extra from ``flask redis health``;
  after ``pip install "<wheel>[memory]"`` the same command answers with exit 0;
* with the ``docs`` extra, ``sphinx-build -W`` builds the docs from the unpacked sdist.

pip's own download and wheel caches are used as they are, so after the first run the venvs
install from the local cache.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tarfile
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MEMORY_HINT = 'memory:// needs fakeredis: pip install "flask-rediscache[memory]"'

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        importlib.util.find_spec("build") is None or importlib.util.find_spec("twine") is None,
        reason="needs the dev extra (build, twine)",
    ),
]


def run(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
        check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                             f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that would point a child at this checkout or venv."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "FLASK_APP"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("REDIS_")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def project_version() -> str:
    source = (ROOT / "flask_rediscache" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', source, re.M)
    assert match, "flask_rediscache/__init__.py must assign __version__ a string literal"
    return match.group(1)


@dataclass
class Dist:
    sdist: Path
    wheel: Path
    unpacked: Path  # the sdist, extracted


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], env=clean_env())
    sdists = sorted(out.glob("*.tar.gz"))
    wheels = sorted(out.glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(p.name for p in out.iterdir())
    unpack = tmp_path_factory.mktemp("sdist")
    with tarfile.open(sdists[0]) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(unpack, filter="data")
        else:  # Python 3.10 before 3.10.12
            tar.extractall(unpack)
    (unpacked,) = unpack.iterdir()
    return Dist(sdists[0], wheels[0], unpacked)


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory, dist: Dist) -> Iterator[Path]:
    """A new venv with nothing but the wheel (and its required dependencies)."""
    path = tmp_path_factory.mktemp("fresh") / "venv"
    venv.create(path, with_pip=True)
    run([str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", str(dist.wheel)], env=clean_env())
    yield path


def test_build_makes_sdist_and_wheel_that_twine_accepts(dist: Dist) -> None:
    version = project_version()
    assert dist.sdist.name == f"flask_rediscache-{version}.tar.gz"
    assert dist.wheel.name == f"flask_rediscache-{version}-py3-none-any.whl"
    run([sys.executable, "-m", "twine", "check", "--strict", str(dist.sdist), str(dist.wheel)])


def test_wheel_is_typed_and_carries_only_the_package(dist: Dist) -> None:
    with zipfile.ZipFile(dist.wheel) as whl:
        names = whl.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = whl.read(metadata).decode()
    assert "flask_rediscache/py.typed" in names
    dist_info = f"flask_rediscache-{project_version()}.dist-info"
    assert {n.split("/")[0] for n in names} == {"flask_rediscache", dist_info}
    assert f"\nVersion: {project_version()}\n" in meta
    assert "Requires-Dist: flask>=3.0\n" in meta
    for extra in ("memory", "docs", "test", "dev"):
        assert f"Provides-Extra: {extra}" in meta, extra


def test_sdist_carries_docs_tests_examples_and_changes(dist: Dist) -> None:
    top = dist.unpacked
    for name in ("CHANGES.rst", "README.rst", "pyproject.toml", "setup.cfg", "flask_rediscache/py.typed",
                 "docs/conf.py", "docs/index.rst", "tests/conftest.py", "examples/catalog/app.py",
                 "examples/gunicorn.conf.py"):
        assert (top / name).is_file(), name
    assert f"Version {project_version()}" in (top / "CHANGES.rst").read_text()
    assert not list(top.rglob("__pycache__"))
    assert not (top / "docs" / "_build").exists()


def test_fresh_venv_memory_url_names_the_extra_then_works_with_it(fresh_venv: Path, dist: Dist,
                                                                   tmp_path: Path) -> None:
    python = fresh_venv / "bin" / "python"
    flask = fresh_venv / "bin" / "flask"
    app = dist.unpacked / "examples" / "catalog" / "app.py"
    env = clean_env(REDIS_URL="memory://")
    # The package comes from the installed wheel, not from a source tree on the path.
    where = run([str(python), "-c", "import flask_rediscache; print(flask_rediscache.__file__)"],
                cwd=tmp_path, env=env).stdout
    assert str(fresh_venv) in where
    assert run([str(python), "-c", "import fakeredis"], cwd=tmp_path, env=env, check=False).returncode != 0

    no_extra = run([str(flask), "--app", str(app), "redis", "health"], cwd=tmp_path, env=env, check=False)
    output = no_extra.stdout + no_extra.stderr
    assert no_extra.returncode != 0, output
    assert MEMORY_HINT in output, output
    assert "Traceback" not in output, output
    assert "No such command" not in output, output

    run([str(python), "-m", "pip", "install", "--quiet", f"{dist.wheel}[memory]"], env=clean_env())
    healthy = run([str(flask), "--app", str(app), "redis", "health"], cwd=tmp_path, env=env, check=False)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr


def test_docs_build_from_the_sdist_with_the_docs_extra(fresh_venv: Path, dist: Dist, tmp_path: Path) -> None:
    python = fresh_venv / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--quiet", f"{dist.wheel}[docs]"], env=clean_env())
    run([str(fresh_venv / "bin" / "sphinx-build"), "-W", "--keep-going", "-q", "-b", "html",
         "docs", str(tmp_path / "html")], cwd=dist.unpacked, env=clean_env())
    assert (tmp_path / "html" / "index.html").is_file()

"""The ``flask redis`` group when the app does not start (issue 14.1) and on
``memory://`` (issue 14.3)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.cli import FlaskGroup, ScriptInfo

import flask_rediscache
from flask_rediscache import RedisCache
from flask_rediscache.cli import MEMORY_NOTICE, redis_cli
from flask_rediscache.config import ConfigError

COMMANDS = (["health"], ["health", "--json"], ["stats"], ["stats", "--json"], ["keys"],
            ["keys", "--json"], ["doctor"], ["doctor", "--json"], ["clear", "--yes"],
            ["clear", "--yes", "--json"])


def broken_factory() -> Flask:
    app = Flask("broken")
    app.config.update(SECRET_KEY="s", REDIS_URL="redis://127.0.0.1:6390/0", REDIS_POOL_SIZE="many")
    RedisCache(app)  # raises ConfigError naming REDIS_POOL_SIZE
    return app


def test_the_factory_really_fails():
    with pytest.raises(ConfigError):
        broken_factory()


@pytest.mark.parametrize("args", COMMANDS)
def test_app_that_fails_to_start_gives_one_line_and_exit_1(args):
    # As the flask.commands entry point runs it: the group is found without loading
    # the app; loading it inside the command raises the app's ConfigError.
    cli = FlaskGroup(create_app=broken_factory, add_default_commands=False)
    cli.add_command(redis_cli)
    result = CliRunner().invoke(cli, ["redis", *args])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: could not load the app: REDIS_POOL_SIZE=")


def test_app_without_the_extension_says_so():
    info = ScriptInfo(create_app=lambda: Flask("bare"))
    result = CliRunner().invoke(redis_cli, ["health"], obj=info)
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: flask-rediscache is not initialised on this app "
                                     "(RedisCache(app) or init_app(app))")


DIAGNOSTICS = ("cli", "cli_format", "checks", "doctor", "doctor_config", "health", "info", "keyspace",
               "probes")


@pytest.mark.parametrize("name", DIAGNOSTICS)
def test_diagnostics_never_import_the_extension(name):
    # Function-level imports count: the CLI and health sit above the extension's layers.
    path = Path(flask_rediscache.__file__).parent / f"{name}.py"
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported.add(("." * node.level) + (node.module or ""))
            imported.update(f".{alias.name}" for alias in node.names if node.module is None)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert not {".extension", "flask_rediscache.extension", "flask_rediscache"} & imported, imported


def test_the_entry_point_loads_the_group():
    code = ("from importlib.metadata import entry_points; "
            "[ep] = [e for e in entry_points(group='flask.commands') if e.name == 'redis']; "
            "print(ep.value, ep.load().name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0 and "ValueError" in out.stderr:
        pytest.skip("the installed metadata predates the flask.commands entry point (reinstall)")
    assert out.stdout.split() == ["flask_rediscache.cli:redis_cli", "redis"], out.stderr


@pytest.mark.parametrize("args", COMMANDS)
def test_every_command_on_memory_says_the_store_is_per_process(make_app, args):
    app = make_app(REDIS_URL="memory://cli-notice")
    result = app.test_cli_runner().invoke(args=["redis", *args])
    assert "Traceback" not in result.output
    assert result.stderr.count(MEMORY_NOTICE) == 1
    assert "REDIS_URL" in MEMORY_NOTICE and "per-process" in MEMORY_NOTICE
    if "--json" in args:
        json.loads(result.stdout)  # the notice stays off stdout


def test_no_notice_on_a_real_server(app):
    result = app.test_cli_runner().invoke(args=["redis", "health"])
    assert result.exit_code == 0
    assert "per-process" not in result.output

"""What ``flask redis`` prints: escaped names (issue 12.16), help without reST
markup, plurals and clear's mid-way errors (issue 14.9, issue 11's CLI items)."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from flask_rediscache import cli as cli_module
from flask_rediscache.cli import redis_cli
from flask_rediscache.keyspace import printable
from flask_rediscache.state import get_state

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029\u202e]")


def run(app, *args, input=None):
    return app.test_cli_runner().invoke(args=["redis", *args], input=input)


# -- escaping --------------------------------------------------------------------
def test_printable_escapes_control_characters_and_lone_surrogates():
    assert printable("plain key:1") == "plain key:1"
    assert printable("a\x1b[31mb\x07c\nd\re\tf") == "a\\x1b[31mb\\x07c\\x0ad\\x0de\\x09f"
    assert printable("x\ud800y") == "x\\ud800y"
    assert printable("rtl\u202eevil") == "rtl\\u202eevil"
    assert printable("café ☕") == "café ☕"  # printable non-ASCII stays readable


def test_keys_escapes_what_a_visitor_put_in_a_key_name(app, redis_server):
    nasty = [b"cache:view//\x1b[2J\x1b[31mhacked", b"cache:bell\x07", b"cache:two\nlines",
             b"cache:bad-utf8-\xff", "cache:surrogate-\ud800".encode("utf-8", "surrogatepass")]
    client = redis_server.client()
    for key in nasty:
        client.set(key, "v", ex=60)
    for args in (["keys"], ["keys", "--json"], ["doctor"], ["clear"]):
        result = run(app, *args, input="n\n")
        assert "Traceback" not in result.output
        assert not CONTROL.search(result.output), (args, result.output)
    result = run(app, "keys")
    lines = result.stdout.splitlines()
    assert any(line.endswith("cache:view//\\x1b[2J\\x1b[31mhacked") for line in lines)
    assert any(line.endswith("cache:two\\x0alines") for line in lines)
    assert any(line.endswith("cache:bad-utf8-\\xff") for line in lines)
    assert any(line.endswith("cache:surrogate-\\xed\\xa0\\x80") for line in lines)
    assert lines[-1].startswith("5 keys under cache:")
    keys = {k["key"] for k in json.loads(run(app, "keys", "--json").stdout)["keys"]}
    assert "cache:bell\\x07" in keys


def test_a_pattern_with_control_characters_is_echoed_escaped(app):
    result = run(app, "keys", "evil\x1b]0;title\x07*")
    assert "No keys under cache: match 'evil\\x1b]0;title\\x07*'" in result.output
    assert not CONTROL.search(result.output)


# -- help and wording ------------------------------------------------------------
@pytest.mark.parametrize("command", [[], ["health"], ["stats"], ["clear"], ["keys"], ["doctor"]])
def test_help_has_no_rest_markup(command):
    result = CliRunner().invoke(redis_cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    for markup in ("``", ":class:", ":func:", ":meth:", ":doc:", ":data:", ":mod:", ".. "):
        assert markup not in result.output, (command, markup, result.output)


def test_one_key_is_singular(app, redis_server):
    with app.app_context():
        app.extensions["rediscache"].set("only", 1, timeout=0)
    result = run(app, "keys")
    assert result.stdout.splitlines()[-1].startswith("1 key under cache:")
    result = run(app, "clear", input="n\n")
    assert "Delete 1 key under cache:" in result.output
    result = run(app, "doctor", "--json")
    [ttl] = [f for f in json.loads(result.stdout)["findings"]
             if f["check"] == "ttl" and "cache:" in f["message"]]
    assert ttl["message"].startswith("1 of 1 sampled key under cache: has no TTL")
    redis_server.client().expire("cache:only", 60)
    [ttl] = [f for f in json.loads(run(app, "doctor", "--json").stdout)["findings"]
             if f["check"] == "ttl" and "cache:" in f["message"]]
    assert ttl["message"] == "the 1 sampled key under cache: expires"
    result = run(app, "clear", "--yes")
    assert "Removed 1 key under cache:" in result.output


# -- clear uses the strict store and reports a mid-way failure -------------------
def test_clear_reports_how_many_were_deleted_before_redis_failed(app, redis_server, monkeypatch):
    client = redis_server.client()
    pipe = client.pipeline(transaction=False)
    for i in range(2500):
        pipe.set(f"cache:bulk:{i}", "v")
    pipe.execute()
    store = get_state(app).store
    real_unlink = store.unlink
    batches = []

    def unlink_then_die(rkeys):
        count = real_unlink(rkeys)
        batches.append(count)
        redis_server.kill()  # Redis goes away after the first batch
        return count

    monkeypatch.setattr(store, "unlink", unlink_then_die)
    monkeypatch.setattr(cli_module, "PROGRESS_MIN_KEYS", 100)
    try:
        result = run(app, "clear", "--yes")
    finally:
        redis_server.start()
    assert "Traceback" not in result.output
    assert result.exit_code == 1
    assert batches == [1000]
    [line] = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert "clearing stopped after removing 1000 keys: connection refused" in line

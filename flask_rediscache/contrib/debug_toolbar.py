"""A Flask-DebugToolbar panel: every cache and session call of the request.

Add it to the toolbar's panels::

    app.config["DEBUG_TB_PANELS"] = [
        *DebugToolbarExtension.DEFAULT_PANELS...,  # or list them explicitly
        "flask_rediscache.contrib.debug_toolbar.RedisCachePanel",
    ]

Per request it lists each call with its purpose (cache/session), operation,
key, hit/miss, duration and bytes, then the totals. It listens to the
instrumentation signals (:data:`~flask_rediscache.signals.cache_read` and the
other ``cache_*`` events, :data:`~flask_rediscache.signals.session_call`), so
the calls are timed only while the toolbar is installed. The session is
saved after the toolbar has rendered the response, so a request's session
*writes* are not in its own panel (its loads are).

Importing this module without Flask-DebugToolbar installed raises an
``ImportError`` that says what to install.
"""

from __future__ import annotations

from typing import Any

try:
    from flask_debugtoolbar.panels import DebugPanel
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("flask_rediscache.contrib.debug_toolbar needs Flask-DebugToolbar: "
                      "pip install flask-debugtoolbar (then add "
                      "'flask_rediscache.contrib.debug_toolbar.RedisCachePanel' to DEBUG_TB_PANELS)") from exc

from flask import g, has_app_context
from jinja2 import Environment
from werkzeug.wrappers import Request

from .. import signals

#: Attribute of :data:`flask.g` holding the current request's calls.
G_ATTR = "_rediscache_toolbar_calls"

_TEMPLATE = Environment(autoescape=True).from_string("""\
<table class="rediscache-calls">
  <thead>
    <tr><th>#</th><th>Purpose</th><th>Operation</th><th>Key</th><th>Result</th>
        <th>Duration (ms)</th><th>Bytes</th></tr>
  </thead>
  <tbody>
  {% for call in calls %}
    <tr class="{{ loop.cycle('flDebugOdd', 'flDebugEven') }}">
      <td>{{ loop.index }}</td><td>{{ call.purpose }}</td><td>{{ call.operation }}</td>
      <td><code>{{ call.key }}</code></td><td>{{ call.result }}</td>
      <td>{{ '%.3f' % call.ms }}</td><td>{{ call.size }}</td>
    </tr>
  {% else %}
    <tr><td colspan="7">No cache or session call in this request.</td></tr>
  {% endfor %}
  </tbody>
  <tfoot>
    <tr><th colspan="4">{{ totals.calls }} calls: {{ totals.cache }} cache, {{ totals.session }} session;
        {{ totals.hits }} hits, {{ totals.misses }} misses, {{ totals.writes }} writes,
        {{ totals.errors }} failed open</th>
        <th></th><th>{{ '%.3f' % totals.ms }}</th><th>{{ totals.size }}</th></tr>
  </tfoot>
</table>
<p>Session writes happen after this page was rendered, so they are not listed here.</p>
""")

_WRITES = {"cache-write", "cache-write-multi", "cache-delete", "cache-delete-multi", "cache-delete-matched",
           "cache-increment", "cache-decrement"}


def _key(key: Any) -> str:
    if isinstance(key, (list, tuple)):
        shown = ", ".join(map(str, key[:5]))
        return shown + (f" … ({len(key)} keys)" if len(key) > 5 else "")
    return str(key)


def _result(event: str, payload: dict[str, Any]) -> str:
    if payload.get("error"):
        return "failed open"
    if "hit" in payload:
        return "hit" if payload["hit"] else "miss"
    if "hits" in payload:
        return f"{len(payload['hits'])} hits, {len(payload['misses'])} misses"
    if "exist" in payload:
        return "exists" if payload["exist"] else "absent"
    if event == "cache-generate":
        return "computed"
    return "write" if event in _WRITES else ""


def _record(event: str) -> Any:
    def receiver(sender: Any, **payload: Any) -> None:
        if not has_app_context():
            return
        calls = g.get(G_ATTR)
        if calls is None:
            return
        calls.append({"event": event, "purpose": payload.get("purpose", ""),
                      "operation": payload.get("operation", event), "key": _key(payload.get("key", "")),
                      "result": _result(event, payload), "ms": payload.get("duration", 0.0) * 1000,
                      "size": payload.get("size", 0) or 0, "error": bool(payload.get("error"))})
    return receiver


_RECEIVERS: list[tuple[Any, Any]] = []


def _connect() -> None:
    """Connect the receivers once per process (weak=False: they live with the module)."""
    if _RECEIVERS:
        return
    for signal in (*signals.INSTRUMENTATION, signals.session_call):
        receiver = _record(signal.name.removeprefix("rediscache."))
        signal.connect(receiver, weak=False)
        _RECEIVERS.append((signal, receiver))


def totals(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The footer of the panel."""
    hits = misses = 0
    for call in calls:
        if call["result"] == "hit":
            hits += 1
        elif call["result"] == "miss":
            misses += 1
        elif "hits" in call["result"]:
            found, missed = call["result"].replace(" hits,", "").replace(" misses", "").split()
            hits += int(found)
            misses += int(missed)
    return {"calls": len(calls), "cache": sum(c["purpose"] == "cache" for c in calls),
            "session": sum(c["purpose"] == "session" for c in calls), "hits": hits, "misses": misses,
            "writes": sum(c["event"] in _WRITES for c in calls), "errors": sum(c["error"] for c in calls),
            "ms": sum(c["ms"] for c in calls if c["event"] != "cache-generate"),
            "size": sum(c["size"] for c in calls)}


class RedisCachePanel(DebugPanel):
    """Every flask-rediscache cache and session call of the request."""

    name = "RedisCache"
    has_content = True

    def __init__(self, jinja_env: Any, context: dict[str, Any] | None = None) -> None:
        super().__init__(jinja_env, context)
        _connect()
        self.calls: list[dict[str, Any]] = []

    def process_request(self, request: Request) -> None:
        self.calls = []
        setattr(g, G_ATTR, self.calls)

    def nav_title(self) -> str:
        return "Redis cache"

    def nav_subtitle(self) -> str:
        t = totals(self.calls)
        return f"{t['calls']} calls in {t['ms']:.2f} ms"

    def title(self) -> str:
        return "Redis cache and session calls"

    def url(self) -> str:
        return ""

    def content(self) -> str:
        return _TEMPLATE.render(calls=self.calls, totals=totals(self.calls))

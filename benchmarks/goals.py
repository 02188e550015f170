"""The published goals, computed from a finished run.

Each goal is a ratio of two contenders measured in the same run, the median
over rounds of their ratio within each round (or an exact round-trip count),
with the target the project promises. A goal whose
contenders could not be measured has ``value`` None and ``met`` None.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .harness import Benchmark, paired_ratio
from .suites import COOKIE, COOKIE_RT, FC, FS, OURS, OURS_OBSERVED, RAW, RAW_BLOCKING, SINGLES


@dataclass
class Goal:
    key: str
    label: str
    value: float | None
    target: float | None
    comparison: str  # "<=", ">=" or "" (informational)
    unit: str  # "×", "round trips", or "ms"/"MB" (benchmarks.invalidation, benchmarks.rss)
    detail: str

    @property
    def met(self) -> bool | None:
        if self.value is None or self.target is None:
            return None
        if self.comparison == "<=":
            return self.value <= self.target
        return self.value >= self.target

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


def _median(benches: dict[str, Benchmark], bench: str, contender: str) -> float | None:
    b = benches.get(bench)
    c = b.get(contender) if b else None
    return c.median_us if c else None


def _ratio(benches: dict[str, Benchmark], bench: str, num: str, den: str
           ) -> tuple[float | None, str]:
    if bench not in benches:
        return None, "not measured (benchmark not run)"
    a, b = _median(benches, bench, num), _median(benches, bench, den)
    if a is None or b is None:
        return None, f"not measured ({num if a is None else den} unavailable)"
    ca, cb = benches[bench].get(num), benches[bench].get(den)
    assert ca is not None and cb is not None
    return paired_ratio(ca, cb), f"{num} {a:.1f} µs, {den} {b:.1f} µs (medians)"


def _trips(benches: dict[str, Benchmark], bench: str) -> tuple[float | None, str]:
    b = benches.get(bench)
    if b is None:
        return None, "not measured (benchmark not run)"
    mine = b.get(OURS)
    parts = [f"{c.key}: {c.round_trips:g}" for c in b.available() if c.round_trips is not None]
    value = mine.round_trips if mine is not None and mine.unavailable is None else None
    return value, ", ".join(parts)


def compute(benches: list[Benchmark]) -> list[Goal]:
    by_key = {b.key: b for b in benches}
    goals: list[Goal] = []

    def ratio(key: str, label: str, bench: str, num: str, den: str, comparison: str,
              target: float | None) -> None:
        value, detail = _ratio(by_key, bench, num, den)
        goals.append(Goal(key, label, value, target, comparison, "×", detail))

    ratio("memoize_hit_vs_raw", "memoize hit: flask-rediscache ÷ raw GET + pickle.loads",
          "memoize_hit", OURS, RAW, "<=", 1.15)
    ratio("memoize_hit_vs_bounded_pool",
          "memoize hit: flask-rediscache ÷ raw GET + pickle.loads on a bounded pool",
          "memoize_hit", OURS, RAW_BLOCKING, "", None)
    ratio("memoize_hit_observed", "memoize hit with a cache_read receiver ÷ without",
          "memoize_hit", OURS_OBSERVED, OURS, "", None)
    ratio("memoize_hit_vs_flask_caching", "memoize hit: Flask-Caching ÷ flask-rediscache (times faster)",
          "memoize_hit", FC, OURS, ">=", 3.0)
    ratio("session_read_vs_flask_session", "read-only session request: flask-rediscache ÷ Flask-Session",
          "session_read", OURS, FS, "<=", 0.75)

    ratio("session_read_vs_cookie_plus_get",
          "read-only session request: flask-rediscache ÷ (cookie session + one raw GET)",
          "session_read", OURS, COOKIE_RT, "<=", 1.0)
    ours, cookie = _median(by_key, "session_read", OURS), _median(by_key, "session_read", COOKIE)
    trip = _median(by_key, "round_trip", RAW)
    label = "read-only session request: (flask-rediscache − cookie) ÷ one raw round trip"
    if ours is None or cookie is None or trip is None:
        goals.append(Goal("session_read_minus_cookie", label, None, None, "", "round trips",
                          "not measured (benchmark not run)"))
    else:
        goals.append(Goal("session_read_minus_cookie", label, (ours - cookie) / trip, None, "",
                          "round trips", f"{OURS} {ours:.1f} µs, {COOKIE} {cookie:.1f} µs, "
                          f"round trip (raw GET in a loop) {trip:.1f} µs (medians)"))
    ratio("memoize_hit_process_vs_raw",
          "memoize hit, process near-cache: flask-rediscache ÷ raw GET + pickle.loads",
          "memoize_hit_process", OURS, RAW, "<=", 0.15)
    ratio("memoize_hit_process_vs_flask_caching",
          "memoize hit, process near-cache: Flask-Caching ÷ flask-rediscache (times faster)",
          "memoize_hit_process", FC, OURS, "", None)
    ratio("repeat_read_request_vs_raw",
          "repeat read, request-local: flask-rediscache ÷ raw GET + pickle.loads",
          "repeat_read_request", OURS, RAW, "<=", 0.15)
    ratio("get_many_vs_raw", "get_many(100): flask-rediscache ÷ raw MGET + 100 pickle.loads",
          "get_many", OURS, RAW, "<=", 1.3)
    ratio("get_many_vs_singles", "get_many(100) ÷ 100 single gets", "get_many", OURS, SINGLES, "", None)
    ratio("set_many_vs_singles", "set_many(100) ÷ 100 single sets", "set_many", OURS, SINGLES, "", None)

    trips: list[tuple[str, str, str]] = [
        ("memoize_hit_round_trips", "memoize hit: Redis round trips of flask-rediscache", "memoize_hit"),
        ("session_read_round_trips", "read-only session request: Redis round trips of flask-rediscache",
         "session_read"),
    ]
    for key, label, bench in trips:
        value, detail = _trips(by_key, bench)
        goals.append(Goal(key, label, value, 1.0, "<=", "round trips", detail))
    return goals


#: How a goal's unit follows its number ("round trips" goes without, as the label says it).
_SUFFIX = {"×": "×", "ms": " ms", "MB": " MB"}


def fmt_value(goal: dict[str, Any]) -> str:
    if goal["value"] is None:
        return "n/a"
    return f"{goal['value']:.2f}" + _SUFFIX.get(goal["unit"], "")


def fmt_target(goal: dict[str, Any]) -> str:
    if goal["target"] is None:
        return "(informational)"
    sym = {"<=": "≤", ">=": "≥"}[goal["comparison"]]
    return f"{sym} {goal['target']:g}" + _SUFFIX.get(goal["unit"], "")


def fmt_met(goal: dict[str, Any]) -> str:
    return {True: "met", False: "MISSED", None: "-"}[goal["met"]]

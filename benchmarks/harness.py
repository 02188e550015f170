"""Timing and round-trip counting, independent of what is being measured.

Timing: every contender of a benchmark is calibrated to a batch of ``n`` ops
lasting about ``target`` seconds, then the batches are run in ``rounds``
rounds, the contenders' order rotating each round, so a burst of noise from a
neighbour on a shared machine lands on all of them instead of one. The
reported time is the median over rounds of the mean time per op; a ratio of
two contenders is the median over rounds of their ratio within the round.

Round trips: counted by wrapping redis-py's ``send_packed_command`` (one call
is one write to the socket, so a pipeline of 100 commands counts once), and
the commands the server executed by ``INFO commandstats`` deltas. Both are
exact: they are the noise-free half of the evidence.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.connection import AbstractConnection

#: Commands the measuring itself causes, never charged to a contender.
_OWN_COMMANDS = frozenset({"info", "config|resetstat", "client|setinfo", "hello", "select"})


@dataclass
class Contender:
    """One way of doing the benchmark's operation.

    ``op`` performs one operation; ``context`` is entered around every batch
    (e.g. the contender's app context). A contender whose library lacks the
    feature is kept with ``unavailable`` set, so the table says so.
    """

    key: str
    label: str
    op: Callable[[], Any] | None = None
    context: Callable[[], AbstractContextManager[Any]] = nullcontext
    unavailable: str | None = None
    # filled in by the runner
    n: int = 0
    samples_us: list[float] = field(default_factory=list)
    round_trips: float | None = None
    commands: dict[str, float] = field(default_factory=dict)

    @property
    def median_us(self) -> float | None:
        return statistics.median(self.samples_us) if self.samples_us else None

    def batch(self, n: int) -> float:
        """Run ``n`` ops inside the context; seconds elapsed (GC off, as timeit does)."""
        op = self.op
        assert op is not None
        with self.context():
            return timed_batch(op, n)


def timed_batch(op: Callable[[], Any], n: int) -> float:
    """Seconds ``n`` calls of ``op`` take, with the garbage collector off (as timeit does)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(n):
            op()
        return time.perf_counter() - start
    finally:
        if enabled:
            gc.enable()


@dataclass
class Benchmark:
    """An operation measured for several contenders; ratios are against ``ref``."""

    key: str
    title: str
    unit: str
    ref: str
    contenders: list[Contender]
    note: str = ""
    #: Called once the benchmark is measured and counted (stops what it runs in the background).
    cleanup: Callable[[], None] | None = None

    def get(self, key: str) -> Contender | None:
        return next((c for c in self.contenders if c.key == key), None)

    def available(self) -> list[Contender]:
        return [c for c in self.contenders if c.unavailable is None]


def paired_ratio(a: Contender, b: Contender) -> float | None:
    """Median over rounds of ``a``'s time ÷ ``b``'s time in the same round.

    Both ran back to back in every round, so a slow stretch of the machine
    that spans a round cancels out of the ratio, which the ratio of the two
    overall medians would not do.
    """
    if not a.samples_us or len(a.samples_us) != len(b.samples_us):
        return None
    return statistics.median(x / y for x, y in zip(a.samples_us, b.samples_us, strict=True))


def calibrate(contender: Contender, target: float) -> int:
    """Ops per batch so that one batch takes about ``target`` seconds."""
    n = 1
    while True:
        elapsed = contender.batch(n)
        if elapsed >= target / 4 or n >= 1_000_000:
            per_op = elapsed / n
            return max(1, min(1_000_000, round(target / per_op))) if per_op else n
        n *= 4


def measure(bench: Benchmark, rounds: int, target: float) -> None:
    """Fill ``samples_us`` of every available contender (µs per op, one per round)."""
    contenders = bench.available()
    for c in contenders:
        c.n = calibrate(c, target)
        c.samples_us = []
    for r in range(rounds):
        shift = r % len(contenders) if contenders else 0
        for c in contenders[shift:] + contenders[:shift]:
            gc.collect()
            c.samples_us.append(c.batch(c.n) / c.n * 1e6)


@contextmanager
def counting_round_trips() -> Iterator[list[int]]:
    """Count socket writes (round trips) of every redis-py connection in the process."""
    counter = [0]
    original = AbstractConnection.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> Any:
        counter[0] += 1
        return original(self, command, check_health)  # type: ignore[no-untyped-call]

    AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


def commandstats(admin: redis.Redis) -> dict[str, int]:
    info = admin.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in info.items()}


def count(contender: Contender, admin: redis.Redis, ops: int = 20) -> None:
    """Round trips and server commands per op, after a warm-up (connections open)."""
    contender.batch(3)
    admin.config_resetstat()
    with counting_round_trips() as trips:
        contender.batch(ops)
    after = commandstats(admin)
    contender.round_trips = trips[0] / ops
    contender.commands = {name: calls / ops for name, calls in sorted(after.items())
                          if name not in _OWN_COMMANDS}

"""``python -m benchmarks [--quick] [--json PATH] [--only KEY,...]``

Starts a private redis-server, measures every contender against it, prints
the table and the goals, and optionally writes the results as JSON for
``python -m benchmarks.report``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings

from . import goals, harness, results, suites
from .server import LocalRedis


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (3 short rounds)")
    parser.add_argument("--rounds", type=int, help="rounds per benchmark (default 25, --quick 3)")
    parser.add_argument("--target-ms", type=float,
                        help="duration of one contender's batch in a round (default 30, --quick 8)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--only", metavar="KEYS", help="comma-separated benchmark keys, e.g. memoize_hit,get")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 25)
    args.target_ms = args.target_ms or (8.0 if args.quick else 30.0)
    if args.rounds < 1 or args.target_ms <= 0:
        parser.error("--rounds and --target-ms must be positive")
    return args


def run(args: argparse.Namespace) -> dict[str, object]:
    started = time.monotonic()
    with LocalRedis() as server:
        apps = suites.Apps(server.url)
        benches = suites.build(apps)
        if args.only:
            wanted = {k.strip() for k in args.only.split(",")}
            unknown = wanted - {b.key for b in benches}
            if unknown:
                raise SystemExit(f"benchmarks: unknown keys {sorted(unknown)}; "
                                 f"known: {', '.join(b.key for b in benches)}")
            benches = [b for b in benches if b.key in wanted]
        admin = server.client()
        for bench in benches:
            print(f"  measuring {bench.title} ...", file=sys.stderr, flush=True)
            harness.measure(bench, args.rounds, args.target_ms / 1000)
            for contender in bench.available():
                harness.count(contender, admin)
            if bench.cleanup is not None:
                bench.cleanup()
        computed = goals.compute(benches)
        run_meta = results.meta(redis_version=server.version(), rounds=args.rounds,
                                target_ms=args.target_ms, quick=args.quick,
                                seconds=time.monotonic() - started)
    return results.to_dict(benches, computed, run_meta)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Peers warn about their own deprecations; that is not what we measure.
    warnings.simplefilter("ignore")
    logging.getLogger("flask_rediscache").setLevel(logging.ERROR)
    data = run(args)
    print(results.table(data))
    print(f"\n({data['meta']['seconds']} s)")  # type: ignore[index]
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(data, fh, indent=1, ensure_ascii=False)
            fh.write("\n")
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

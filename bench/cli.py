"""The `bench` command: run | plan | report."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from bench import __version__
from bench.errors import BenchError, ParityError


def _cmd_plan(args) -> int:
    from bench.models import parse_source
    from bench.plan import format_plan, make_plan
    from bench.suite import load_suite

    suite = load_suite(args.suite)
    plan = make_plan(suite, str(args.suite))
    parse_source(suite.teacher.source)
    print(format_plan(plan, suite))
    return 0


def _cmd_run(args) -> int:
    from bench.run import run_suite

    run_dir = run_suite(Path(args.suite), Path(args.results_dir), args.run_id)
    print(run_dir)
    return 0


def _cmd_report(args) -> int:
    from bench.report import write_report

    for run_dir in args.run_dirs:
        print(write_report(Path(run_dir), Path(args.out)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"bench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plan", help="print the variants a suite would build and measure, and those skipped")
    p.add_argument("suite", type=Path)
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("run", help="build every artifact and measure every variant of a suite")
    p.add_argument("suite", type=Path)
    p.add_argument("--results-dir", default=os.environ.get("BENCH_RESULTS_DIR", "results"),
                   help="results root (default: results, or $BENCH_RESULTS_DIR)")
    p.add_argument("--run-id", help="name of the run directory; an existing one is resumed")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("report", help="write reports/<run-id>/index.md for one or more run directories")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--out", default="reports", help="reports root (default: reports)")
    p.set_defaults(func=_cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        return args.func(args)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ParityError as exc:
        print(f"bench: parity check failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; rerun the same command (with --run-id) to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

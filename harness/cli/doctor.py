"""`harness doctor`: is each board ready, and the fix for each problem."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness import config
from harness.cli.common import pool_tags, stderr, stdout, with_pools


def cmd_doctor(args: argparse.Namespace) -> int:
    """Exit 0 when every selected target is ready, 1 when any has an error finding."""
    from harness.lab.doctor import diagnose_all, ready
    from harness.render.doctor import doctor_json, doctor_summary, doctor_table

    targets, source = config.load_targets(args.targets)
    selected = config.select(targets, args.target or [], source)
    selected = with_pools(targets, selected, args.pool or [], named=True)  # the pools beside the targets
    results = diagnose_all(selected)
    if args.json:
        for line in doctor_json(results):
            print(line, flush=True)
    else:
        stdout().print(doctor_table(results))
    stderr().print(doctor_summary(results))
    return 0 if all(ready(f) for _, f in results) else 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check that boards are ready, with the fix for each problem",
                       description="For each target: reachability, host key, login, python, numpy, "
                                   "TFLite runtimes, free disk, board model, CPU governor, throttling. "
                                   "Exit 0 when all are ready, 1 otherwise.")
    p.add_argument("target", nargs="*", metavar="TARGET", help="targets to check (default: all)")
    p.add_argument("--targets", type=Path, help="targets file (default: ./targets.toml)")
    p.add_argument("--json", action="store_true", help="one JSON object per target on stdout")
    p.add_argument("--pool", action="append", type=pool_tags, metavar="TAG=VALUE[,…]",
                   help="also check a labgrid board pool: which places have these tags, which are free")
    p.set_defaults(func=cmd_doctor)


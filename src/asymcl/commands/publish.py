"""``asymcl publish`` and ``asymcl restore``: parse the options, call `asymcl.publish`.

``publish`` shares the results of exactly the runs one config selects (with a provenance
record) in ``results/published``, versioned with DVC; ``restore`` puts such a snapshot back
into the config's results folder so that the workflow has nothing left to do.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from asymcl import publish as lib

log = logging.getLogger(__name__)

CONFIG_HELP = ("config files merged over ./config.yaml in order, as `snakemake --configfile` "
               "merges them (default: config.yaml alone)")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "publish",
        help="copy one config's results (+ a provenance record) to results/published, dvc add + push",
        description=(
            "Copy runs.csv, experiments.json, tables/, figures/ and the metrics.json of every run "
            "the config selects from the config's results folder (paths.results) to DEST "
            "(replacing it as a whole), with record.json and RECORD.md (command, code versions, "
            "machine, wall time, date, config files); then `dvc add DEST` and `dvc push`. "
            "Refuses, publishing nothing, when a selected run's metrics.json is missing, "
            "unreadable or incomplete, or when DVC or its remote is not set up. Commit DEST.dvc "
            "(and the .gitignore next to it) with git afterwards."
        ),
    )
    p.add_argument("--configfile", nargs="+", type=Path, default=[], metavar="FILE", help=CONFIG_HELP)
    p.add_argument("--dest", "--to", type=Path, default=Path("results/published"), metavar="DIR",
                   help="published folder (default: %(default)s)")
    p.add_argument("--command", dest="record_command", metavar="TEXT",
                   help="the command that produced the results, for the record (default: unknown)")
    p.add_argument("--machine", metavar="TEXT",
                   help="the machine that ran it, for the record (default: this machine, detected)")
    p.add_argument("--wall-time-s", type=float, metavar="SECONDS",
                   help="the workflow's wall time, for the record")
    p.add_argument("--remote", metavar="NAME", help="DVC remote to push to (default: the default remote)")
    p.add_argument("--no-push", action="store_true", help="only dvc add; push later with `dvc push`")
    p.add_argument("--no-dvc", action="store_true", help="only write the folder: no dvc add, no push")
    p.set_defaults(func=run_publish)

    r = subparsers.add_parser(
        "restore",
        help="put a published snapshot back into the config's results folder",
        description=(
            "Copy the metrics.json of every run the config selects, experiments.json, runs.csv, "
            "tables/ and figures/ from FROM into the config's results folder, with increasing "
            "modification times in the workflow's order, so that `snakemake --configfile ... -n` "
            "plans nothing. Get FROM first with `dvc pull`."
        ),
    )
    r.add_argument("--configfile", nargs="+", type=Path, default=[], metavar="FILE", help=CONFIG_HELP)
    r.add_argument("--from", dest="source", type=Path, default=Path("results/published"), metavar="DIR",
                   help="the published snapshot (default: %(default)s)")
    r.set_defaults(func=run_restore)


def run_publish(args: argparse.Namespace) -> int:
    if args.wall_time_s is not None and not (args.wall_time_s >= 0 and args.wall_time_s < float("inf")):
        raise lib.InputError(f"--wall-time-s {args.wall_time_s}: expected a finite number of seconds >= 0")
    done = lib.publish(
        args.configfile, args.dest, command=args.record_command, machine=args.machine,
        wall_time_s=args.wall_time_s, dvc=not args.no_dvc, push=not (args.no_push or args.no_dvc),
        remote=args.remote,
    )
    if done.ignored_strays:
        log.info("ignored %d metrics.json under the results folder that the config does not select",
                 done.ignored_strays)
    where = f"; pushed to the DVC remote{f' {args.remote}' if args.remote else ''}" if done.pushed else ""
    print(f"published {done.files} files ({done.runs} runs; {done.ignored_strays} stray metrics.json "
          f"ignored) to {done.dest}{where}")
    if done.dvc_file:
        print(f"commit with: git add {done.dvc_file} {done.dest.parent / '.gitignore'}")
    return 0


def run_restore(args: argparse.Namespace) -> int:
    results, count = lib.restore(args.configfile, args.source)
    print(f"restored {count} files from {args.source} to {results}")
    return 0

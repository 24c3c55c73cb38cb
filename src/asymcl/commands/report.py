"""``asymcl aggregate``, ``asymcl tables``, ``asymcl figure``: from run folders to the paper's
tables and figures (the workflow's report rules call these)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    agg = subparsers.add_parser(
        "aggregate",
        help="collect runs' metrics.json into one CSV (one row per run)",
        description="Identity (dataset, scenario, cell, seed) comes from each path "
        ".../DATASET/SCENARIO/CELL/seedN/metrics.json; metrics and the settings echo from the file.",
    )
    agg.add_argument("--metrics", nargs="+", required=True, type=Path, metavar="FILE")
    agg.add_argument("--spec", type=Path, metavar="JSON",
                     help="experiments.json: adds an `experiments` column (families of each run)")
    agg.add_argument("--out", required=True, type=Path, metavar="CSV")
    agg.set_defaults(func=run_aggregate)

    tab = subparsers.add_parser(
        "tables",
        help="LaTeX tables (paper layout), summary, paired comparisons, paper vs ours",
        description="Writes OUT/<experiment>.tex for every experiment, OUT/summary.csv, "
        "OUT/paired.csv|.tex and OUT/paper_comparison.csv|.tex.",
    )
    tab.add_argument("--runs", required=True, type=Path, metavar="CSV", help="from `asymcl aggregate`")
    tab.add_argument("--spec", required=True, type=Path, metavar="JSON", help="experiments.json of the workflow")
    tab.add_argument("--paper", type=Path, metavar="CSV", help="published numbers (workflow/paper_results.csv)")
    tab.add_argument("--out", required=True, type=Path, metavar="DIR")
    tab.set_defaults(func=run_tables)

    fig = subparsers.add_parser(
        "figure",
        help="one figure (PNG/PDF by suffix): an experiment's results, or paper vs ours",
    )
    src = fig.add_mutually_exclusive_group(required=True)
    src.add_argument("--experiment", metavar="NAME", help="with --runs and --spec")
    src.add_argument("--comparison", type=Path, metavar="CSV", help="paper_comparison.csv from `asymcl tables`")
    fig.add_argument("--runs", type=Path, metavar="CSV")
    fig.add_argument("--spec", type=Path, metavar="JSON")
    fig.add_argument("--out", required=True, action="append", type=Path, metavar="FILE",
                     help="output file; repeat for several formats (.png, .pdf, .svg)")
    fig.set_defaults(func=run_figure)


def run_aggregate(args: argparse.Namespace) -> int:
    from asymcl.io import atomic_path
    from asymcl.report.aggregate import collect
    from asymcl.report.tables import read_spec

    frame = collect(args.metrics, read_spec(args.spec) if args.spec else None)
    with atomic_path(args.out) as tmp:
        frame.to_csv(tmp, index=False)
    log.info("%d runs -> %s", len(frame), args.out)
    return 0


def run_tables(args: argparse.Namespace) -> int:
    from asymcl.report.tables import write_tables

    write_tables(args.runs, args.spec, args.paper, args.out)
    return 0


def run_figure(args: argparse.Namespace) -> int:
    from asymcl.report import figures

    if args.comparison:
        figures.comparison_figure_from_file(args.comparison, args.out)
    else:
        figures.experiment_figure_from_files(args.experiment, args.runs, args.spec, args.out)
    return 0

"""``asymcl aggregate``, ``asymcl tables``, ``asymcl figure``: from run folders to the paper's
tables and figures (the workflow's report rules call these)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from asymcl.cli import UserError

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


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} does not exist") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON: {err}") from None


def _read_runs(path: Path):
    import pandas as pd

    try:
        return pd.read_csv(path, dtype={"scenario": str, "cell": str, "dataset": str})
    except FileNotFoundError:
        raise UserError(f"{path} does not exist; run `asymcl aggregate` first") from None


def _spec(path: Path) -> dict:
    spec = _read_json(path)
    if "experiments" not in spec:
        raise UserError(f"{path}: expected an object with an 'experiments' mapping")
    return spec


def run_aggregate(args: argparse.Namespace) -> int:
    from asymcl.io import atomic_path
    from asymcl.report.aggregate import AggregateError, collect

    spec = _spec(args.spec) if args.spec else None
    try:
        frame = collect(args.metrics, spec)
    except AggregateError as err:
        raise UserError(str(err)) from None
    with atomic_path(args.out) as tmp:
        frame.to_csv(tmp, index=False)
    log.info("%d runs -> %s", len(frame), args.out)
    return 0


def run_tables(args: argparse.Namespace) -> int:
    import pandas as pd

    from asymcl.io import atomic_path, write_text_atomic
    from asymcl.report import tables

    runs = _read_runs(args.runs)
    spec = _spec(args.spec)
    metrics = list(dict.fromkeys(m for e in spec["experiments"].values() for m in e["metrics"]))
    missing = [m for m in metrics if m not in runs.columns]
    if missing:
        raise UserError(f"{args.runs} has no column {', '.join(missing)} (asked for by the experiments' table.metrics)")
    out = args.out
    summary = tables.summary_table(runs, metrics)
    for name, exp in spec["experiments"].items():
        write_text_atomic(out / f"{name}.tex", tables.experiment_latex(exp, summary))
    paired = tables.paired_table(spec, runs)
    paper = tables.read_paper_results(args.paper) if args.paper else pd.DataFrame(
        columns=["table", "dataset", "scenario", "eta", "gamma", "metric", "value", "uncertain"])
    comparison = tables.paper_comparison(spec, summary, paper)
    for frame, name in ((summary, "summary.csv"), (paired, "paired.csv"), (comparison, "paper_comparison.csv")):
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.4f")
    write_text_atomic(out / "paired.tex", tables.paired_latex(paired, spec))
    write_text_atomic(out / "paper_comparison.tex", tables.comparison_latex(comparison, spec))
    log.info("tables of %s -> %s", ", ".join(spec["experiments"]), out)
    return 0


def run_figure(args: argparse.Namespace) -> int:
    from asymcl.report import figures

    if args.comparison:
        import pandas as pd

        if not args.comparison.is_file():
            raise UserError(f"{args.comparison} does not exist; run `asymcl tables` first")
        comparison = pd.read_csv(args.comparison, dtype={"scenario": str})
        figures.paper_figure(comparison, args.out)
        return 0
    if not (args.runs and args.spec):
        raise UserError("--experiment needs --runs and --spec")
    spec = _spec(args.spec)
    if args.experiment not in spec["experiments"]:
        raise UserError(f"{args.spec} has no experiment {args.experiment!r} "
                        f"(has: {', '.join(spec['experiments'])})")
    figures.experiment_figure(spec["experiments"][args.experiment], _read_runs(args.runs), args.out)
    return 0

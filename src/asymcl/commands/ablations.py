"""``asymcl family-table``, ``asymcl embedding-figure``, ``asymcl diagnostics-figure``: the
experiment families' own tables and the ablations' figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from asymcl.cli import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    fam = subparsers.add_parser(
        "family-table",
        help="one family's table (CSV): mean, std, n and the paired difference against its baseline",
        description="Rows: scenario x cell x metric of the family; from `asymcl tables`' summary.csv and paired.csv.",
    )
    fam.add_argument("--summary", required=True, type=Path, metavar="CSV", help="summary.csv of `asymcl tables`")
    fam.add_argument("--paired", required=True, type=Path, metavar="CSV", help="paired.csv of `asymcl tables`")
    fam.add_argument("--spec", required=True, type=Path, metavar="JSON", help="experiments.json of the workflow")
    fam.add_argument("--experiment", required=True, metavar="NAME")
    fam.add_argument("--out", required=True, type=Path, metavar="CSV")
    fam.set_defaults(func=_run_family_table)

    emb = subparsers.add_parser(
        "embedding-figure",
        help="2-D PCA of stage-1 test embeddings, one panel per run (runs trained with --save-embeddings)",
    )
    emb.add_argument("--panel", nargs=2, action="append", required=True, metavar=("TITLE", "NPZ"),
                     help="panel title and the run's embeddings.npz; repeat per panel")
    emb.add_argument("--space", choices=["projection", "encoder"], default="projection",
                     help="projection-head outputs (what the loss saw) or encoder features (what the "
                          "linear head sees); default %(default)s")
    emb.add_argument("--columns", type=int, default=None, help="panels per row (default: 2)")
    emb.add_argument("--out", action="append", required=True, type=Path, metavar="FILE",
                     help="output file (.png, .pdf, .svg); repeat for several formats")
    emb.set_defaults(func=_run_embedding)

    diag = subparsers.add_parser(
        "diagnostics-figure",
        help="per-epoch loss diagnostics (anchors without positives, eta-term / positive-term) over training",
    )
    diag.add_argument("--series", nargs="+", action="append", required=True, metavar="LABEL_THEN_METRICS",
                      help="a line label followed by the runs' metrics.json files (averaged); repeat per line")
    diag.add_argument("--out", action="append", required=True, type=Path, metavar="FILE")
    diag.set_defaults(func=_run_diagnostics)


def _run_embedding(args: argparse.Namespace) -> int:
    from asymcl.embedding import embedding_figure

    try:
        embedding_figure([(t, p) for t, p in args.panel], args.out, space=args.space, columns=args.columns)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from None
    return 0


def _run_diagnostics(args: argparse.Namespace) -> int:
    from asymcl.embedding import diagnostics_figure

    series = []
    for item in args.series:
        if len(item) < 2:
            raise UserError(f"--series {item}: give a label and at least one metrics.json")
        missing = [p for p in item[1:] if not Path(p).is_file()]
        if missing:
            raise UserError(f"--series {item[0]!r}: {missing[0]} does not exist")
        series.append((item[0], item[1:]))
    diagnostics_figure(series, args.out)
    return 0


def _run_family_table(args: argparse.Namespace) -> int:
    import json

    import pandas as pd

    from asymcl.families import family_table
    from asymcl.io import write_text_atomic

    try:
        spec = json.loads(args.spec.read_text())
        summary = pd.read_csv(args.summary, dtype={"scenario": str, "cell": str})
        paired = pd.read_csv(args.paired, dtype={"scenario": str, "cell": str})
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read the inputs of family-table: {err}") from None
    experiments = spec.get("experiments", {})
    if args.experiment not in experiments:
        raise UserError(f"{args.spec}: no experiment {args.experiment!r} (known: {', '.join(sorted(experiments))})")
    table = family_table(experiments[args.experiment], summary, paired)
    write_text_atomic(args.out, table.to_csv(index=False, float_format="%.6g"))
    return 0

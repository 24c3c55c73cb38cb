"""``asymcl family-table``, ``asymcl embedding-figure``, ``asymcl diagnostics-figure``: the
experiment families' own tables and the ablations' figures."""

from __future__ import annotations

import argparse
from pathlib import Path


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

    embedding_figure([(t, p) for t, p in args.panel], args.out, space=args.space, columns=args.columns)
    return 0


def _run_diagnostics(args: argparse.Namespace) -> int:
    from asymcl.embedding import diagnostics_figure, series_from_args

    diagnostics_figure(series_from_args(args.series), args.out)
    return 0


def _run_family_table(args: argparse.Namespace) -> int:
    from asymcl.families import write_family_table

    write_family_table(args.spec, args.summary, args.paired, args.experiment, args.out)
    return 0

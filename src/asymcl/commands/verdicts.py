"""``asymcl fit-to-paper`` and ``asymcl claims``: how well each protocol variant reproduces
the published means, and a verdict per claim of the paper (the workflow's verdicts rules
call these)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from asymcl.errors import InputError

log = logging.getLogger(__name__)

METRICS = ["accuracy", "uwa"]


def register(subparsers: argparse._SubParsersAction) -> None:
    fit = subparsers.add_parser(
        "fit-to-paper",
        help="per protocol variant, table and metric: MAE, RMS and published cells inside our 95%% CI",
        description="Every experiment family with a `paper` key is a protocol variant; its cells are "
        "matched to the published ones by (scenario ratio, eta, gamma). Writes OUT_DIR/fit_to_paper.csv, "
        "OUT_DIR/fit_to_paper.tex and OUT_DIR/fit_to_paper_cells.csv (one row per matched cell), and "
        "the figure to each --figure path. Uncertain published cells are left out and counted.",
    )
    fit.add_argument("--runs", required=True, type=Path, metavar="CSV", help="runs.csv from `asymcl aggregate`")
    fit.add_argument("--spec", required=True, type=Path, metavar="JSON", help="experiments.json of the workflow")
    fit.add_argument("--paper", required=True, type=Path, metavar="CSV",
                     help="published means (workflow/paper_results.csv)")
    fit.add_argument("--out-dir", required=True, type=Path, metavar="DIR")
    fit.add_argument("--figure", action="append", type=Path, default=[], metavar="FILE",
                     help="figure file (.png, .pdf, ...); repeat for several formats")
    fit.set_defaults(func=run_fit)

    cl = subparsers.add_parser(
        "claims",
        help="the paper's FMNIST claims tested on our runs: paired t vs CL, Holm, holds/contradicted/not resolved",
        description="Each claim expands into paired comparisons over seeds (a cell minus CL of the same "
        "scenario, unless the claim names another cell); p values are Holm-adjusted over all tests. "
        "Writes OUT_DIR/claims.csv and OUT_DIR/claims.tex. The built-in claims are listed by "
        "--list-default (YAML); edit that list and pass it with --claims to add or change claims.",
    )
    cl.add_argument("--runs", type=Path, metavar="CSV", help="runs.csv from `asymcl aggregate`")
    cl.add_argument("--spec", type=Path, metavar="JSON", help="experiments.json of the workflow")
    cl.add_argument("--paper", type=Path, metavar="CSV",
                    help="published means (needed for `cell: paper_best` and the published differences)")
    cl.add_argument("--out-dir", type=Path, metavar="DIR")
    cl.add_argument("--claims", type=Path, metavar="YAML", help="claim list replacing the built-in one")
    cl.add_argument("--family", action="append", default=[], metavar="TABLE=FAMILY",
                    help="test claims about TABLE on FAMILY's runs (default: the family named TABLE)")
    cl.add_argument("--list-default", action="store_true", help="print the built-in claims as YAML and exit")
    cl.set_defaults(func=run_claims)


def run_fit(args: argparse.Namespace) -> int:
    from asymcl.io import atomic_path, write_text_atomic
    from asymcl.report import fit

    spec = fit.read_spec(args.spec)
    runs = fit.read_runs(args.runs, METRICS)
    paper = fit.read_paper(args.paper)
    cells = fit.matched_cells(spec, runs, paper)
    table = fit.fit_table(cells)
    for frame, name in ((table, "fit_to_paper.csv"), (cells, "fit_to_paper_cells.csv")):
        with atomic_path(args.out_dir / name) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.4f")
    write_text_atomic(args.out_dir / "fit_to_paper.tex", fit.fit_latex(table))
    if args.figure:
        fit.fit_figure(table, args.figure)
    log.info("fit to paper of %d variant(s) -> %s", table["family"].nunique(), args.out_dir)
    return 0


def _families(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        table, sep, family = pair.partition("=")
        if not sep or not table or not family:
            raise InputError(f"--family {pair!r}: expected TABLE=FAMILY, e.g. table1=protocol_lr1e-2")
        out[table] = family
    return out


def run_claims(args: argparse.Namespace) -> int:
    from asymcl.report import claims as claims_mod

    if args.list_default:
        import yaml

        print(yaml.safe_dump(claims_mod.PAPER_CLAIMS, sort_keys=False, allow_unicode=True, width=100))
        return 0
    missing = [f"--{k.replace('_', '-')}" for k in ("runs", "spec", "paper", "out_dir") if getattr(args, k) is None]
    if missing:
        raise InputError(f"claims needs {', '.join(missing)} (or --list-default)")
    from asymcl.io import atomic_path, write_text_atomic
    from asymcl.report import fit

    claim_list = claims_mod.load_claims(args.claims) if args.claims else claims_mod.PAPER_CLAIMS
    metrics = sorted({t["metric"] for c in claim_list for t in claims_mod.expand_claim(c)})
    spec = fit.read_spec(args.spec)
    runs = fit.read_runs(args.runs, metrics)
    paper = fit.read_paper(args.paper)
    frame = claims_mod.evaluate_claims(claim_list, spec, runs, paper, _families(args.family))
    with atomic_path(args.out_dir / "claims.csv") as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    write_text_atomic(args.out_dir / "claims.tex", claims_mod.claims_latex(frame))
    verdicts = frame.drop_duplicates("claim")["claim_verdict"].value_counts().to_dict()
    log.info("%d claims (%s) -> %s", frame["claim"].nunique(), verdicts, args.out_dir)
    return 0

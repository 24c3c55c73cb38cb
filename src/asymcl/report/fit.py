"""Fit to paper: how close each protocol variant's cell means come to the published ones.

A *variant* is an experiment family of experiments.json that names a published table with
its ``paper`` key (the paper's own families ``table1``/``table2``, and protocol families
such as ``protocol_lr1e-2`` that vary the training or subset settings but keep the
published (eta, gamma) cells). A family's cell is matched to a published cell by

    (scenario ratio, eta, gamma)

where the ratio is the scenario's ``ratio`` (``95:5``), else its label when that is a
ratio, else its id (``95-5``, ``all``): a subset variant named ``95-5-random`` with
ratio ``95:5`` is matched to the published 95:5 row. Cell overrides (``lr``, ...) do not
take part in the match: they are what the variant varies.

For the matched cells of one (variant, table, metric), with our cell mean m_i over the
family's seeds (n_i runs) and the published mean p_i:

    MAE = (1/k) sum |m_i - p_i|,   RMS = sqrt( (1/k) sum (m_i - p_i)^2 )

over the k cells with n_i >= 1, and *inside* counts the cells with n_i >= 2 whose 95% t
interval of the mean (`asymcl.report.stats.summarize`) holds p_i; cells with n_i < 2 have no
interval and are counted as not testable, never as misses. Published cells flagged
uncertain (Table 2's 60:40 and 65:35 rows, shifted in the extracted text) are left out of
all three numbers and counted in ``uncertain_excluded``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from asymcl.errors import InputError
from asymcl.report.stats import summarize
from asymcl.report.tables import _escape, cell_label, metric_label, read_spec, to_latex  # read_spec: also the verdict commands' reader

RUN_COLUMNS = ["dataset", "scenario", "cell", "seed"]
PAPER_COLUMNS = ["table", "scenario", "eta", "gamma", "metric", "value", "uncertain"]

CELL_COLUMNS = ["family", "table", "dataset", "scenario", "paper_scenario", "cell", "label",
                "eta", "gamma", "metric", "paper", "uncertain", "n", "mean", "std",
                "ci_low", "ci_high", "difference", "testable", "inside"]
FIT_COLUMNS = ["family", "table", "metric", "paper_cells", "uncertain_excluded", "matched",
               "missing", "mae", "rms", "testable", "not_testable", "inside", "fraction_inside"]

_RATIO = re.compile(r"^\d+(?::\d+)+$")


# ----------------------------------------------------------------------------- inputs


def read_csv_checked(path: str | Path, required: list[str], what: str,
                     dtype: dict | None = None) -> pd.DataFrame:
    """A CSV with at least the ``required`` columns; otherwise an InputError naming the file
    and the columns (``what`` says which file it should be and how it is made)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist; expected {what}")
    try:
        frame = pd.read_csv(path, comment="#", dtype=dtype)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"{path} is not a readable CSV ({err}); expected {what}") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputError(
            f"{path} has no column {', '.join(repr(c) for c in missing)}; expected {what} "
            f"with columns {', '.join(required)}"
        )
    return frame


def read_runs(path: str | Path, metrics: list[str]) -> pd.DataFrame:
    frame = read_csv_checked(
        path, RUN_COLUMNS + ["eta", "gamma"] + list(metrics),
        "runs.csv as written by `asymcl aggregate`",
        dtype={"dataset": str, "scenario": str, "cell": str},
    )
    dup = frame.duplicated(RUN_COLUMNS, keep=False)
    if dup.any():
        first = frame.loc[dup, RUN_COLUMNS].iloc[0].to_dict()
        raise InputError(f"{path}: the run {first} is listed {int(dup.sum())} times; one row per "
                         "run expected (rebuild it with `asymcl aggregate`)")
    return frame


def read_paper(path: str | Path) -> pd.DataFrame:
    frame = read_csv_checked(path, PAPER_COLUMNS, "the published means (workflow/paper_results.csv)",
                             dtype={"scenario": str, "table": str, "metric": str})
    frame["uncertain"] = frame["uncertain"].astype(str).str.strip().str.lower().eq("true")
    return frame


# ----------------------------------------------------------------------------- matching


def scenario_key(scenario: dict) -> str:
    """The published scenario name a family's scenario stands for: ``95-5`` for the ratio
    95:5 (from ``ratio``, else a ratio-like label, else the id), ``all`` for ``all``."""
    for text in (scenario.get("ratio"), scenario.get("label")):
        if text is not None and _RATIO.match(str(text)):
            return str(text).replace(":", "-")
    return str(scenario["id"])


def ratio_key(text: str) -> str:
    """``95:5`` or ``95-5`` -> ``95-5`` (the paper_results.csv spelling)."""
    return str(text).replace(":", "-")


def paper_families(spec: dict) -> list[dict]:
    """The families with a ``paper`` key, in the spec's order."""
    return [exp for exp in spec["experiments"].values() if exp.get("paper")]


def family_runs(exp: dict, runs: pd.DataFrame) -> pd.DataFrame:
    return runs[(runs["dataset"] == exp["dataset"]) & runs["seed"].isin(exp["seeds"])]


def matched_cells(spec: dict, runs: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """One row per (family, published cell, metric) the family reproduces: the published
    value, our mean/std/n/95% interval over the family's seeds, and whether it is inside."""
    rows = []
    for exp in paper_families(spec):
        table = exp["paper"]
        published = paper[paper["table"] == table]
        ours = family_runs(exp, runs)
        for sc in exp["scenarios"]:
            key = scenario_key(sc)
            for cell in exp["cells"]:
                here = published[(published["scenario"].map(ratio_key) == key)
                                 & published["eta"].map(lambda v: math.isclose(v, cell["eta"]))
                                 & published["gamma"].map(lambda v: math.isclose(v, cell["gamma"]))]
                values = ours[(ours["scenario"] == sc["id"]) & (ours["cell"] == cell["id"])]
                for r in here.itertuples(index=False):
                    col = values[r.metric] if r.metric in values else pd.Series(dtype=float)
                    s = summarize(pd.to_numeric(col, errors="coerce").tolist())
                    testable = s.n >= 2
                    rows.append({
                        "family": exp["name"], "table": table, "dataset": exp["dataset"],
                        "scenario": sc["id"], "paper_scenario": r.scenario, "cell": cell["id"],
                        "label": cell_label(exp, cell), "eta": float(r.eta), "gamma": float(r.gamma),
                        "metric": r.metric, "paper": float(r.value), "uncertain": bool(r.uncertain),
                        "n": s.n, "mean": s.mean, "std": s.std, "ci_low": s.ci_low,
                        "ci_high": s.ci_high, "difference": s.mean - float(r.value),
                        "testable": testable,
                        "inside": bool(testable and s.ci_low <= r.value <= s.ci_high),
                    })
    return pd.DataFrame(rows, columns=CELL_COLUMNS)


def fit_table(cells: pd.DataFrame) -> pd.DataFrame:
    """Per (family, table, metric): counts, MAE, RMS and inside-interval counts (see module)."""
    rows = []
    for (family, table, metric), g in cells.groupby(["family", "table", "metric"], sort=False):
        certain = g[~g["uncertain"]]
        matched = certain[certain["n"] >= 1]
        testable = matched[matched["testable"]]
        diff = matched["difference"].astype(float)
        k = len(matched)
        rows.append({
            "family": family, "table": table, "metric": metric,
            "paper_cells": len(certain), "uncertain_excluded": int(g["uncertain"].sum()),
            "matched": k, "missing": len(certain) - k,
            "mae": float(diff.abs().mean()) if k else math.nan,
            "rms": math.sqrt(float((diff ** 2).mean())) if k else math.nan,
            "testable": len(testable), "not_testable": k - len(testable),
            "inside": int(testable["inside"].sum()),
            "fraction_inside": (float(testable["inside"].mean()) if len(testable) else math.nan),
        })
    return pd.DataFrame(rows, columns=FIT_COLUMNS)


# ----------------------------------------------------------------------------- outputs


def _fmt(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "--"


def fit_latex(fit: pd.DataFrame) -> str:
    """Booktabs LaTeX: one row per (variant, table, metric)."""
    index, data = [], []
    for r in fit.itertuples(index=False):
        index.append((_escape(r.family), r.table.replace("table", "Table "), metric_label(r.metric)))
        data.append([
            f"{r.matched}/{r.paper_cells}", _fmt(r.mae), _fmt(r.rms),
            f"{r.inside}/{r.testable}" if r.testable else "--",
            str(r.uncertain_excluded),
        ])
    columns = ["cells", "MAE", "RMS", "inside 95\\% CI", "uncertain"]
    if index:
        frame = pd.DataFrame(data, columns=columns,
                             index=pd.MultiIndex.from_tuples(index, names=["Variant", "Table", "Metric"]))
    else:
        frame = pd.DataFrame(columns=columns)
        frame.index.name = "Variant"
    caption = (
        "Fit to the published means per protocol variant (experiment family), table and metric: "
        "cells matched by (scenario ratio, $\\eta$, $\\gamma$) with at least one run / published "
        "cells; mean absolute (MAE) and root-mean-square (RMS) difference of our cell means from "
        "the published ones, in points; published cells inside our 95\\% t interval of the mean / "
        "cells with $n \\geq 2$ runs. Published cells flagged uncertain are left out (count shown)."
    )
    return ("% fit_to_paper: generated by `asymcl fit-to-paper` (needs \\usepackage{booktabs})\n"
            + to_latex(frame, caption, "tab:fit-to-paper"))


def fit_figure(fit: pd.DataFrame, paths) -> None:
    """Two panels per variant x (table, metric): MAE (RMS as a tick) and fraction inside."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from asymcl.report.figures import _save

    variants = list(dict.fromkeys(zip(fit["family"], fit["table"])))
    metrics = list(dict.fromkeys(fit["metric"])) or ["accuracy", "uwa"]
    width = 0.8 / max(len(metrics), 1)
    fig, (ax_err, ax_in) = plt.subplots(
        1, 2, figsize=(max(7.0, 1.1 * len(variants) * 2 + 2), 3.8), squeeze=True)
    x = list(range(len(variants)))
    for j, metric in enumerate(metrics):
        sub = fit[fit["metric"] == metric].set_index(["family", "table"])
        offs = [i + (j - (len(metrics) - 1) / 2) * width for i in x]
        mae = [sub.loc[v, "mae"] if v in sub.index else math.nan for v in variants]
        rms = [sub.loc[v, "rms"] if v in sub.index else math.nan for v in variants]
        frac = [sub.loc[v, "fraction_inside"] if v in sub.index else math.nan for v in variants]
        ax_err.bar(offs, mae, width=width, color=f"C{j}", label=metric_label(metric))
        ax_err.scatter(offs, rms, marker="_", s=200, color="k", zorder=3,
                       label="RMS" if j == 0 else None)
        ax_in.bar(offs, frac, width=width, color=f"C{j}", label=metric_label(metric))
        for o, v in zip(offs, variants):
            if v in sub.index and sub.loc[v, "testable"]:
                ax_in.annotate(f"{sub.loc[v, 'inside']}/{sub.loc[v, 'testable']}", (o, 0.02),
                               ha="center", va="bottom", fontsize=7, rotation=90)
    labels = [family if family == table else f"{family}\n({table})" for family, table in variants]
    for ax in (ax_err, ax_in):
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    ax_err.set_ylabel("|ours - paper| (points): MAE bar, RMS tick")
    ax_in.set_ylabel("published cells inside our 95% CI")
    ax_in.set_ylim(0, 1.05)
    ax_err.legend(fontsize=8, frameon=False)
    fig.suptitle("Fit to the published means per protocol variant (uncertain cells left out)",
                 fontsize=10)
    fig.tight_layout()
    _save(fig, paths)

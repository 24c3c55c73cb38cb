"""Figures (matplotlib, Agg backend; every figure saved to each path given: PNG, PDF, ...).

- grid experiments: accuracy and UWA against the imbalance scenario, one line per cell
  (eta or gamma), mean over seeds with a +-1 std band;
- list experiments: each loss's mean with its 95% t interval, seeds as dots;
- paper vs ours: our mean (+- std) against the published mean, per table cell and metric.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from asymcl.errors import InputError  # noqa: E402
from asymcl.io import atomic_path  # noqa: E402
from asymcl.report.stats import summarize  # noqa: E402
from asymcl.report.tables import SETTING_SYMBOLS, cell_label, metric_label, read_runs, read_spec  # noqa: E402


def _save(fig, paths) -> None:
    for path in paths:
        path = Path(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=150, bbox_inches="tight")
    plt.close(fig)


def _runs_of(exp: dict, runs: pd.DataFrame) -> pd.DataFrame:
    return runs[(runs["dataset"] == exp["dataset"]) & runs["seed"].isin(exp["seeds"])]


def grid_figure(exp: dict, runs: pd.DataFrame, paths) -> None:
    data = _runs_of(exp, runs)
    metrics = exp["metrics"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.8), squeeze=False)
    x = list(range(len(exp["scenarios"])))
    symbol = SETTING_SYMBOLS.get(exp.get("column") or "", "")
    for ax, metric in zip(axes[0], metrics):
        for cell in exp["cells"]:
            stats = [summarize(data[(data["scenario"] == s["id"]) & (data["cell"] == cell["id"])]
                               .get(metric, pd.Series(dtype=float)).tolist())
                     for s in exp["scenarios"]]
            mean = [s.mean for s in stats]
            std = [s.std if math.isfinite(s.std) else 0.0 for s in stats]
            label = f"{symbol} = {cell_label(exp, cell)}" if symbol and not cell.get("label") else cell_label(exp, cell)
            (line,) = ax.plot(x, mean, marker="o", ms=3, label=label)
            ax.fill_between(x, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                            color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_xticks(x, [s["label"] for s in exp["scenarios"]], rotation=45)
        ax.set_xlabel("majority : minority")
        ax.set_ylabel(f"{metric_label(metric)} (%)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, frameon=False, loc="best")
    fig.suptitle(f"{exp['title']} (mean ± std over {len(exp['seeds'])} seeds)", fontsize=10)
    _save(fig, paths)


def list_figure(exp: dict, runs: pd.DataFrame, paths) -> None:
    data = _runs_of(exp, runs)
    metrics = exp["metrics"]
    cells = exp["cells"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 0.5 * len(cells) * len(exp["scenarios"]) + 1.6),
                             squeeze=False, sharey=True)
    ticks, labels = [], []
    for ax, metric in zip(axes[0], metrics):
        y = 0
        ticks, labels = [], []
        for sc in exp["scenarios"]:
            for cell in cells:
                values = data[(data["scenario"] == sc["id"]) & (data["cell"] == cell["id"])].get(
                    metric, pd.Series(dtype=float)).tolist()
                s = summarize(values)
                if math.isfinite(s.mean):
                    err = [[s.mean - s.ci_low], [s.ci_high - s.mean]] if math.isfinite(s.ci_low) else None
                    ax.errorbar([s.mean], [y], xerr=err, fmt="o", color="C0", capsize=3)
                    ax.scatter(values, [y + 0.18] * len(values), s=8, color="0.5")
                ticks.append(y)
                name = cell_label(exp, cell)
                labels.append(f"{sc['label']}: {name}" if len(exp["scenarios"]) > 1 else name)
                y += 1
        ax.set_xlabel(f"{metric_label(metric)} (%)")
        ax.grid(alpha=0.3, axis="x")
    axes[0][0].set_yticks(ticks, labels)
    axes[0][0].invert_yaxis()
    fig.suptitle(f"{exp['title']}\nmean and 95% t interval over {len(exp['seeds'])} seeds (dots: seeds)", fontsize=10)
    _save(fig, paths)


def experiment_figure(exp: dict, runs: pd.DataFrame, paths) -> None:
    if exp["layout"] == "grid":
        grid_figure(exp, runs, paths)
    else:
        list_figure(exp, runs, paths)


def paper_figure(comparison: pd.DataFrame, paths) -> None:
    fig, ax = plt.subplots(figsize=(5, 5))
    markers = {"accuracy": "o", "uwa": "s"}
    have = comparison[comparison["ours_mean"].notna()] if len(comparison) else comparison
    for i, (table, group) in enumerate(have.groupby("table", sort=True)):
        for metric, g in group.groupby("metric"):
            sure, unsure = g[~g["uncertain"]], g[g["uncertain"]]
            ax.errorbar(sure["paper"], sure["ours_mean"], yerr=sure["ours_std"].fillna(0), fmt=markers.get(metric, "^"),
                        color=f"C{i}", ms=4, capsize=2, label=f"{table.replace('table', 'Table ')} {metric_label(metric)}")
            if len(unsure):
                ax.scatter(unsure["paper"], unsure["ours_mean"], marker=markers.get(metric, "^"),
                           facecolors="none", edgecolors=f"C{i}", s=30)
    values = pd.concat([have["paper"], have["ours_mean"]]) if len(have) else pd.Series([0.0, 100.0])
    lo, hi = float(values.min()) - 2, float(values.max()) + 2
    ax.plot([lo, hi], [lo, hi], color="0.4", lw=1, ls="--", label="ours = paper")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("paper (%)")
    ax.set_ylabel("ours (%), mean ± std")
    ax.set_title("Published vs reproduced (hollow: uncertain paper cell)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
    _save(fig, paths)


def comparison_figure_from_file(comparison_csv: Path, paths) -> None:
    """`asymcl figure --comparison`: the paper-vs-ours figure from paper_comparison.csv."""
    if not Path(comparison_csv).is_file():
        raise InputError(f"{comparison_csv} does not exist; run `asymcl tables` first")
    paper_figure(pd.read_csv(comparison_csv, dtype={"scenario": str}), paths)


def experiment_figure_from_files(experiment: str, runs_csv: Path | None, spec_json: Path | None, paths) -> None:
    """`asymcl figure --experiment`: one experiment's figure from the runs CSV and experiments.json."""
    if not (runs_csv and spec_json):
        raise InputError("--experiment needs --runs and --spec")
    spec = read_spec(spec_json)
    if experiment not in spec["experiments"]:
        raise InputError(f"{spec_json} has no experiment {experiment!r} "
                         f"(has: {', '.join(spec['experiments'])})")
    experiment_figure(spec["experiments"][experiment], read_runs(runs_csv), paths)

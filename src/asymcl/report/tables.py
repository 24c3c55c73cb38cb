"""Tables: summaries, the paper's layouts in LaTeX, paired comparisons, paper vs ours.

Layouts (``table.layout`` of an experiment):

- ``grid`` (Tables 1 and 2): rows = scenario x metric, one column per cell, headed by the
  cell's value of ``table.column`` (eta or gamma);
- ``list`` (Table 3): one row per cell (per scenario when there are several), one column
  per metric.

Every entry is mean +- sample std over seeds; the caption states n, and an entry with fewer
runs than the experiment has seeds shows its own n. The best mean of a row (grid) or column
(list) is bold, as in the paper. LaTeX is rendered by pandas' Styler (booktabs rules).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pandas as pd

from asymcl.errors import InputError
from asymcl.io import atomic_path, write_text_atomic
from asymcl.report.stats import paired_difference, summarize

METRIC_LABELS = {"accuracy": "Accuracy", "uwa": "UWA", "roc_auc": "ROC-AUC"}
SETTING_SYMBOLS = {"eta": r"$\eta$", "gamma": r"$\gamma$"}


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric.replace("_", r"\_"))


def cell_label(exp: dict, cell: dict) -> str:
    """A cell's name in an experiment's table: its label, else the column setting's value,
    else eta and gamma."""
    if cell.get("label"):
        return cell["label"]
    column = exp.get("column")
    if column and column in cell:
        return _num(cell[column])
    return rf"$\eta={_num(cell['eta'])}, \gamma={_num(cell['gamma'])}$"


def _num(value) -> str:
    return f"{float(value):g}" if isinstance(value, (int, float)) else str(value)


# ----------------------------------------------------------------------------- summaries


def summary_table(runs: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """One row per (dataset, scenario, cell, metric): mean, std, n, 95% t interval."""
    rows = []
    for (dataset, scenario, cell), group in runs.groupby(["dataset", "scenario", "cell"], sort=True):
        for metric in metrics:
            if metric not in group:
                continue
            s = summarize(group[metric].tolist())
            rows.append({
                "dataset": dataset, "scenario": scenario, "cell": cell,
                "eta": group["eta"].iloc[0], "gamma": group["gamma"].iloc[0],
                "metric": metric, "mean": s.mean, "std": s.std, "n": s.n,
                "ci_low": s.ci_low, "ci_high": s.ci_high,
            })
    return pd.DataFrame(rows, columns=["dataset", "scenario", "cell", "eta", "gamma", "metric",
                                       "mean", "std", "n", "ci_low", "ci_high"])


def _lookup(summary: pd.DataFrame) -> dict:
    return {(r.dataset, r.scenario, r.cell, r.metric): r for r in summary.itertuples(index=False)}


def format_entry(mean: float, std: float, n: int, expected_n: int, bold: bool = False) -> str:
    """``$78.92 \\pm 1.20$`` (bold when best; ``(n=3)`` when runs are missing; -- when none)."""
    if n == 0 or not math.isfinite(mean):
        return "--"
    core = f"{mean:.2f}" if not math.isfinite(std) else f"{mean:.2f} \\pm {std:.2f}"
    text = f"\\mathbf{{{core}}}" if bold else core
    text = f"${text}$"
    if n != expected_n:
        text += f" (n={n})"
    return text


# ----------------------------------------------------------------------------- experiment tables


def experiment_frame(exp: dict, summary: pd.DataFrame) -> pd.DataFrame:
    """The experiment's table as a frame of formatted LaTeX strings."""
    look = _lookup(summary)
    metrics = exp["metrics"]
    expected = len(exp["seeds"])
    ds = exp["dataset"]

    def stat(scenario, cell, metric):
        r = look.get((ds, scenario, cell["id"], metric))
        return (r.mean, r.std, r.n) if r is not None else (math.nan, math.nan, 0)

    if exp["layout"] == "grid":
        columns = [cell_label(exp, c) for c in exp["cells"]]
        index, data = [], []
        for sc in exp["scenarios"]:
            for metric in metrics:
                stats = [stat(sc["id"], c, metric) for c in exp["cells"]]
                best = _best([s[0] for s in stats])
                index.append((sc["label"], metric_label(metric)))
                data.append([format_entry(*s, expected, bold=(i in best)) for i, s in enumerate(stats)])
        header = SETTING_SYMBOLS.get(exp.get("column") or "", exp.get("column") or "Loss")
        frame = pd.DataFrame(
            data,
            index=pd.MultiIndex.from_tuples(index, names=["Scenario", "Metric"]),
            columns=pd.MultiIndex.from_product([[header], columns]),
        )
        return frame
    # list layout
    several = len(exp["scenarios"]) > 1
    index, data = [], []
    for sc in exp["scenarios"]:
        per_metric = {m: [stat(sc["id"], c, m) for c in exp["cells"]] for m in metrics}
        best = {m: _best([s[0] for s in per_metric[m]]) for m in metrics}
        for i, cell in enumerate(exp["cells"]):
            index.append((sc["label"], cell_label(exp, cell)) if several else cell_label(exp, cell))
            data.append([format_entry(*per_metric[m][i], expected, bold=(i in best[m])) for m in metrics])
    idx = (pd.MultiIndex.from_tuples(index, names=["Scenario", "Loss"]) if several
           else pd.Index(index, name="Loss"))
    return pd.DataFrame(data, index=idx, columns=[metric_label(m) for m in metrics])


def _best(means: list[float]) -> set[int]:
    """Indices of the highest finite mean (all of them on a tie; none with < 2 entries)."""
    finite = [m for m in means if math.isfinite(m)]
    if len(finite) < 2:
        return set()
    top = max(finite)
    return {i for i, m in enumerate(means) if m == top}


def _row_frame(data: list, columns, index: list[tuple], names: list[str]) -> pd.DataFrame:
    """A frame of ``data`` rows under a MultiIndex named ``names``; with no rows, an empty
    frame whose index still carries the first name (so the LaTeX still has its header)."""
    if not index:
        frame = pd.DataFrame(columns=columns)
        frame.index.name = names[0]
        return frame
    return pd.DataFrame(data, columns=columns, index=pd.MultiIndex.from_tuples(index, names=names))


def to_latex(frame: pd.DataFrame, caption: str, label: str, longtable: bool = False) -> str:
    """Booktabs LaTeX of a frame of preformatted strings (no escaping: entries are LaTeX)."""
    styler = frame.style
    return styler.to_latex(
        hrules=True,
        caption=caption,
        label=label,
        position="htbp" if not longtable else None,
        position_float="centering" if not longtable else None,
        environment="longtable" if longtable else None,
        multicol_align="c",
        multirow_align="naive",
        column_format="l" * frame.index.nlevels + "c" * frame.shape[1],
    )


def experiment_latex(exp: dict, summary: pd.DataFrame) -> str:
    frame = experiment_frame(exp, summary)
    seeds = len(exp["seeds"])
    caption = (
        f"{_escape(exp['title'])}. Accuracy and UWA (\\%) as mean $\\pm$ sample standard deviation "
        f"over n = {seeds} runs (seeds {', '.join(map(str, exp['seeds']))}); best mean in bold."
    )
    return _header(exp["name"]) + to_latex(frame, caption, f"tab:{exp['name']}")


def _escape(text: str) -> str:
    return text.replace("%", r"\%").replace("&", r"\&").replace("_", r"\_")


def _header(name: str) -> str:
    return f"% {name}: generated by `asymcl tables` (needs \\usepackage{{booktabs}})\n"


# ----------------------------------------------------------------------------- paired


def paired_table(exp_spec: dict, runs: pd.DataFrame) -> pd.DataFrame:
    """Each cell minus its experiment's baseline, per scenario and metric, paired by seed."""
    rows = []
    for exp in exp_spec["experiments"].values():
        base = exp.get("baseline")
        if not base:
            continue
        ds_runs = runs[runs["dataset"] == exp["dataset"]]
        seeds = set(exp["seeds"])
        for sc in exp["scenarios"]:
            here = ds_runs[(ds_runs["scenario"] == sc["id"]) & ds_runs["seed"].isin(seeds)]
            for cell in exp["cells"]:
                if cell["id"] == base:
                    continue
                for metric in exp["metrics"]:
                    if metric not in here:
                        continue
                    values = {
                        cid: dict(zip(g["seed"], g[metric]))
                        for cid, g in here.groupby("cell")
                    }
                    p = paired_difference(values.get(cell["id"], {}), values.get(base, {}))
                    rows.append({
                        "experiment": exp["name"], "dataset": exp["dataset"],
                        "scenario": sc["id"], "cell": cell["id"], "baseline": base,
                        "label": cell_label(exp, cell), "metric": metric, **p.as_dict(),
                    })
    return pd.DataFrame(rows, columns=["experiment", "dataset", "scenario", "cell", "baseline",
                                       "label", "metric", "n", "mean_diff", "std_diff", "ci_low",
                                       "ci_high", "p_value"])


def paired_latex(paired: pd.DataFrame, spec: dict) -> str:
    def entry(r) -> str:
        if r is None or r.n == 0 or not math.isfinite(r.mean_diff):
            return "--"
        if not math.isfinite(r.ci_low):
            return f"${r.mean_diff:+.2f}$"
        star = "^{*}" if (r.ci_low > 0 or r.ci_high < 0) else ""
        return f"${r.mean_diff:+.2f}{star}$ [{r.ci_low:+.2f}, {r.ci_high:+.2f}]"

    index, data = [], []
    metrics = list(dict.fromkeys(paired["metric"])) if len(paired) else ["accuracy", "uwa"]
    look = {(r.experiment, r.scenario, r.cell, r.metric): r for r in paired.itertuples(index=False)}
    for name, exp in spec["experiments"].items():
        base = exp.get("baseline")
        if not base:
            continue
        labels = {s["id"]: s["label"] for s in exp["scenarios"]}
        for sc in exp["scenarios"]:
            for cell in exp["cells"]:
                if cell["id"] == base:
                    continue
                rows = [look.get((name, sc["id"], cell["id"], m)) for m in metrics]
                ns = {r.n for r in rows if r is not None}
                index.append((name.replace("_", r"\_"), labels[sc["id"]], cell_label(exp, cell)))
                data.append([entry(r) for r in rows] + [str(max(ns)) if ns else "0"])
    columns = [f"$\\Delta$ {metric_label(m)} [95\\% CI]" for m in metrics] + ["n"]
    frame = _row_frame(data, columns, index, ["Experiment", "Scenario", "Loss"])
    caption = (
        "Paired difference of each loss against its family's baseline (CL, $\\eta=\\gamma=0$) "
        "over seeds (same seed, same split): mean difference in points and the paired t 95\\% "
        "interval; $^{*}$ the interval excludes 0."
    )
    return _header("paired") + to_latex(frame, caption, "tab:paired", longtable=True)


# ----------------------------------------------------------------------------- paper comparison


def read_paper_results(path) -> pd.DataFrame:
    frame = pd.read_csv(path, comment="#", dtype={"scenario": str})
    frame["uncertain"] = frame["uncertain"].astype(str).str.lower().eq("true")
    return frame


def paper_comparison(spec: dict, summary: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Published means next to ours, for every experiment that names a ``paper`` table."""
    look = _lookup(summary)
    rows = []
    for exp in spec["experiments"].values():
        table = exp.get("paper")
        if not table:
            continue
        published = paper[paper["table"] == table]
        scen = {s["id"] for s in exp["scenarios"]}
        for r in published.itertuples(index=False):
            if r.scenario not in scen:
                continue
            cells = [c for c in exp["cells"]
                     if math.isclose(c["eta"], r.eta) and math.isclose(c["gamma"], r.gamma)]
            if not cells:
                continue
            cell = cells[0]
            ours = look.get((exp["dataset"], r.scenario, cell["id"], r.metric))
            mean = ours.mean if ours is not None else math.nan
            rows.append({
                "table": table, "experiment": exp["name"], "dataset": exp["dataset"],
                "scenario": r.scenario, "cell": cell["id"], "label": cell_label(exp, cell),
                "eta": r.eta, "gamma": r.gamma, "metric": r.metric, "paper": r.value,
                "ours_mean": mean,
                "ours_std": ours.std if ours is not None else math.nan,
                "n": ours.n if ours is not None else 0,
                "ours_ci_low": ours.ci_low if ours is not None else math.nan,
                "ours_ci_high": ours.ci_high if ours is not None else math.nan,
                "difference": mean - r.value,
                "paper_in_ci": bool(ours is not None and ours.ci_low <= r.value <= ours.ci_high),
                "uncertain": bool(r.uncertain),
            })
    return pd.DataFrame(rows, columns=["table", "experiment", "dataset", "scenario", "cell", "label",
                                       "eta", "gamma", "metric", "paper", "ours_mean", "ours_std",
                                       "n", "ours_ci_low", "ours_ci_high", "difference",
                                       "paper_in_ci", "uncertain"])


def comparison_latex(comparison: pd.DataFrame, spec: dict) -> str:
    index, data = [], []
    metrics = list(dict.fromkeys(comparison["metric"])) if len(comparison) else ["accuracy", "uwa"]
    look = {(r.experiment, r.scenario, r.cell, r.metric): r for r in comparison.itertuples(index=False)}
    for name, exp in spec["experiments"].items():
        if not exp.get("paper"):
            continue
        for sc in exp["scenarios"]:
            for cell in exp["cells"]:
                rows = [look.get((name, sc["id"], cell["id"], m)) for m in metrics]
                if all(r is None for r in rows):
                    continue
                index.append((exp["paper"].replace("table", "Table "), sc["label"], cell_label(exp, cell)))
                line = []
                for r in rows:
                    if r is None:
                        line += ["--", "--"]
                        continue
                    mark = r"$^{\dagger}$" if r.uncertain else ""
                    line.append(f"{r.paper:.2f}{mark}")
                    line.append(format_entry(r.ours_mean, r.ours_std, r.n, r.n))
                data.append(line)
    columns = pd.MultiIndex.from_product([[metric_label(m) for m in metrics], ["paper", "ours"]])
    frame = _row_frame(data, columns, index, ["Table", "Scenario", "Loss"])
    caption = (
        "Published means (4 runs) against ours (mean $\\pm$ std over our seeds). "
        "$^{\\dagger}$ uncertain in the extracted paper text (Table 2, 60:40 and 65:35)."
    )
    return _header("paper_comparison") + to_latex(frame, caption, "tab:paper-comparison", longtable=True)


# --------------------------------------------------------------------------- files


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not valid JSON: {err}") from None


def read_runs(path: Path) -> pd.DataFrame:
    """The runs CSV of `asymcl aggregate` (identity columns as text)."""
    try:
        return pd.read_csv(path, dtype={"scenario": str, "cell": str, "dataset": str})
    except FileNotFoundError:
        raise InputError(f"{path} does not exist; run `asymcl aggregate` first") from None


def read_spec(path: str | Path) -> dict:
    """The workflow's experiments.json (an object with an ``experiments`` mapping)."""
    spec = read_json(path)
    if not isinstance(spec, dict) or not isinstance(spec.get("experiments"), dict):
        raise InputError(f"{path}: expected an object with an 'experiments' mapping (experiments.json)")
    return spec


def write_tables(runs_path: Path, spec_path: Path, paper_path: Path | None, out: Path) -> None:
    """Every table of `asymcl tables`: OUT/<experiment>.tex, summary.csv, paired.csv|.tex and
    paper_comparison.csv|.tex."""
    runs = read_runs(runs_path)
    spec = read_spec(spec_path)
    metrics = list(dict.fromkeys(m for e in spec["experiments"].values() for m in e["metrics"]))
    missing = [m for m in metrics if m not in runs.columns]
    if missing:
        raise InputError(f"{runs_path} has no column {', '.join(missing)} (asked for by the experiments' table.metrics)")
    summary = summary_table(runs, metrics)
    for name, exp in spec["experiments"].items():
        write_text_atomic(out / f"{name}.tex", experiment_latex(exp, summary))
    paired = paired_table(spec, runs)
    paper = read_paper_results(paper_path) if paper_path else pd.DataFrame(
        columns=["table", "dataset", "scenario", "eta", "gamma", "metric", "value", "uncertain"])
    comparison = paper_comparison(spec, summary, paper)
    for frame, name in ((summary, "summary.csv"), (paired, "paired.csv"), (comparison, "paper_comparison.csv")):
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.4f")
    write_text_atomic(out / "paired.tex", paired_latex(paired, spec))
    write_text_atomic(out / "paper_comparison.tex", comparison_latex(comparison, spec))
    logging.getLogger(__name__).info("tables of %s -> %s", ", ".join(spec["experiments"]), out)

"""One table per experiment family: mean +- std, n, and the paired comparison with the
family's baseline, from the workflow's ``summary.csv`` and ``paired.csv``.

Rows: one per (scenario, cell, metric) of the family, in the family's order. Columns:
``scenario``, ``scenario_label``, ``cell``, ``label``, ``metric``, ``mean``, ``std``, ``n``
(runs over the family's seeds), ``ci_low``/``ci_high`` (95% t interval of the mean), and
against the baseline cell (same scenario, paired by seed: same seed = same split)
``diff_mean``, ``diff_ci_low``, ``diff_ci_high``, ``diff_n``, ``diff_p_value``; the
baseline's own rows have ``is_baseline`` true and no difference.

Also the inputs of the families' extra figures (pure standard library: the Snakefile
imports this module at parse time).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas only where tables are built: the Snakefile imports this module
    import pandas as pd

COLUMNS = [
    "experiment", "dataset", "scenario", "scenario_label", "cell", "label", "is_baseline", "metric",
    "mean", "std", "n", "ci_low", "ci_high",
    "diff_mean", "diff_ci_low", "diff_ci_high", "diff_n", "diff_p_value",
]


def _label(exp: dict[str, Any], cell: dict[str, Any]) -> str:
    if cell.get("label"):
        return str(cell["label"])
    column = exp.get("column")
    if column and column in cell:
        return f"{column}={float(cell[column]):g}"
    return f"eta={float(cell['eta']):g}, gamma={float(cell['gamma']):g}"


def family_table(exp: dict[str, Any], summary: pd.DataFrame, paired: pd.DataFrame) -> pd.DataFrame:
    """The family's table (see the module docstring).

    ``exp`` is one entry of the workflow's experiments.json; ``summary`` and ``paired`` are
    the frames ``asymcl tables`` writes (summary.csv, paired.csv).
    """
    import pandas as pd

    summary = summary.astype({"scenario": str, "cell": str})
    paired = paired.astype({"scenario": str, "cell": str}) if len(paired) else paired
    look = {(r.dataset, r.scenario, r.cell, r.metric): r for r in summary.itertuples(index=False)}
    diffs = {}
    if len(paired):
        mine = paired[paired["experiment"] == exp["name"]]
        diffs = {(r.scenario, r.cell, r.metric): r for r in mine.itertuples(index=False)}
    rows = []
    for sc in exp["scenarios"]:
        for cell in exp["cells"]:
            for metric in exp["metrics"]:
                s = look.get((exp["dataset"], sc["id"], cell["id"], metric))
                d = diffs.get((sc["id"], cell["id"], metric))
                rows.append({
                    "experiment": exp["name"], "dataset": exp["dataset"],
                    "scenario": sc["id"], "scenario_label": sc["label"],
                    "cell": cell["id"], "label": _label(exp, cell),
                    "is_baseline": cell["id"] == exp.get("baseline"), "metric": metric,
                    "mean": s.mean if s is not None else math.nan,
                    "std": s.std if s is not None else math.nan,
                    "n": int(s.n) if s is not None else 0,
                    "ci_low": s.ci_low if s is not None else math.nan,
                    "ci_high": s.ci_high if s is not None else math.nan,
                    "diff_mean": d.mean_diff if d is not None else math.nan,
                    "diff_ci_low": d.ci_low if d is not None else math.nan,
                    "diff_ci_high": d.ci_high if d is not None else math.nan,
                    "diff_n": int(d.n) if d is not None else 0,
                    "diff_p_value": d.p_value if d is not None else math.nan,
                })
    return pd.DataFrame(rows, columns=COLUMNS)


def diagnostics_series(exp: dict[str, Any], run_dir) -> list[tuple[str, list[str]]]:
    """(line label, metrics.json paths over the seeds) per (diagnostics scenario, cell).

    ``run_dir(dataset, scenario, cell, seed)`` gives a run's folder.
    """
    labels = {s["id"]: s["label"] for s in exp["scenarios"]}
    wanted = exp.get("diagnostics_scenarios") or [exp["scenarios"][-1]["id"]]
    several = len(wanted) > 1
    out = []
    for sid in wanted:
        for cell in exp["cells"]:
            name = _label(exp, cell)
            label = f"{labels[sid]}: {name}" if several else name
            paths = [f"{run_dir(exp['dataset'], sid, cell['id'], seed)}/metrics.json" for seed in exp["seeds"]]
            out.append((label, paths))
    return out


def embedding_panels(exp: dict[str, Any], run_dir) -> list[tuple[str, str]]:
    """(panel title, embeddings.npz path) per (scenario, cell) at the family's embeddings seed."""
    seed = exp.get("embeddings_seed", exp["seeds"][0])
    return [
        (f"{sc['label']}: {_label(exp, cell)}", f"{run_dir(exp['dataset'], sc['id'], cell['id'], seed)}/embeddings.npz")
        for sc in exp["scenarios"]
        for cell in exp["cells"]
    ]


def write_family_table(spec_path, summary_path, paired_path, experiment: str, out) -> None:
    """`asymcl family-table`: read experiments.json, summary.csv and paired.csv, write one
    family's table as CSV (atomically)."""
    import json

    import pandas as pd

    from asymcl.errors import InputError
    from asymcl.io import write_text_atomic

    try:
        spec = json.loads(open(spec_path).read())
        summary = pd.read_csv(summary_path, dtype={"scenario": str, "cell": str})
        paired = pd.read_csv(paired_path, dtype={"scenario": str, "cell": str})
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read the inputs of family-table: {err}") from None
    experiments = spec.get("experiments", {})
    if experiment not in experiments:
        raise InputError(f"{spec_path}: no experiment {experiment!r} (known: {', '.join(sorted(experiments))})")
    table = family_table(experiments[experiment], summary, paired)
    write_text_atomic(out, table.to_csv(index=False, float_format="%.6g"))

"""Collect run folders' metrics.json into one table, one row per run.

The run's identity (dataset, scenario, cell, seed) comes from its path, which the workflow
builds as ``.../{dataset}/{scenario}/{cell}/seed{seed}/metrics.json``: the path is what
Snakemake asked for, so the row can never be attributed to another run. The settings echo
inside metrics.json is checked against it (eta, gamma, seed) and adds the run details
(epochs, architecture, normalisation, ...) as columns.
"""

from __future__ import annotations

from asymcl.errors import InputError

import json
import math
import re
from pathlib import Path
from typing import Iterable

import pandas as pd

from asymcl.experiments import parse_cell_id
from asymcl.provenance import FIELDS as CODE_FIELDS

IDENTITY = ["dataset", "scenario", "cell", "seed"]
# Top-level scalar metrics copied as columns when present.
SCALAR_METRICS = ["accuracy", "uwa", "roc_auc", "nan_steps", "n_train",
                  "many_shot_accuracy", "medium_shot_accuracy", "few_shot_accuracy"]


class AggregateError(InputError):
    pass


def run_identity(path: str | Path) -> dict:
    """(dataset, scenario, cell, seed) from ``.../{dataset}/{scenario}/{cell}/seed{seed}/metrics.json``."""
    parts = Path(path).parts
    if len(parts) < 5 or not re.fullmatch(r"seed\d+", parts[-2]):
        raise AggregateError(
            f"{path}: expected a run path .../DATASET/SCENARIO/CELL/seedN/metrics.json"
        )
    return {
        "dataset": parts[-5],
        "scenario": parts[-4],
        "cell": parts[-3],
        "seed": int(parts[-2][len("seed"):]),
    }


def _close(a, b) -> bool:
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def run_row(path: str | Path) -> dict:
    """One runs.csv row from a metrics.json path."""
    row = run_identity(path)
    try:
        metrics = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise AggregateError(f"{path}: cannot read metrics ({err})") from None
    cell = parse_cell_id(row["cell"])
    settings = metrics.get("settings", {})
    for key, expected in (("eta", cell["eta"]), ("gamma", cell["gamma"]), ("seed", row["seed"])):
        if key in settings and not _close(settings[key], expected):
            raise AggregateError(
                f"{path}: metrics.json says {key}={settings[key]} but its path says "
                f"{key}={expected}; the file belongs to another run (rerun it)"
            )
    row["eta"] = float(cell["eta"])
    row["gamma"] = float(cell["gamma"])
    for key in SCALAR_METRICS:
        if key in metrics:
            row[key] = metrics[key]
    for label, recall in (metrics.get("per_class_recall") or {}).items():
        row[f"recall_{label}"] = recall
    for key, value in settings.items():
        if key not in row and (value is None or isinstance(value, (str, int, float, bool))):
            row[key] = value
    row["device_type"] = metrics.get("device_type")
    timings = (metrics.get("runtime") or {}).get("timings") or {}
    row["total_s"] = timings.get("total_s")
    # which code made the run (metrics.json "code", asymcl.provenance); empty when absent
    code = metrics.get("code") or {}
    for key in CODE_FIELDS:
        row[f"code_{key}"] = code.get(key)
    return row


def collect(paths: Iterable[str | Path], spec: dict | None = None) -> pd.DataFrame:
    """The runs table, sorted by identity; with ``spec``, an ``experiments`` column lists
    the families (``table1;table2``) each run belongs to."""
    rows = [run_row(p) for p in paths]
    if not rows:
        raise AggregateError("no metrics.json given")
    frame = pd.DataFrame(rows)
    dup = frame.duplicated(IDENTITY, keep=False)
    if dup.any():
        raise AggregateError(f"the same run is listed twice: {frame.loc[dup, IDENTITY].to_dict('records')}")
    if spec is not None:
        frame.insert(4, "experiments", [";".join(memberships(spec, r)) for r in rows])
    return frame.sort_values(IDENTITY, kind="stable").reset_index(drop=True)


def memberships(spec: dict, row: dict) -> list[str]:
    out = []
    for name, exp in spec["experiments"].items():
        if (
            exp["dataset"] == row["dataset"]
            and row["scenario"] in {s["id"] for s in exp["scenarios"]}
            and row["cell"] in {c["id"] for c in exp["cells"]}
            and row["seed"] in exp["seeds"]
        ):
            out.append(name)
    return out

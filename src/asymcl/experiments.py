"""The experiment grid: from a workflow config to run cells, paths and CLI arguments.

A config names *experiments* (families such as the paper's Table 1). Each experiment has a
dataset, a list of *scenarios* (which subset of the data: an imbalance ratio, or all images),
a list of *cells* (loss settings: ``eta``, ``gamma`` and optional training overrides such as
``normalization``) and a list of seeds. A *run* is one (dataset, scenario, cell, seed).

Identity lives in names that become paths::

    results/runs/{dataset}/{scenario}/{cell}/seed{seed}/metrics.json

``scenario`` is ``50-50`` for the ratio ``50:50`` (or a scenario's ``name``), and ``cell``
encodes every identity setting, e.g. ``eta300_gamma2`` or
``eta60_gamma0_normalization-paper``. Two experiments that list the same cell on the same
dataset and scenario therefore share one run: the paper's (eta=0, gamma=0) cell is trained
once for Tables 1 and 2.

This module is pure standard library: the Snakefile imports it at parse time (no torch).
"""

from __future__ import annotations

from asymcl.errors import InputError

import re
import shlex
from dataclasses import dataclass
from typing import Any, Iterable

# Keys of a cell that are not training overrides.
CELL_LOSS_KEYS = ("eta", "gamma")
CELL_META_KEYS = ("label",)
# Scenario keys that are not subset options.
SCENARIO_META_KEYS = ("name", "label")
# Two ways to size a scenario; a scenario that uses one drops the other from the dataset's
# subset defaults (a long-tailed scenario must not inherit `total`).
SIZING_KEYS = (("ratio", "total"), ("imbalance_factor", "max_per_class"))
# Extra figures an experiment can ask for (besides its results figure).
EXTRA_FIGURES = ("diagnostics", "embeddings")

# Boolean flags written as --key / --no-key (argparse BooleanOptionalAction); other
# booleans are store_true flags, left out when false.
NEGATABLE_FLAGS = {"hflip"}

# Report files next to the per-experiment tables and figures.
RESERVED_NAMES = {"summary", "paired", "paper_comparison", "paper_vs_ours", "runs", "experiments",
                  "fit_to_paper", "fit_to_paper_cells", "claims"}

_ID_SAFE = re.compile(r"^[A-Za-z0-9.+-]+$")


class GridError(InputError):
    """The config describes an inconsistent grid (a message for people, naming the key)."""


def format_value(value: Any) -> str:
    """Compact, path-safe text for a setting value: 60 -> '60', 60.0 -> '60', 0.5 -> '0.5'."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"{float(value):g}"
    text = str(value)
    if not _ID_SAFE.match(text):
        raise GridError(
            f"value {text!r} cannot be part of a run path; use letters, digits, '.', '+' or '-'"
        )
    return text


def cell_id(cell: dict[str, Any]) -> str:
    """The path name of a cell: ``eta{eta}_gamma{gamma}`` then ``_{key}-{value}`` overrides."""
    parts = [f"eta{format_value(cell.get('eta', 0))}", f"gamma{format_value(cell.get('gamma', 0))}"]
    for key in sorted(overrides(cell)):
        if not re.match(r"^[a-z0-9]+(_[a-z0-9]+)*$", key):
            raise GridError(f"cell key {key!r}: use lower-case words joined by '_'")
        parts.append(f"{key}-{format_value(cell[key])}")
    return "_".join(parts)


def overrides(cell: dict[str, Any]) -> dict[str, Any]:
    """The training overrides of a cell (everything but eta, gamma and its label)."""
    return {k: v for k, v in cell.items() if k not in CELL_LOSS_KEYS + CELL_META_KEYS}


def parse_cell_id(text: str) -> dict[str, str]:
    """Inverse of `cell_id` (values stay strings; eta and gamma become floats)."""
    match = re.match(r"^eta([^_]+)_gamma([^_]+)((?:_[a-z0-9_]+-[^_]+)*)$", text)
    if not match:
        raise GridError(f"{text!r} is not a cell name like 'eta60_gamma0[_key-value...]'")
    out: dict[str, Any] = {"eta": float(match.group(1)), "gamma": float(match.group(2))}
    for part in re.findall(r"_([a-z0-9_]+?)-([^_]+)", match.group(3)):
        out[part[0]] = part[1]
    return out


def scenario_spec(entry: str | dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(scenario id, subset options) of a config scenario entry.

    ``"95:5"`` -> ``("95-5", {"ratio": "95:5"})``; ``"all"`` -> ``("all", {})`` (every image of
    the dataset's classes); a dict needs a ``name`` and holds subset options
    (``ratio``, ``total``, ``group_by_lesion``, ...).
    """
    if isinstance(entry, str):
        if entry == "all":
            return "all", {}
        if not re.match(r"^\d+(:\d+)+$", entry):
            raise GridError(f"scenario {entry!r}: expected a ratio like '95:5' or 'all'")
        return entry.replace(":", "-"), {"ratio": entry}
    name = entry.get("name")
    if not name:
        raise GridError(f"scenario {entry!r}: a scenario given as a mapping needs a 'name'")
    format_value(name)
    return str(name), {k: v for k, v in entry.items() if k not in SCENARIO_META_KEYS}


def scenario_label(entry: str | dict[str, Any]) -> str:
    if isinstance(entry, str):
        return entry
    return str(entry.get("label") or entry.get("ratio") or entry["name"])


@dataclass(frozen=True, order=True)
class Run:
    dataset: str
    scenario: str
    cell: str
    seed: int


@dataclass
class Grid:
    """Everything the workflow needs to know about the runs of a config."""

    runs: list[Run]
    # dataset -> scenario id -> merged subset options (dataset defaults + scenario)
    scenarios: dict[str, dict[str, dict[str, Any]]]
    # dataset -> cell id -> cell dict (eta, gamma, overrides; no label)
    cells: dict[str, dict[str, dict[str, Any]]]
    # experiment name -> JSON-able description for tables and figures
    experiments: dict[str, dict[str, Any]]

    def subsets(self) -> list[tuple[str, str, int]]:
        """Distinct (dataset, scenario, seed) subsets the runs need."""
        return sorted({(r.dataset, r.scenario, r.seed) for r in self.runs})


# Long on purpose: one pass that checks every cross-reference in the order a reader meets it
# in the config file (split up, the checks would need the whole partial state passed around).
def build_grid(config: dict[str, Any]) -> Grid:
    """Expand ``config['experiments']`` into runs; check cross-references the schema cannot."""
    datasets = config.get("datasets", {})
    scenarios: dict[str, dict[str, dict[str, Any]]] = {}
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    runs: set[Run] = set()
    experiments: dict[str, dict[str, Any]] = {}
    defined = config.get("experiments", {})
    selected = config.get("select_experiments")
    if selected is not None:
        unknown = [n for n in selected if n not in defined]
        if unknown:
            raise GridError(
                f"select_experiments: {unknown} not defined under 'experiments' "
                f"(defined: {', '.join(sorted(defined)) or 'none'})"
            )
    for name, exp in defined.items():
        if selected is not None and name not in selected:
            continue
        where = f"experiments.{name}"
        if name in RESERVED_NAMES:
            raise GridError(
                f"{where}: the name is taken by a report file; "
                f"avoid {', '.join(sorted(RESERVED_NAMES))}"
            )
        dataset = exp["dataset"]
        if dataset not in datasets:
            raise GridError(
                f"{where}.dataset: {dataset!r} has no entry under 'datasets' "
                f"(defined: {', '.join(sorted(datasets)) or 'none'})"
            )
        subset_defaults = dict(datasets[dataset].get("subset", {}))
        exp_scenarios = []
        for entry in exp["scenarios"]:
            sid, options = scenario_spec(entry)
            defaults = dict(subset_defaults)
            for group in SIZING_KEYS:
                if any(k in options for k in group):
                    for other in SIZING_KEYS:
                        if other is not group:
                            for k in other:
                                defaults.pop(k, None)
            merged = {**defaults, **options}
            known = scenarios.setdefault(dataset, {})
            if sid in known and known[sid] != merged:
                raise GridError(
                    f"{where}.scenarios: scenario {sid!r} of {dataset} is defined twice with "
                    f"different options ({known[sid]} vs {merged}); give one of them another name"
                )
            known[sid] = merged
            exp_scenarios.append({"id": sid, "label": scenario_label(entry)})
        exp_cells = []
        for i, cell in enumerate(exp["cells"]):
            cid = cell_id(cell)
            plain = {k: v for k, v in cell.items() if k not in CELL_META_KEYS}
            plain.setdefault("eta", 0)
            plain.setdefault("gamma", 0)
            cells.setdefault(dataset, {})[cid] = plain
            if any(c["id"] == cid for c in exp_cells):
                raise GridError(f"{where}.cells[{i}]: cell {cid} is listed twice")
            exp_cells.append({"id": cid, "label": cell.get("label"), **plain})
        baseline = exp.get("baseline")
        baseline_id = cell_id(baseline) if baseline is not None else None
        if baseline_id is not None and baseline_id not in {c["id"] for c in exp_cells}:
            raise GridError(
                f"{where}.baseline: cell {baseline_id} is not one of the experiment's cells "
                f"({', '.join(c['id'] for c in exp_cells)})"
            )
        seeds = [int(s) for s in exp["seeds"]]
        for s in exp_scenarios:
            for c in exp_cells:
                for seed in seeds:
                    runs.add(Run(dataset, s["id"], c["id"], seed))
        table = dict(exp.get("table", {}))
        figures = list(exp.get("figures", []))
        bad = [f for f in figures if f not in EXTRA_FIGURES]
        if bad:
            raise GridError(f"{where}.figures: {bad} unknown; allowed: {list(EXTRA_FIGURES)}")
        by_name = {}
        for entry, s in zip(exp["scenarios"], exp_scenarios):
            by_name[s["id"]] = s["id"]
            by_name[s["label"]] = s["id"]
            if isinstance(entry, str):
                by_name[entry] = s["id"]
        diag = []
        for text in exp.get("diagnostics_scenarios", []):
            if str(text) not in by_name:
                raise GridError(
                    f"{where}.diagnostics_scenarios: {text!r} is not one of the experiment's "
                    f"scenarios ({', '.join(s['id'] for s in exp_scenarios)})"
                )
            diag.append(by_name[str(text)])
        if "embeddings" in figures and not any(c.get("save_embeddings") for c in exp_cells):
            raise GridError(f"{where}.figures: 'embeddings' needs cells with save_embeddings: true")
        emb_seed = int(exp.get("embeddings_seed", seeds[0]))
        if emb_seed not in seeds:
            raise GridError(f"{where}.embeddings_seed: {emb_seed} is not one of the seeds {seeds}")
        experiments[name] = {
            "name": name,
            "title": exp.get("title", name),
            "dataset": dataset,
            "scenarios": exp_scenarios,
            "cells": exp_cells,
            "seeds": seeds,
            "baseline": baseline_id,
            "layout": table.get("layout", "grid"),
            "column": table.get("column"),
            "metrics": table.get("metrics", ["accuracy", "uwa"]),
            "paper": exp.get("paper"),
            "figures": figures,
            "diagnostics_scenarios": diag or [exp_scenarios[-1]["id"]],
            "embeddings_seed": emb_seed,
        }
    return Grid(sorted(runs), scenarios, cells, experiments)


def training_settings(config: dict[str, Any], dataset: str, cell: dict[str, Any]) -> dict[str, Any]:
    """Training settings of a run: global ``training``, then the dataset's, then the cell's."""
    settings = dict(config.get("training", {}))
    settings.update(config["datasets"][dataset].get("training", {}))
    settings.update(cell)
    return settings


def cli_args(options: dict[str, Any], skip: Iterable[str] = ()) -> str:
    """Shell-quoted ``--key value`` flags: ``batch_size`` -> ``--batch-size``.

    ``True`` becomes a bare flag, ``False`` ``--no-key`` for `NEGATABLE_FLAGS` and is left
    out otherwise, ``None`` is left out, lists repeat their values
    after one flag (argparse ``nargs='+'``). Keys are sorted, so the text (a Snakemake
    param) only changes when a value does.
    """
    skip = set(skip)
    words: list[str] = []
    for key in sorted(options):
        value = options[key]
        flag = "--" + key.replace("_", "-")
        if value is False and key in NEGATABLE_FLAGS:
            words.append("--no-" + key.replace("_", "-"))
            continue
        if key in skip or value is None or value is False:
            continue
        if value is True:
            words.append(flag)
        elif isinstance(value, (list, tuple)):
            words.append(flag)
            words.extend(shlex.quote(str(v)) for v in value)
        else:
            words.extend([flag, shlex.quote(format_number(value))])
    return " ".join(words)


def format_number(value: Any) -> str:
    """Numbers as plain text (1e-3 -> '0.001'), other values as str."""
    if isinstance(value, float):
        return repr(value) if "e" not in repr(value) else f"{value:.12f}".rstrip("0")
    return str(value)

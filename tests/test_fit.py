"""Fit to paper: hand-computed MAE / RMS / inside counts, scenario matching by ratio, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from asymcl.errors import InputError
from asymcl.report import fit
from cli_probe import assert_input_error, run_cli

PAPER_HEADER = "table,dataset,scenario,eta,gamma,metric,value,uncertain,note\n"


def _spec() -> dict:
    cells = [{"id": "eta0_gamma0", "label": None, "eta": 0, "gamma": 0},
             {"id": "eta60_gamma0", "label": None, "eta": 60, "gamma": 0}]
    return {"experiments": {
        "t1": {
            "name": "t1", "title": "T1", "dataset": "fmnist", "paper": "table1",
            "scenarios": [{"id": "50-50", "label": "50:50"},
                          # a subset variant: its id carries a suffix, its ratio says 95:5
                          {"id": "95-5-random", "label": "95-5-random", "ratio": "95:5"},
                          {"id": "60-40", "label": "60:40"}],
            "cells": cells, "seeds": [0, 1, 2], "baseline": "eta0_gamma0",
            "layout": "grid", "column": "eta", "metrics": ["accuracy", "uwa"],
        },
        "unpublished": {  # no `paper` key: not a variant
            "name": "unpublished", "title": "U", "dataset": "fmnist", "paper": None,
            "scenarios": [{"id": "50-50", "label": "50:50"}], "cells": cells, "seeds": [0],
            "baseline": "eta0_gamma0", "layout": "grid", "column": "eta", "metrics": ["accuracy"],
        },
    }}


def _paper(tmp_path: Path) -> Path:
    path = tmp_path / "paper.csv"
    path.write_text(PAPER_HEADER + "\n".join([
        "table1,fmnist,50-50,0,0,accuracy,70,false,",    # A: ours 80, 82
        "table1,fmnist,50-50,60,0,accuracy,61,false,",   # B: ours 60, 60, 60
        "table1,fmnist,50-50,120,0,accuracy,99,false,",  # no such cell in the family
        "table1,fmnist,95-5,0,0,accuracy,52,false,",     # C: one run (50)
        "table1,fmnist,95-5,60,0,accuracy,90,false,",    # E: no run of ours
        "table1,fmnist,60-40,0,0,accuracy,10,true,",     # uncertain: left out
        "table2,fmnist,50-50,0,0,accuracy,1,false,",     # another table
    ]) + "\n")
    return path


def _runs(tmp_path: Path, drop: str | None = None) -> Path:
    rows = []

    def add(scenario, cell, seed, acc):
        eta = float(cell.split("_")[0][3:])
        rows.append({"dataset": "fmnist", "scenario": scenario, "cell": cell, "seed": seed,
                     "eta": eta, "gamma": 0.0, "accuracy": acc, "uwa": acc - 1})

    add("50-50", "eta0_gamma0", 0, 80.0)
    add("50-50", "eta0_gamma0", 1, 82.0)
    add("50-50", "eta0_gamma0", 9, 0.0)  # seed 9 is not one of the family's seeds: ignored
    for seed in (0, 1, 2):
        add("50-50", "eta60_gamma0", seed, 60.0)
    add("95-5-random", "eta0_gamma0", 0, 50.0)
    add("60-40", "eta0_gamma0", 0, 11.0)
    add("60-40", "eta0_gamma0", 1, 12.0)
    frame = pd.DataFrame(rows)
    if drop:
        frame = frame.drop(columns=[drop])
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    return path


def _write_spec(tmp_path: Path) -> Path:
    path = tmp_path / "experiments.json"
    path.write_text(json.dumps(_spec()))
    return path


def test_scenario_key_matches_on_the_ratio():
    assert fit.scenario_key({"id": "95-5-random", "label": "95-5-random", "ratio": "95:5"}) == "95-5"
    assert fit.scenario_key({"id": "98-2", "label": "98:2"}) == "98-2"
    assert fit.scenario_key({"id": "all", "label": "all"}) == "all"
    assert fit.ratio_key("55:45") == "55-45"


def test_fit_numbers_by_hand(tmp_path):
    runs = fit.read_runs(_runs(tmp_path), ["accuracy"])
    paper = fit.read_paper(_paper(tmp_path))
    cells = fit.matched_cells(_spec(), runs, paper)
    acc = cells[cells["metric"] == "accuracy"].set_index(["scenario", "cell"])
    # A: mean 81, std sqrt(2), 95% t interval 81 -+ t(0.975, 1) * sqrt(2) / sqrt(2)
    half = stats.t.ppf(0.975, 1)
    a = acc.loc[("50-50", "eta0_gamma0")]
    assert a["n"] == 2 and a["mean"] == pytest.approx(81.0)
    assert (a["ci_low"], a["ci_high"]) == pytest.approx((81 - half, 81 + half))
    assert a["inside"] and a["difference"] == pytest.approx(11.0)
    b = acc.loc[("50-50", "eta60_gamma0")]  # zero spread: the interval is the point 60
    assert b["n"] == 3 and b["testable"] and not b["inside"]
    c = acc.loc[("95-5-random", "eta0_gamma0")]
    assert c["paper_scenario"] == "95-5" and c["n"] == 1 and not c["testable"]
    assert acc.loc[("95-5-random", "eta60_gamma0")]["n"] == 0
    assert bool(acc.loc[("60-40", "eta0_gamma0")]["uncertain"])
    assert set(cells["family"]) == {"t1"} and set(cells["table"]) == {"table1"}
    assert 99.0 not in set(cells["paper"])  # eta=120 is not a cell of the family

    table = fit.fit_table(cells)
    row = table[table["metric"] == "accuracy"].iloc[0]
    diffs = [11.0, -1.0, -2.0]  # A, B, C; E has no run; the uncertain cell is left out
    assert row["paper_cells"] == 4 and row["matched"] == 3 and row["missing"] == 1
    assert row["uncertain_excluded"] == 1
    assert row["mae"] == pytest.approx(sum(abs(d) for d in diffs) / 3)  # 4.6667
    assert row["rms"] == pytest.approx(math.sqrt(sum(d * d for d in diffs) / 3))  # sqrt(42)
    assert (row["testable"], row["not_testable"], row["inside"]) == (2, 1, 1)
    assert row["fraction_inside"] == pytest.approx(0.5)


def test_missing_column_names_the_column_and_file(tmp_path):
    path = _runs(tmp_path, drop="accuracy")
    with pytest.raises(InputError) as err:
        fit.read_runs(path, ["accuracy"])
    assert "'accuracy'" in str(err.value) and str(path) in str(err.value)


def test_a_run_listed_twice_is_refused(tmp_path):
    path = _runs(tmp_path)
    frame = pd.read_csv(path)
    pd.concat([frame, frame.iloc[[0]]]).to_csv(path, index=False)
    with pytest.raises(InputError, match="listed 2 times"):
        fit.read_runs(path, ["accuracy"])


def test_cli_writes_table_tex_and_figure(tmp_path):
    out = tmp_path / "tables"
    figs = [tmp_path / "figures" / "fit_to_paper.png", tmp_path / "figures" / "fit_to_paper.pdf"]
    result = run_cli(["fit-to-paper", "--runs", _runs(tmp_path), "--spec", _write_spec(tmp_path),
                      "--paper", _paper(tmp_path), "--out-dir", out,
                      "--figure", figs[0], "--figure", figs[1]])
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out / "fit_to_paper.csv")
    assert list(table.columns) == fit.FIT_COLUMNS
    acc = table[table["metric"] == "accuracy"].iloc[0]
    assert acc["mae"] == pytest.approx(14 / 3, abs=1e-4) and acc["inside"] == 1
    tex = (out / "fit_to_paper.tex").read_text()
    assert "\\toprule" in tex and "1/2" in tex and "3/4" in tex
    assert figs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert figs[1].read_bytes()[:5] == b"%PDF-"
    # atomic writes leave no temporary files behind
    leftovers = [p for p in tmp_path.rglob("*.tmp")]
    assert leftovers == []


def test_cli_bad_input_is_one_line(tmp_path):
    runs = _runs(tmp_path, drop="uwa")
    result = run_cli(["fit-to-paper", "--runs", runs, "--spec", _write_spec(tmp_path),
                      "--paper", _paper(tmp_path), "--out-dir", tmp_path / "out"])
    assert_input_error(result, "'uwa'", str(runs))
    assert not (tmp_path / "out" / "fit_to_paper.csv").exists()

"""Unit tests of the experiment grid, aggregation, statistics and tables (no snakemake)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from asymcl.experiments import GridError, build_grid, cell_id, cli_args, parse_cell_id, scenario_spec
from asymcl.report import stats, tables
from asymcl.report.aggregate import AggregateError, collect, run_identity

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------- grid


def test_cell_ids_encode_identity_and_round_trip():
    assert cell_id({"eta": 60, "gamma": 0}) == "eta60_gamma0"
    assert cell_id({"eta": 60.0, "gamma": 0.5, "label": "x"}) == "eta60_gamma0.5"
    cid = cell_id({"eta": 0, "gamma": 2, "normalization": "paper", "batch_size": 64})
    assert cid == "eta0_gamma2_batch_size-64_normalization-paper"
    assert parse_cell_id(cid) == {"eta": 0.0, "gamma": 2.0, "batch_size": "64", "normalization": "paper"}
    with pytest.raises(GridError):
        parse_cell_id("gamma2")


def test_scenario_spec():
    assert scenario_spec("95:5") == ("95-5", {"ratio": "95:5"})
    assert scenario_spec("all") == ("all", {})
    assert scenario_spec({"name": "lesion", "group_by_lesion": True}) == ("lesion", {"group_by_lesion": True})
    with pytest.raises(GridError):
        scenario_spec("95/5")


def test_paper_config_expands_to_504_runs_with_the_shared_cell_once():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    grid = build_grid(config)
    fm = [r for r in grid.runs if r.dataset == "fmnist"]
    isic = [r for r in grid.runs if r.dataset == "isic2018"]
    assert len(fm) == 11 * 11 * 4 and len(isic) == 5 * 4 and len(grid.runs) == 504
    assert sum(1 for r in fm if r.cell == "eta0_gamma0" and r.scenario == "50-50") == 4
    assert sorted(grid.cells["fmnist"]) == sorted(
        {f"eta{e}_gamma0" for e in (0, 60, 120, 180, 240, 300)} | {f"eta0_gamma{g}" for g in (1, 2, 4, 7, 10)}
    )
    assert len(grid.subsets()) == 11 * 4 + 4
    assert grid.scenarios["fmnist"]["98-2"] == {"total": 1000, "from_split": "train", "test_fraction": 0.3,
                                                "split": "random", "ratio": "98:2"}


def _mini_config(**exp):
    base = {"dataset": "fmnist", "scenarios": ["50:50"], "cells": [{"eta": 0, "gamma": 0}], "seeds": [0]}
    base.update(exp)
    return {"datasets": {"fmnist": {"source": "x", "classes": ["0", "6"]}}, "experiments": {"e": base}}


def test_grid_errors_name_the_key():
    with pytest.raises(GridError, match=r"experiments.e.baseline"):
        build_grid(_mini_config(baseline={"eta": 1}))
    with pytest.raises(GridError, match=r"experiments.e.dataset.*isic2018"):
        build_grid(_mini_config(dataset="isic2018"))
    cfg = _mini_config(scenarios=[{"name": "s", "ratio": "60:40"}])
    cfg["experiments"]["f"] = dict(cfg["experiments"]["e"], scenarios=[{"name": "s", "ratio": "70:30"}])
    with pytest.raises(GridError, match="defined twice"):
        build_grid(cfg)


def test_experiment_names_cannot_clash_with_report_files():
    cfg = _mini_config()
    cfg["experiments"]["paired"] = cfg["experiments"].pop("e")
    with pytest.raises(GridError, match="experiments.paired"):
        build_grid(cfg)


def test_cli_args():
    assert cli_args({"batch_size": 32, "lr": 0.001, "classes": ["MEL", "DF"], "ratio": "95:5"}) == (
        "--batch-size 32 --classes MEL DF --lr 0.001 --ratio 95:5"
    )
    assert cli_args({"group_by_lesion": False, "hflip": False, "x": None, "y": True}) == "--no-hflip --y"
    assert cli_args({"pretrained": "my weights.pt"}) == "--pretrained 'my weights.pt'"


# ------------------------------------------------------------------------- stats


def test_paired_difference_matches_hand_computation():
    cell = {0: 80.0, 1: 82.0, 2: 85.0, 7: 99.0}  # seed 7 has no baseline: not paired
    base = {0: 78.0, 1: 81.0, 2: 81.0}
    p = stats.paired_difference(cell, base)
    # d = (2, 1, 4): mean 7/3, sample sd sqrt(((-1/3)^2 + (-4/3)^2 + (5/3)^2) / 2) = sqrt(7/3)
    mean, sd = 7 / 3, math.sqrt(7 / 3)
    t975_df2 = 4.302652729911275  # Student t 97.5% quantile, 2 degrees of freedom (tables: 4.303)
    half = t975_df2 * sd / math.sqrt(3)
    assert p.n == 3
    assert p.mean_diff == pytest.approx(mean)
    assert p.std_diff == pytest.approx(sd)
    assert (p.ci_low, p.ci_high) == pytest.approx((mean - half, mean + half))
    # two-sided p from t = mean / (sd / sqrt(3)) with 2 df: p = 1 - t/sqrt(t^2 + 2) for df=2
    t = mean / (sd / math.sqrt(3))
    assert p.p_value == pytest.approx(1 - t / math.sqrt(t * t + 2))


def test_summaries_of_one_or_no_value_are_undefined_not_zero():
    one = stats.summarize([70.0])
    assert one.n == 1 and one.mean == 70.0 and math.isnan(one.std) and math.isnan(one.ci_low)
    assert stats.summarize([]).n == 0
    assert stats.paired_difference({0: 1.0}, {0: 0.5}).n == 1
    assert math.isnan(stats.paired_difference({0: 1.0}, {0: 0.5}).ci_low)


# ------------------------------------------------------------------------- aggregate


def _write_metrics(root: Path, dataset, scenario, cell, seed, acc, uwa, **settings):
    path = root / dataset / scenario / cell / f"seed{seed}" / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    echo = {"eta": parse_cell_id(cell)["eta"], "gamma": parse_cell_id(cell)["gamma"], "seed": seed,
            "epochs1": 1, "normalization": "reference", **settings}
    path.write_text(json.dumps({"accuracy": acc, "uwa": uwa, "roc_auc": 0.5, "nan_steps": 0,
                                "per_class_recall": {"0": acc, "6": uwa}, "settings": echo,
                                "device_type": "cpu", "runtime": {"timings": {"total_s": 1.0}}}))
    return path


def test_aggregate_rows_from_paths_and_checks_the_echo(tmp_path):
    a = _write_metrics(tmp_path, "fmnist", "95-5", "eta60_gamma0", 1, 90.0, 60.0)
    b = _write_metrics(tmp_path, "fmnist", "95-5", "eta0_gamma0", 0, 91.0, 55.0)
    frame = collect([a, b])
    assert list(frame[["cell", "seed"]].itertuples(index=False, name=None)) == [("eta0_gamma0", 0), ("eta60_gamma0", 1)]
    row = frame.iloc[1]
    assert (row.dataset, row.scenario, row.eta, row.gamma, row.accuracy, row.uwa) == ("fmnist", "95-5", 60.0, 0.0, 90.0, 60.0)
    assert row["recall_6"] == 60.0 and row["normalization"] == "reference"
    bad = _write_metrics(tmp_path, "fmnist", "95-5", "eta120_gamma0", 0, 1, 1, eta=60)
    with pytest.raises(AggregateError, match="eta=60.*eta=120"):
        collect([bad])
    with pytest.raises(AggregateError):
        run_identity("results/metrics.json")


# ------------------------------------------------------------------------- tables


def _spec():
    return {"experiments": {
        "t1": {"name": "t1", "title": "Eta grid", "dataset": "fmnist",
               "scenarios": [{"id": "50-50", "label": "50:50"}, {"id": "90-10", "label": "90:10"}],
               "cells": [{"id": "eta0_gamma0", "eta": 0, "gamma": 0, "label": None},
                         {"id": "eta60_gamma0", "eta": 60, "gamma": 0, "label": None}],
               "seeds": [0, 1], "baseline": "eta0_gamma0", "layout": "grid", "column": "eta",
               "metrics": ["accuracy", "uwa"], "paper": "table1"},
        "t3": {"name": "t3", "title": "Losses", "dataset": "fmnist",
               "scenarios": [{"id": "90-10", "label": "90:10"}],
               "cells": [{"id": "eta0_gamma0", "eta": 0, "gamma": 0, "label": "CL"},
                         {"id": "eta60_gamma0", "eta": 60, "gamma": 0, "label": "ACL"}],
               "seeds": [0, 1], "baseline": "eta0_gamma0", "layout": "list", "column": None,
               "metrics": ["accuracy", "uwa"], "paper": None},
    }}


def _runs():
    rows = []
    values = {  # (scenario, cell) -> [(acc, uwa) for seed 0, 1]
        ("50-50", "eta0_gamma0"): [(80, 79), (82, 81)],
        ("50-50", "eta60_gamma0"): [(78, 77), (79, 78)],
        ("90-10", "eta0_gamma0"): [(90, 60), (92, 64)],
        ("90-10", "eta60_gamma0"): [(91, 70)],  # seed 1 missing
    }
    for (sc, cell), seeds in values.items():
        for seed, (acc, uwa) in enumerate(seeds):
            rows.append({"dataset": "fmnist", "scenario": sc, "cell": cell, "seed": seed,
                         "eta": parse_cell_id(cell)["eta"], "gamma": 0.0, "accuracy": acc, "uwa": uwa})
    return pd.DataFrame(rows)


def test_grid_table_layout_entries_and_bold_best():
    summary = tables.summary_table(_runs(), ["accuracy", "uwa"])
    frame = tables.experiment_frame(_spec()["experiments"]["t1"], summary)
    assert list(frame.columns) == [(r"$\eta$", "0"), (r"$\eta$", "60")]
    assert list(frame.index) == [("50:50", "Accuracy"), ("50:50", "UWA"), ("90:10", "Accuracy"), ("90:10", "UWA")]
    # 80, 82 -> mean 81, sample std sqrt(2) = 1.41; best of the row in bold
    assert frame.iloc[0, 0] == r"$\mathbf{81.00 \pm 1.41}$"
    assert frame.iloc[0, 1] == r"$78.50 \pm 0.71$"
    # a cell with one run of two: no std, n shown
    assert frame.iloc[3, 1] == r"$\mathbf{70.00}$ (n=1)"
    latex = tables.experiment_latex(_spec()["experiments"]["t1"], summary)
    assert "\\toprule" in latex and "\\bottomrule" in latex and "n = 2 runs" in latex


def test_list_table_and_paired_and_paper_comparison():
    runs = _runs()
    summary = tables.summary_table(runs, ["accuracy", "uwa"])
    frame = tables.experiment_frame(_spec()["experiments"]["t3"], summary)
    assert list(frame.index) == ["CL", "ACL"] and list(frame.columns) == ["Accuracy", "UWA"]
    # a tie (91 vs 91) bolds both; 62 +- 2.83 (60, 64) loses to 70 (one run)
    assert frame.loc["CL", "Accuracy"] == r"$\mathbf{91.00 \pm 1.41}$"
    assert frame.loc["ACL", "Accuracy"] == r"$\mathbf{91.00}$ (n=1)"
    assert frame.loc["CL", "UWA"] == r"$62.00 \pm 2.83$"
    paired = tables.paired_table(_spec(), runs)
    row = paired[(paired.experiment == "t1") & (paired.scenario == "50-50") & (paired.metric == "accuracy")].iloc[0]
    # d = (78 - 80, 79 - 82) = (-2, -3)
    assert (row.n, row.mean_diff) == (2, pytest.approx(-2.5))
    one = paired[(paired.experiment == "t1") & (paired.scenario == "90-10") & (paired.metric == "uwa")].iloc[0]
    assert one.n == 1 and one.mean_diff == pytest.approx(10.0) and math.isnan(one.ci_low)
    assert "longtable" in tables.paired_latex(paired, _spec())
    paper = pd.DataFrame([
        {"table": "table1", "dataset": "fmnist", "scenario": "50-50", "eta": 60, "gamma": 0,
         "metric": "uwa", "value": 78.28, "uncertain": False},
        {"table": "table2", "dataset": "fmnist", "scenario": "50-50", "eta": 0, "gamma": 1,
         "metric": "uwa", "value": 74.84, "uncertain": False},
    ])
    comp = tables.paper_comparison(_spec(), summary, paper)
    assert len(comp) == 1
    r = comp.iloc[0]
    assert (r.cell, r.paper, r.ours_mean, r.n) == ("eta60_gamma0", 78.28, 77.5, 2)
    assert r.difference == pytest.approx(77.5 - 78.28) and bool(r.paper_in_ci)
    assert "Table 1" in tables.comparison_latex(comp, _spec())


def test_paper_results_file_has_every_published_cell():
    paper = tables.read_paper_results(REPO / "workflow" / "paper_results.csv")
    counts = paper.groupby("table").size().to_dict()
    assert counts == {"table1": 11 * 6 * 2, "table2": 11 * 6 * 2, "table3": 5 * 2}
    assert paper["value"].between(40, 100).all()
    unsure = paper[paper.uncertain]
    assert set(unsure.table) == {"table2"} and set(unsure.scenario) == {"60-40", "65-35"}
    t3 = paper[(paper.table == "table3") & (paper.eta == 300) & (paper.gamma == 7)]
    assert dict(zip(t3.metric, t3.value)) == {"accuracy": 93.75, "uwa": 74.62}

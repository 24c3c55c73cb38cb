"""The protocol families (config/protocol.yaml): one pair of paper-table families per
unstated choice, planned in full, and run end to end on synthetic data with the
fit-to-paper table (config/protocol-smoke.yaml)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from test_workflow import planned_jobs, snakemake  # noqa: E402
from workflow_runs import REPO_ROOT, copy_project  # noqa: E402

VARIANTS = {"base", "stratified", "nan-stable", "lr1e-3", "s2-bn-train", "s2-augment", "px128", "imagenet"}


def _families(config: str) -> dict:
    return yaml.safe_load((REPO_ROOT / "config" / config).read_text())["experiments"]


def test_every_protocol_variant_has_a_table1_and_a_table2_family_changing_one_thing():
    families = _families("protocol.yaml")
    assert {name.rsplit("-", 1)[0].removeprefix("protocol-") for name in families} == VARIANTS
    for name, fam in families.items():
        assert fam["paper"] == ("table1" if name.endswith("-1") else "table2")
        assert len(fam["seeds"]) == 4 and len(fam["cells"]) == 6
    # the variants differ from the base only in their own setting
    base = families["protocol-base-1"]["cells"]
    lr = families["protocol-lr1e-3-1"]["cells"]
    assert [{k: v for k, v in c.items() if k != "lr"} for c in lr] == base
    assert all(c["lr"] == 0.001 for c in lr)


def test_the_protocol_grid_plans_in_full():
    proc = snakemake(REPO_ROOT, "-n", "--configfile", "config/protocol.yaml", timeout=600)
    jobs = planned_jobs(proc.stdout)
    # 8 variants x 11 distinct cells x 4 scenarios x 4 seeds
    assert jobs["train"] == 8 * 11 * 4 * 4
    assert jobs["fit_to_paper"] == 1 and jobs["claims"] == 1


@pytest.mark.slow
def test_protocol_smoke_runs_end_to_end_and_measures_the_fit_to_paper(tmp_path):
    root = copy_project(tmp_path / "asymcl")
    snakemake(root, "--configfile", "config/protocol-smoke.yaml", "--cores", "2", timeout=1500)
    results = root / "results" / "protocol-smoke"
    fit = pd.read_csv(results / "tables" / "fit_to_paper.csv")
    families = set(_families("protocol-smoke.yaml"))
    assert set(fit.family) == families
    assert set(fit.metric) == {"accuracy", "uwa"}
    assert (fit.matched > 0).all() and fit.mae.notna().all()
    assert (results / "figures" / "fit_to_paper.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = pd.read_csv(results / "runs.csv", dtype={"scenario": str})
    assert len(runs) == 42 and runs.code_location.str.endswith("asymcl").all()
    # the variants really ran with their settings
    assert set(runs.stage2_bn) == {"eval", "train"} and set(runs.nan_policy) == {"released", "stable"}
    assert set(runs.lr) == {0.01, 0.001}

"""The published CPU record (results/published) is what the workflow produces: the README's
results section is rendered from it, and a fresh copy of the project with the record
restored plans nothing for the record's config. Skipped while no record is published."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from cli_probe import run_cli  # noqa: E402
from test_workflow import snakemake  # noqa: E402
from workflow_runs import REPO_ROOT, copy_project  # noqa: E402

PUBLISHED = REPO_ROOT / "results" / "published"
RECORD_CONFIG = "config/record-cpu.yaml"

needs_record = pytest.mark.skipif(not (PUBLISHED / "record.json").is_file(), reason="no published record")


@needs_record
def test_readme_results_section_is_rendered_from_the_published_record():
    result = run_cli(["readme-results", "--check"], cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr


@needs_record
def test_the_record_has_every_run_with_its_code_version():
    runs = pd.read_csv(PUBLISHED / "runs.csv", dtype={"scenario": str})
    in_family = runs.experiments.str.split(";").apply
    paper = runs[in_family(lambda fams: bool({"table1", "table2"} & set(fams)))]
    assert paper.seed.nunique() >= 4 and paper.scenario.nunique() >= 4
    assert paper.groupby(["scenario", "seed"]).cell.nunique().eq(11).all()
    # every family of the record complete: each of its cells, scenarios and seeds has a run
    layout = json.loads((PUBLISHED / "experiments.json").read_text())["experiments"]
    have = {(r.scenario, r.cell, int(r.seed)) for r in runs.itertuples()}
    for name, family in layout.items():
        wanted = {(sc["id"], cell["id"], int(seed))
                  for sc in family["scenarios"] for cell in family["cells"] for seed in family["seeds"]}
        assert wanted <= have, (name, sorted(wanted - have)[:5])
        mine = runs[in_family(lambda fams, name=name: name in fams)]
        assert len(mine) == len(wanted), name
    assert runs.code_commit.notna().all() and (runs.code_dirty == False).all()  # noqa: E712
    metrics = sorted(PUBLISHED.glob("runs/**/metrics.json"))
    assert len(metrics) == len(runs)
    assert all(json.loads(p.read_text())["code"]["commit"] for p in metrics)
    for name in ("claims.csv", "fit_to_paper.csv", "paired.csv", "paper_comparison.csv", "table1.tex", "table2.tex"):
        assert (PUBLISHED / "tables" / name).is_file(), name


@needs_record
@pytest.mark.slow
def test_a_fresh_copy_with_the_record_restored_plans_nothing(tmp_path):
    root = copy_project(tmp_path / "asymcl")  # a checkout: code, configs, no outputs
    shutil.copytree(PUBLISHED, root / "results" / "published")  # what git (or dvc pull) brings
    assert not (root / "results" / "record-cpu").exists()
    restored = run_cli(["restore", "--configfile", RECORD_CONFIG], cwd=root)
    assert restored.returncode == 0, restored.stderr
    # the record's mirror need not exist here: nothing downstream needs a download
    (root.parent / "shared" / "data" / "fmnist").mkdir(parents=True, exist_ok=True)
    proc = snakemake(root, "-n", "--configfile", RECORD_CONFIG, timeout=600)
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]


def test_the_records_baselines_are_the_ablation_family_on_fewer_scenarios():
    """config/record-cpu.yaml repeats the `baselines` families of config/ablations.yaml (a
    YAML file cannot include another): the same cells, baselines and seeds."""
    record = yaml.safe_load((REPO_ROOT / RECORD_CONFIG).read_text())["experiments"]
    ablations = yaml.safe_load((REPO_ROOT / "config" / "ablations.yaml").read_text())["experiments"]
    for name in ("baselines", "baselines_acl"):
        ours, theirs = record[name], ablations[name]
        assert set(ours["scenarios"]) <= set(theirs["scenarios"]), name
        for key in ("title", "dataset", "cells", "baseline", "seeds", "table"):
            assert ours[key] == theirs[key], (name, key)

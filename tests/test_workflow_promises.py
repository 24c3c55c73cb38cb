"""The workflow's promises, checked on real Snakemake runs of a one-family smoke config in
a temporary copy of the project: jobs run the workflow's own code whatever is on PATH, a
deleted run is rebuilt alone, code and raw-data changes rerun exactly what they touch, the
results carry the code version, lint is clean for every shipped config, and the workflow
runs from another directory.

One real run (module fixture, 2 train jobs of 1 epoch) serves every check; the checks that
change something undo it (or work on dry runs), so they do not depend on their order.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.workflow

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_workflow import planned_jobs, planned_outputs  # noqa: E402
from workflow_runs import copy_project, describe  # noqa: E402

RUNS = ["results/smoke/runs/fmnist/80-20/eta0_gamma0/seed0",
        "results/smoke/runs/fmnist/80-20/eta60_gamma0/seed0"]
# what rebuilding runs downstream of training (the report of one grid family)
REPORT_JOBS = {"aggregate", "tables", "figure", "paper_figure", "family_table", "fit_to_paper", "claims", "all"}


def tiny_config(project: Path) -> dict:
    config = yaml.safe_load((project / "config" / "smoke.yaml").read_text())
    config["select_experiments"] = ["table1"]
    config["experiments"]["table1"].update(
        scenarios=["80:20"], cells=[{"eta": 0, "gamma": 0}, {"eta": 60, "gamma": 0}], seeds=[0])
    return config


def snakemake(project: Path, env: dict, *args: str, check: bool = True,
              timeout: int = 900) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", *args]
    proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(describe(proc, project))
    return proc


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """(project, env, configfile) after one real run, with a fake `asymcl` first on PATH."""
    root = tmp_path_factory.mktemp("promises")
    project = copy_project(root / "asymcl")
    fake_bin = root / "fake-bin"
    fake_bin.mkdir()
    marker = root / "fake-asymcl-ran"
    fake = fake_bin / "asymcl"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {marker}\nexit 1\n")
    fake.chmod(0o755)
    # no PYTHONPATH: the workflow itself must point the jobs at its code
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PATH=f"{fake_bin}{os.pathsep}{env['PATH']}", MPLBACKEND="Agg")
    config = project / "config" / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(project)))
    snakemake(project, env, "--configfile", str(config), "--cores", "2")
    return project, env, config, marker


def dry_run(smoke, *args: str, config: Path | None = None) -> str:
    project, env, default, _ = smoke
    proc = snakemake(project, env, "-n", "--configfile", str(config or default), *args)
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_jobs_run_the_workflows_code_not_the_asymcl_on_path(smoke):
    project, _, _, marker = smoke
    assert not marker.exists(), f"the fake asymcl on PATH ran: {marker.read_text()}"
    import pandas as pd

    runs = pd.read_csv(project / "results" / "smoke" / "runs.csv")
    assert len(runs) == 2
    here = str((project / "src" / "asymcl").resolve())
    for run in RUNS:
        code = json.loads((project / run / "metrics.json").read_text())["code"]
        assert code["location"] == here and code["version"]
    assert list(runs.code_location) == [here, here]
    assert {"code_commit", "code_dirty", "code_version"} <= set(runs.columns)


@pytest.mark.slow
def test_after_the_run_nothing_is_left_to_do(smoke):
    assert "Nothing to be done" in dry_run(smoke)


@pytest.mark.slow
def test_a_deleted_metrics_json_is_rebuilt_alone(smoke):
    project = smoke[0]
    metrics = project / RUNS[1] / "metrics.json"
    kept = metrics.with_name("metrics.json.kept")
    metrics.rename(kept)
    try:
        text = dry_run(smoke)
    finally:
        kept.rename(metrics)
    assert planned_outputs(text, "train") == [f"{RUNS[1]}/metrics.json"], text
    assert set(planned_jobs(text)) == {"train"} | REPORT_JOBS, text


@pytest.mark.slow
def test_an_edit_to_the_split_code_reruns_the_subsets_and_their_runs(smoke):
    project = smoke[0]
    splits = project / "src" / "asymcl" / "data" / "splits.py"
    original = splits.read_bytes()
    splits.write_bytes(original + b"\n# a real change of the split code's content\n")
    try:
        text = dry_run(smoke)
    finally:
        splits.write_bytes(original)
    jobs = planned_jobs(text)
    assert jobs.get("subset_fmnist") == 1 and jobs.get("train") == 2, text
    assert "download_fmnist" not in jobs and "synth" not in jobs, jobs
    # and an edit to the report tables' code reruns the tables (and the figures, the fit to
    # paper and the claims, whose code imports it), not the runs or the aggregation
    tables = project / "src" / "asymcl" / "report" / "tables.py"
    original = tables.read_bytes()
    tables.write_bytes(original + b"\n# a real change\n")
    try:
        jobs = planned_jobs(dry_run(smoke))
    finally:
        tables.write_bytes(original)
    assert set(jobs) == {"tables", "figure", "paper_figure", "family_table", "fit_to_paper", "claims", "all"}, jobs


@pytest.mark.slow
def test_same_raw_bytes_with_new_mtimes_rerun_nothing(smoke):
    """What `dvc pull`/`checkout` does to raw data: same bytes, new modification times."""
    project = smoke[0]
    raw = project / "data" / "raw" / "smoke"
    files = [p for p in raw.rglob("*") if p.is_file()]
    assert any(p.name == "CONTENT.sha256" for p in files)
    for path in files:
        os.utime(path)  # now: newer than every subset and run
    assert "Nothing to be done" in dry_run(smoke)


@pytest.mark.slow
def test_changed_raw_bytes_rerun_the_subsets_and_their_runs(smoke, tmp_path):
    project, _, default, _ = smoke
    # another synthetic dataset: synth, download, subsets and runs all rerun
    config = yaml.safe_load(default.read_text())
    config["datasets"]["fmnist"]["synthetic"]["per_class"] = 50
    other = tmp_path / "per-class-50.yaml"
    other.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(dry_run(smoke, config=other))
    assert {k: jobs.get(k) for k in ("synth", "download_fmnist", "subset_fmnist", "train")} == {
        "synth": 1, "download_fmnist": 1, "subset_fmnist": 1, "train": 2}, jobs
    # another version of the raw folder restored with its content list (a `dvc checkout`
    # of other data): no download, but the subsets and runs rerun
    raw = project / "data" / "raw" / "smoke" / "fmnist"
    backup = tmp_path / "raw-backup"
    shutil.copytree(raw, backup)
    try:
        labels = raw / "train-labels-idx1-ubyte.gz"
        labels.write_bytes(labels.read_bytes() + b"\0")  # other bytes (not read by the plan)
        from asymcl.contentsums import write_content_list
        write_content_list(raw, sorted(raw.glob("*.gz")), raw / "CONTENT.sha256")
        jobs = planned_jobs(dry_run(smoke))
    finally:
        shutil.rmtree(raw)
        shutil.copytree(backup, raw)
    assert jobs.get("subset_fmnist") == 1 and jobs.get("train") == 2, jobs
    assert "download_fmnist" not in jobs and "synth" not in jobs, jobs


# ------------------------------------------------------------------ lint, other directory


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lint")
    project = copy_project(root / "asymcl")
    # config/real-cpu.yaml reads a mirror at ../shared/data (checked at parse time)
    for folder in ("fmnist", "isic2018"):
        (root / "shared" / "data" / folder).mkdir(parents=True)
    (root / "shared" / "data" / "SHA256SUMS").write_text("")
    return project


SHIPPED = ["config.yaml", *sorted(p.name for p in (Path(__file__).resolve().parents[1] / "config").glob("*.yaml"))]


@pytest.mark.parametrize("configfile", SHIPPED)
def test_lint_is_clean_for_every_shipped_config(project, configfile):
    path = "config.yaml" if configfile == "config.yaml" else f"config/{configfile}"
    proc = snakemake(project, dict(os.environ), "--lint", "--configfile", path, check=False)
    assert proc.returncode == 0 and "Lints for" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_the_workflow_runs_from_another_directory(project, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = snakemake(elsewhere, env, "-n", "-s", str(project / "Snakefile"), "--directory",
                     str(elsewhere), "--configfile", str(project / "config" / "smoke.yaml"))
    text = proc.stdout + proc.stderr
    jobs = planned_jobs(text)
    assert jobs["train"] == 16 and jobs["tables"] == 1, jobs
    # package sources and paper_results resolve against the workflow's folder
    assert str(project / "workflow" / "paper_results.csv") in text or "paper_results.csv" in text
    assert not (project / "results").exists() and not (project / "data").exists()


def test_a_yaml_syntax_error_in_config_yaml_names_file_and_line(project, tmp_path):
    broken = copy_project(tmp_path / "broken", src=project)
    (broken / "config.yaml").write_text("training:\n  epochs1: [1\n")
    proc = snakemake(broken, dict(os.environ), "-n", check=False)
    assert proc.returncode != 0
    assert "config.yaml:3" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


@pytest.mark.parametrize("change, words", [
    ({"experiments": {"table1": {"scenarios": ["100:0"]}}},
     ["experiments.table1.scenarios[0]", "100:0", "zero images"]),
    ({"datasets": {"fmnist": {"classes": ["0", "shirt"]}}},
     ["datasets.fmnist.classes", "'shirt'", "0, 1, 2"]),
    ({"datasets": {"isic2018": {"source": "no/such/mirror"}}},
     ["datasets.isic2018.source", "no/such/mirror", "does not exist"]),
])
def test_bad_config_values_fail_before_any_job(project, tmp_path, change, words):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(change))
    proc = snakemake(project, dict(os.environ), "-n", "--configfile", str(bad), check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and all(w in text for w in words), text

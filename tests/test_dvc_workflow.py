"""Sharing data and results with DVC, against the real workflow and a local DVC remote.

The flow a team follows: after a run, ``dvc add`` the raw downloads, ``asymcl publish``
(copy the shareable results to results/published, ``dvc add`` + ``dvc push``), push the raw
data, commit the .dvc files. Then:

- in the same checkout, deleting the raw data and the DVC cache and pulling them back
  rewrites every raw file's mtime; thanks to ``ancient()`` on the raw inputs, ``snakemake
  -n`` still has nothing to do;
- a fresh ``git clone`` + ``dvc pull`` restores the raw data and the published results
  byte for byte, and ``snakemake -n`` plans no download.

The project copy is a test run of the workflow (`workflow_runs.local_test_run`) under the
project's own .gitignore, so the test also checks that git and DVC see the .dvc files.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workflow_runs import (  # noqa: E402
    copy_tree,
    local_test_run,
    parse_job_stats,
    project_env,
    run,
    snakemake_cmd,
    snapshot,
    tail,
)
from test_publish import REPORT, RUNS, make_project  # noqa: E402

pytestmark = [
    pytest.mark.dvc,
    pytest.mark.skipif(shutil.which("git") is None, reason="needs git"),
]

RAW = ["data/raw/fmnist", "data/raw/isic2018"]
TIMEOUT = 300


def dvc(*args: str, cwd: Path) -> str:
    proc = run([sys.executable, "-m", "dvc", *args], cwd, project_env(cwd), TIMEOUT)
    return proc.stdout + proc.stderr


def git(*args: str, cwd: Path) -> str:
    return run(["git", *args], cwd, project_env(cwd), TIMEOUT).stdout


def asymcl(*args: str, cwd: Path) -> str:
    proc = run([sys.executable, "-m", "asymcl", *args], cwd, project_env(cwd), TIMEOUT)
    return proc.stdout + proc.stderr


def dry_run(workdir: Path, config: Path) -> tuple[dict[str, int], str]:
    proc = run(snakemake_cmd("-n", config=config), workdir, project_env(workdir), TIMEOUT)
    output = proc.stdout + proc.stderr
    return parse_job_stats(output), output


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """(repo, remote, config, raw snapshot, published snapshot) after add/publish/push/commit."""
    local, config = local_test_run(tmp_path_factory)
    base = tmp_path_factory.mktemp("dvc")
    repo, remote = copy_tree(local, base / "repo"), base / "remote"
    git("init", "-q", cwd=repo)
    if not (repo / ".dvc").is_dir():
        dvc("init", "-q", cwd=repo)
    dvc("remote", "add", "-d", "local", str(remote), cwd=repo)

    dvc("add", *RAW, cwd=repo)
    # copy the config's results -> results/published, dvc add, dvc push
    asymcl("publish", "--configfile", str(config), "--command", "snakemake --cores 2", cwd=repo)
    dvc("push", cwd=repo)  # the raw data too
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "project with DVC-tracked raw data and published results", cwd=repo)
    raw = {path: snapshot(repo / path) for path in RAW}
    published = snapshot(repo / "results" / "published")
    return repo, remote, config, raw, published


def test_git_holds_the_dvc_files_and_not_the_data(shared):
    repo, remote, _, _, published = shared
    tracked = git("ls-files", cwd=repo).split()
    for dvc_file in ("data/raw/fmnist.dvc", "data/raw/isic2018.dvc", "results/published.dvc"):
        assert dvc_file in tracked, f"{dvc_file} is not committed; tracked: {tracked}"
    leaked = [p for p in tracked if p.startswith(("data/", "results/")) and not p.endswith((".dvc", ".gitignore"))]
    assert not leaked, f"data or results committed to git: {leaked}"
    # What publish shares: the tables, figures, runs.csv and each run's metrics, no logs.
    assert "runs.csv" in published and "tables/table1.tex" in published
    assert "figures/table3.png" in published and "experiments.json" in published
    assert "runs/fmnist/80-20/eta60_gamma0/seed0/metrics.json" in published
    assert not [p for p in published if p.endswith((".log", ".pt", ".tsv"))], sorted(published)
    assert published["runs.csv"] == (repo / "results" / "runs.csv").read_bytes()
    status = dvc("status", "--cloud", cwd=repo)
    assert "in sync" in status, f"the remote lacks something:\n{status}"
    assert any(remote.rglob("*")), "nothing was pushed to the remote"


def test_pull_rewrites_mtimes_but_nothing_reruns(shared, tmp_path):
    repo, _, config, raw, _ = shared
    work = copy_tree(repo, tmp_path / "repo")
    for path in RAW:
        shutil.rmtree(work / path)
    shutil.rmtree(work / ".dvc" / "cache")
    dvc("pull", cwd=work)

    assert {path: snapshot(work / path) for path in RAW} == raw
    oldest_raw = min(p.stat().st_mtime for path in RAW for p in (work / path).rglob("*"))
    newest_subset = max(p.stat().st_mtime for p in (work / "data" / "interim").rglob("*.pt"))
    assert oldest_raw > newest_subset, "precondition: the pulled raw files must be newer than the subsets"
    jobs, output = dry_run(work, config)
    assert jobs == {}, f"a DVC pull must not rerun anything (ancient raw inputs); planned: {jobs}\n{tail(output)}"


def test_fresh_clone_pull_restores_identical_bytes_and_plans_no_download(shared, tmp_path):
    repo, _, config, raw, published = shared
    clone = tmp_path / "clone"
    git("clone", "-q", str(repo), str(clone), cwd=tmp_path)
    assert not (clone / "data" / "raw" / "fmnist").exists()
    dvc("pull", cwd=clone)

    assert {path: snapshot(clone / path) for path in RAW} == raw
    assert snapshot(clone / "results" / "published") == published
    jobs, output = dry_run(clone, config)
    assert not [rule for rule in jobs if rule.startswith(("download", "synth"))], (
        f"the pulled raw data must not be downloaded again; planned: {jobs}\n{tail(output)}"
    )
    # data/interim and the runs are not shared: they are rebuilt from the pulled raw data.
    assert jobs.get("subset_fmnist") and jobs.get("train"), jobs


def test_publish_refuses_a_gitignore_that_hides_the_dvc_file(tmp_path):
    """`/results/*` with a `!` exception hides results/published.dvc from DVC
    (treeverse/dvc#10987): publishing must fail loudly rather than push nothing, and leave
    nothing behind (no published folder, .dvc file or .gitignore edit)."""
    repo = make_project(tmp_path / "repo")
    (repo / ".gitignore").write_text("/results/*\n!/results/published.dvc\n!/results/.gitignore\n")
    git("init", "-q", cwd=repo)
    dvc("init", "-q", cwd=repo)
    proc = run([sys.executable, "-m", "asymcl", "publish", "--no-push"], repo,
               project_env(repo), TIMEOUT, check=False)
    assert proc.returncode == 2, proc.stderr
    assert ".gitignore" in proc.stderr and "results/published.dvc" in proc.stderr, proc.stderr
    assert not (repo / "results" / "published").exists()
    assert not (repo / "results" / "published.dvc").exists()
    assert not (repo / "results" / ".gitignore").exists()

    # Named ignores instead: published, and DVC sees it.
    (repo / ".gitignore").write_text("/results/runs/\n/results/runs.csv\n/results/experiments.json\n"
                                     "/results/tables/\n/results/figures/\n")
    out = asymcl("publish", "--no-push", cwd=repo)
    assert f"published {len(RUNS) + len(REPORT) + 2} files" in out, out
    assert "no data or pipelines tracked" not in dvc("status", cwd=repo)
    published = snapshot(repo / "results" / "published")
    assert {k: v for k, v in published.items() if not k.startswith(("record.json", "RECORD.md"))} == {
        rel: (repo / "results" / rel).read_bytes() for rel in RUNS + REPORT
    }
    assert (repo / "results" / ".gitignore").read_text().split() == ["/published"]


def test_a_restored_layout_that_the_config_changed_is_rebuilt(tmp_path_factory):
    """Restored results carry no Snakemake record, so its params trigger cannot see that the
    config's experiments changed since: a stale experiments.json would feed every table. The
    workflow compares the content: the layout and the report after it are rebuilt, no run."""
    local, config = local_test_run(tmp_path_factory)
    work = copy_tree(local, tmp_path_factory.mktemp("relayout") / "project")
    asymcl("publish", "--no-dvc", "--configfile", str(config), "--dest", "shared", cwd=work)
    shutil.rmtree(work / "results")
    shutil.rmtree(work / ".snakemake")  # a fresh clone + dvc pull has no Snakemake records
    asymcl("restore", "--configfile", str(config), "--from", "shared", cwd=work)
    assert dry_run(work, config)[0] == {}, "precondition: the restored results are up to date"
    retitled = tmp_path_factory.mktemp("retitled") / "retitled.yaml"
    name = sorted(json.loads((work / "results" / "experiments.json").read_text())["experiments"])[0]
    retitled.write_text(yaml.safe_dump({"experiments": {name: {"title": "a new title"}}}))
    proc = run(["snakemake", "-n", "--configfile", str(config), str(retitled)], work, project_env(work), TIMEOUT)
    jobs = parse_job_stats(proc.stdout + proc.stderr)
    assert jobs.get("experiments_spec") == 1 and "train" not in jobs, jobs
    assert "experiments.json differs from the config's experiments" in proc.stderr


def test_restore_of_a_published_smoke_run_plans_nothing(tmp_path_factory):
    """Publish a finished run of the test config, delete its results and interim data,
    restore: the workflow has nothing to do. The interim subsets stay missing: Snakemake
    does not rebuild a job's missing outputs when no job downstream needs to run."""
    local, config = local_test_run(tmp_path_factory)
    work = copy_tree(local, tmp_path_factory.mktemp("restore") / "project")
    out = asymcl("publish", "--no-dvc", "--configfile", str(config), "--dest", "shared", cwd=work)
    assert "published" in out, out
    published = snapshot(work / "shared")
    shutil.rmtree(work / "results")
    shutil.rmtree(work / "data" / "interim")

    jobs, _ = dry_run(work, config)
    assert jobs.get("train"), f"precondition: without results the runs are planned: {jobs}"
    out = asymcl("restore", "--configfile", str(config), "--from", "shared", cwd=work)
    assert "restored" in out, out
    jobs, output = dry_run(work, config)
    assert jobs == {}, f"the restored record must be what the workflow would produce: {jobs}\n{tail(output)}"
    assert not (work / "data" / "interim").exists()
    restored = snapshot(work / "results")
    assert {k: v for k, v in published.items() if k not in ("record.json", "RECORD.md")} == restored

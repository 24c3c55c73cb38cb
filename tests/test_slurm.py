"""The workflow on a real SLURM cluster, through ``profiles/slurm``.

A one-node cluster runs on localhost (`slurm_cluster.LocalSlurmCluster`: munged, slurmctld
and slurmd with their own config, state and ports in a temporary folder; no accounting
database, so the executor reads job states with ``squeue``). The test workflow
(`workflow_runs.make_test_config`: the smoke settings on a small grid) is submitted with
the project's profile plus the overrides a site would set for this cluster::

    --slurm-no-account --slurm-status-command squeue      # no accounting database
    --slurm-init-seconds-before-status-checks 1 --seconds-between-status-checks 2

The profile groups the training jobs (up to 20 runs per submission). The grouped
submission of the test grid must finish in fewer submissions than jobs (one for all five
training runs), ask for one run's CPUs (the plugin runs a submission's jobs one after
another), and give the results of a plain local run.

Training asks for ``gpu=0`` here (the smoke config's ``resources.train.gpu``), so it runs on
a GPU-less node.

The fault tests use the profile without its grouping (one run per submission, as the
profile explains), so each run's submissions can be counted. First a faulty submission: a ``sitecustomize`` on ``PYTHONPATH`` (exported to the jobs) makes the
cluster cancel one training job on its first attempt, like a node failure or preemption,
and makes another training job fail every time. The job cancelled once is resubmitted and
finishes; the always-failing one is retried, then reported, and ``--keep-going`` (the
profile's setting) still finishes every other job. Then the same command without the fault
finishes the DAG, and every result equals a plain local run's.

Needs root and Debian's slurm-wlm and munge (CI installs them); skipped without them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm_cluster import LocalSlurmCluster, missing_programs  # noqa: E402
from workflow_runs import (  # noqa: E402
    TEST_RUNS,
    copy_project,
    describe,
    local_test_run,
    metrics_without_runtime,
    parse_job_stats,
    project_env,
    run,
    shared_test_config,
    snakemake_cmd,
    snapshot,
    tail,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.workflow]

_missing = missing_programs()
if _missing:
    pytestmark.append(pytest.mark.skip(reason=f"SLURM programs not found: {', '.join(_missing)}"))
elif os.geteuid() != 0:
    pytestmark.append(pytest.mark.skip(reason="the local SLURM cluster runs its daemons as root"))
try:
    import snakemake_executor_plugin_slurm  # noqa: F401
except ImportError:
    pytestmark.append(pytest.mark.skip(reason="snakemake-executor-plugin-slurm is not installed"))

SLURM_TIMEOUT = 900
CANCELLED_ONCE = "fmnist/80-20/eta60_gamma0/seed0"
ALWAYS_FAILS = "fmnist/80-20/eta0_gamma2/seed0"


PROFILE = Path("profiles/slurm")
# The profile's grouping settings: without them each run is its own submission.
GROUPING_KEYS = ("groups", "group-components", "set-resource-scopes", "resources")


def slurm_cmd(config: Path, profile: Path = PROFILE, *extra: str) -> list[str]:
    return snakemake_cmd(
        "--workflow-profile", str(profile),
        "--slurm-no-account",
        "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", "1",
        "--seconds-between-status-checks", "2",
        "--latency-wait", "10",
        *extra,
        config=config,
    )


def ungrouped_profile(workdir: Path) -> Path:
    """profiles/slurm without its grouping: one training run per submission."""
    settings = yaml.safe_load((workdir / PROFILE / "config.yaml").read_text())
    for key in GROUPING_KEYS:
        settings.pop(key)
    folder = workdir / "profiles" / "slurm-ungrouped"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(settings))
    return folder.relative_to(workdir)


def fault_wrapper(folder: Path) -> Path:
    """A folder for ``PYTHONPATH`` whose ``sitecustomize`` injects the two faults into the
    training jobs. The jobs run ``python -m asymcl`` of the workflow (never an ``asymcl``
    from PATH), so the faults enter through the interpreter's start-up instead."""
    markers = folder / "markers"
    markers.mkdir(parents=True)
    (folder / "sitecustomize.py").write_text(f"""
import os, subprocess, sys, time
_argv = open("/proc/self/cmdline", "rb").read().split(b"\\0")
if b"asymcl" in _argv and b"train" in _argv:
    _text = b" ".join(_argv).decode(errors="replace")
    if "{CANCELLED_ONCE}" in _text:
        try:
            os.mkdir("{markers}/cancelled")
        except FileExistsError:
            pass
        else:
            print("test fault: the cluster cancels job " + os.environ.get("SLURM_JOB_ID", "?"), file=sys.stderr)
            subprocess.run(["scancel", os.environ.get("SLURM_JOB_ID", "")])
            time.sleep(60)
            sys.stderr.flush(); os._exit(1)
    if "{ALWAYS_FAILS}" in _text:
        print("test fault: this run always fails", file=sys.stderr)
        sys.stderr.flush(); os._exit(1)
""")
    return folder


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalSlurmCluster(tmp_path_factory.mktemp("slurm"))
    c.start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def faulty_submission(cluster, tmp_path_factory):
    """(project copy, config, env, completed process) of the submission with faults."""
    config = shared_test_config(tmp_path_factory)
    base = tmp_path_factory.mktemp("slurm-run")
    workdir = copy_project(base / "project")
    faults = fault_wrapper(base / "faults")
    env = project_env(workdir, base=cluster.env)
    env["PYTHONPATH"] = f"{env['PYTHONPATH']}{os.pathsep}{faults}"
    proc = run(slurm_cmd(config, ungrouped_profile(workdir)), workdir, env, SLURM_TIMEOUT, check=False)
    return workdir, config, project_env(workdir, base=cluster.env), proc


def submissions(output: str, run_path: str) -> list[str]:
    """SLURM job ids submitted for the train job of ``run_path``, from the executor's lines
    'Job N has been submitted with SLURM jobid J (log: .../rule_train/<wildcards>/J.log)',
    where <wildcards> is dataset_scenario_cell_seed (e.g. fmnist_80-20_eta60_gamma0_0)."""
    dataset, scenario, cell, seed = run_path.split("/")
    folder = f"rule_train/{dataset}_{scenario}_{cell}_{seed.removeprefix('seed')}/"
    return re.findall(rf"submitted with SLURM jobid (\d+) \(log: [^)]*{re.escape(folder)}", output)


@pytest.mark.reliability
def test_cancelled_job_is_resubmitted_and_keep_going_finishes_the_rest(faulty_submission):
    workdir, _, _, proc = faulty_submission
    output = proc.stdout + proc.stderr
    runs = workdir / "results" / "runs"
    done = sorted(r for r in TEST_RUNS if (runs / r / "metrics.json").is_file())
    assert done == sorted(r for r in TEST_RUNS if r != ALWAYS_FAILS), describe(proc, workdir)
    assert proc.returncode != 0, "a job failed for good: snakemake must exit non-zero"

    # The cancelled job: reported with its SLURM state, submitted again, then finished.
    cancelled = submissions(output, CANCELLED_ONCE)
    assert len(cancelled) == 2, f"expected 2 submissions of {CANCELLED_ONCE}: {cancelled}\n{tail(output, 80)}"
    assert re.search(rf"SLURM-job '{cancelled[0]}' failed, SLURM status is: 'CANCELLED'", output), tail(output, 80)

    # The always-failing job: retried (resources.train.retries = 1), then reported by
    # name, while every independent job finished (--keep-going, the profile's default).
    failing = submissions(output, ALWAYS_FAILS)
    assert len(failing) == 2, f"expected 2 submissions of {ALWAYS_FAILS}: {failing}\n{tail(output, 80)}"
    assert re.search(r"Error in rule train", output) and ALWAYS_FAILS.split("/")[2] in output
    rule_log = workdir / "logs" / "train" / f"{ALWAYS_FAILS}.log"
    assert "test fault: this run always fails" in rule_log.read_text()
    assert not (workdir / "results" / "runs.csv").exists(), "aggregation needs every run"


def comparable_runs(path: Path) -> pd.DataFrame:
    """runs.csv without the columns that differ between identical runs (wall times) or
    between copies of the project (the code's location)."""
    frame = pd.read_csv(path)
    volatile = [c for c in frame.columns
                if c.endswith("_s") or c in ("runtime", "device") or c.startswith("code_")]
    return frame.drop(columns=volatile)


def test_slurm_results_equal_a_local_run(faulty_submission, tmp_path_factory):
    workdir, config, env, _ = faulty_submission
    # The same command without the fault: only the failed run and what depends on it.
    proc = run(slurm_cmd(config, PROFILE.parent / "slurm-ungrouped"), workdir, env, SLURM_TIMEOUT)
    jobs = parse_job_stats(proc.stdout + proc.stderr)
    assert jobs.get("train") == 1, f"only the failed run should be trained again: {jobs}"

    local, _ = local_test_run(tmp_path_factory)
    theirs, ours = workdir / "results", local / "results"
    pd.testing.assert_frame_equal(comparable_runs(theirs / "runs.csv"), comparable_runs(ours / "runs.csv"))
    for run_path in TEST_RUNS:
        metrics = Path("runs") / run_path / "metrics.json"
        assert metrics_without_runtime(theirs / metrics) == metrics_without_runtime(ours / metrics), run_path
    # Tables are computed from runs.csv: byte-identical.
    assert snapshot(theirs / "tables") == snapshot(ours / "tables")
    for figure in (ours / "figures").iterdir():
        assert (theirs / "figures" / figure.name).stat().st_size > 0, figure.name


@pytest.fixture(scope="module")
def grouped_submission(cluster, tmp_path_factory):
    """(project copy, completed process) of the test grid submitted with the profile as is.

    ``--cores 1``: the training runs of a submission run one after another (the plugin
    starts a submission's jobs with ``--jobs 1``), and without a GPU nothing else bounds
    the CPUs a group asks for; ``cores`` caps it at one run's threads (here 1)."""
    config = shared_test_config(tmp_path_factory)
    workdir = copy_project(tmp_path_factory.mktemp("slurm-grouped") / "project")
    env = project_env(workdir, base=cluster.env)
    # the plugin deletes a successful job's log unless asked to keep it: the test reads it
    proc = run(slurm_cmd(config, PROFILE, "--cores", "1", "--slurm-keep-successful-logs"), workdir, env,
               SLURM_TIMEOUT)
    return workdir, env, proc


def test_grouped_submission_is_fewer_submissions_with_local_results(grouped_submission, tmp_path_factory):
    workdir, env, proc = grouped_submission
    output = proc.stdout + proc.stderr
    submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: ([^)]*)\)", output)
    jobs = parse_job_stats(output)
    remote_jobs = sum(n for rule, n in jobs.items() if rule.startswith(("subset", "resize", "train")))
    grouped = [log for _, log in submitted if "/group_train_train/" in log]
    # all five runs in one submission (up to 20 per submission), beside the three data jobs
    assert jobs.get("train") == len(TEST_RUNS), jobs
    assert len(grouped) == 1 and len(submitted) == remote_jobs - len(TEST_RUNS) + 1 < remote_jobs, (
        f"submissions: {submitted}\njobs: {jobs}"
    )
    group_log = Path(grouped[0]) if Path(grouped[0]).is_absolute() else workdir / grouped[0]
    text = group_log.read_text()
    for run_path in TEST_RUNS:
        assert f"results/runs/{run_path}/metrics.json" in text, f"{run_path} did not run in the group"
    # the submission asked SLURM for one run's threads (resources.train.threads = 1), not
    # five runs' worth: the controller's record of the job (kept MinJobAge seconds) says so
    group_id = next(job for job, log in submitted if "/group_train_train/" in log)
    record = subprocess.run(["scontrol", "show", "job", group_id], env=env, capture_output=True,
                            text=True, timeout=60)
    assert re.search(r"\bNumCPUs=1\b", record.stdout), record.stdout + record.stderr

    local, _ = local_test_run(tmp_path_factory)
    for run_path in TEST_RUNS:
        metrics = Path("results") / "runs" / run_path / "metrics.json"
        theirs, ours = (metrics_without_runtime(root / metrics) for root in (workdir, local))
        assert {"accuracy", "uwa"} <= set(theirs), run_path
        theirs.pop("code", None), ours.pop("code", None)  # the copies' locations differ
        assert theirs == ours, run_path
    pd.testing.assert_frame_equal(comparable_runs(workdir / "results" / "runs.csv"),
                                  comparable_runs(local / "results" / "runs.csv"))

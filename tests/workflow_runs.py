"""Helpers for the tests that run the real workflow in a copy of the project.

A copy keeps the tests away from the checkout's own ``results/`` and ``data/`` and lets a
test break or version things freely. It holds the working tree as it is on disk (tracked
or not), without version-control state, outputs and caches. ``project_env`` puts the
copy's ``src/`` first on ``PYTHONPATH`` so the ``asymcl`` jobs run the copy's code (the
package is installed editable from the checkout), the code the workflow declares as input.

`make_test_config` writes the smoke settings (``config/smoke.yaml``) with three changes:
the archives come from a local mirror folder (written once by ``asymcl synth``, as a user's
mirror of the official files would be) into the default ``data/raw/<dataset>`` folders that
the project's .gitignore and DVC layout expect; a failed training job is retried once; and
the grid shrinks to the fewest runs that still exercise every rule (`TEST_EXPERIMENTS`):
both datasets, download -> subset -> resize -> train -> aggregate -> tables -> figures, with
the (eta=0, gamma=0) cell shared by Tables 1 and 2.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]

# Never copied: version control, outputs, caches (top level only unless noted).
_EXCLUDED_TOP = {
    ".git", "results", "data", "logs", "benchmarks", ".snakemake", ".pytest_cache",
    ".benchmarks", "build", ".venv", ".whl", ".gl", ".gpu-data", "report.html",
}
_EXCLUDED_ANYWHERE = {"__pycache__", ".ipynb_checkpoints"}

# Replaces the smoke grid's lists: 5 runs instead of 16.
TEST_EXPERIMENTS = """\
experiments:
  table1:
    scenarios: ["80:20"]
    cells: [{eta: 0, gamma: 0}, {eta: 60, gamma: 0}]
    seeds: [0]
  table2:
    scenarios: ["80:20"]
    cells: [{eta: 0, gamma: 0}, {eta: 0, gamma: 2}]
    seeds: [0]
  table3:
    cells:
      - {eta: 0, gamma: 0, label: CL}
      - {eta: 300, gamma: 2, label: "AFCL"}
    seeds: [0]
"""
# The train jobs TEST_EXPERIMENTS plans (results/runs/...).
TEST_RUNS = [
    "fmnist/80-20/eta0_gamma0/seed0",
    "fmnist/80-20/eta60_gamma0/seed0",
    "fmnist/80-20/eta0_gamma2/seed0",
    "isic2018/all/eta0_gamma0/seed0",
    "isic2018/all/eta300_gamma2/seed0",
]


def copy_project(dest: Path, src: Path = REPO_ROOT) -> Path:
    """Copy the project's working tree to ``dest`` (no .git, outputs or caches)."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n in _EXCLUDED_ANYWHERE or n.endswith(".egg-info")}
        if Path(folder) == src:
            skip |= {n for n in names if n in _EXCLUDED_TOP}
        if Path(folder) == src / ".dvc":
            skip |= {"cache", "tmp"}
        return skip

    shutil.copytree(src, dest, ignore=ignore, symlinks=True)
    return dest


def make_test_config(folder: Path, project: Path = REPO_ROOT) -> Path:
    """Write ``folder/mirror/<dataset>`` (synthetic archives and SHA256SUMS) and
    ``folder/test.yaml``; returns the config's path (give it alone to ``--configfile``)."""
    smoke = yaml.safe_load((project / "config" / "smoke.yaml").read_text())
    # the single-folder layout the DVC and SLURM tests expect: data/raw/<dataset>, results/
    smoke["paths"] = {"raw": "data/raw", "interim": "data/interim", "results": "results",
                      "logs": "logs", "benchmarks": "benchmarks"}
    for dataset, settings in smoke["datasets"].items():
        mirror = folder / "mirror" / dataset
        options = settings.pop("synthetic")
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
        run([sys.executable, "-m", "asymcl", "synth", dataset, "--out", str(mirror), *flags],
            folder, project_env(project), timeout=300)
        settings["source"] = str(mirror)
        settings["checksums"] = str(mirror / "SHA256SUMS")
    # One retry of a failed training job (not a run setting: no effect on results).
    smoke.setdefault("resources", {}).setdefault("train", {})["retries"] = 1
    experiments = yaml.safe_load(TEST_EXPERIMENTS)["experiments"]
    for name, family in experiments.items():
        smoke["experiments"].setdefault(name, {}).update(family)
    config = folder / "test.yaml"
    config.write_text(yaml.safe_dump(smoke, sort_keys=False))
    return config


def project_env(workdir: Path, extra: dict[str, str] | None = None,
                base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(workdir / "src")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env.update({
        "MPLBACKEND": "Agg",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "asymcl test", "GIT_AUTHOR_EMAIL": "test@asymcl.invalid",
        "GIT_COMMITTER_NAME": "asymcl test", "GIT_COMMITTER_EMAIL": "test@asymcl.invalid",
    })
    env.update(extra or {})
    return env


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def log_tails(workdir: Path, lines: int = 15, limit: int = 6) -> str:
    """The ends of the rule logs under logs/ and of the SLURM job logs (newest first)."""
    files = [p for d in ("logs", ".snakemake/slurm_logs") for p in (workdir / d).rglob("*.log")]
    files.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    out = []
    for path in files[:limit]:
        out.append(f"--- {path.relative_to(workdir)}\n{tail(path.read_text(errors='replace'), lines)}")
    return "\n".join(out)


def run(cmd: Sequence[str], cwd: Path, env: dict[str, str], timeout: float,
        check: bool = True) -> subprocess.CompletedProcess:
    """Run ``cmd``; on a non-zero exit (with ``check``) or a timeout fail the test with the
    command's output and the tails of the workflow's logs."""
    try:
        proc = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b"").decode(errors="replace") if isinstance(err.stdout, bytes) else (err.stdout or "")
        errout = (err.stderr or b"").decode(errors="replace") if isinstance(err.stderr, bytes) else (err.stderr or "")
        raise AssertionError(
            f"{' '.join(cmd)} did not finish within {timeout:.0f} s\n"
            f"stdout:\n{tail(out)}\nstderr:\n{tail(errout)}\n{log_tails(cwd)}"
        ) from None
    if check and proc.returncode != 0:
        raise AssertionError(describe(proc, cwd))
    return proc


def describe(proc: subprocess.CompletedProcess, workdir: Path) -> str:
    return (
        f"{' '.join(proc.args)} exited with {proc.returncode}\n"
        f"stdout:\n{tail(proc.stdout)}\nstderr:\n{tail(proc.stderr, 60)}\n{log_tails(workdir)}"
    )


def snakemake_cmd(*args: str, config: Path) -> list[str]:
    """``snakemake`` with ``config`` merged over config.yaml."""
    return ["snakemake", "--configfile", str(config), *args]


def parse_job_stats(text: str) -> dict[str, int]:
    """The 'Job stats' table of a snakemake run (job, count) as a dict."""
    lines = text.splitlines()
    stats: dict[str, int] = {}
    for i, line in enumerate(lines):
        if line.strip().startswith("Job stats"):
            for row in lines[i + 3:]:
                parts = row.split()
                if len(parts) != 2 or not parts[1].isdigit() or parts[0] == "total":
                    break
                stats[parts[0]] = int(parts[1])
            break
    return stats


def metrics_without_runtime(path: Path) -> dict:
    """A metrics.json minus its ``runtime`` section (timings, memory, versions, paths) and its
    ``code`` provenance (the package location differs between two copies of the project):
    the only parts that differ between identical runs."""
    data = json.loads(path.read_text())
    data.pop("runtime", None)
    data.pop("code", None)
    return data


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# One local run of the test config per test session, shared by the SLURM comparison and the
# DVC flow (each copies what it changes). Keyed by the base temp folder.
_LOCAL_RUNS: dict[str, Path] = {}


_CONFIGS: dict[str, Path] = {}


def shared_test_config(tmp_path_factory) -> Path:
    """The test config and its mirror, written once per session (`make_test_config`)."""
    key = str(tmp_path_factory.getbasetemp())
    if key not in _CONFIGS:
        _CONFIGS[key] = make_test_config(tmp_path_factory.mktemp("test-config"))
    return _CONFIGS[key]


def local_test_run(tmp_path_factory) -> tuple[Path, Path]:
    """(project copy, config): ``snakemake`` ran the test config there on 2 cores (cached).

    Callers must not modify the copy; copy it (`copy_tree` keeps mtimes) to change it.
    """
    key = str(tmp_path_factory.getbasetemp())
    if key not in _LOCAL_RUNS:
        config = shared_test_config(tmp_path_factory)
        workdir = copy_project(tmp_path_factory.mktemp("local-run") / "project")
        run(snakemake_cmd("--cores", "2", config=config), workdir, project_env(workdir), timeout=900)
        _LOCAL_RUNS[key] = workdir
    return _LOCAL_RUNS[key], _CONFIGS[key]


def copy_tree(src: Path, dest: Path) -> Path:
    """A full copy of a project folder, mtimes kept (what Snakemake compares)."""
    shutil.copytree(src, dest, symlinks=True)
    return dest

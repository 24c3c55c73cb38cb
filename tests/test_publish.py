"""`asymcl publish` and `asymcl restore` on small hand-made projects (no workflow run).

The project: a config selecting 4 runs (2 cells x 2 seeds of one FMNIST scenario), their
metrics.json (with the ``code`` key the engine writes), the report files, and whatever a
case breaks. Every bad input must end in one error line naming the culprits, exit status
2, and nothing published: no destination folder, no .dvc file, no .gitignore edit, no
temporary folder left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_probe import assert_input_error, run_cli  # noqa: E402

CONFIG = """\
paths: {results: results}
datasets:
  fmnist: {subset: {total: 60}}
experiments:
  t1:
    dataset: fmnist
    scenarios: ["80:20"]
    cells: [{eta: 0, gamma: 0}, {eta: 60, gamma: 0}]
    seeds: [0, 1]
"""
# The runs CONFIG selects, written out by hand.
RUNS = [
    "runs/fmnist/80-20/eta0_gamma0/seed0/metrics.json",
    "runs/fmnist/80-20/eta0_gamma0/seed1/metrics.json",
    "runs/fmnist/80-20/eta60_gamma0/seed0/metrics.json",
    "runs/fmnist/80-20/eta60_gamma0/seed1/metrics.json",
]
REPORT = ["experiments.json", "runs.csv", "tables/table1.tex", "figures/t1.png"]
STRAY = "runs/fmnist/50-50/eta0_gamma0/seed0/metrics.json"
DIRTY_COMMIT = {"commit": "b" * 40, "dirty": True, "version": "0.1", "location": "/x"}


def metrics(i: int, code: dict | None = None) -> dict:
    return {"accuracy": 90.0 + i, "uwa": 80.0 + i,
            "code": code or {"commit": "a" * 40, "dirty": False, "version": "0.1", "location": "/x"}}


def make_project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(CONFIG)
    results = root / "results"
    for i, rel in enumerate(RUNS):
        path = results / rel
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(metrics(i, DIRTY_COMMIT if i == 3 else None)))
    for rel in REPORT:
        (results / rel).parent.mkdir(parents=True, exist_ok=True)
        (results / rel).write_text(f"content of {rel}\n")
    return root


def sh(cmd: list[str], cwd: Path) -> None:
    env = dict(os.environ, DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t.invalid",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t.invalid")
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True, timeout=120)


def dvc_init(root: Path, remote: Path | None = None) -> None:
    sh(["git", "init", "-q"], root)
    sh([sys.executable, "-m", "dvc", "init", "-q"], root)
    if remote is not None:
        sh([sys.executable, "-m", "dvc", "remote", "add", "-d", "store", str(remote)], root)


def state(root: Path) -> dict[str, object]:
    """What publishing can leave behind, to compare before and after a refusal."""
    results = root / "results"
    return {
        "published": (results / "published").exists(),
        "dvc_file": (results / "published.dvc").exists(),
        "gitignore": (results / ".gitignore").read_text() if (results / ".gitignore").exists() else None,
        "hidden": sorted(p.name for p in results.iterdir() if p.name.startswith(".")),
    }


def test_the_selected_runs_match_the_hand_written_list(tmp_path):
    from asymcl import publish

    config, _ = publish.load_config([], base=make_project(tmp_path) / "config.yaml")
    assert publish.selected_metrics(config) == sorted(RUNS)


def test_merge_config_merges_mappings_and_replaces_lists():
    from asymcl.publish import merge_config

    base = {"a": {"x": 1, "y": [1, 2]}, "b": [1], "c": 3}
    over = {"a": {"y": [9]}, "b": [2, 3]}
    assert merge_config(base, over) == {"a": {"x": 1, "y": [9]}, "b": [2, 3], "c": 3}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": [1], "c": 3}, "the base must not change"


def test_publish_copies_exactly_the_config_runs_with_a_record(tmp_path):
    root = make_project(tmp_path / "p")
    stray = root / "results" / STRAY
    stray.parent.mkdir(parents=True)
    stray.write_text(json.dumps(metrics(9)))
    (root / "results" / "runs" / "fmnist" / "80-20" / "eta0_gamma0" / "seed0" / "train.log").write_text("log")
    override = root / "more.yaml"
    override.write_text("paths: {results: results}\n")

    result = run_cli(["publish", "--no-dvc", "--configfile", override, "--command", "snakemake --cores 2",
                      "--wall-time-s", "123.5", "--machine", "test box"], cwd=root)
    assert result.returncode == 0, result.stderr
    assert "1 stray metrics.json ignored" in result.stdout

    published = root / "results" / "published"
    files = sorted(str(p.relative_to(published)) for p in published.rglob("*") if p.is_file())
    assert files == sorted(RUNS + REPORT + ["record.json", "RECORD.md"])
    for rel in RUNS + REPORT:
        assert (published / rel).read_bytes() == (root / "results" / rel).read_bytes(), rel
    record = json.loads((published / "record.json").read_text())
    assert record["command"] == "snakemake --cores 2"
    assert record["wall_time_s"] == 123.5
    assert record["machine"] == "test box"
    assert record["runs"] == 4 and record["ignored_stray_metrics"] == 1
    assert [c["path"] for c in record["configfiles"]] == ["config.yaml", str(override)]
    assert record["code"] == [{"commit": "a" * 40, "dirty": False, "runs": 3},
                              {"commit": "b" * 40, "dirty": True, "runs": 1}]
    md = (published / "RECORD.md").read_text()
    assert "snakemake --cores 2" in md and "b" * 40 + " (dirty tree): 1 runs" in md
    assert [p.name for p in (root / "results").iterdir() if p.name.startswith(".")] == []


def test_publish_detects_the_machine_and_says_unknown_command(tmp_path):
    root = make_project(tmp_path / "p")
    assert run_cli(["publish", "--no-dvc"], cwd=root).returncode == 0
    record = json.loads((root / "results" / "published" / "record.json").read_text())
    assert record["command"] == "unknown" and record["wall_time_s"] is None
    assert record["machine"]["cores"] == os.cpu_count() and record["machine"]["platform"]


def _delete(root: Path, rel: str) -> None:
    (root / "results" / rel).unlink()


def _write(root: Path, rel: str, text: str | bytes) -> None:
    path = root / "results" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def dirty(root: Path) -> None:
    _delete(root, RUNS[0])
    full = (root / "results" / RUNS[1]).read_text()
    _write(root, RUNS[1], full[: len(full) // 2])
    _write(root, STRAY, json.dumps(metrics(5)))


def unreadable_bytes(root: Path) -> None:
    _write(root, RUNS[2], b"\xff\xfe\x00garbage")


def missing_keys(root: Path) -> None:
    _write(root, RUNS[3], json.dumps({"accuracy": 1.0}))


def no_runs_csv(root: Path) -> None:
    _delete(root, "runs.csv")


def no_config(root: Path) -> None:
    (root / "config.yaml").unlink()


def bad_yaml(root: Path) -> None:
    (root / "config.yaml").write_text(CONFIG + "experiments: [unclosed\n")


def bad_grid(root: Path) -> None:
    (root / "config.yaml").write_text(CONFIG.replace("dataset: fmnist", "dataset: mnist"))


def no_dvc(root: Path) -> None:
    pass  # the project is not a DVC project


def dvc_without_remote(root: Path) -> None:
    dvc_init(root)


def dvc_with_remote(root: Path) -> None:
    dvc_init(root, root.parent / "remote")


R = [r.split("/")[3] + "/" + r.split("/")[4] for r in RUNS]  # e.g. eta0_gamma0/seed0

BAD_INPUTS = [
    # (case, setup, extra args, culprits in the message)
    ("dirty-results", dirty, ["--no-dvc"],
     ["1 missing", RUNS[0], "1 truncated or not JSON", RUNS[1], "1 stray", STRAY]),
    ("not-utf8", unreadable_bytes, ["--no-dvc"], ["truncated or not JSON", RUNS[2]]),
    ("no-metric-keys", missing_keys, ["--no-dvc"], ["without the keys accuracy/uwa", RUNS[3]]),
    ("no-runs-csv", no_runs_csv, ["--no-dvc"], ["runs.csv not found", "snakemake"]),
    ("no-config", no_config, ["--no-dvc"], ["config.yaml does not exist", "--configfile"]),
    ("missing-configfile", lambda root: None, ["--no-dvc", "--configfile", "nope.yaml"],
     ["nope.yaml does not exist"]),
    ("yaml-syntax", bad_yaml, ["--no-dvc"], ["config.yaml:11:1", "YAML syntax error"]),
    ("grid-error", bad_grid, ["--no-dvc"], ["experiments.t1.dataset", "mnist"]),
    ("negative-wall-time", lambda root: None, ["--no-dvc", "--wall-time-s", "-1"], ["--wall-time-s", "-1"]),
    ("nan-wall-time", lambda root: None, ["--no-dvc", "--wall-time-s", "nan"], ["--wall-time-s", "nan"]),
    ("dest-is-results", lambda root: None, ["--no-dvc", "--dest", "results"], ["--dest results"]),
    ("not-a-dvc-project", no_dvc, [], ["not inside a DVC project", "dvc init"]),
    ("no-dvc-remote", dvc_without_remote, [], ["no DVC remote", "dvc remote add", "--no-push"]),
    ("unknown-remote", dvc_with_remote, ["--remote", "elsewhere"], ["'elsewhere' is not configured", "store"]),
]


@pytest.mark.parametrize("case, setup, args, culprits", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_publish_refuses_bad_input_and_leaves_nothing(tmp_path, case, setup, args, culprits):
    root = make_project(tmp_path / "p")
    setup(root)
    before = state(root)
    result = run_cli(["publish", *args], cwd=root)
    line = assert_input_error(result, *culprits)
    assert line.startswith("asymcl publish: error: "), line
    assert state(root) == before == {**before, "published": False, "dvc_file": False}


def test_a_failed_push_puts_the_previous_snapshot_back(tmp_path):
    """dvc add succeeds, dvc push fails (the remote is a file): the previous published
    folder, its .dvc file and the .gitignore are as they were."""
    root = make_project(tmp_path / "p")
    remote = tmp_path / "remote"
    dvc_init(root, remote)
    assert run_cli(["publish"], cwd=root).returncode == 0
    published = root / "results" / "published"
    before = {p: p.read_bytes() for p in published.rglob("*") if p.is_file()}
    dvc_file = (root / "results" / "published.dvc").read_text()
    gitignore = (root / "results" / ".gitignore").read_text()

    (root / "results" / "runs.csv").write_text("changed\n")
    sh(["rm", "-rf", str(remote)], tmp_path)
    remote.write_text("a file where the remote folder should be\n")
    result = run_cli(["publish"], cwd=root)
    assert_input_error(result, "dvc push")
    assert {p: p.read_bytes() for p in published.rglob("*") if p.is_file()} == before
    assert (root / "results" / "published.dvc").read_text() == dvc_file
    assert (root / "results" / ".gitignore").read_text() == gitignore
    assert [p.name for p in (root / "results").iterdir() if p.name.startswith(".")] == [".gitignore"]


def test_restore_puts_the_snapshot_back_in_workflow_order(tmp_path):
    root = make_project(tmp_path / "p")
    assert run_cli(["publish", "--no-dvc", "--dest", "shared"], cwd=root).returncode == 0
    original = {rel: (root / "results" / rel).read_bytes() for rel in RUNS + REPORT}
    sh(["rm", "-rf", "results"], root)

    result = run_cli(["restore", "--from", "shared"], cwd=root)
    assert result.returncode == 0, result.stderr
    results = root / "results"
    assert {rel: (results / rel).read_bytes() for rel in RUNS + REPORT} == original
    assert not (results / "record.json").exists()
    mtime = {rel: (results / rel).stat().st_mtime for rel in RUNS + REPORT}
    # Each step's outputs are newer than its inputs: metrics < experiments.json < runs.csv
    # < tables < figures.
    assert max(mtime[r] for r in RUNS) < mtime["experiments.json"] < mtime["runs.csv"]
    assert mtime["runs.csv"] < mtime["tables/table1.tex"] < mtime["figures/t1.png"]


def test_restore_refuses_a_snapshot_of_another_config(tmp_path):
    root = make_project(tmp_path / "p")
    assert run_cli(["publish", "--no-dvc"], cwd=root).returncode == 0
    (root / "results" / "published" / RUNS[2]).unlink()
    result = run_cli(["restore"], cwd=root)
    assert_input_error(result, "does not hold this config's results", RUNS[2])
    assert_input_error(run_cli(["restore", "--from", "nowhere"], cwd=root), "--from nowhere", "dvc pull")

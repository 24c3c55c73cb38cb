"""The Snakemake workflow: the full grid's dry run, the smoke run end to end, incremental
reruns, lint and formatting. Every test runs snakemake in a temporary copy of the working
tree (minus outputs), offline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.workflow

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workflow_runs import copy_project  # noqa: E402  (top-level outputs only: not src/asymcl/data)

REPO = Path(__file__).resolve().parents[1]


def snakemake(cwd: Path, *args: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", *args]
    # the copy's own package code runs the jobs (the installed one is the checkout's)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(cwd / "src"), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def planned_jobs(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> count."""
    stats = output.split("Job stats:", 1)
    if len(stats) < 2:
        return {}
    counts = {}
    for line in stats[1].splitlines()[3:]:
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not match:
            break
        if match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


def planned_outputs(output: str, rule: str) -> list[str]:
    """Output paths of the planned jobs of ``rule`` in a dry run's job listing."""
    outs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        if re.match(rf"(?:local)?rule {rule}:", block.strip()):
            match = re.search(r"^\s+output: (.+)$", block, re.M)
            if match:
                outs.extend(match.group(1).split(", "))
    return outs


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("wf") / "asymcl")


def test_dry_run_plans_the_papers_full_grid(project):
    proc = snakemake(project, "-n", "--forceall")
    text = proc.stdout + proc.stderr
    jobs = planned_jobs(text)
    assert jobs["train"] == 504, jobs
    assert jobs["download_fmnist"] == 1 and jobs["download_isic2018"] == 1
    assert jobs["subset_fmnist"] == 11 * 4 and jobs["subset_isic2018"] == 4 and jobs["resize_isic2018"] == 4
    runs = planned_outputs(text, "train")
    assert len(runs) == len(set(runs)) == 504
    fm = [r for r in runs if r.startswith("results/paper/runs/fmnist/")]
    assert len(fm) == 484
    # the (0, 0) cell is one job per scenario and seed, shared by Tables 1 and 2
    assert sum("/50-50/eta0_gamma0/" in r for r in fm) == 4
    assert {r.split("/")[4] for r in fm} == {"50-50", "55-45", "60-40", "65-35", "70-30", "75-25",
                                             "80-20", "85-15", "90-10", "95-5", "98-2"}
    isic = sorted({r.split("/")[5] for r in runs if "/isic2018/" in r})
    assert isic == ["eta0_gamma0", "eta0_gamma1", "eta300_gamma0", "eta300_gamma2", "eta300_gamma7"]


def test_invalid_config_value_fails_before_any_job_naming_the_key(project, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"training": {"normalization": "papr"}}))
    proc = snakemake(project, "-n", "--configfile", str(bad), check=False)
    err = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "normalization" in err and "'reference', 'paper'" in err and "papr" in err


# lint of every shipped config: test_workflow_promises.py


def test_snakefmt_check_is_clean():
    proc = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow/"],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------------------- smoke run


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    """The README's quick start, exactly as written, in a fresh copy (run once)."""
    root = copy_project(tmp_path_factory.mktemp("smoke") / "asymcl")
    snakemake(root, "--configfile", "config/smoke.yaml", "--cores", "2", timeout=900)
    return root


@pytest.mark.slow
def test_smoke_run_writes_runs_tables_and_figures(smoke):
    import pandas as pd

    runs = pd.read_csv(smoke / "results" / "smoke" / "runs.csv", dtype={"scenario": str})
    config = yaml.safe_load((smoke / "config" / "smoke.yaml").read_text())
    # 2 scenarios x 3 distinct FMNIST cells x 2 seeds + 2 ISIC cells x 2 seeds
    assert len(runs) == 2 * 3 * 2 + 2 * 2
    assert set(runs.scenario) == {"50-50", "80-20", "all"}
    assert runs[["accuracy", "uwa"]].apply(lambda c: c.between(0, 100)).all().all()
    assert set(runs.seed) == set(config["experiments"]["table1"]["seeds"])
    shared = runs[(runs.dataset == "fmnist") & (runs.cell == "eta0_gamma0")]
    assert set(shared.experiments) == {"table1;table2"}
    for name in ("table1", "table2", "table3", "paired", "paper_comparison"):
        tex = (smoke / "results" / "smoke" / "tables" / f"{name}.tex").read_text()
        assert "\\toprule" in tex and "\\bottomrule" in tex
    table3 = (smoke / "results" / "smoke" / "tables" / "table3.tex").read_text()
    assert "CL" in table3 and "AFCL" in table3
    comparison = pd.read_csv(smoke / "results" / "smoke" / "tables" / "paper_comparison.csv")
    # every smoke cell that exists in the paper is compared: table1 2x2 cells, table2 2x2, table3 2
    assert len(comparison) == (2 * 2 + 2 * 2 + 2) * 2
    for stem in ("table1", "table2", "table3", "paper_vs_ours"):
        png = (smoke / "results" / "smoke" / "figures" / f"{stem}.png").read_bytes()
        pdf = (smoke / "results" / "smoke" / "figures" / f"{stem}.pdf").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and pdf[:5] == b"%PDF-"


@pytest.mark.slow
def test_after_the_smoke_run_nothing_is_left_to_do(smoke):
    proc = snakemake(smoke, "--configfile", "config/smoke.yaml", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout


@pytest.mark.slow
def test_changing_one_eta_reruns_only_that_cell_and_the_aggregation(smoke):
    config = yaml.safe_load((smoke / "config" / "smoke.yaml").read_text())
    cells = config["experiments"]["table1"]["cells"]
    assert cells[1]["eta"] == 60
    cells[1]["eta"] = 90
    (smoke / "config" / "smoke-eta90.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(smoke, "--configfile", "config/smoke-eta90.yaml", "-n")
    text = proc.stdout + proc.stderr
    jobs = planned_jobs(text)
    trained = planned_outputs(text, "train")
    assert len(trained) == 2 * 2 and all("/eta90_gamma0/" in t for t in trained), trained
    assert set(jobs) == {"train", "experiments_spec", "aggregate", "tables", "figure", "paper_figure",
                         "family_table", "fit_to_paper", "claims", "all"}, jobs


@pytest.mark.slow
def test_changing_a_run_setting_reruns_the_runs_that_use_it(smoke):
    config = yaml.safe_load((smoke / "config" / "smoke.yaml").read_text())
    config["datasets"]["isic2018"]["training"]["focal_gamma"] = 3
    (smoke / "config" / "smoke-focal3.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(smoke, "--configfile", "config/smoke-focal3.yaml", "-n")
    text = proc.stdout + proc.stderr
    trained = planned_outputs(text, "train")
    assert len(trained) == 4 and all("/isic2018/" in t for t in trained)
    assert "subset_isic2018" not in planned_jobs(text)


@pytest.mark.slow
def test_html_report_builds(smoke):
    snakemake(smoke, "--configfile", "config/smoke.yaml", "--report", "report.html")
    html = (smoke / "report.html").read_text(errors="replace")
    assert "paper_vs_ours.png" in html and "table1.png" in html

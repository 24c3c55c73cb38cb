"""Ablations beyond the paper: class-balanced batches, two views, long-tailed multi-class
FMNIST with many/medium/few-shot accuracy, per-epoch loss diagnostics, saved embeddings,
and the ablation families of the workflow (dry run and the smoke run end to end)."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
import torch

import asymcl.losses
from asymcl.cli import main
from asymcl.data.packed import load_split
from asymcl.data.splits import SplitError, long_tail_counts, make_subset, Candidate
from asymcl.data.synthetic import synth_fmnist
from asymcl.evaluate import shot_group_metrics
from asymcl.sampling import balanced_batches, balanced_per_class, batch_sizes, random_batches

FAST = ["--pretrained", "none", "--num-threads", "1", "--device", "cpu"]


# ----------------------------------------------------------------------------- sampler


def _targets(counts: list[int]) -> torch.Tensor:
    """Class ids with ``counts[c]`` samples of class c, interleaved (not sorted)."""
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    return y[torch.randperm(y.numel(), generator=torch.Generator().manual_seed(99))]


def test_balanced_batches_hand_computed_class_counts():
    y = _targets([50, 10, 4])  # n = 64, batch 16 -> 4 batches of 16, 16 / 3 = 5 r 1
    batches = balanced_batches(y, 16, torch.Generator().manual_seed(0))
    assert [b.numel() for b in batches] == [16, 16, 16, 16] == batch_sizes(64, 16)
    per_batch = [torch.bincount(y[b], minlength=3).tolist() for b in batches]
    # the leftover place rotates over the classes: batch b gives it to class b mod 3
    assert per_batch == [[6, 5, 5], [5, 6, 5], [5, 5, 6], [6, 5, 5]]
    every = torch.cat(batches)
    seen = Counter(every.tolist())
    # class 0 needs 22 of its 50 images: subsampled without replacement
    assert all(seen[i] == 1 for i in every[y[every] == 0].tolist())
    assert sum(y[every] == 0).item() == 22
    # class 2 (4 images) needs 21: each image 5 or 6 times (21 = 4 * 5 + 1)
    minority = torch.nonzero(y == 2).view(-1).tolist()
    assert sorted(seen[i] for i in minority) == [5, 5, 5, 6]
    # class 1 (10 images) needs 21: 2 or 3 times each
    assert sorted(Counter(seen[i] for i in torch.nonzero(y == 1).view(-1).tolist()).items()) == [(2, 9), (3, 1)]


def test_balanced_batches_last_batch_and_determinism():
    y = _targets([30, 7])  # n = 37, batch 8 -> 8, 8, 8, 8, 5
    a = balanced_batches(y, 8, torch.Generator().manual_seed(5))
    b = balanced_batches(y, 8, torch.Generator().manual_seed(5))
    c = balanced_batches(y, 8, torch.Generator().manual_seed(6))
    assert [x.numel() for x in a] == [8, 8, 8, 8, 5]
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not all(torch.equal(p, q) for p, q in zip(a, c))
    # the 5-image batch (index 4): 2 each plus the leftover to class 4 mod 2 = 0
    assert torch.bincount(y[a[4]], minlength=2).tolist() == [3, 2] == balanced_per_class(5, 2, 4)
    assert [torch.bincount(y[x], minlength=2).tolist() for x in a[:4]] == [[4, 4]] * 4


def test_random_batches_are_a_permutation():
    batches = random_batches(37, 8, torch.Generator().manual_seed(0))
    assert [x.numel() for x in batches] == [8, 8, 8, 8, 5]
    assert sorted(torch.cat(batches).tolist()) == list(range(37))


# ----------------------------------------------------------------------------- long tail


def test_long_tail_counts_hand_computed():
    # n_k = round(600 * IF^(-k/9)); e.g. IF 10, k = 1: 600 / 10^(1/9) = 464.56 -> 465
    assert long_tail_counts(10, 600, 10) == [600, 465, 360, 278, 216, 167, 129, 100, 77, 60]
    # IF 100, k = 3: 600 / 100^(1/3) = 129.27 -> 129; k = 8: 10.009 -> 10
    assert long_tail_counts(10, 600, 100) == [600, 360, 216, 129, 77, 46, 28, 17, 10, 6]
    assert long_tail_counts(2, 100, 4) == [100, 25]
    assert long_tail_counts(3, 50, 1) == [50, 50, 50]
    with pytest.raises(SplitError, match="raise --max-per-class"):
        long_tail_counts(10, 5, 100)
    with pytest.raises(SplitError, match=">= 1"):
        long_tail_counts(10, 600, 0.5)


def test_long_tail_subset_rejects_mixed_scenario_options():
    cands = [Candidate(str(i), str(i % 3)) for i in range(90)]
    with pytest.raises(SplitError, match="give one of them"):
        make_subset(cands, ["0", "1", "2"], seed=0, ratio=[1, 1, 1], total=30, imbalance_factor=10, max_per_class=20)
    with pytest.raises(SplitError, match="together"):
        make_subset(cands, ["0", "1", "2"], seed=0, imbalance_factor=10)


@pytest.fixture(scope="module")
def lt_subset(tmp_path_factory) -> Path:
    """10-class long-tailed FMNIST subset from synthetic idx files (IF 10, max 40 per class)."""
    root = tmp_path_factory.mktemp("lt")
    synth_fmnist(root / "raw", per_class=40, test_per_class=0, seed=0)
    argv = ["subset", "--dataset", "fmnist", "--raw", str(root / "raw"), "--classes", *map(str, range(10)),
            "--imbalance-factor", "10", "--max-per-class", "40", "--seed", "3", "--out", str(root / "sub")]
    assert main(argv) == 0
    return root / "sub"


def test_cli_long_tail_subset_counts(lt_subset):
    manifest = pd.read_csv(lt_subset / "manifest.csv", dtype=str)
    # 40 * 10^(-k/9): 40, 30.97, 23.98, 18.57, 14.38, 11.13, 8.62, 6.67, 5.17, 4
    expected = [40, 31, 24, 19, 14, 11, 9, 7, 5, 4]
    assert long_tail_counts(10, 40, 10) == expected
    counts = manifest.groupby("label").size()
    assert [int(counts[str(k)]) for k in range(10)] == expected
    # test = round_half_up(0.3 n): 12, 9.3, 7.2, 5.7, 4.2, 3.3, 2.7, 2.1, 1.5, 1.2
    tests = manifest[manifest.split == "test"].groupby("label").size()
    assert [int(tests[str(k)]) for k in range(10)] == [12, 9, 7, 6, 4, 3, 3, 2, 2, 1]
    train = load_split(lt_subset / "train.pt")
    assert train.classes == [str(k) for k in range(10)]
    assert torch.bincount(train.targets, minlength=10).tolist() == [28, 22, 17, 13, 10, 8, 6, 5, 3, 3]


# ----------------------------------------------------------------------------- shot groups


def test_shot_group_metrics_hand_case():
    recall = {"a": 90.0, "b": 80.0, "c": 50.0, "d": 40.0, "e": 10.0, "f": None}
    n_train = {"a": 500, "b": 101, "c": 100, "d": 20, "e": 19, "f": 3}
    m = shot_group_metrics(recall, n_train, many=100, few=20)
    assert m["shot_groups"]["many"] == ["a", "b"]  # > 100
    assert m["shot_groups"]["medium"] == ["c", "d"]  # 20 .. 100
    assert m["shot_groups"]["few"] == ["e", "f"]  # < 20
    assert m["many_shot_accuracy"] == pytest.approx(85.0)
    assert m["medium_shot_accuracy"] == pytest.approx(45.0)
    assert m["few_shot_accuracy"] == pytest.approx(10.0)  # f has no test image: left out
    m = shot_group_metrics({"a": 90.0, "b": 80.0}, {"a": 500, "b": 200})
    assert m["few_shot_accuracy"] is None and m["medium_shot_accuracy"] is None


# ----------------------------------------------------------------------------- engine


class _Spy(asymcl.losses.AFCL):
    """AFCL that records the feature and label shapes it is called with."""

    calls: list = []

    def forward(self, features, labels):
        type(self).calls.append((tuple(features.shape), labels.detach().clone(), features.detach().clone()))
        return super().forward(features, labels)


@pytest.fixture(scope="module")
def lt_run(lt_subset, tmp_path_factory):
    """Two views, balanced batches, embeddings saved, on the 10-class long tail."""
    out = tmp_path_factory.mktemp("ltrun") / "run"
    _Spy.calls = []
    mp = pytest.MonkeyPatch()
    mp.setattr(asymcl.losses, "AFCL", _Spy)
    try:
        argv = ["train", "--data", str(lt_subset), "--out", str(out), "--eta", "60", "--gamma", "0", "--seed", "1",
                "--epochs1", "2", "--epochs2", "1", "--batch-size", "32", "--views", "2",
                "--batch-sampler", "balanced", "--save-embeddings", "--many-shot-threshold", "15",
                "--few-shot-threshold", "6", *FAST]
        assert main(argv) == 0
    finally:
        mp.undo()
    return out, list(_Spy.calls)


@pytest.mark.slow
def test_two_views_reach_the_loss_as_n_2_d(lt_run, lt_subset):
    out, calls = lt_run
    n_train = load_split(lt_subset / "train.pt").targets.numel()
    sizes = batch_sizes(n_train, 32)
    assert [c[0] for c in calls] == [(s, 2, 128) for s in sizes] * 2  # 2 epochs
    assert [tuple(c[1].shape) for c in calls] == [(s,) for s in sizes] * 2
    feats = calls[0][2]
    # the two views of a sample are augmented independently: different projections
    assert not torch.allclose(feats[:, 0], feats[:, 1])
    m = json.loads((out / "metrics.json").read_text())
    assert m["settings"]["views"] == 2 and m["settings"]["batch_sampler"] == "balanced"
    # two views: every anchor has its other view as a positive
    assert all(e["diagnostics"]["frac_no_positive"] == 0.0 for e in m["stage1"]["epochs"])
    assert m["stage1"]["epochs"][0]["diagnostics"]["n_anchors"] == pytest.approx(
        2 * n_train / len(sizes))


@pytest.mark.slow
def test_balanced_batches_reach_the_loss(lt_run):
    _, calls = lt_run
    n_batches = len(calls) // 2
    for b, (shape, labels, _) in enumerate(calls):
        # batch b of its epoch holds s // 10 of each class plus the rotating leftovers
        expected = balanced_per_class(shape[0], 10, b % n_batches)
        assert torch.bincount(labels, minlength=10).tolist() == expected


@pytest.mark.slow
def test_multiclass_metrics_have_shot_groups(lt_run):
    out, _ = lt_run
    m = json.loads((out / "metrics.json").read_text())
    counts = m["n_train_per_class"]
    assert list(counts.values()) == [28, 22, 17, 13, 10, 8, 6, 5, 3, 3]
    groups = m["shot_groups"]
    assert groups["thresholds"] == {"many": 15, "few": 6}
    assert groups["many"] == ["0", "1", "2"] and groups["medium"] == ["3", "4", "5", "6"]
    assert groups["few"] == ["7", "8", "9"]
    for g in ("many", "medium", "few"):
        recalls = [m["per_class_recall"][c] for c in groups[g]]
        assert m[f"{g}_shot_accuracy"] == pytest.approx(float(np.mean(recalls)))


@pytest.mark.slow
def test_embeddings_are_saved(lt_run, lt_subset):
    out, _ = lt_run
    test = load_split(lt_subset / "test.pt")
    with np.load(out / "embeddings.npz") as z:
        assert z["encoder"].shape == (len(test.ids), 512) and z["encoder"].dtype == np.float32
        assert z["projection"].shape == (len(test.ids), 128)
        np.testing.assert_allclose(np.linalg.norm(z["projection"], axis=1), 1.0, rtol=1e-5)
        np.testing.assert_array_equal(z["labels"], test.targets.numpy())
        assert z["classes"].tolist() == test.classes and z["ids"].tolist() == test.ids


def _epoch_batches(n: int, batch: int, seed: int, epochs: int) -> list[list[torch.Tensor]]:
    """The random sampler's batches as the engine draws them (one seeded generator)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randperm(n, generator=g).split(batch) for _ in range(epochs)]


@pytest.mark.slow
def test_diagnostics_per_epoch_match_the_batches(lt_subset, tmp_path):
    """One view, random batches: the recorded fraction of anchors with 0 and 1 positives
    per epoch equals the mean over that epoch's batches, computed here from the labels."""
    out = tmp_path / "run"
    argv = ["train", "--data", str(lt_subset), "--out", str(out), "--eta", "120", "--gamma", "0", "--seed", "4",
            "--epochs1", "2", "--epochs2", "1", "--batch-size", "16", *FAST]
    assert main(argv) == 0
    m = json.loads((out / "metrics.json").read_text())
    y = load_split(lt_subset / "train.pt").targets
    epochs = _epoch_batches(y.numel(), 16, 4, 2)
    assert len(m["stage1"]["epochs"]) == 2
    for record, batches in zip(m["stage1"]["epochs"], epochs):
        batches = [b for b in batches if b.numel() >= 2]
        f0, f1 = [], []
        for b in batches:
            lab = y[b]
            positives = (lab[:, None] == lab[None, :]).sum(1) - 1
            f0.append((positives == 0).float().mean().item())
            f1.append((positives == 1).float().mean().item())
        d = record["diagnostics"]
        assert d["frac_no_positive"] == pytest.approx(np.mean(f0), abs=1e-6)
        assert d["frac_one_positive"] == pytest.approx(np.mean(f1), abs=1e-6)
        assert d["frac_no_positive"] > 0  # a long tail in batches of 16 leaves lone anchors
        assert d["eta_term"] > 0 and d["positive_term"] > 0
        assert d["eta_to_positive"] == pytest.approx(d["eta_term"] / d["positive_term"])
        assert d["positive_term"] + d["eta_term"] == pytest.approx(record["loss"], rel=1e-5)
    assert "runtime" not in json.dumps(m["stage1"])


# ----------------------------------------------------------------------------- figures, tables


def test_pca_matches_numpy_svd_and_figures_are_written(tmp_path):
    from asymcl.embedding import pca_2d

    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 1, (40, 6)) + 4 * np.eye(6)[0], rng.normal(0, 1, (25, 6)) - 4 * np.eye(6)[0]])
    coords, ratio = pca_2d(x)
    centred = x - x.mean(0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    ref = centred @ vt[:2].T
    np.testing.assert_allclose(np.abs(coords), np.abs(ref), atol=1e-8)
    np.testing.assert_allclose(ratio, (s[:2] ** 2) / (s ** 2).sum(), rtol=1e-10)
    npz = tmp_path / "embeddings.npz"
    np.savez(npz, encoder=x, projection=x / np.linalg.norm(x, axis=1, keepdims=True),
             labels=np.array([0] * 40 + [1] * 25), classes=np.array(["0", "6"]), ids=np.arange(65).astype(str))
    out = tmp_path / "fig.png"
    assert main(["embedding-figure", "--panel", "CL, 50:50", str(npz), "--panel", "AFCL", str(npz),
                 "--out", str(out), "--out", str(tmp_path / "fig.pdf")]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "fig.pdf").read_bytes()[:4] == b"%PDF"
    assert main(["embedding-figure", "--panel", "x", str(tmp_path / "none.npz"), "--out", str(out)]) == 2


def test_diagnostics_figure_from_metrics(tmp_path):
    for i, f0 in enumerate([0.3, 0.5]):
        epochs = [{"epoch": e, "diagnostics": {"frac_no_positive": f0 / e, "frac_one_positive": 0.1,
                                               "eta_to_positive": 0.2 * e}} for e in (1, 2, 3)]
        (tmp_path / f"m{i}.json").write_text(json.dumps({"stage1": {"epochs": epochs}}))
    from asymcl.embedding import epoch_diagnostics

    d = epoch_diagnostics(tmp_path / "m1.json")
    assert d["epoch"] == [1, 2, 3] and d["frac_no_positive"] == pytest.approx([0.5, 0.25, 0.5 / 3])
    out = tmp_path / "diag.png"
    assert main(["diagnostics-figure", "--series", "CL", str(tmp_path / "m0.json"), str(tmp_path / "m1.json"),
                 "--out", str(out)]) == 0
    assert out.stat().st_size > 1000


def test_family_table_joins_summary_and_paired(tmp_path):
    from asymcl.families import family_table

    exp = {"name": "views", "dataset": "fmnist", "baseline": "eta0_gamma0", "metrics": ["uwa"],
           "scenarios": [{"id": "98-2", "label": "98:2"}],
           "cells": [{"id": "eta0_gamma0", "label": "CL", "eta": 0, "gamma": 0},
                     {"id": "eta0_gamma0_views-2", "label": None, "eta": 0, "gamma": 0, "views": 2}]}
    summary = pd.DataFrame([
        {"dataset": "fmnist", "scenario": "98-2", "cell": "eta0_gamma0", "eta": 0, "gamma": 0, "metric": "uwa",
         "mean": 60.0, "std": 2.0, "n": 4, "ci_low": 56.8, "ci_high": 63.2},
        {"dataset": "fmnist", "scenario": "98-2", "cell": "eta0_gamma0_views-2", "eta": 0, "gamma": 0,
         "metric": "uwa", "mean": 65.0, "std": 1.0, "n": 4, "ci_low": 63.4, "ci_high": 66.6},
        {"dataset": "fmnist", "scenario": "98-2", "cell": "eta0_gamma0", "eta": 0, "gamma": 0, "metric": "accuracy",
         "mean": 97.0, "std": 0.5, "n": 4, "ci_low": 96.2, "ci_high": 97.8},
    ])
    paired = pd.DataFrame([{"experiment": "views", "dataset": "fmnist", "scenario": "98-2",
                            "cell": "eta0_gamma0_views-2", "baseline": "eta0_gamma0", "label": "x", "metric": "uwa",
                            "n": 4, "mean_diff": 5.0, "std_diff": 1.5, "ci_low": 2.6, "ci_high": 7.4,
                            "p_value": 0.01}])
    t = family_table(exp, summary, paired)
    assert t["cell"].tolist() == ["eta0_gamma0", "eta0_gamma0_views-2"]
    assert t["is_baseline"].tolist() == [True, False]
    assert t["mean"].tolist() == [60.0, 65.0] and t["n"].tolist() == [4, 4]
    assert math.isnan(t["diff_mean"][0]) and t["diff_mean"][1] == 5.0
    assert (t["diff_ci_low"][1], t["diff_ci_high"][1], t["diff_n"][1]) == (2.6, 7.4, 4)
    assert t["label"][1] == "eta=0, gamma=0"


# ----------------------------------------------------------------------------- workflow

# Merged over config/ablations-smoke.yaml in the end-to-end test: every family still runs
# through every rule, with 11 runs instead of 26 (views keeps two seeds so that its table
# has a paired difference).
SMOKE_TEST_CONFIG = """\
experiments:
  normalization:
    cells: [{eta: 0, label: ref}, {eta: 10, normalization: paper, label: paper}]
    seeds: [0]
  views: {seeds: [0, 1]}
  batch_sampler: {seeds: [0]}
  longtail: {cells: [{eta: 0, label: CL}], seeds: [0]}
  isic_split: {cells: [{eta: 0, gamma: 0, label: CL}], seeds: [0]}
  embeddings: {scenarios: ["80:20"], seeds: [0]}
select_experiments: [normalization, views, batch_sampler, longtail, isic_split, embeddings]
"""
FAMILIES = ["normalization", "views", "batch_sampler", "longtail", "isic_split", "embeddings"]


@pytest.fixture(scope="module")
def wf_project(tmp_path_factory) -> Path:
    from workflow_runs import copy_project

    return copy_project(tmp_path_factory.mktemp("abl") / "asymcl")


def _snakemake(workdir: Path, *args: str, timeout: float = 300):
    from workflow_runs import project_env, run

    return run(["snakemake", *args], workdir, project_env(workdir), timeout)


@pytest.mark.workflow
def test_ablations_config_plans_every_family(wf_project):
    from workflow_runs import parse_job_stats

    proc = _snakemake(wf_project, "-n", "-p", "--configfile", "config/ablations.yaml")
    text = proc.stdout + proc.stderr
    jobs = parse_job_stats(text)
    # normalization 11 scenarios x 12 cells x 4 seeds = 528; views and batch_sampler add 2
    # cells each (their eta 0 / eta 60 cells are normalization's) x 4 scenarios x 4 seeds =
    # 32 + 32; longtail 2 x 11 x 4 = 88; isic_split 2 x 3 x 4 = 24; baselines 7 cells (its CL
    # and eta 60 cells are normalization's) x 4 x 4 = 112, baselines_acl the same runs
    # -> 816 plain runs; the embeddings family's 2 x 2 x 4 = 16 runs also declare embeddings.npz.
    assert jobs["train"] == 816 and jobs["train_embeddings"] == 16, jobs
    assert jobs["subset_fmnist"] == (11 + 2) * 4 and jobs["subset_isic2018"] == 2 * 4, jobs
    assert jobs["family_table"] == jobs["figure"] == 8, jobs
    assert jobs["diagnostics_figure"] == 4 and jobs["embedding_figure"] == 1, jobs
    # the long tail's subset: its own classes and sizes, no inherited --total
    lt = [line for line in text.splitlines() if "asymcl subset" in line and "lt-if100" in line]
    assert lt, "no subset job for lt-if100"
    assert "--classes 0 1 2 3 4 5 6 7 8 9" in lt[0] and "--imbalance-factor 100" in lt[0]
    assert "--max-per-class 600" in lt[0] and "--total" not in lt[0] and "--ratio" not in lt[0]
    assert any("--group-by-lesion" in line for line in text.splitlines() if "asymcl subset" in line)
    assert any("--views 2" in line for line in text.splitlines() if "asymcl train" in line)
    assert any("--batch-sampler balanced" in line for line in text.splitlines() if "asymcl train" in line)


@pytest.mark.workflow
def test_unknown_selected_family_is_named(wf_project, tmp_path):
    from workflow_runs import project_env

    bad = tmp_path / "bad.yaml"
    bad.write_text("select_experiments: [normalisation]\n")
    proc = __import__("subprocess").run(
        ["snakemake", "-n", "--configfile", "config/ablations.yaml", str(bad)], cwd=wf_project,
        env=project_env(wf_project), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "select_experiments" in proc.stderr + proc.stdout and "normalisation" in proc.stderr + proc.stdout


@pytest.mark.slow
@pytest.mark.workflow
def test_ablations_smoke_runs_every_family_end_to_end(wf_project, tmp_path):
    test_config = tmp_path / "abl-test.yaml"
    test_config.write_text(SMOKE_TEST_CONFIG)
    configs = ["--configfile", "config/ablations-smoke.yaml", str(test_config)]
    _snakemake(wf_project, *configs, "--cores", "2", timeout=1200)
    paths = yaml.safe_load((wf_project / "config/ablations-smoke.yaml").read_text())["paths"]
    results = wf_project / paths["results"]
    runs = pd.read_csv(results / "runs.csv", dtype={"scenario": str})
    assert len(runs) == 11
    for name in FAMILIES:
        assert "\\toprule" in (results / "tables" / f"{name}.tex").read_text()
        table = pd.read_csv(results / "tables" / f"{name}.csv", dtype={"scenario": str})
        assert len(table) and table["n"].min() >= 1, name
        assert (results / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    for extra in ("normalization_diagnostics", "views_diagnostics", "embeddings_embeddings"):
        assert (results / "figures" / f"{extra}.png").stat().st_size > 1000
        assert (results / "figures" / f"{extra}.pdf").read_bytes()[:4] == b"%PDF"
    # the views table's paired difference is the per-seed difference of the runs
    views = pd.read_csv(results / "tables" / "views.csv")
    row = views[(views.cell == "eta0_gamma0_views-2") & (views.metric == "uwa")].iloc[0]
    here = runs[runs.scenario == "80-20"].set_index(["cell", "seed"])["uwa"]
    diff = [here["eta0_gamma0_views-2", s] - here["eta0_gamma0", s] for s in (0, 1)]
    assert row.diff_n == 2 and row.diff_mean == pytest.approx(np.mean(diff), abs=1e-4)
    # long tail: 10 classes, shot-group accuracies in runs.csv
    lt = runs[runs.scenario == "lt-if10"].iloc[0]
    assert lt.n_train == 21 + 16 + 13 + 10 + 8 + 6 + 4 + 3 + 3 + 2
    assert {"many_shot_accuracy", "medium_shot_accuracy", "few_shot_accuracy"} <= set(runs.columns)
    # lesion-grouped ISIC split: no lesion on both sides
    labels = pd.read_csv(wf_project / paths["raw"] / "isic2018/labels.csv", dtype=str)
    manifest = pd.read_csv(wf_project / paths["interim"] / "isic2018/lesion/seed0/manifest.csv", dtype=str)
    lesion = manifest.merge(labels[["id", "lesion_id"]], on="id")
    assert lesion.groupby("lesion_id")["split"].nunique().max() == 1
    # two views: no anchor without a positive
    m = json.loads((results / "runs/fmnist/80-20/eta0_gamma0_views-2/seed0/metrics.json").read_text())
    assert m["stage1"]["epochs"][0]["diagnostics"]["frac_no_positive"] == 0.0
    assert (results / "runs/fmnist/80-20/eta0_gamma0_save_embeddings-true/seed0/embeddings.npz").is_file()
    # nothing left to do; the report has a section per family
    proc = _snakemake(wf_project, *configs, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr
    _snakemake(wf_project, *configs, "--report", "report.html")
    html = (wf_project / "report.html").read_text(errors="replace")
    assert all(name in html for name in FAMILIES) and "embeddings_embeddings.png" in html


# ----------------------------------------------------------------------------- baselines family

# The cells of the baselines families and the `asymcl train` flags each must get.
BASELINE_FLAGS = {
    "eta0_gamma0": [],
    "eta60_gamma0": ["--eta 60"],
    "eta0_gamma0_method-one-stage": ["--method one-stage"],
    "eta0_gamma0_classifier_loss-weighted-ce_method-one-stage": ["--method one-stage", "--classifier-loss weighted-ce"],
    "eta0_gamma0_classifier_loss-focal_method-one-stage": ["--method one-stage", "--classifier-loss focal"],
    "eta0_gamma0_classifier_loss-logit-adjusted_method-one-stage": [
        "--method one-stage", "--classifier-loss logit-adjusted"],
    "eta0_gamma0_classifier_loss-balanced-softmax_method-one-stage": [
        "--method one-stage", "--classifier-loss balanced-softmax"],
    "eta0_gamma0_stage1_loss-kcl": ["--stage1-loss kcl"],
    "eta0_gamma0_stage1_loss-class-averaged": ["--stage1-loss class-averaged"],
}


@pytest.mark.workflow
def test_baselines_families_plan_in_full(wf_project, tmp_path):
    from workflow_runs import parse_job_stats

    only = tmp_path / "only.yaml"
    only.write_text("select_experiments: [baselines, baselines_acl]\n")
    proc = _snakemake(wf_project, "-n", "-p", "--configfile", "config/ablations.yaml", str(only))
    text = proc.stdout + proc.stderr
    jobs = parse_job_stats(text)
    # 9 cells x 4 scenarios x 4 seeds, shared by the two families (trained once)
    assert jobs["train"] == 9 * 4 * 4 and jobs["subset_fmnist"] == 4 * 4, jobs
    assert jobs["family_table"] == jobs["figure"] == 2, jobs
    commands = [line for line in text.splitlines() if "asymcl train" in line]
    for scenario in ("50-50", "80-20", "95-5", "98-2"):
        for cell, flags in BASELINE_FLAGS.items():
            mine = [c for c in commands if f"/runs/fmnist/{scenario}/{cell}/seed3/" in c]
            assert len(mine) == 1, (scenario, cell)
            assert all(f in mine[0] for f in flags), (cell, mine[0])
            for other in ("--method", "--classifier-loss", "--stage1-loss"):
                assert (other in mine[0]) == any(f.startswith(other) for f in flags), (cell, other)
    # the families as the Snakefile builds them (config.yaml, then ablations.yaml over it)
    import yaml

    from asymcl.experiments import build_grid

    config = yaml.safe_load((wf_project / "config.yaml").read_text())
    config.update(yaml.safe_load((wf_project / "config" / "ablations.yaml").read_text()))
    config["select_experiments"] = ["baselines", "baselines_acl"]
    experiments = build_grid(config).experiments
    assert experiments["baselines"]["baseline"] == "eta0_gamma0"
    assert experiments["baselines_acl"]["baseline"] == "eta60_gamma0"
    for name in ("baselines", "baselines_acl"):
        assert [c["id"] for c in experiments[name]["cells"]] == list(BASELINE_FLAGS)


BASELINES_TEST_CONFIG = """\
select_experiments: [baselines, baselines_acl]
experiments:
  baselines: {seeds: [0]}
  baselines_acl: {seeds: [0]}
"""


@pytest.mark.slow
@pytest.mark.workflow
def test_baselines_smoke_runs_end_to_end_with_tables_and_figures(wf_project, tmp_path):
    test_config = tmp_path / "baselines-test.yaml"
    test_config.write_text(BASELINES_TEST_CONFIG)
    configs = ["--configfile", "config/ablations-smoke.yaml", str(test_config)]
    _snakemake(wf_project, *configs, "--cores", "2", timeout=1800)
    paths = yaml.safe_load((wf_project / "config/ablations-smoke.yaml").read_text())["paths"]
    results = wf_project / paths["results"]
    runs = pd.read_csv(results / "runs.csv", dtype={"scenario": str})
    runs = runs[runs.scenario == "80-20"]
    # one run per cell: the two families share them
    assert sorted(runs.cell) == sorted(BASELINE_FLAGS) and (runs.seed == 0).all()
    here = runs.set_index("cell")
    assert (here.loc[[c for c in BASELINE_FLAGS if "one-stage" in c], "method"] == "one-stage").all()
    assert here.loc["eta0_gamma0_stage1_loss-kcl", "stage1_loss"] == "kcl"
    for cell in BASELINE_FLAGS:
        m = json.loads((results / f"runs/fmnist/80-20/{cell}/seed0/metrics.json").read_text())
        assert len(m["stage2"]["epochs"]) == (0 if "one-stage" in cell else 1), cell
        assert 0 <= m["uwa"] <= 100 and m["nan_steps"] == 0, cell
    for name, baseline in (("baselines", "eta0_gamma0"), ("baselines_acl", "eta60_gamma0")):
        assert "\\toprule" in (results / "tables" / f"{name}.tex").read_text()
        assert (results / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        table = pd.read_csv(results / "tables" / f"{name}.csv", dtype={"scenario": str})
        assert list(table[table.metric == "uwa"].cell) == list(BASELINE_FLAGS), name
        assert table[table.is_baseline].cell.unique().tolist() == [baseline], name
        # the paired difference is the difference of the runs (one seed)
        for row in table[(table.metric == "uwa") & ~table.is_baseline].itertuples():
            assert row.diff_n == 1, (name, row.cell)
            assert row.diff_mean == pytest.approx(here.loc[row.cell, "uwa"] - here.loc[baseline, "uwa"], abs=1e-4)
    proc = _snakemake(wf_project, *configs, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr

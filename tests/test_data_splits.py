"""Scenario draws, stratified and lesion-grouped splits, manifests and packed FMNIST subsets."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from asymcl.cli import main
from asymcl.data import fmnist
from asymcl.data.packed import load_split
from asymcl.data.splits import Candidate, SplitError, make_subset, parse_ratio, scenario_counts
from asymcl.data.synthetic import synth_fmnist, synth_isic


@pytest.mark.parametrize(
    "total, ratio, expected",
    [
        (1000, [98, 2], [980, 20]),
        (1000, [95, 5], [950, 50]),
        (1000, [55, 45], [550, 450]),
        (101, [50, 50], [51, 50]),  # half goes to the earlier (majority) class
        (7, [2, 1], [5, 2]),  # 4.67 / 2.33
        (100, [50, 30, 20], [50, 30, 20]),
        (10, [1, 1, 1], [4, 3, 3]),  # 3.33 each; the leftover goes to the first
    ],
)
def test_scenario_counts_hand_computed(total, ratio, expected):
    assert scenario_counts(total, ratio) == expected


def test_parse_ratio_errors():
    assert parse_ratio("50:30:20", 3) == [50.0, 30.0, 20.0]
    with pytest.raises(SplitError, match="2 parts but there are 3 classes"):
        parse_ratio("98:2", 3)
    with pytest.raises(SplitError, match="positive"):
        parse_ratio("98:0", 2)


def binary_candidates(n_per_class: int = 1500) -> list[Candidate]:
    return [Candidate(str(i), "0" if i % 2 else "6") for i in range(2 * n_per_class)]


def test_98_2_of_1000_counts_and_split():
    rows = make_subset(binary_candidates(), ["0", "6"], seed=0, ratio=[98, 2], total=1000)
    counts = Counter((r.label, r.split) for r in rows)
    assert counts == {("0", "train"): 686, ("0", "test"): 294, ("6", "train"): 14, ("6", "test"): 6}
    assert len({r.id for r in rows}) == 1000


def test_draw_depends_on_seed_only():
    cands = binary_candidates()
    a = make_subset(cands, ["0", "6"], seed=1, ratio=[9, 1], total=200)
    b = make_subset(list(reversed(cands)), ["0", "6"], seed=1, ratio=[9, 1], total=200)  # input order irrelevant
    c = make_subset(cands, ["0", "6"], seed=2, ratio=[9, 1], total=200)
    assert sorted(a, key=lambda r: r.id) == sorted(b, key=lambda r: r.id)
    assert {r.id for r in a} != {r.id for r in c}


def test_not_enough_images_says_how_many():
    cands = [Candidate(str(i), "0") for i in range(990)] + [Candidate(f"s{i}", "6") for i in range(5)]
    with pytest.raises(SplitError, match="class 6 has only 5 images available .* asks for 20"):
        make_subset(cands, ["0", "6"], seed=0, ratio=[98, 2], total=1000)


def test_multiclass_ratio_and_all_images():
    cands = [Candidate(str(i), str(i % 3)) for i in range(900)]
    rows = make_subset(cands, ["2", "0", "1"], seed=0, ratio=[50, 30, 20], total=300)
    assert Counter(r.label for r in rows) == {"2": 150, "0": 90, "1": 60}
    assert Counter(r.label for r in rows if r.split == "test") == {"2": 45, "0": 27, "1": 18}
    everything = make_subset(cands, ["0", "1"], seed=0)
    assert Counter(r.label for r in everything) == {"0": 300, "1": 300}


def test_group_by_lesion_keeps_lesions_whole():
    rng = np.random.default_rng(0)
    cands = []
    for lesion in range(300):
        label = "MEL" if lesion < 220 else "DF"
        for k in range(int(rng.integers(1, 4))):
            cands.append(Candidate(f"ISIC_{lesion:04d}_{k}", label, f"HAM_{lesion}"))
    rows = make_subset(cands, ["MEL", "DF"], seed=3, group_by_lesion=True)
    lesion_of = {c.id: c.group for c in cands}
    splits_per_lesion = pd.DataFrame([(lesion_of[r.id], r.split) for r in rows]).groupby(0)[1].nunique()
    assert splits_per_lesion.max() == 1
    for label in ("MEL", "DF"):
        n = sum(c.label == label for c in cands)
        n_test = sum(r.label == label and r.split == "test" for r in rows)
        assert abs(n_test - round(0.3 * n)) <= 2  # closest lesion boundary to the target
    with pytest.raises(SplitError, match="needs a lesion id"):
        make_subset([Candidate("a", "MEL"), Candidate("b", "DF")], ["MEL", "DF"], seed=0, group_by_lesion=True)


@pytest.fixture(scope="module")
def fmnist_raw(tmp_path_factory) -> Path:
    """Synthetic FMNIST large enough for the paper's 98:2 of 1000 scenario."""
    out = tmp_path_factory.mktemp("fmnist_raw")
    synth_fmnist(out, per_class=1000, test_per_class=5, seed=0)
    return out


def run_subset(raw: Path, out: Path, seed: int, *extra: str) -> int:
    return main(["subset", "--dataset", "fmnist", "--raw", str(raw), "--ratio", "98:2", "--total", "1000",
                 "--seed", str(seed), "--out", str(out), *extra])


def test_cli_subset_fmnist_end_to_end(fmnist_raw, tmp_path):
    assert run_subset(fmnist_raw, tmp_path / "a", 0) == 0
    manifest = pd.read_csv(tmp_path / "a" / "manifest.csv", dtype=str)
    assert list(manifest.columns) == ["id", "label", "split"]
    assert Counter(zip(manifest.label, manifest.split)) == {
        ("0", "train"): 686, ("0", "test"): 294, ("6", "train"): 14, ("6", "test"): 6}
    images, labels = fmnist.load_split(fmnist_raw, "train")
    assert (labels[manifest.id.astype(int)].astype(str) == manifest.label).all()
    # documented row order: split (train, test), class in --classes order, numeric id
    split_rank = manifest.split.map({"train": 0, "test": 1})
    key = list(zip(split_rank, manifest.label.map({"0": 0, "6": 1}), manifest.id.astype(int)))
    assert key == sorted(key)
    for split in ("train", "test"):
        packed = load_split(tmp_path / "a" / f"{split}.pt")
        part = manifest[manifest.split == split]
        assert packed.classes == ["0", "6"] and packed.ids == part.id.tolist()
        assert tuple(packed.images.shape) == (len(part), 1, 28, 28)
        np.testing.assert_array_equal(packed.images[:, 0].numpy(), images[part.id.astype(int)])
        assert packed.targets.tolist() == [0 if y == "0" else 1 for y in part.label]


def test_cli_subset_same_seed_same_bytes_other_seed_differs(fmnist_raw, tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        assert run_subset(fmnist_raw, tmp_path / name, seed) == 0
    a, b, c = ((tmp_path / n / "manifest.csv").read_bytes() for n in "abc")
    assert a == b and a != c
    pa, pb = load_split(tmp_path / "a" / "train.pt"), load_split(tmp_path / "b" / "train.pt")
    assert pa.ids == pb.ids and pa.images.equal(pb.images) and pa.targets.equal(pb.targets)


def test_cli_subset_user_errors(fmnist_raw, tmp_path, capsys):
    assert main(["subset", "--dataset", "fmnist", "--raw", str(fmnist_raw), "--classes", "0", "11",
                 "--seed", "0", "--out", str(tmp_path)]) == 2
    assert "0=T-shirt/top" in capsys.readouterr().err
    assert run_subset(fmnist_raw, tmp_path, 0, "--from-split", "test") == 2
    assert "has only 5 images available" in capsys.readouterr().err
    assert main(["subset", "--dataset", "fmnist", "--raw", str(tmp_path / "none"), "--seed", "0",
                 "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_subset_multiclass_fmnist(fmnist_raw, tmp_path):
    assert main(["subset", "--dataset", "fmnist", "--raw", str(fmnist_raw), "--classes", "0", "6", "2",
                 "--ratio", "50:30:20", "--total", "100", "--seed", "0", "--out", str(tmp_path)]) == 0
    packed = load_split(tmp_path / "train.pt")
    assert packed.classes == ["0", "6", "2"]
    assert np.bincount(packed.targets.numpy()).tolist() == [35, 21, 14]


def test_cli_subset_isic_grouped_on_synthetic(tmp_path):
    synth_isic(tmp_path / "syn", per_class=30, other_per_class=1, seed=0)
    raw = tmp_path / "raw"
    assert main(["download", "isic2018", "--source", str(tmp_path / "syn"), "--out", str(raw),
                 "--checksums", str(tmp_path / "syn" / "SHA256SUMS")]) == 0
    assert main(["subset", "--dataset", "isic2018", "--raw", str(raw), "--group-by-lesion", "--seed", "4",
                 "--out", str(tmp_path / "sub")]) == 0
    manifest = pd.read_csv(tmp_path / "sub" / "manifest.csv", dtype=str)
    labels = pd.read_csv(raw / "labels.csv", dtype=str).set_index("id")
    assert Counter(manifest.label) == {"MEL": 30, "DF": 30}
    assert manifest.assign(lesion=manifest.id.map(labels.lesion_id)).groupby("lesion").split.nunique().max() == 1
    assert not (tmp_path / "sub" / "train.pt").exists()  # ISIC images are packed by `resize`
    assert main(["subset", "--dataset", "isic2018", "--raw", str(raw), "--classes", "MEL", "NV",
                 "--seed", "0", "--out", str(tmp_path / "x")]) == 2


def test_real_fmnist_98_2_of_1000(shared_data, tmp_path):
    raw = tmp_path / "raw"
    assert main(["download", "fmnist", "--source", (shared_data / "fmnist").as_uri(), "--out", str(raw)]) == 0
    assert run_subset(raw, tmp_path / "sub", 0) == 0
    manifest = pd.read_csv(tmp_path / "sub" / "manifest.csv", dtype=str)
    counts = Counter(zip(manifest.label, manifest.split))
    assert counts["0", "train"] + counts["0", "test"] == 980 and counts["6", "train"] + counts["6", "test"] == 20
    for key, want in {("0", "train"): 686, ("0", "test"): 294, ("6", "train"): 14, ("6", "test"): 6}.items():
        assert abs(counts[key] - want) <= 1
    ids = manifest.id.astype(int)
    assert ids.between(0, 59999).all() and ids.is_unique
    _, labels = fmnist.load_split(raw, "train")  # the official labels
    assert (labels[ids].astype(str) == manifest.label).all()
    train = load_split(tmp_path / "sub" / "train.pt")
    assert tuple(train.images.shape) == (700, 1, 28, 28) and train.classes == ["0", "6"]

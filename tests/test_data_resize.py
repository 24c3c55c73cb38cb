"""Resize step: Pillow antialiased resize to size x size RGB, packed in manifest order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from asymcl.cli import main
from asymcl.data.packed import load_split
from asymcl.data.synthetic import synth_isic


@pytest.fixture(scope="module")
def isic_subset(tmp_path_factory) -> tuple[Path, Path]:
    """(raw dir with images/, subset dir with manifest.csv) from the synthetic archives."""
    root = tmp_path_factory.mktemp("isic")
    synth_isic(root / "syn", per_class=8, other_per_class=2, seed=1)
    assert main(["download", "isic2018", "--source", (root / "syn").as_uri(), "--out", str(root / "raw"),
                 "--checksums", str(root / "syn" / "SHA256SUMS")]) == 0
    assert main(["subset", "--dataset", "isic2018", "--raw", str(root / "raw"), "--seed", "0",
                 "--out", str(root / "sub")]) == 0
    return root / "raw", root / "sub"


def test_resize_packs_shape_dtype_targets_and_pixels(isic_subset, tmp_path):
    raw, sub = isic_subset
    out = tmp_path / "packed"
    assert main(["resize", "--manifest", str(sub / "manifest.csv"), "--images", str(raw / "images"),
                 "--size", "20", "--out", str(out)]) == 0
    manifest = pd.read_csv(sub / "manifest.csv", dtype=str)
    assert (out / "manifest.csv").read_bytes() == (sub / "manifest.csv").read_bytes()
    for split in ("train", "test"):
        packed = load_split(out / f"{split}.pt")
        part = manifest[manifest.split == split]
        assert packed.images.dtype == torch.uint8 and tuple(packed.images.shape) == (len(part), 3, 20, 20)
        assert packed.ids == part.id.tolist() and packed.classes == ["MEL", "DF"]
        assert packed.targets.tolist() == [["MEL", "DF"].index(y) for y in part.label]
        # Reference: Pillow's LANCZOS resize of the extracted JPEG, HWC -> CHW.
        ref = np.asarray(Image.open(raw / "images" / f"{part.id.iloc[0]}.jpg").convert("RGB").resize(
            (20, 20), Image.Resampling.LANCZOS))
        np.testing.assert_array_equal(packed.images[0].permute(1, 2, 0).numpy(), ref)


def test_resize_in_place_box_and_class_order(isic_subset, tmp_path):
    raw, sub = isic_subset
    work = tmp_path / "sub"
    work.mkdir()
    (work / "manifest.csv").write_bytes((sub / "manifest.csv").read_bytes())
    assert main(["resize", "--manifest", str(work / "manifest.csv"), "--images", str(raw / "images"),
                 "--size", "8", "--resample", "box", "--classes", "DF", "MEL", "--out", str(work)]) == 0
    packed = load_split(work / "test.pt")
    assert packed.classes == ["DF", "MEL"] and tuple(packed.images.shape[1:]) == (3, 8, 8)
    first = Image.open(raw / "images" / f"{packed.ids[0]}.jpg").convert("RGB").resize((8, 8), Image.Resampling.BOX)
    np.testing.assert_array_equal(packed.images[0].permute(1, 2, 0).numpy(), np.asarray(first))


def test_resize_missing_image_is_a_user_error(isic_subset, tmp_path, capsys):
    raw, sub = isic_subset
    empty = tmp_path / "images"
    empty.mkdir()
    assert main(["resize", "--manifest", str(sub / "manifest.csv"), "--images", str(empty),
                 "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "o" / "train.pt").exists()

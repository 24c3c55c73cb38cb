"""``asymcl subset --image-size``: FMNIST resized through the ISIC resize rule (issue 14)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from asymcl.data import fmnist
from asymcl.data.packed import load_split
from asymcl.data.resize import load_resized
from asymcl.data.synthetic import synth_fmnist
from cli_probe import run_cli


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fm_raw")
    synth_fmnist(out, per_class=12, seed=5)
    return out


def subset(raw: Path, out: Path, *extra: str) -> None:
    done = run_cli(["subset", "--dataset", "fmnist", "--raw", raw, "--ratio", "3:1", "--total", "16",
                    "--seed", "3", "--out", out, *extra])
    assert done.returncode == 0, done.stderr


def test_image_size_128_matches_the_isic_resize_path(raw, tmp_path):
    subset(raw, tmp_path / "s128", "--image-size", "128")
    images, _ = fmnist.load_split(raw, "train")
    manifest = pd.read_csv(tmp_path / "s128" / "manifest.csv", dtype=str)
    for split in ("train", "test"):
        packed = load_split(tmp_path / "s128" / f"{split}.pt")
        ids = manifest[manifest.split == split].id.astype(int).tolist()
        assert tuple(packed.images.shape) == (len(ids), 1, 128, 128)
        for k, index in enumerate(ids):
            # The ISIC path: an image file opened by Pillow, converted to RGB, LANCZOS-resized.
            # A lossless PNG of the 28x28 grey image goes through it unchanged; grey in,
            # so all three channels equal the single FMNIST channel.
            png = tmp_path / f"{index}.png"
            Image.fromarray(images[index]).save(png)
            via_isic = load_resized(png, 128, "lanczos")
            for channel in via_isic:
                np.testing.assert_array_equal(packed.images[k, 0].numpy(), channel)


def test_image_size_128_differs_from_nearest_upscaling(raw, tmp_path):
    """Guard against a resize that merely repeats pixels (LANCZOS interpolates)."""
    subset(raw, tmp_path / "s", "--image-size", "56")
    packed = load_split(tmp_path / "s" / "train.pt")
    images, _ = fmnist.load_split(raw, "train")
    nearest = np.repeat(np.repeat(images[int(packed.ids[0])], 2, axis=0), 2, axis=1)
    assert not np.array_equal(packed.images[0, 0].numpy(), nearest)


def test_image_size_28_is_byte_for_byte_the_default(raw, tmp_path):
    subset(raw, tmp_path / "default")
    subset(raw, tmp_path / "s28", "--image-size", "28")
    for name in ("train.pt", "test.pt", "manifest.csv"):
        assert (tmp_path / "default" / name).read_bytes() == (tmp_path / "s28" / name).read_bytes()
    images, _ = fmnist.load_split(raw, "train")
    packed = load_split(tmp_path / "s28" / "train.pt")
    assert tuple(packed.images.shape[1:]) == (1, 28, 28)
    np.testing.assert_array_equal(packed.images[:, 0].numpy(), images[[int(i) for i in packed.ids]])


def test_same_manifest_at_every_image_size(raw, tmp_path):
    """The size changes pixels only: the same seed draws the same images and split."""
    subset(raw, tmp_path / "a")
    subset(raw, tmp_path / "b", "--image-size", "64")
    assert (tmp_path / "a" / "manifest.csv").read_bytes() == (tmp_path / "b" / "manifest.csv").read_bytes()

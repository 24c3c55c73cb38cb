"""Resize the images of a manifest to ``size x size`` RGB and pack them per split.

Images are decoded with Pillow, converted to RGB and resized with an antialiasing filter
(LANCZOS by default, BOX as a cheaper alternative) straight to a square, as the paper does
(600x450 ISIC images become 128x128; the aspect ratio is not kept). The packed splits keep
the manifest's row order.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from asymcl.data.manifest import SPLITS, Row, classes_in_order, read_manifest

RESAMPLING = {"lanczos": Image.Resampling.LANCZOS, "box": Image.Resampling.BOX}


def load_resized(path: Path, size: int, resample: str = "lanczos") -> np.ndarray:
    """One image as ``uint8 [3, size, size]``."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB").resize((size, size), RESAMPLING[resample])
    except FileNotFoundError:
        raise FileNotFoundError(
            f"image {path} does not exist; was it extracted (`asymcl download isic2018 --classes ...`)?"
        ) from None
    except UnidentifiedImageError as err:
        raise ValueError(f"{path} is not a readable image: {err}") from err
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def resize_manifest(
    manifest: str | os.PathLike,
    images_dir: str | os.PathLike,
    size: int,
    out_dir: str | os.PathLike,
    *,
    classes: list[str] | None = None,
    resample: str = "lanczos",
    extension: str = ".jpg",
    progress: bool = True,
) -> dict[str, int]:
    """Write ``out_dir/train.pt`` and ``out_dir/test.pt``; returns images per split."""
    import torch

    from asymcl.data.packed import PackedSplit, save_split

    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    if resample not in RESAMPLING:
        raise ValueError(f"resample must be one of {sorted(RESAMPLING)}, got {resample!r}")
    rows = read_manifest(manifest)
    classes = classes or classes_in_order(rows)
    unknown = sorted({r.label for r in rows} - set(classes))
    if unknown:
        raise ValueError(f"manifest labels {unknown} are not in classes {classes}")
    images_dir = Path(images_dir)
    counts = {}
    for split in SPLITS:
        split_rows: list[Row] = [r for r in rows if r.split == split]
        images = np.zeros((len(split_rows), 3, size, size), dtype=np.uint8)
        for i, row in enumerate(tqdm(split_rows, desc=f"resize {split}", unit="img", disable=not progress)):
            images[i] = load_resized(images_dir / f"{row.id}{extension}", size, resample)
        targets = torch.tensor([classes.index(r.label) for r in split_rows], dtype=torch.int64)
        packed = PackedSplit(torch.from_numpy(images), targets, [r.id for r in split_rows], list(classes))
        save_split(Path(out_dir) / f"{split}.pt", packed)
        counts[split] = len(split_rows)
    return counts

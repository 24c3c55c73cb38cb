"""Resize the images of a manifest to ``size x size`` RGB and pack them per split.

Images are decoded with Pillow, converted to RGB and resized (`resize_image`, also used
for FMNIST at ``asymcl subset --image-size``) with an antialiasing filter
(LANCZOS by default, BOX as a cheaper alternative) straight to a square, as the paper does
(600x450 ISIC images become 128x128; the aspect ratio is not kept). The packed splits keep
the manifest's row order.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from asymcl.data.checks import IMAGE_SIZE_MAX
from asymcl.data.manifest import SPLITS, Row, classes_in_order, read_manifest
from asymcl.data.staging import staged_outputs
from asymcl.errors import InputError

RESAMPLING = {"lanczos": Image.Resampling.LANCZOS, "box": Image.Resampling.BOX}


class ImageReadError(InputError):
    """An input image is missing, truncated or not an image."""


def check_resize_options(size: int, resample: str) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= IMAGE_SIZE_MAX:
        raise InputError(f"--size {size}: expected an integer in [1, {IMAGE_SIZE_MAX}] (pixels per side)")
    if resample not in RESAMPLING:
        raise InputError(f"--resample {resample!r}: expected one of {sorted(RESAMPLING)}")


def resize_image(img: Image.Image, size: int, resample: str = "lanczos") -> np.ndarray:
    """``img`` resized to ``size x size`` as ``uint8 [C, size, size]`` (C = 1 for mode L, 3 for RGB).

    The one resize rule of the package: ISIC images (RGB) and, on request, FMNIST images
    (mode L) both go through it.
    """
    resized = np.asarray(img.resize((size, size), RESAMPLING[resample]), dtype=np.uint8)
    return resized[None] if resized.ndim == 2 else resized.transpose(2, 0, 1)


def resize_gray_batch(images: np.ndarray, size: int, resample: str = "lanczos") -> np.ndarray:
    """``uint8 [N, H, W]`` grey images -> ``uint8 [N, 1, size, size]`` through `resize_image`."""
    out = np.empty((images.shape[0], 1, size, size), dtype=np.uint8)
    for i, image in enumerate(images):
        out[i] = resize_image(Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)), size, resample)
    return out


def load_resized(path: Path, size: int, resample: str = "lanczos") -> np.ndarray:
    """One image file as ``uint8 [3, size, size]`` (converted to RGB, then `resize_image`)."""
    try:
        with Image.open(path) as img:
            return resize_image(img.convert("RGB"), size, resample)
    except FileNotFoundError:
        raise ImageReadError(
            f"image {path} does not exist; was it extracted (`asymcl download isic2018 --classes ...`)?"
        ) from None
    except IsADirectoryError:
        raise ImageReadError(f"image {path} is a folder, expected an image file") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        # UnidentifiedImageError (not an image) and "image file is truncated" are OSErrors.
        raise ImageReadError(
            f"image {path} is truncated or not a readable image ({err}); extract it again "
            "(`asymcl download isic2018`) or drop it from the manifest"
        ) from None


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
    """Write ``out_dir/train.pt``, ``out_dir/test.pt`` and a copy of the manifest, all or nothing.

    Every image is decoded before any output is renamed into place (`staged_outputs`), so a
    corrupt image in the test split leaves an existing ``out_dir`` exactly as it was.
    Returns images per split.
    """
    import torch

    from asymcl.data.packed import PackedSplit, write_split

    check_resize_options(size, resample)
    rows = read_manifest(manifest)
    classes = classes or classes_in_order(rows)
    unknown = sorted({r.label for r in rows} - set(classes))
    if unknown:
        raise InputError(f"{manifest}: labels {unknown} are not in --classes {classes}; add them or omit --classes")
    images_dir = Path(images_dir)
    manifest_bytes = Path(manifest).read_bytes()  # read now: it may be replaced by its own copy below
    counts = {}
    with staged_outputs(out_dir, [*(f"{split}.pt" for split in SPLITS), "manifest.csv"]) as temps:
        for split in SPLITS:
            split_rows: list[Row] = [r for r in rows if r.split == split]
            images = np.zeros((len(split_rows), 3, size, size), dtype=np.uint8)
            for i, row in enumerate(tqdm(split_rows, desc=f"resize {split}", unit="img", disable=not progress)):
                images[i] = load_resized(images_dir / f"{row.id}{extension}", size, resample)
            targets = torch.tensor([classes.index(r.label) for r in split_rows], dtype=torch.int64)
            packed = PackedSplit(torch.from_numpy(images), targets, [r.id for r in split_rows], list(classes))
            write_split(temps[f"{split}.pt"], packed)
            counts[split] = len(split_rows)
        temps["manifest.csv"].write_bytes(manifest_bytes)
    return counts

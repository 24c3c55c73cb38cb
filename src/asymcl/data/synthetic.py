"""Tiny synthetic datasets in the exact official formats, for tests and the smoke workflow.

`synth_fmnist` writes the four Fashion-MNIST idx ``.gz`` files; `synth_isic` writes the two
ISIC 2018 Task 3 zips (official folder names, one-hot ground-truth CSV with all seven
class columns) and a ``HAM10000_metadata.csv`` in which some lesions have 2-3 images. Both
write a ``SHA256SUMS`` so that ``asymcl download --source file://DIR --checksums
DIR/SHA256SUMS`` runs the real download, verification and extraction code.

Each class has its own pattern (FMNIST: a grating whose orientation and frequency depend on
the class inside a class-dependent silhouette; ISIC: a lesion blob whose colour, size and
texture depend on the class) plus noise and jitter, so a small CNN can tell them apart but
not by a single pixel. Output bytes are a pure function of the arguments (fixed gzip/zip
timestamps, deterministic JPEG encoding), so checksums are stable.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from asymcl.data import fmnist, isic
from asymcl.io import atomic_path, write_text_atomic

ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def write_sha256sums(out_dir: Path, names: list[str]) -> Path:
    lines = []
    for name in sorted(names):
        digest = hashlib.sha256((out_dir / name).read_bytes()).hexdigest()
        lines.append(f"{digest}  {name}\n")
    path = out_dir / "SHA256SUMS"
    write_text_atomic(path, "".join(lines))
    return path


# --- Fashion-MNIST -------------------------------------------------------------------------


def fmnist_pattern(label: int, rng: np.random.Generator) -> np.ndarray:
    """A 28x28 uint8 image for class ``label``: silhouette x oriented grating + noise."""
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float64)
    dy, dx = rng.integers(-2, 3, size=2)
    y, x = yy - 13.5 - dy, xx - 13.5 - dx
    theta = np.pi * label / 10.0
    freq = 0.35 + 0.15 * (label % 3)
    grating = 0.5 + 0.5 * np.cos(freq * (x * np.cos(theta) + y * np.sin(theta)))
    if label % 2 == 0:  # even classes: an ellipse whose aspect depends on the class
        a, b = 9.0 + label / 3.0, 12.0 - label / 3.0
        mask = (x / a) ** 2 + (y / b) ** 2 <= 1.0
    else:  # odd classes: a rectangle ("trousers", "sneakers", ...) of class-dependent size
        mask = (np.abs(x) <= 5 + label / 2.0) & (np.abs(y) <= 12 - label / 2.0)
    image = 40.0 + 200.0 * grating * mask + rng.normal(0.0, 20.0, size=(28, 28))
    return np.clip(image, 0, 255).astype(np.uint8)


def synth_fmnist(
    out_dir: str | os.PathLike, per_class: int = 20, test_per_class: int | None = None, seed: int = 0
) -> Path:
    """Write synthetic ``train-*``/``t10k-*`` idx files for all 10 classes; returns SHA256SUMS."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    sizes = {"train": per_class, "test": per_class if test_per_class is None else test_per_class}
    for split, n in sizes.items():
        labels = rng.permutation(np.repeat(np.arange(10, dtype=np.uint8), n))
        images = np.stack([fmnist_pattern(int(y), rng) for y in labels]) if n else np.zeros((0, 28, 28), np.uint8)
        images_name, labels_name = fmnist.FILES[split]
        fmnist.write_idx(out_dir / images_name, images)
        fmnist.write_idx(out_dir / labels_name, labels)
    return write_sha256sums(out_dir, fmnist.FILE_NAMES)


# --- ISIC 2018 ----------------------------------------------------------------------------

# class -> (lesion colour RGB, blob radius as a fraction of the height, texture)
_ISIC_LOOK = {
    "MEL": ((60, 35, 25), 0.38, "spots"),
    "NV": ((125, 85, 55), 0.28, "plain"),
    "BCC": ((205, 125, 135), 0.25, "plain"),
    "AKIEC": ((185, 60, 50), 0.30, "stripes"),
    "BKL": ((150, 115, 70), 0.33, "stripes"),
    "DF": ((165, 95, 85), 0.15, "ring"),
    "VASC": ((140, 30, 85), 0.20, "plain"),
}
SKIN = np.array([225.0, 185.0, 155.0])
ISIC_SIZE = (64, 48)  # width, height: the official 4:3 aspect, tiny


def isic_pattern(label: str, rng: np.random.Generator, size: tuple[int, int] = ISIC_SIZE) -> np.ndarray:
    """An ``[H, W, 3]`` uint8 dermoscopy-like image for ISIC class ``label``."""
    width, height = size
    colour, radius, texture = _ISIC_LOOK[label]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    cy = height / 2 + rng.uniform(-0.1, 0.1) * height
    cx = width / 2 + rng.uniform(-0.1, 0.1) * width
    r = radius * height * rng.uniform(0.85, 1.15)
    dist = np.hypot(yy - cy, (xx - cx) * 0.9) / r
    image = np.broadcast_to(SKIN, (height, width, 3)).copy()
    blob = dist <= 1.0
    image[blob] = colour
    if texture == "spots":  # dark irregular dots inside the lesion
        for _ in range(6):
            sy, sx = rng.uniform(-0.6, 0.6, size=2) * r
            image[np.hypot(yy - cy - sy, xx - cx - sx) <= 0.18 * r] = (25, 15, 10)
    elif texture == "stripes":
        image[blob & (np.sin(xx * 0.9) > 0.3)] *= 0.7
    elif texture == "ring":  # pale halo around a small central lesion
        image[(dist > 1.0) & (dist <= 1.7)] = (235, 210, 200)
    image += rng.normal(0.0, 12.0, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _zip_write(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def synth_isic(
    out_dir: str | os.PathLike,
    per_class: int = 12,
    other_per_class: int = 3,
    seed: int = 0,
    size: tuple[int, int] = ISIC_SIZE,
) -> Path:
    """Write synthetic ISIC 2018 Task 3 archives and metadata; returns SHA256SUMS.

    MEL and DF get ``per_class`` images each, the other five classes ``other_per_class``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = {c: per_class if c in isic.DEFAULT_CLASSES else other_per_class for c in isic.CLASSES}
    labels = list(rng.permutation([c for c in isic.CLASSES for _ in range(n[c])]))
    ids = [f"ISIC_{24306 + i:07d}" for i in range(len(labels))]

    with atomic_path(out_dir / isic.INPUT_ZIP) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        _zip_write(zf, f"{isic.INPUT_FOLDER}/LICENSE.txt", b"Synthetic test data, CC0.\n")
        for image_id, label in zip(ids, labels):
            buf = io.BytesIO()
            Image.fromarray(isic_pattern(str(label), rng, size)).save(buf, format="JPEG", quality=90)
            _zip_write(zf, f"{isic.INPUT_FOLDER}/{image_id}.jpg", buf.getvalue())

    gt = io.StringIO()
    writer = csv.writer(gt, lineterminator="\n")
    writer.writerow(isic.GT_HEADER)
    for image_id, label in zip(ids, labels):
        writer.writerow([image_id, *("1.0" if c == label else "0.0" for c in isic.CLASSES)])
    with atomic_path(out_dir / isic.GT_ZIP) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        _zip_write(zf, isic.GT_CSV_MEMBER, gt.getvalue().encode())

    # Lesions of 1-3 images within each class, as in HAM10000.
    meta = io.StringIO()
    writer = csv.writer(meta, lineterminator="\n")
    writer.writerow(isic.METADATA_COLUMNS)
    lesion = 0
    for c in isic.CLASSES:
        members = [image_id for image_id, label in zip(ids, labels) if label == c]
        while members:
            k = min(len(members), int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2])))
            for image_id in members[:k]:
                writer.writerow([f"HAM_{lesion:07d}", image_id, c.lower(), "histo", "50.0", "female", "back"])
            members, lesion = members[k:], lesion + 1
    write_text_atomic(out_dir / isic.METADATA_CSV, meta.getvalue())
    return write_sha256sums(out_dir, [isic.INPUT_ZIP, isic.GT_ZIP, isic.METADATA_CSV])

"""Build a subset folder (``manifest.csv``, and for FMNIST ``train.pt``/``test.pt``).

FMNIST ids are indices into the official idx file of ``from_split``; ISIC ids are image
ids from ``labels.csv`` (written by the ISIC extraction), grouped by ``lesion_id`` on
request. ISIC images are packed by the separate resize step.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from asymcl.data import fmnist, isic
from asymcl.data.checks import IMAGE_SIZE_MAX, check_int, check_seed
from asymcl.data.staging import staged_outputs
from asymcl.data.manifest import SPLITS, Row, sort_rows, write_manifest
from asymcl.data.splits import Candidate, SplitError, make_subset

DATASETS = ("fmnist", "isic2018")
DEFAULT_CLASSES = {"fmnist": fmnist.DEFAULT_CLASSES, "isic2018": isic.DEFAULT_CLASSES}


def check_classes(dataset: str, classes: list[str]) -> list[str]:
    allowed = fmnist.CLASSES if dataset == "fmnist" else isic.CLASSES
    unknown = [c for c in classes if c not in allowed]
    if unknown:
        hint = ", ".join(f"{i}={n}" for i, n in enumerate(fmnist.CLASS_NAMES)) if dataset == "fmnist" else " ".join(allowed)
        raise SplitError(f"unknown {dataset} class(es) {unknown}; allowed: {hint}")
    if len(set(classes)) != len(classes):
        raise SplitError(f"classes must be distinct, got {classes}")
    if len(classes) < 2:
        raise SplitError(f"a subset needs at least two classes, got {classes}")
    return list(classes)


def build_subset(
    dataset: str,
    raw_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    seed: int,
    classes: list[str] | None = None,
    ratio: list[float] | None = None,
    total: int | None = None,
    from_split: str = "train",
    group_by_lesion: bool = False,
    test_fraction: float = 0.3,
    imbalance_factor: float | None = None,
    max_per_class: int | None = None,
    image_size: int | None = None,
    split: str = "stratified",
) -> list[Row]:
    """Draw and split a scenario; write the subset folder; return the sorted manifest rows.

    The folder is written all or nothing (`staged_outputs`). ``image_size`` (FMNIST only;
    None or 28 = the original 28 x 28 pixels) resizes the packed images with the same rule
    as the ISIC resize step (`asymcl.data.resize.resize_image`, Pillow LANCZOS).
    """
    if dataset not in DATASETS:
        raise SplitError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    check_seed("--seed", seed)
    if image_size is not None:
        if dataset != "fmnist":
            raise SplitError("--image-size applies to fmnist only; ISIC images are sized by `asymcl resize --size`")
        check_int("--image-size", image_size, 1, IMAGE_SIZE_MAX, "pixels per side; 28 keeps FMNIST as published")
    classes = check_classes(dataset, classes or DEFAULT_CLASSES[dataset])
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    kwargs = dict(seed=seed, ratio=ratio, total=total, test_fraction=test_fraction, group_by_lesion=group_by_lesion,
                  imbalance_factor=imbalance_factor, max_per_class=max_per_class, split=split)

    if dataset == "fmnist":
        if group_by_lesion:
            raise SplitError("--group-by-lesion applies to isic2018 only (FMNIST has no lesions)")
        images, labels = fmnist.load_split(raw_dir, from_split)
        candidates = [Candidate(str(i), str(int(y))) for i, y in enumerate(labels)]
        rows = make_subset(candidates, classes, source=f"the FMNIST {from_split} split in {raw_dir}", **kwargs)
        rows = sort_rows(rows, classes)
        check_split_sizes(rows, classes)
        if image_size is not None and image_size != fmnist.IMAGE_SIDE:
            from asymcl.data.resize import resize_gray_batch

            keep = np.array(sorted({int(r.id) for r in rows}), dtype=np.int64)
            resized = np.zeros((images.shape[0], 1, image_size, image_size), dtype=np.uint8)
            # Only the drawn images are resized; np.zeros pages that are never written cost no memory.
            resized[keep] = resize_gray_batch(images[keep], image_size)
            images = resized
        else:
            images = images[:, None]
        with staged_outputs(out_dir, ["train.pt", "test.pt", "manifest.csv"]) as temps:
            _pack_fmnist(images, rows, classes, temps)
            write_manifest(temps["manifest.csv"], rows, classes)
        return rows
    else:
        if from_split != "train":
            raise SplitError("ISIC 2018 Task 3 has only the training archive; --from-split must be train")
        labels_csv = raw_dir / "labels.csv"
        entries = isic.read_labels(labels_csv)
        present = {label for _, label, _ in entries}
        absent = [c for c in classes if c not in present]
        if absent:
            raise SplitError(
                f"{labels_csv} has no images of {absent} (extracted: {sorted(present)}); rerun "
                f"`asymcl download isic2018 --classes {' '.join(classes)}`"
            )
        candidates = [Candidate(image, label, lesion) for image, label, lesion in entries]
        rows = sort_rows(make_subset(candidates, classes, source=str(labels_csv), **kwargs), classes)
        check_split_sizes(rows, classes)
    with staged_outputs(out_dir, ["manifest.csv"]) as temps:
        write_manifest(temps["manifest.csv"], rows, classes)
    return rows


def check_split_sizes(rows: list[Row], classes: list[str]) -> None:
    """Every class needs at least one train and one test image, or training/UWA cannot work.

    Checked here so that a too-small scenario fails when the subset is drawn, naming the
    counts, rather than later in training.
    """
    counts = Counter((r.split, r.label) for r in rows)
    empty = [(split, c) for c in classes for split in SPLITS if counts[split, c] == 0]
    if empty:
        table = ", ".join(f"{c}: {counts['train', c]} train + {counts['test', c]} test" for c in classes)
        split, c = empty[0]
        raise SplitError(
            f"class {c} gets no {split} image ({table}); every class needs at least one of each: "
            "raise --total / --max-per-class, change --ratio or --test-fraction, or try another --seed"
        )


def _pack_fmnist(images: np.ndarray, rows: list[Row], classes: list[str], temps: dict[str, Path]) -> None:
    """Write ``train.pt``/``test.pt`` to their staged paths; ``images`` is ``uint8 [N, 1, H, W]``."""
    import torch

    from asymcl.data.packed import PackedSplit, write_split

    for split in SPLITS:
        part = [r for r in rows if r.split == split]
        index = np.array([int(r.id) for r in part], dtype=np.int64)
        packed = PackedSplit(
            images=torch.from_numpy(images[index].copy()),
            targets=torch.tensor([classes.index(r.label) for r in part], dtype=torch.int64),
            ids=[r.id for r in part],
            classes=list(classes),
        )
        write_split(temps[f"{split}.pt"], packed)

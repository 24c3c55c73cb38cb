"""The subset manifest: ``manifest.csv`` with columns ``id,label,split``.

- ``id``: FMNIST index into its official idx file, or ISIC image id;
- ``label``: the dataset's own class label (FMNIST ``0``..``9``, ISIC ``MEL``, ``DF``, ...);
- ``split``: ``train`` or ``test``.

Rows are ordered by split (train, then test), then by class in the subset's ``--classes``
order, then by id (numerically for FMNIST). The order therefore depends only on *which*
images were drawn, and the class order can be recovered from the manifest alone (order of
first appearance), which `asymcl resize` uses to assign packed targets.
"""

from __future__ import annotations

import os
from pathlib import Path
from dataclasses import dataclass

from asymcl.errors import InputError
from asymcl.io import read_csv_rows, write_csv_atomic

HEADER = ["id", "label", "split"]
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Row:
    id: str
    label: str
    split: str


def _id_key(image_id: str) -> tuple[int, int | str]:
    return (0, int(image_id)) if image_id.isdigit() else (1, image_id)


def sort_rows(rows: list[Row], classes: list[str]) -> list[Row]:
    rank = {c: i for i, c in enumerate(classes)}
    return sorted(rows, key=lambda r: (SPLITS.index(r.split), rank[r.label], _id_key(r.id)))


def write_manifest(path: str | os.PathLike, rows: list[Row], classes: list[str]) -> None:
    write_csv_atomic(path, HEADER, ((r.id, r.label, r.split) for r in sort_rows(rows, classes)))


class ManifestError(InputError):
    """A manifest file is missing or not in the ``id,label,split`` format."""


def read_manifest(path: str | os.PathLike) -> list[Row]:
    if Path(path).is_dir():
        raise ManifestError(f"manifest {path} is a folder, expected the manifest.csv written by `asymcl subset`")
    try:
        rows = read_csv_rows(path, HEADER, "run `asymcl subset` first", ManifestError)
    except FileNotFoundError as err:
        raise ManifestError(f"manifest {err}") from None
    except UnicodeDecodeError:
        raise ManifestError(f"manifest {path} is not a text CSV file; pass the manifest.csv written by `asymcl subset`") from None
    short = [i for i, row in enumerate(rows, start=2) if len(row) != len(HEADER)]
    if short:
        raise ManifestError(f"{path}:{short[0]}: expected {len(HEADER)} fields (id,label,split); the file is damaged")
    rows = [Row(*row) for row in rows]
    bad = [r for r in rows if r.split not in SPLITS]
    if bad:
        raise ManifestError(f"{path}: split must be one of {SPLITS}, got {bad[0].split!r} for id {bad[0].id}")
    return rows


def classes_in_order(rows: list[Row]) -> list[str]:
    """Class labels in order of first appearance (the subset's ``--classes`` order)."""
    seen: dict[str, None] = {}
    for split in SPLITS:  # train rows first, but a class may only appear in test
        for r in rows:
            if r.split == split:
                seen.setdefault(r.label)
    return list(seen)

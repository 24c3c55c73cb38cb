"""The packed split format shared by data preparation and training.

A split (``train.pt`` or ``test.pt`` in a subset folder) is one ``torch.save``d dict:

- ``images``: uint8 tensor ``[N, C, H, W]`` (FMNIST: C = 1, 28 x 28; ISIC: C = 3, 128 x 128)
- ``targets``: int64 tensor ``[N]``, the index of each image's class in ``classes``
- ``ids``: list of N strings (FMNIST: index in its official idx file; ISIC: image id)
- ``classes``: list of the dataset's class labels as strings, in target order
  (the order given to ``asymcl subset --classes``: majority first in the paper's setups)

Keeping whole splits as one tensor file lets training hold the data on the device and
avoids thousands of small files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from asymcl.io import atomic_path


@dataclass
class PackedSplit:
    images: torch.Tensor
    targets: torch.Tensor
    ids: list[str]
    classes: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"images must be a uint8 tensor [N, C, H, W], got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        n = self.images.shape[0]
        if self.targets.shape != (n,) or len(self.ids) != n:
            raise ValueError(
                f"{n} images but {tuple(self.targets.shape)} targets and {len(self.ids)} ids"
            )
        if n and (int(self.targets.min()) < 0 or int(self.targets.max()) >= len(self.classes)):
            raise ValueError(f"targets must lie in [0, {len(self.classes)}) for classes {self.classes}")


def save_split(path: str | os.PathLike, split: PackedSplit) -> None:
    """Write ``split`` atomically to ``path``."""
    with atomic_path(path) as tmp:
        write_split(tmp, split)


def write_split(path: str | os.PathLike, split: PackedSplit) -> None:
    """Write ``split`` to ``path`` in place (callers stage it: `save_split`, `staged_outputs`)."""
    payload = {
        "images": split.images.contiguous(),
        "targets": split.targets.to(torch.int64),
        "ids": [str(i) for i in split.ids],
        "classes": [str(c) for c in split.classes],
    }
    # Save through a file handle: given a path, torch.save records the (random) temporary
    # file name inside the archive and the same content would give different bytes.
    with open(path, "wb") as handle:
        torch.save(payload, handle)


def load_split(path: str | os.PathLike) -> PackedSplit:
    """Read a split written by `save_split` (tensors and plain lists only)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"packed split {path} does not exist; run `asymcl subset` (FMNIST) or "
            "`asymcl resize` (ISIC) to create it"
        ) from None
    return PackedSplit(
        images=payload["images"],
        targets=payload["targets"],
        ids=list(payload["ids"]),
        classes=list(payload["classes"]),
    )

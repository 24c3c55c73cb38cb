"""From a subset folder to model inputs.

A subset folder's ``train.pt``/``test.pt`` (uint8 ``[N, C, H, W]``) are moved to the device
once and stay there as uint8 (1,000 FMNIST images are 0.8 MB; 860 ISIC images at 128 px are
42 MB). Each batch is gathered by index, converted to float in [0, 1], augmented on the
device (`asymcl.augment`, stage 1 only), replicated from grey to three channels when C = 1,
and normalised with the ImageNet mean/std (the statistics the torchvision ImageNet weights
were trained with; kept with ``pretrained none`` too, so the input scale does not depend on
that option).

Batches: a permutation from a seeded ``torch.Generator`` per epoch; the last, smaller batch
is kept.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from asymcl.augment import BatchAugment
from asymcl.data.packed import PackedSplit, load_split
from asymcl.engine.checkpoints import UNREADABLE, unreadable_reason
from asymcl.engine.device import DeviceContext
from asymcl.engine.spec import ConfigError

#: ImageNet channel statistics (RGB) used by torchvision's pretrained ResNets.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_subset(data_dir: str | Path) -> tuple[PackedSplit, PackedSplit]:
    """Read ``train.pt`` and ``test.pt`` from a subset folder; check they fit together."""
    data_dir = Path(data_dir)
    splits = []
    for name in ("train", "test"):
        path = data_dir / f"{name}.pt"
        if not path.is_file():
            raise ConfigError(
                f"{path} not found: a subset folder needs train.pt and test.pt "
                "(made by `asymcl subset` for FMNIST or `asymcl resize` for ISIC)"
            )
        splits.append(_read_split(path))
    train, test = splits
    if train.classes != test.classes:
        raise ConfigError(f"{data_dir}: train classes {train.classes} differ from test classes {test.classes}")
    if train.images.shape[1:] != test.images.shape[1:] or train.images.shape[1] not in (1, 3):
        raise ConfigError(
            f"{data_dir}: images must be [N, 1 or 3, H, W] with equal shapes in both splits, got "
            f"train {tuple(train.images.shape)} and test {tuple(test.images.shape)}"
        )
    if len(train.ids) < 2 or len(test.ids) < 1:
        raise ConfigError(f"{data_dir}: need >= 2 training and >= 1 test images, got {len(train.ids)} and {len(test.ids)}")
    return train, test


def _read_split(path: Path) -> PackedSplit:
    """`load_split`, with a file that is not a packed split named as bad input."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols on odd files
            return load_split(path)
    except UNREADABLE as err:
        raise ConfigError(
            f"{path} is not a packed split: {unreadable_reason(err)}; rebuild the subset folder with "
            "`asymcl subset` (FMNIST) or `asymcl resize` (ISIC)"
        ) from None


class BatchMaker:
    """Turns index batches into normalised float images, from uint8 data held on the device."""

    def __init__(self, images: torch.Tensor, ctx: DeviceContext, augment: BatchAugment | None = None) -> None:
        self.images = images.to(ctx.device)
        self.ctx = ctx
        self.augment = augment
        self.mean = torch.tensor(IMAGENET_MEAN, device=ctx.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=ctx.device).view(1, 3, 1, 1)

    def __call__(self, idx: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = self.images.index_select(0, idx).float().div_(255.0)
        if self.augment is not None and generator is not None:
            x = self.augment(x, generator)  # on C channels: cheaper before the grey -> RGB copy
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = (x - self.mean) / self.std
        if self.ctx.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator, device: torch.device) -> list[torch.Tensor]:
    """One epoch's index batches: a seeded permutation cut into ``batch_size`` pieces."""
    perm = torch.randperm(n, generator=generator).to(device)
    return list(perm.split(batch_size))

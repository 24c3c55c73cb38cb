"""Networks of the two-stage method: ResNet encoder, projection head, linear classifier.

- Encoder: a torchvision ResNet-18 or ResNet-50 with its final ``fc`` layer replaced by the
  identity, so it maps an image ``[N, 3, H, W]`` to the pooled features ``[N, 512]`` or
  ``[N, 2048]``. The stock ImageNet stem (7x7 stride-2 convolution + max-pool) is kept for
  every image size, as the paper's released code does; grey 28 px FMNIST images are
  replicated to three channels by the caller (`asymcl.engine.batches`), so ImageNet weights apply
  unchanged.
- Projection head (stage 1): ``Linear(d, d) -> ReLU -> Linear(d, 128)`` followed by L2
  normalisation, ``z = g(h) / ||g(h)||_2`` (d = 512 for ResNet-18, 2048 for ResNet-50).
- Classifier (stage 2): one ``Linear(d, K)`` layer on the frozen encoder's features.

Pretrained weights: ``"imagenet"`` (torchvision's ``IMAGENET1K_V1`` weights, fetched through
torchvision's weights API and its cache), ``"none"`` (random initialisation) or a path to a
local ``state_dict`` file (a torchvision ResNet state dict, with or without its ``fc``
entries; loaded with ``weights_only=True`` and checked strictly against the encoder's keys).
"""

from __future__ import annotations

from asymcl.errors import InputError

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

#: Encoder output width per architecture.
FEATURE_DIMS = {"resnet18": 512, "resnet50": 2048}
#: Projection output width (the paper's z has length 128).
PROJECTION_DIM = 128


class PretrainedWeightsError(InputError, RuntimeError):
    """Pretrained weights were asked for but could not be obtained or do not fit."""


def _check_arch(arch: str) -> None:
    if arch not in FEATURE_DIMS:
        raise ValueError(f"unknown arch {arch!r}; expected one of {sorted(FEATURE_DIMS)}")


def _bare_resnet(arch: str) -> nn.Module:
    from torchvision import models

    net = getattr(models, arch)(weights=None)
    # The encoder ends at global average pooling; the ImageNet classifier is dropped.
    net.fc = nn.Identity()
    return net


def _imagenet_state_dict(arch: str) -> dict[str, torch.Tensor]:
    from torchvision import models

    weights = models.get_model_weights(arch).IMAGENET1K_V1
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as err:  # URLError, OSError, hash mismatch, ...: all mean "not available"
        raise PretrainedWeightsError(
            f"could not fetch the ImageNet weights for {arch} ({weights.url}): {err}. "
            "Without network access use `--pretrained none` (random initialisation) or "
            "`--pretrained PATH` with a local weights file (a torchvision "
            f"{arch} state_dict, e.g. one saved from torch.hub's cache on a connected machine)."
        ) from err


def _local_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise PretrainedWeightsError(
            f"pretrained weights file {path} does not exist; give `imagenet`, `none` or the "
            "path of a local state_dict file"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise PretrainedWeightsError(
            f"could not read pretrained weights file {path} as a torch state_dict: {err}"
        ) from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PretrainedWeightsError(
            f"pretrained weights file {path} does not hold a state_dict (a dict of tensors)"
        )
    return state


def _load_encoder_weights(encoder: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    # A full torchvision ResNet state dict carries the ImageNet classifier (fc.*), which the
    # encoder has dropped; everything else must match exactly.
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    expected = encoder.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
        for k in set(state) & set(expected)
        if state[k].shape != expected[k].shape
    )
    if missing or unexpected or wrong_shape:

        def head(items: list[str]) -> str:
            return ", ".join(items[:5]) + (f" ... ({len(items)} in all)" if len(items) > 5 else "")

        problems = []
        if missing:
            problems.append(f"missing keys: {head(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {head(unexpected)}")
        if wrong_shape:
            problems.append(f"shape mismatches: {head(wrong_shape)}")
        raise PretrainedWeightsError(
            f"weights from {source} do not fit the encoder: " + "; ".join(problems)
        )
    encoder.load_state_dict(state, strict=True)


def build_encoder(arch: str = "resnet18", pretrained: str | os.PathLike = "imagenet") -> nn.Module:
    """A ResNet encoder without its classifier: ``[N, 3, H, W] -> [N, FEATURE_DIMS[arch]]``.

    ``pretrained`` is ``"imagenet"``, ``"none"`` or a path to a local state_dict file.
    Raises `PretrainedWeightsError` when the weights cannot be obtained or do not fit.
    """
    _check_arch(arch)
    encoder = _bare_resnet(arch)
    spec = str(pretrained)
    if spec == "none":
        return encoder
    if spec == "imagenet":
        _load_encoder_weights(encoder, _imagenet_state_dict(arch), f"torchvision {arch} IMAGENET1K_V1")
    else:
        path = Path(spec)
        _load_encoder_weights(encoder, _local_state_dict(path), f"file {path}")
    return encoder


class ProjectionHead(nn.Module):
    """``z = g(h) / ||g(h)||_2`` with ``g = Linear(d, d) -> ReLU -> Linear(d, 128)``."""

    def __init__(self, in_dim: int, out_dim: int = PROJECTION_DIM) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, in_dim), nn.ReLU(inplace=True), nn.Linear(in_dim, out_dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32: under bf16 autocast the norm of a 128-vector loses digits
        # that the temperature-scaled similarities (divided by 0.07) would amplify.
        return F.normalize(self.net(h).float(), dim=1)


class ContrastiveModel(nn.Module):
    """Stage-1 network: encoder followed by the projection head; returns unit vectors."""

    def __init__(self, encoder: nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = ProjectionHead(feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def build_contrastive_model(arch: str = "resnet18", pretrained: str | os.PathLike = "imagenet") -> ContrastiveModel:
    """Encoder (see `build_encoder`) plus projection head for stage 1."""
    return ContrastiveModel(build_encoder(arch, pretrained), FEATURE_DIMS[arch])


def linear_classifier(feature_dim: int, num_classes: int) -> nn.Linear:
    """Stage-2 head: one linear layer from encoder features to class logits."""
    return nn.Linear(feature_dim, num_classes)

"""Argument and tensor checks shared by the losses (one wording for every loss's errors).

Bad option values and bad class counts raise `asymcl.errors.InputError` (a ValueError) with
the option's name, the value and what is expected; tensors of the wrong shape or dtype raise
ValueError/TypeError, since they are programming errors of the caller, not user input.
"""

from __future__ import annotations

import contextlib
import math

import torch

from asymcl.errors import InputError


def check_number(name: str, value: float, *, positive: bool) -> float:
    """``value`` as a finite float, > 0 (positive) or >= 0; InputError naming ``name``."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or (value <= 0 if positive else value < 0):
        need = "> 0" if positive else ">= 0"
        raise InputError(f"{name} must be a finite number {need}, got {value!r}")
    return value


def check_reduction(reduction: str) -> str:
    if reduction not in ("mean", "sum", "none"):
        raise InputError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


def reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample


def class_counts_tensor(class_counts, name: str = "class_counts") -> torch.Tensor:
    """Training-set class counts (or priors, any positive scale) as a float64 vector [C].

    Every class must have a finite count > 0: the re-weighting and logit-adjustment losses
    take 1/n_c or log n_c, which do not exist for an empty class.
    """
    try:
        counts = torch.as_tensor(class_counts, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise InputError(
            f"{name} must be a list of per-class training counts, got {class_counts!r}"
        ) from None
    if counts.dim() != 1 or counts.numel() < 2:
        raise InputError(
            f"{name} must be a list of at least 2 per-class counts (one per class, class id = "
            f"position), got shape {tuple(counts.shape)}"
        )
    bad = [(c, v) for c, v in enumerate(counts.tolist()) if not (math.isfinite(v) and v > 0)]
    if bad:
        shown = ", ".join(f"class {c}: {v!r}" for c, v in bad[:5])
        raise InputError(
            f"{name} must be finite and > 0 for every class ({shown}); a class without "
            "training samples cannot be re-weighted or logit-adjusted: drop it from the labels"
        )
    return counts


def check_logits_targets(logits: torch.Tensor, targets: torch.Tensor, n_classes: int | None = None):
    """Check a classifier loss's inputs: logits [N, C] (C = n_classes if given), targets [N]."""
    if not torch.is_tensor(logits) or not logits.is_floating_point():
        raise TypeError("logits must be a floating-point tensor [N, C]")
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape [N, C], got {tuple(logits.shape)}")
    if targets.dim() != 1 or targets.shape[0] != logits.shape[0]:
        raise ValueError(
            f"targets must have shape [N] = [{logits.shape[0]}], got {tuple(targets.shape)}"
        )
    if targets.is_floating_point() or targets.is_complex():
        raise TypeError(f"targets must be integer class ids, got dtype {targets.dtype}")
    if n_classes is not None and logits.shape[1] != n_classes:
        raise ValueError(
            f"logits have {logits.shape[1]} classes but the loss was built with "
            f"{n_classes} class counts"
        )


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 for float64 input, float32 otherwise (bf16/fp16 are upcast for the loss)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def no_autocast(device: torch.device):
    """A context that switches autocast off on ``device`` (losses run in float32/64)."""
    dev = device.type
    if dev in ("cuda", "cpu") and torch.is_autocast_enabled(dev):
        return torch.autocast(dev, enabled=False)
    return contextlib.nullcontext()


def anchor_rows(features: torch.Tensor, labels: torch.Tensor):
    """Flatten contrastive input to anchor rows.

    features [N, D] or [N, V, D] -> rows z [M, D] with M = N*V (row n*V + v is view v of
    sample n), in float32 (float64 for float64 features); labels [N] -> row labels [M].
    Returns (z, row_labels, views).
    """
    if not torch.is_tensor(features) or not features.is_floating_point():
        raise TypeError("features must be a floating-point tensor [N, D] or [N, V, D]")
    if features.dim() not in (2, 3):
        raise ValueError(
            f"features must have shape [N, D] or [N, V, D], got {tuple(features.shape)}"
        )
    labels = torch.as_tensor(labels, device=features.device)
    n = features.shape[0]
    if labels.dim() != 1 or labels.shape[0] != n:
        raise ValueError(
            f"labels must have shape [N] = [{n}] to match features "
            f"{tuple(features.shape)}, got {tuple(labels.shape)}"
        )
    if labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"labels must be integer class ids, got dtype {labels.dtype}")
    views = features.shape[1] if features.dim() == 3 else 1
    m = n * views
    if m < 2:
        raise ValueError(
            f"a contrastive loss needs at least 2 anchor rows, got {m} "
            f"(features {tuple(features.shape)})"
        )
    z = features.reshape(m, features.shape[-1]).to(compute_dtype(features))
    if views > 1:
        labels = labels.repeat_interleave(views)  # row n*V + v is view v of sample n
    return z, labels, views

"""Stage 2: a linear classifier on the frozen encoder, then the test-set scores.

The encoder is frozen in eval mode (BatchNorm uses its running statistics), its features are
computed once for the train and test images, and a linear head is trained on them with
cross-entropy or the focal loss; the test set is then scored (`asymcl.evaluate`).

Why no augmentation in stage 2: the paper describes augmentation for the data set and says
nothing per stage; the released code has no data pipeline. With the encoder frozen and in
eval mode, features of un-augmented images are fixed, so computing them once turns the 10
head epochs into a few matrix products.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asymcl import models
from asymcl.data.packed import PackedSplit
from asymcl.engine.batches import BatchMaker, shuffled_batches
from asymcl.engine.device import DeviceContext
from asymcl.engine.progress import Progress, fmt_loss
from asymcl.engine.spec import RunSpec
from asymcl.engine.steps import TooManyNonFiniteSteps, check_nan_fraction, step_if_finite
from asymcl.evaluate import classification_metrics, shot_group_metrics
from asymcl.io import atomic_path

EMBEDDINGS_FILE = "embeddings.npz"
#: Batch size for the one-off feature extraction (memory-bound only, no effect on values
#: beyond float rounding).
FEATURE_BATCH = 256


@dataclass
class Stage2Result:
    """The trained head, its epoch history and step counts, and the test features."""

    head: torch.nn.Module
    history: list[dict[str, Any]]
    steps: int
    nan_steps: int
    feats_test: torch.Tensor
    test_targets: torch.Tensor
    seconds: float


@torch.no_grad()
def extract_features(encoder: torch.nn.Module, batches: BatchMaker, n: int, ctx: DeviceContext) -> torch.Tensor:
    """Frozen-encoder features ``[n, d]`` (fp32) of un-augmented images, in index order."""
    encoder.eval()
    out = []
    for idx in torch.arange(n, device=ctx.device).split(FEATURE_BATCH):
        with ctx.autocast():
            out.append(encoder(batches(idx)).float())
    return torch.cat(out)


def train_stage2(spec: RunSpec, ctx: DeviceContext, model: torch.nn.Module, train: PackedSplit,
                 test: PackedSplit) -> Stage2Result:
    """Freeze the encoder, compute features once, train the linear head (timed)."""
    ctx.synchronize()
    t0 = time.perf_counter()
    encoder = model.encoder
    encoder.requires_grad_(False)
    train_targets = train.targets.to(ctx.device)
    feats_train = extract_features(encoder, BatchMaker(train.images, ctx), train_targets.shape[0], ctx)
    test_targets = test.targets.to(ctx.device)
    feats_test = extract_features(encoder, BatchMaker(test.images, ctx), test_targets.shape[0], ctx)
    progress = Progress("stage 2", spec.epochs2 * math.ceil(train_targets.shape[0] / spec.batch_size))
    try:
        head, history = train_linear_head(feats_train, train_targets, len(train.classes), spec, ctx, progress)
    finally:
        progress.close()
    steps, nan_steps = check_nan_fraction("stage 2", history, spec.max_nan_fraction)
    ctx.synchronize()
    return Stage2Result(head, history, steps, nan_steps, feats_test, test_targets, time.perf_counter() - t0)


def score(stage2: Stage2Result, train: PackedSplit, spec: RunSpec) -> dict[str, Any]:
    """Test-set metrics of the head (`asymcl.evaluate`); many/medium/few-shot with > 2 classes."""
    classes = list(train.classes)
    with torch.no_grad():
        probs = torch.softmax(stage2.head(stage2.feats_test).float(), dim=1)
    pred = probs.argmax(dim=1)
    metrics = classification_metrics(stage2.test_targets.cpu().numpy(), pred.cpu().numpy(),
                                     probs.cpu().numpy(), classes)
    n_train_per_class = {c: int((train.targets == i).sum()) for i, c in enumerate(classes)}
    if len(classes) > 2:
        metrics.update(shot_group_metrics(
            metrics["per_class_recall"], n_train_per_class,
            many=spec.many_shot_threshold, few=spec.few_shot_threshold,
        ))
    return metrics


@torch.no_grad()
def save_embeddings(path: Path, model: torch.nn.Module, feats_test: torch.Tensor, test: PackedSplit,
                    ctx: DeviceContext) -> None:
    """Write the stage-1 test embeddings to ``path`` (.npz, atomically).

    Arrays: ``encoder`` ``[n, d]`` (the frozen encoder's features, what the linear head
    sees), ``projection`` ``[n, 128]`` (the L2-normalised projection-head outputs, what the
    contrastive loss saw), ``labels`` ``[n]`` (class indices), ``classes`` and ``ids``.
    """
    head = model.head.eval()
    with ctx.autocast():
        proj = head(feats_test).float()
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            encoder=feats_test.float().cpu().numpy(),
            projection=proj.cpu().numpy(),
            labels=test.targets.cpu().numpy().astype(np.int64),
            classes=np.array([str(c) for c in test.classes]),
            ids=np.array([str(i) for i in test.ids]),
        )


def _stage2_loss(spec: RunSpec) -> torch.nn.Module:
    if spec.stage2_loss == "ce":
        return torch.nn.CrossEntropyLoss()
    from asymcl.losses import FocalLoss

    return FocalLoss(gamma=spec.focal_gamma)


def train_linear_head(
    feats: torch.Tensor,
    targets: torch.Tensor,
    num_classes: int,
    spec: RunSpec,
    ctx: DeviceContext,
    progress: Progress | None = None,
) -> tuple[torch.nn.Module, list[dict[str, Any]]]:
    """Stage 2: a linear head on fixed features, Adam, ``spec.epochs2`` epochs."""
    # Seeded here, not inherited from stage 1's RNG use, so a resumed run initialises the
    # head exactly as an uninterrupted one.
    torch.manual_seed(spec.seed + 1)
    head = models.linear_classifier(feats.shape[1], num_classes).to(ctx.device)
    optimizer = torch.optim.Adam(head.parameters(), lr=spec.lr)
    loss_fn = _stage2_loss(spec)
    gen = torch.Generator().manual_seed(spec.seed + 2)
    history = []
    for epoch in range(1, spec.epochs2 + 1):
        loss_sum, steps, nan_steps = torch.zeros((), device=ctx.device), 0, 0
        for idx in shuffled_batches(feats.shape[0], spec.batch_size, gen, ctx.device):
            loss = loss_fn(head(feats.index_select(0, idx)), targets.index_select(0, idx))
            steps += 1
            if not step_if_finite(loss, optimizer):
                nan_steps += 1
            else:
                loss_sum += loss.detach()
            if progress is not None:
                progress.step()
        finite = steps - nan_steps
        record = {"epoch": epoch, "loss": float(loss_sum) / finite if finite else None, "steps": steps, "nan_steps": nan_steps}
        history.append(record)
        if progress is not None:
            progress.epoch_line(
                f"stage 2 epoch {epoch}/{spec.epochs2}: loss {fmt_loss(record['loss'])}, nan steps {nan_steps}"
            )
        if not finite:
            raise TooManyNonFiniteSteps(f"stage 2 epoch {epoch}: all {steps} steps had a NaN/inf loss; stopping")
    return head, history

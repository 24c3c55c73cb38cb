"""Stage 2: a linear classifier on the frozen encoder, then the test-set scores.

The encoder's weights are frozen and a linear head is trained on its features with
cross-entropy or the focal loss; the test set is then scored (`asymcl.evaluate`) with the
encoder in eval mode. The paper leaves two things open, hence two options:

* ``stage2_bn="eval"`` (default) and ``stage2_augment=False`` (default): BatchNorm uses its
  running statistics and images are not augmented, so the features are fixed: computed once
  for the train and test images, the 10 head epochs are a few matrix products.
* ``stage2_bn="train"``: as the ISIC code the authors adapt, the frozen encoder's BatchNorm
  layers are in train mode while the head trains (each batch is normalised with its own
  statistics, and the running statistics keep moving); ``stage2_augment=True``: each batch
  is augmented like stage 1 (``rotation``, ``hflip``) from its own seeded generator. Either
  way the features are recomputed for every stage-2 batch; the test features are computed
  afterwards in eval mode (with the running statistics as stage 2 left them). A last
  batch of a single image is encoded in eval mode (it has no batch statistics).

The batch order is the same in all modes (one generator, seeded ``seed + 2``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from asymcl import interrupts, models
from asymcl.augment import BatchAugment
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


def fixed_features(spec: RunSpec) -> bool:
    """Whether stage-2 features are computed once (eval-mode BatchNorm, no augmentation)."""
    return spec.stage2_bn == "eval" and not spec.stage2_augment


class LiveFeatures:
    """Stage-2 features recomputed per batch: BatchNorm mode and augmentation from the spec.

    Called with an index batch, returns the frozen encoder's fp32 features ``[B, d]`` (no
    gradient: only the head trains). ``shape`` mimics a feature matrix for
    `train_linear_head`.
    """

    def __init__(self, encoder: torch.nn.Module, images: torch.Tensor, spec: RunSpec, ctx: DeviceContext) -> None:
        self.encoder = encoder
        self.ctx = ctx
        self.bn_train = spec.stage2_bn == "train"
        augment = BatchAugment(max_degrees=spec.rotation, hflip=spec.hflip) if spec.stage2_augment else None
        self.batches = BatchMaker(images, ctx, augment)
        # Its own generator (stage 1 used seed + 1 on the device), so the batch order and
        # the head's initialisation do not depend on whether stage 2 augments.
        self.aug_gen = torch.Generator(device=ctx.device).manual_seed(spec.seed + 3) if augment else None
        self.shape = (images.shape[0], models.FEATURE_DIMS[spec.arch])

    @torch.no_grad()
    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        # The ResNet encoders' only train-mode layers are BatchNorm. A last batch of one image
        # has no batch statistics (1 x 1 maps at 28 px): it uses the running ones.
        self.encoder.train(self.bn_train and idx.numel() > 1)
        with self.ctx.autocast():
            return self.encoder(self.batches(idx, self.aug_gen)).float()


def train_stage2(spec: RunSpec, ctx: DeviceContext, model: torch.nn.Module, train: PackedSplit,
                 test: PackedSplit) -> Stage2Result:
    """Freeze the encoder, train the linear head on its features, compute the test features (timed)."""
    ctx.synchronize()
    t0 = time.perf_counter()
    encoder = model.encoder
    encoder.requires_grad_(False)
    train_targets = train.targets.to(ctx.device)
    test_targets = test.targets.to(ctx.device)
    feats_train: torch.Tensor | LiveFeatures
    if fixed_features(spec):
        feats_train = extract_features(encoder, BatchMaker(train.images, ctx), train_targets.shape[0], ctx)
    else:
        feats_train = LiveFeatures(encoder, train.images, spec, ctx)
    feats_test = extract_features(encoder, BatchMaker(test.images, ctx), test_targets.shape[0], ctx) \
        if fixed_features(spec) else None
    progress = Progress("stage 2", spec.epochs2 * math.ceil(train_targets.shape[0] / spec.batch_size))
    try:
        head, history = train_linear_head(feats_train, train_targets, len(train.classes), spec, ctx, progress)
    finally:
        progress.close()
    if feats_test is None:  # evaluation always in eval mode, after the head (and BN) trained
        feats_test = extract_features(encoder, BatchMaker(test.images, ctx), test_targets.shape[0], ctx)
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
    feats: torch.Tensor | Callable[[torch.Tensor], torch.Tensor],
    targets: torch.Tensor,
    num_classes: int,
    spec: RunSpec,
    ctx: DeviceContext,
    progress: Progress | None = None,
) -> tuple[torch.nn.Module, list[dict[str, Any]]]:
    """Stage 2: a linear head, Adam, ``spec.epochs2`` epochs.

    ``feats``: a fixed feature matrix ``[n, d]``, or a callable giving the features of an
    index batch with a ``shape`` of ``(n, d)`` (`LiveFeatures`).
    """
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
            interrupts.check()
            x = feats.index_select(0, idx) if isinstance(feats, torch.Tensor) else feats(idx)
            loss = loss_fn(head(x), targets.index_select(0, idx))
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

"""One-stage training: encoder + linear head trained end to end with a classifier loss.

The imbalance baselines (`RunSpec.method` ``one-stage``): the encoder (same architecture
and initialisation as stage 1) and a linear head ``Linear(d, C)`` are trained together for
``epochs1`` epochs by the stage-1 loop (`asymcl.engine.stage1.train_stage1`: same Adam, lr,
batches, augmentation, seeds, checkpoints and NaN accounting), the model returning logits
and the loss being the classifier loss (`asymcl.engine.losses_choice.one_stage_loss`). The
test set is then scored as after stage 2: encoder in eval mode on un-augmented test images,
softmax of the head's logits (`asymcl.engine.stage2.score`). There is no stage 2; its
history in metrics.json is empty.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from asymcl import models
from asymcl.data.packed import PackedSplit
from asymcl.engine.batches import BatchMaker
from asymcl.engine.device import DeviceContext
from asymcl.engine.spec import RunSpec
from asymcl.engine.stage2 import Stage2Result, extract_features


class EncoderClassifier(nn.Module):
    """``logits = classifier(encoder(x))``: the one-stage network."""

    def __init__(self, encoder: nn.Module, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.classifier = models.linear_classifier(feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encoder(x))


def build_one_stage_model(spec: RunSpec, ctx: DeviceContext, num_classes: int) -> tuple[nn.Module, nn.Module]:
    """The encoder + linear head on the device, and the module the steps call (compiled or not)."""
    model = EncoderClassifier(models.build_encoder(spec.arch, spec.pretrained), models.FEATURE_DIMS[spec.arch],
                              num_classes).to(ctx.device)
    if ctx.channels_last:
        model = model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if (spec.compile and ctx.device.type == "cuda") else model
    return model, step_model


def trained_head(model: EncoderClassifier, test: PackedSplit, ctx: DeviceContext) -> Stage2Result:
    """The trained head and the test features, as `asymcl.engine.stage2.score` takes them."""
    ctx.synchronize()
    t0 = time.perf_counter()
    model.encoder.requires_grad_(False)
    test_targets = test.targets.to(ctx.device)
    feats_test = extract_features(model.encoder, BatchMaker(test.images, ctx), test_targets.shape[0], ctx)
    model.classifier.eval()
    ctx.synchronize()
    return Stage2Result(model.classifier, [], 0, 0, feats_test, test_targets, time.perf_counter() - t0)


def class_counts(train: PackedSplit) -> list[int]:
    """Training images per class id (position = class id)."""
    return torch.bincount(train.targets.long(), minlength=len(train.classes)).tolist()

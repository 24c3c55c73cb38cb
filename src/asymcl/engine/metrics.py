"""The ``OUT/metrics.json`` record of a run.

Everything that varies between identical runs (timings, throughput, memory, versions,
device name, paths) is under the single key ``runtime``; the rest is a pure function of the
data, the settings and the device type. The key order is part of the format (files are
compared byte for byte across code versions).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Any

import torch

from asymcl.data.packed import PackedSplit
from asymcl.engine.device import DeviceContext, device_name, peak_memory
from asymcl.engine.spec import RunSpec
from asymcl.engine.stage1 import Stage1Result
from asymcl.engine.stage2 import Stage2Result
from asymcl.provenance import code_version

METRICS_FILE = "metrics.json"
METRICS_FORMAT = 1


@dataclass
class Timings:
    """Wall-clock seconds of the parts of a run that are not stage-1 epochs."""

    evaluate_s: float
    total_s: float


def metrics_record(spec: RunSpec, ctx: DeviceContext, train: PackedSplit, scores: dict[str, Any],
                   stage1: Stage1Result, s1_counts: tuple[int, int], stage2: Stage2Result,
                   timings: Timings) -> dict[str, Any]:
    """The metrics.json dict (see the module docstring for what goes under ``runtime``)."""
    scores = dict(scores)
    classes = list(train.classes)
    n_test_per_class = scores.pop("n_test_per_class")
    s1_steps, s1_nan = s1_counts
    return {
        "format_version": METRICS_FORMAT,
        **scores,
        "classes": classes,
        "n_train": int(train.targets.shape[0]),
        "n_train_per_class": {c: int((train.targets == i).sum()) for i, c in enumerate(classes)},
        "n_test_per_class": n_test_per_class,
        "image_shape": list(train.images.shape[1:]),
        "nan_steps": s1_nan + stage2.nan_steps,
        "nan_steps_by_stage": {"stage1": s1_nan, "stage2": stage2.nan_steps},
        "steps_by_stage": {"stage1": s1_steps, "stage2": stage2.steps},
        "stage1_skipped_singletons": sum(r["skipped_singletons"] for r in stage1.history),
        "stage1_released_skipped_steps": sum(r.get("skipped_steps", 0) for r in stage1.history),
        "settings": spec.settings(),
        "code": code_version(),
        "device_type": ctx.device.type,
        "stage1": {"epochs": stage1.history},
        "stage2": {"epochs": stage2.history},
        "runtime": _runtime(spec, ctx, stage1, stage2, timings),
    }


def _runtime(spec: RunSpec, ctx: DeviceContext, stage1: Stage1Result, stage2: Stage2Result,
             timings: Timings) -> dict[str, Any]:
    return {
        "timings": {
            "stage1_s": stage1.timed_s,
            "stage1_checkpoint_s": stage1.checkpoint_s,
            "stage2_s": stage2.seconds,
            "evaluate_s": timings.evaluate_s,
            "total_s": timings.total_s,
        },
        "throughput": {
            "stage1_images_per_s": stage1.timed_images / stage1.timed_s if stage1.timed_s > 0 else None,
            "stage1_epoch_images_per_s": stage1.epoch_rates,
        },
        "peak_memory": peak_memory(ctx),
        "resumed_from_epoch": stage1.resumed_from,
        "device": device_name(ctx),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "paths": {"data": str(spec.data), "out": str(spec.out)},
    }

"""One run, top to bottom: `run(spec, loss=None)`; several in one process: `run_cells`.

`run` reads the subset, builds the model and the stage-1 loss (AFCL from the spec unless a
loss is passed in), trains stage 1 (`asymcl.engine.stage1`), trains and scores the linear
head (`asymcl.engine.stage2`) and writes ``OUT/metrics.json`` (`asymcl.engine.metrics`).
``method="one-stage"`` trains encoder + linear head end to end with a classifier loss in
the stage-1 loop instead and scores that head (`asymcl.engine.one_stage`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

import torch

from asymcl import models
from asymcl.data.packed import PackedSplit
from asymcl.engine.batches import load_subset
from asymcl.engine.checkpoints import CHECKPOINT_FILE
from asymcl.engine.device import DeviceContext, reproducible, resolve_device
from asymcl.engine.losses_choice import one_stage_loss, stage1_loss
from asymcl.engine.metrics import METRICS_FILE, Timings, metrics_record
from asymcl.engine.one_stage import build_one_stage_model, class_counts, trained_head
from asymcl.engine.spec import ConfigError, RunSpec
from asymcl.engine.stage1 import train_stage1
from asymcl.engine.stage2 import EMBEDDINGS_FILE, save_embeddings, score, train_stage2
from asymcl.engine.steps import check_nan_fraction
from asymcl.io import folder_lock, output_errors, remove_stale_temps, write_json_atomic

log = logging.getLogger("asymcl.engine")
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def default_loss(spec: RunSpec, train: PackedSplit | None = None) -> torch.nn.Module:
    """The spec's training loss: two-stage, its stage-1 loss (the paper's AFCL by default);
    one-stage, its classifier loss with ``train``'s class counts (`asymcl.engine.losses_choice`)."""
    if spec.method == "one-stage":
        if train is None:
            raise ValueError("the one-stage loss needs the training split (its class counts)")
        return one_stage_loss(spec, class_counts(train))
    return stage1_loss(spec)


def build_model(spec: RunSpec, ctx: DeviceContext) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The encoder + projection head on the device, and the module the steps call (compiled or not)."""
    model = models.build_contrastive_model(spec.arch, spec.pretrained).to(ctx.device)
    if ctx.channels_last:
        model = model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if (spec.compile and ctx.device.type == "cuda") else model
    return model, step_model


def run(spec: RunSpec, loss: Loss | None = None) -> dict[str, Any] | None:
    """Train and evaluate one run; write ``OUT/metrics.json``; return the metrics.

    ``loss``: the stage-1 loss, called as ``loss(features, labels)`` (one-stage: as
    ``loss(logits, labels)``); default `default_loss(spec, train)`. Returns ``None`` when ``spec.stop_after_epoch`` stopped the
    run early (debug option). Raises `ConfigError` for bad settings or inputs,
    `models.PretrainedWeightsError` when weights cannot be obtained, `TooManyNonFiniteSteps`
    when too many steps were skipped, `asymcl.io.OutputError` when an output cannot be
    written (disk full, permissions), `asymcl.io.FolderLockedError` when another run holds
    ``OUT/.lock``.
    """
    wall_start = time.perf_counter()
    spec.validate()
    spec.check_paths()
    train, test = load_subset(spec.data)  # before OUT exists: bad data leaves nothing behind
    out = Path(spec.out)
    with output_errors(out, "the run folder"):
        out.mkdir(parents=True, exist_ok=True)
    # One run per folder at a time, for the whole run (the kernel drops the lock on any exit).
    with folder_lock(out, "--out"):
        for stale in remove_stale_temps(out, RUN_OUTPUTS):
            log.info("%s: removed %s, left by an interrupted write", out, stale.name)
        return _run_locked(spec, out, loss, (train, test), wall_start)


#: The files a run writes into OUT (their stale temporary files are removed on the next run).
RUN_OUTPUTS = (CHECKPOINT_FILE, METRICS_FILE, EMBEDDINGS_FILE)


def _run_locked(spec: RunSpec, out: Path, loss: Loss | None, data: tuple[PackedSplit, PackedSplit],
                wall_start: float) -> dict[str, Any] | None:
    train, test = data
    ctx = DeviceContext.for_device(resolve_device(spec.device))
    if ctx.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(ctx.device)
    with reproducible(ctx, spec.seed, spec.num_threads):
        one_stage = spec.method == "one-stage"
        if one_stage:
            model, step_model = build_one_stage_model(spec, ctx, len(train.classes))
        else:
            model, step_model = build_model(spec, ctx)
        optimizer = torch.optim.Adam(model.parameters(), lr=spec.lr)
        loss_fn = default_loss(spec, train) if loss is None else loss
        stage1 = train_stage1(spec, ctx, model, optimizer, loss_fn, train, out, step_model)
        if stage1.stopped:
            return None
        s1_counts = check_nan_fraction("stage 1", stage1.history, spec.max_nan_fraction)
        stage2 = trained_head(model, test, ctx) if one_stage else train_stage2(spec, ctx, model, train, test)
        t0 = time.perf_counter()
        scores = score(stage2, train, spec)
        evaluate_s = time.perf_counter() - t0
        if spec.save_embeddings:
            with output_errors(out / EMBEDDINGS_FILE, "the embeddings"):
                save_embeddings(out / EMBEDDINGS_FILE, model, stage2.feats_test, test, ctx)
        result = metrics_record(spec, ctx, train, scores, stage1, s1_counts, stage2,
                                Timings(evaluate_s, time.perf_counter() - wall_start))
    with output_errors(out / METRICS_FILE, "the metrics"):
        write_json_atomic(out / METRICS_FILE, result)
    if not spec.keep_checkpoint:
        (out / CHECKPOINT_FILE).unlink(missing_ok=True)
    log.info("%s: accuracy %.2f%%, UWA %.2f%%, nan steps %d, %.1f s", out, result["accuracy"], result["uwa"],
             result["nan_steps"], result["runtime"]["timings"]["total_s"])
    return result


def run_cells(specs: list[RunSpec]) -> list[dict[str, Any]]:
    """Run several runs sequentially in this process (amortising interpreter/CUDA start-up).

    All specs are validated before any run starts (settings, paths, and that every data
    folder holds a readable subset), so bad input fails the whole call with `ConfigError`
    before any training. A run whose ``OUT/metrics.json`` exists is
    skipped. A failing run is logged and the others still run. Returns one status dict per
    spec: ``{"out", "status": "done" | "skipped" | "stopped" | "failed", "error"}``.
    """
    for spec in specs:
        spec.validate()
        spec.check_paths()
    for data in dict.fromkeys(str(Path(s.data).resolve()) for s in specs):
        load_subset(data)  # small files; the run reads them again
    outs = [str(Path(s.out).resolve()) for s in specs]
    dupes = sorted({o for o in outs if outs.count(o) > 1})
    if dupes:
        raise ConfigError(f"several runs write to the same out folder(s): {dupes}")
    statuses = []
    for i, spec in enumerate(specs, 1):
        if (Path(spec.out) / METRICS_FILE).exists():
            log.info("run %d/%d %s: metrics.json exists, skipped", i, len(specs), spec.out)
            statuses.append({"out": spec.out, "status": "skipped", "error": None})
            continue
        log.info("run %d/%d: %s", i, len(specs), spec.out)
        try:
            result = run(spec)
            statuses.append({"out": spec.out, "status": "done" if result is not None else "stopped", "error": None})
        except Exception as err:  # keep going: the other runs are independent
            log.error("run %d/%d %s failed: %s", i, len(specs), spec.out, err)
            statuses.append({"out": spec.out, "status": "failed", "error": f"{type(err).__name__}: {err}"})
    return statuses

"""Stage 1: contrastive feature learning.

The encoder + projection head is trained with the given loss (AFCL by default) on single
augmented views (the paper trains on one view per image), Adam, shuffled mini-batches. A
final batch of exactly one image is skipped (a contrastive loss needs at least two samples;
counted as ``stage1_skipped_singletons``). Ablations: ``batch_sampler="balanced"`` draws
class-balanced batches of the same sizes (`asymcl.sampling`); ``views=V`` augments every
image V times independently and gives the loss ``[B, V, D]`` features. The per-epoch means
of the loss's per-batch diagnostics are in each epoch record's ``diagnostics``.

Checkpoints by wall time, not per epoch: writing model + Adam state costs about a quarter
second, as much as a whole FMNIST epoch on a GPU. A killed run loses at most
``checkpoint_every`` seconds of stage 1.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from asymcl import interrupts
from asymcl.augment import BatchAugment
from asymcl.data.packed import PackedSplit
from asymcl.engine import checkpoints
from asymcl.engine.batches import BatchMaker, shuffled_batches
from asymcl.engine.device import DeviceContext
from asymcl.engine.progress import Progress, fmt_loss
from asymcl.engine.spec import RunSpec
from asymcl.engine.steps import TooManyNonFiniteSteps, step_if_finite
from asymcl.sampling import balanced_batches

log = logging.getLogger("asymcl.engine")
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Stage1Result:
    """What stage 1 hands on: its epoch history and timings (the model is trained in place)."""

    history: list[dict[str, Any]] = field(default_factory=list)
    timed_images: int = 0
    timed_s: float = 0.0
    epoch_rates: list[float | None] = field(default_factory=list)
    checkpoint_s: float = 0.0
    resumed_from: int | None = None
    stopped: bool = False  # --stop-after-epoch ended the run early


@dataclass
class _Stage1State:
    """The mutable state of stage 1: what a checkpoint saves and restores."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    shuffle_gen: torch.Generator
    aug_gen: torch.Generator
    loss_gen: torch.Generator | None = None  # a loss that draws (KCL's positives)

    def capture(self, spec: RunSpec, epoch: int, history: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "identity": spec.stage1_identity(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "shuffle_gen": self.shuffle_gen.get_state(),
            "aug_gen": self.aug_gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": history,
            **({"loss_gen": self.loss_gen.get_state()} if self.loss_gen is not None else {}),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.shuffle_gen.set_state(state["shuffle_gen"].cpu())
        self.aug_gen.set_state(state["aug_gen"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        if self.loss_gen is not None:
            self.loss_gen.set_state(state["loss_gen"].cpu())


def released_skip(spec: RunSpec) -> Callable[[torch.Tensor, torch.Tensor], bool] | None:
    """The ``released`` NaN policy's step filter (`asymcl.released_loss`), or None."""
    if not spec.released_policy_acts():  # AFCL only: the other losses have no released arithmetic
        return None
    from asymcl.released_loss import released_step_fails

    def skip_step(z: torch.Tensor, y: torch.Tensor) -> bool:
        return released_step_fails(z, y, spec.eta, spec.gamma, spec.temperature)

    return skip_step


def train_stage1(spec: RunSpec, ctx: DeviceContext, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 loss_fn: Loss, train: PackedSplit, out: Path, step_model: torch.nn.Module | None = None,
                 ) -> Stage1Result:
    """Run (or resume) stage 1 for ``spec.epochs1`` epochs; checkpoint by wall time."""
    targets = train.targets.to(ctx.device)
    batches = BatchMaker(train.images, ctx, BatchAugment(max_degrees=spec.rotation, hflip=spec.hflip))
    state = _Stage1State(model, optimizer, torch.Generator().manual_seed(spec.seed),
                         torch.Generator(device=ctx.device).manual_seed(spec.seed + 1),
                         getattr(loss_fn, "generator", None))
    result = Stage1Result()
    ckpt_path = out / checkpoints.CHECKPOINT_FILE
    if ckpt_path.exists():
        saved = checkpoints.load_checkpoint(ckpt_path, spec, ctx)
        state.restore(saved)
        result.history = list(saved["history"])
        result.resumed_from = saved["epoch"]
        log.info("%s: resuming stage 1 after epoch %d from %s", out, saved["epoch"], ckpt_path)
    start = (result.resumed_from or 0) + 1
    skip_step = released_skip(spec)
    last_checkpoint = time.monotonic()
    progress = Progress("stage 1", math.ceil(targets.shape[0] / spec.batch_size) * max(0, spec.epochs1 - start + 1))
    try:
        for epoch in range(start, spec.epochs1 + 1):
            ctx.synchronize()
            t0 = time.perf_counter()
            record = stage1_epoch(
                step_model or model, loss_fn, optimizer, batches, targets, batch_size=spec.batch_size,
                shuffle_gen=state.shuffle_gen, aug_gen=state.aug_gen, ctx=ctx, on_step=progress.step,
                views=spec.views, sampler=spec.batch_sampler, skip_step=skip_step,
            )
            ctx.synchronize()
            _account_epoch(result, spec, epoch, record, time.perf_counter() - t0, progress)
            stop_now = spec.stop_after_epoch is not None and epoch >= spec.stop_after_epoch
            if not stop_now and time.monotonic() - last_checkpoint < spec.checkpoint_every:
                continue
            t1 = time.perf_counter()
            checkpoints.save_checkpoint(ckpt_path, state.capture(spec, epoch, result.history))
            result.checkpoint_s += time.perf_counter() - t1
            last_checkpoint = time.monotonic()
            if stop_now:
                log.warning("%s: stopping after stage-1 epoch %d as asked (--stop-after-epoch)", out, epoch)
                result.stopped = True
                return result
    finally:
        progress.close()
    return result


def _account_epoch(result: Stage1Result, spec: RunSpec, epoch: int, record: dict[str, Any], dt: float,
                   progress: Progress) -> None:
    """Add an epoch to the history and timings; fail when no step of it had a finite loss."""
    result.timed_images += record["images"]
    result.timed_s += dt
    result.epoch_rates.append(record["images"] / dt if dt > 0 else None)
    result.history.append({"epoch": epoch, **{k: v for k, v in record.items() if k != "images"}})
    progress.epoch_line(
        f"stage 1 epoch {epoch}/{spec.epochs1}: loss {fmt_loss(record['loss'])}, nan steps "
        f"{record['nan_steps']}/{record['steps']}, {record['images'] / dt:.0f} images/s"
    )
    if record["steps"] and record["nan_steps"] == record["steps"]:
        raise TooManyNonFiniteSteps(
            f"stage 1 epoch {epoch}: all {record['steps']} steps had a NaN/inf loss; stopping "
            "(check the loss settings: eta, gamma, temperature)"
        )


def _batch_diagnostics(loss_fn: Any) -> Any:
    """The loss's diagnostics of its latest batch, as device tensors when it offers them
    (`AFCL.diagnostics_tensors`: summed on the device, no per-step host sync)."""
    if hasattr(loss_fn, "diagnostics_tensors"):
        return loss_fn.diagnostics_tensors()
    return getattr(loss_fn, "last_diagnostics", None)


def _scalar_items(diag: Any) -> dict[str, torch.Tensor | float]:
    """Numeric fields of the loss's per-batch diagnostics (a dataclass or a dict)."""
    if dataclasses.is_dataclass(diag) and not isinstance(diag, type):
        diag = {f.name: getattr(diag, f.name) for f in dataclasses.fields(diag)}
    if not isinstance(diag, dict):
        return {}
    out = {}
    for key, value in diag.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            out[str(key)] = value.detach().double().reshape(())  # float64, as python float sums
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[str(key)] = float(value)
    return out


def _epoch_batches(targets: torch.Tensor, batch_size: int, sampler: str, shuffle_gen: torch.Generator,
                   ctx: DeviceContext) -> list[torch.Tensor]:
    if sampler == "balanced":
        return [b.to(ctx.device) for b in balanced_batches(targets.cpu(), batch_size, shuffle_gen)]
    return shuffled_batches(targets.shape[0], batch_size, shuffle_gen, ctx.device)


def _features(model: torch.nn.Module, batches: BatchMaker, idx: torch.Tensor, aug_gen: torch.Generator,
              views: int, ctx: DeviceContext) -> torch.Tensor:
    """Projections of ``views`` augmentations of a batch: ``[B, D]`` or ``[B, V, D]``."""
    if views == 1:
        x = batches(idx, aug_gen)
    else:
        x = torch.cat([batches(idx, aug_gen) for _ in range(views)])
    with ctx.autocast():
        z = model(x)
    if views > 1:
        # rows are [view 0 of the batch; view 1; ...] -> [B, V, D], sample-major
        z = z.view(views, idx.numel(), -1).transpose(0, 1)
    return z


def stage1_epoch(
    model: torch.nn.Module,
    loss_fn: Loss,
    optimizer: torch.optim.Optimizer,
    batches: BatchMaker,
    targets: torch.Tensor,
    *,
    batch_size: int,
    shuffle_gen: torch.Generator,
    aug_gen: torch.Generator,
    ctx: DeviceContext,
    on_step: Callable[[], None] | None = None,
    views: int = 1,
    sampler: str = "random",
    skip_step: Callable[[torch.Tensor, torch.Tensor], bool] | None = None,
) -> dict[str, Any]:
    """One pass over the training set; returns the epoch's loss, step counts and diagnostics.

    ``views`` > 1: every image of a batch is augmented ``views`` times independently (the
    views are drawn one after the other from ``aug_gen``), the ``views * B`` images go
    through the model in one forward pass, and the loss gets features ``[B, views, D]``.
    ``sampler``: ``"random"`` or ``"balanced"`` batches (`asymcl.sampling`); ``images``
    counts the images that went through the model (views included). ``skip_step(z, y)``
    returning True skips a step without training, counted in ``skipped_steps`` (the
    ``released`` NaN policy).
    """
    model.train()
    loss_sum = torch.zeros((), device=ctx.device)
    diag_sums: dict[str, Any] = {}
    steps = nan_steps = skipped = singletons = images = 0
    for idx in _epoch_batches(targets, batch_size, sampler, shuffle_gen, ctx):
        interrupts.check()  # a Ctrl-C that a finaliser swallowed still stops the run here
        if idx.numel() < 2:
            singletons += 1
            continue
        y = targets.index_select(0, idx)
        z = _features(model, batches, idx, aug_gen, views, ctx)
        steps += 1
        images += idx.numel() * views
        if skip_step is not None and skip_step(z.float(), y):
            skipped += 1
        elif not step_if_finite(loss := loss_fn(z.float(), y), optimizer):
            nan_steps += 1
        else:
            loss_sum += loss.detach()
            for key, value in _scalar_items(_batch_diagnostics(loss_fn)).items():
                diag_sums[key] = diag_sums.get(key, 0.0) + value
        if on_step is not None:
            on_step()
    finite = steps - nan_steps - skipped
    diagnostics = {k: float(v) / finite for k, v in sorted(diag_sums.items())} if finite else {}
    if diagnostics.get("positive_term"):
        # The effective strength of eta over the epoch (ratio of the epoch means).
        diagnostics["eta_to_positive"] = diagnostics.get("eta_term", 0.0) / diagnostics["positive_term"]
    return {
        "loss": float(loss_sum) / finite if finite else None,
        "steps": steps,
        "nan_steps": nan_steps,
        "skipped_steps": skipped,
        "skipped_singletons": singletons,
        "images": images,
        "diagnostics": diagnostics,
    }

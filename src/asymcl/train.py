"""The two-stage training and evaluation engine (one run = one table cell and seed).

Stage 1 (feature learning): ResNet encoder + projection head trained with
``AFCL(eta, gamma, temperature, normalization)`` on single augmented views (the paper trains
on one view per image), Adam, shuffled mini-batches.
Stage 2 (classifier): the encoder is frozen in eval mode, its features are computed once
for the train and test images, and a linear head is trained on them with cross-entropy or
the focal loss; the test set is then scored (`asymcl.evaluate`).

Data path. A subset folder's ``train.pt``/``test.pt`` (uint8 ``[N, C, H, W]``) are moved to
the device once and stay there as uint8 (1,000 FMNIST images are 0.8 MB; 860 ISIC images at
128 px are 42 MB). Each batch is gathered by index, converted to float in [0, 1],
augmented on the device (`asymcl.augment`, stage 1 only), replicated from grey to three
channels when C = 1, and normalised with the ImageNet mean/std (the statistics the
torchvision ImageNet weights were trained with; kept with ``pretrained none`` too, so the
input scale does not depend on that option).

Why no augmentation in stage 2: the paper describes augmentation for the data set and says
nothing per stage; the released code has no data pipeline. With the encoder frozen and in
eval mode, features of un-augmented images are fixed, so computing them once turns the
10 head epochs into a few matrix products. We take that reading (documented in the README).

Batches: a permutation from a seeded ``torch.Generator`` per epoch; the last, smaller batch
is kept, except that a final batch of exactly one image is skipped in stage 1 (a
contrastive loss needs at least two samples; counted as ``stage1_skipped_singletons``).
Ablations (defaults = the paper): ``batch_sampler="balanced"`` draws class-balanced stage-1
batches of the same sizes (`asymcl.sampling`; stage 2 keeps random batches);
``views=V`` augments every image of a stage-1 batch V times independently and gives the
loss ``[B, V, D]`` features; ``save_embeddings`` writes the test embeddings
(``OUT/embeddings.npz``); with more than two classes metrics.json adds many/medium/few-shot
accuracy (`asymcl.evaluate.shot_group_metrics`). The per-epoch means of the loss's
per-batch diagnostics (anchors with no / one positive, positive and eta terms, their ratio)
are in ``stage1.epochs[*].diagnostics``.

Non-finite losses: a step whose loss is NaN or inf is skipped (no backward, no optimiser
step) and counted. After each stage, if the fraction of skipped steps exceeds
``max_nan_fraction`` the run fails with `TooManyNonFiniteSteps`; it also fails at once when
a whole epoch produced no finite loss.

Resume: after every stage-1 epoch a checkpoint (model, optimiser, generator and RNG states,
epoch, history) is written atomically to ``OUT/stage1_checkpoint.pt``. Running the same
command again resumes after the last finished epoch; on CPU the final metrics are
identical to those of an uninterrupted run. The checkpoint is removed once
``metrics.json`` is written (``keep_checkpoint`` keeps it).

Devices. CPU: fp32, ``torch.use_deterministic_algorithms(True)``, seeds for torch, numpy
and Python. CUDA: bf16 autocast for the networks (the loss is computed in fp32),
channels_last, cuDNN autotuning; optional ``torch.compile`` (off by default).

Outputs: ``OUT/metrics.json`` (atomic). Everything that varies between identical runs
(timings, throughput, memory, versions, device name, paths) is under the single key
``runtime``; the rest is a pure function of the data, the settings and the device type.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import platform
import random
import resource
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from asymcl import models
from asymcl.augment import BatchAugment
from asymcl.data.packed import PackedSplit, load_split
from asymcl.evaluate import classification_metrics, shot_group_metrics
from asymcl.io import atomic_path, write_json_atomic
from asymcl.provenance import code_version
from asymcl.sampling import SAMPLERS, balanced_batches

log = logging.getLogger(__name__)

#: ImageNet channel statistics (RGB) used by torchvision's pretrained ResNets.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
METRICS_FILE = "metrics.json"
CHECKPOINT_FILE = "stage1_checkpoint.pt"
EMBEDDINGS_FILE = "embeddings.npz"
METRICS_FORMAT = 1
#: Batch size for the one-off stage-2 feature extraction (memory-bound only, no effect on values
#: beyond float rounding).
FEATURE_BATCH = 256

ARCHS = tuple(models.FEATURE_DIMS)
NORMALIZATIONS = ("reference", "paper")
#: ``stable``: train on every batch (our loss is finite everywhere); ``released``: skip the
#: steps on which the authors' released loss arithmetic is non-finite, as their code did.
NAN_POLICIES = ("stable", "released")
STAGE2_LOSSES = ("ce", "focal")


class ConfigError(ValueError):
    """A setting or input file is wrong; the message names it and what is allowed."""


class TooManyNonFiniteSteps(RuntimeError):
    """The fraction of skipped NaN/inf loss steps passed ``max_nan_fraction``."""


@dataclass
class RunSpec:
    """Everything that defines one run. Defaults: the paper's FMNIST setup."""

    data: str
    out: str
    eta: float = 0.0
    gamma: float = 0.0
    seed: int = 0
    epochs1: int = 20
    epochs2: int = 10
    arch: str = "resnet18"
    pretrained: str = "imagenet"
    batch_size: int = 128
    lr: float = 1e-3
    temperature: float = 0.07
    normalization: str = "reference"
    stage2_loss: str = "ce"
    focal_gamma: float = 2.0
    rotation: float = 15.0
    hflip: bool = True
    device: str = "auto"
    max_nan_fraction: float = 0.05
    #: Which stage-1 steps train: every one ("stable") or only those where the released loss
    #: arithmetic is finite ("released", the authors' protocol; `asymcl.released_loss`).
    nan_policy: str = "stable"
    #: Seconds of stage-1 training between checkpoints (0: after every epoch).
    checkpoint_every: float = 60.0
    num_threads: int | None = None
    compile: bool = False
    keep_checkpoint: bool = False
    #: Debug/testing: stop (as if killed) right after writing this epoch's checkpoint.
    stop_after_epoch: int | None = None
    # Ablations beyond the paper (defaults = the paper's setting).
    #: Independently augmented views per image in stage 1 (features [N, V, D] to the loss).
    views: int = 1
    #: Stage-1 batch composition: "random" (the paper) or "balanced" (`asymcl.sampling`).
    batch_sampler: str = "random"
    #: Write the test embeddings (encoder and projection) to OUT/embeddings.npz.
    save_embeddings: bool = False
    #: Many-/few-shot class groups (> 2 classes): train count > many, < few; medium between.
    many_shot_threshold: int = 100
    few_shot_threshold: int = 20

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def validate(self) -> None:
        """Raise `ConfigError` naming the first bad setting and its allowed values."""

        def bad(key: str, allowed: str) -> ConfigError:
            return ConfigError(f"setting {key}={getattr(self, key)!r} is invalid: expected {allowed}")

        if self.arch not in ARCHS:
            raise bad("arch", f"one of {list(ARCHS)}")
        if self.normalization not in NORMALIZATIONS:
            raise bad("normalization", f"one of {list(NORMALIZATIONS)}")
        if self.stage2_loss not in STAGE2_LOSSES:
            raise bad("stage2_loss", f"one of {list(STAGE2_LOSSES)}")
        if not (isinstance(self.epochs1, int) and self.epochs1 >= 0):
            raise bad("epochs1", "an integer >= 0")
        if not (isinstance(self.epochs2, int) and self.epochs2 >= 1):
            raise bad("epochs2", "an integer >= 1")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 2):
            raise bad("batch_size", "an integer >= 2 (the contrastive loss needs pairs)")
        for key in ("lr", "temperature"):
            if not (isinstance(getattr(self, key), (int, float)) and getattr(self, key) > 0):
                raise bad(key, "a number > 0")
        for key in ("eta", "gamma", "focal_gamma"):
            if not (isinstance(getattr(self, key), (int, float)) and getattr(self, key) >= 0):
                raise bad(key, "a number >= 0")
        if not (0 <= self.rotation <= 180):
            raise bad("rotation", "degrees in [0, 180]")
        if not (0 <= self.max_nan_fraction <= 1):
            raise bad("max_nan_fraction", "a fraction in [0, 1]")
        if self.nan_policy not in NAN_POLICIES:
            raise bad("nan_policy", f"one of {list(NAN_POLICIES)}")
        if self.nan_policy == "released" and self.views != 1:
            raise bad("nan_policy", "stable when views > 1 (the released code is single-view)")
        if not (isinstance(self.checkpoint_every, (int, float)) and math.isfinite(self.checkpoint_every)
                and self.checkpoint_every >= 0):
            raise bad("checkpoint_every", "seconds >= 0 (0: a checkpoint after every stage-1 epoch)")
        if self.num_threads is not None and not (isinstance(self.num_threads, int) and self.num_threads >= 1):
            raise bad("num_threads", "an integer >= 1 or null")
        if not (self.device in ("auto", "cpu", "cuda") or str(self.device).startswith("cuda:")):
            raise bad("device", "auto, cpu, cuda or cuda:N")
        if not (isinstance(self.views, int) and not isinstance(self.views, bool) and self.views >= 1):
            raise bad("views", "an integer >= 1 (1 = the paper's single view)")
        if self.batch_sampler not in SAMPLERS:
            raise bad("batch_sampler", f"one of {list(SAMPLERS)}")
        for key in ("many_shot_threshold", "few_shot_threshold"):
            if not (isinstance(getattr(self, key), int) and getattr(self, key) >= 0):
                raise bad(key, "an integer >= 0 (a training-image count)")
        if self.few_shot_threshold > self.many_shot_threshold + 1:
            raise bad("few_shot_threshold", f"at most many_shot_threshold + 1 = {self.many_shot_threshold + 1}")
        if self.stop_after_epoch is not None and not (isinstance(self.stop_after_epoch, int) and self.stop_after_epoch >= 1):
            raise bad("stop_after_epoch", "an integer >= 1 or null")
        if str(self.pretrained) not in ("imagenet", "none") and not Path(self.pretrained).is_file():
            raise bad("pretrained", "imagenet, none, or the path of an existing local weights file")

    def settings(self) -> dict[str, Any]:
        """The echo written to metrics.json (paths go under ``runtime``)."""
        echo = asdict(self)
        for key in ("data", "out", "stop_after_epoch"):
            echo.pop(key)
        return echo

    def stage1_identity(self) -> dict[str, Any]:
        """Settings a stage-1 checkpoint must share with the run that resumes it."""
        keys = ("eta", "gamma", "seed", "arch", "pretrained", "batch_size", "lr", "temperature",
                "normalization", "rotation", "hflip", "views", "batch_sampler", "nan_policy")
        return {k: getattr(self, k) for k in keys}


# --------------------------------------------------------------------------- device set-up


@dataclass(frozen=True)
class DeviceContext:
    """How tensors are laid out and computed on one device."""

    device: torch.device
    amp_dtype: torch.dtype | None  # bf16 autocast on CUDA, None (fp32) on CPU
    channels_last: bool

    @classmethod
    def for_device(cls, device: torch.device) -> "DeviceContext":
        cuda = device.type == "cuda"
        return cls(device=device, amp_dtype=torch.bfloat16 if cuda else None, channels_last=cuda)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for but CUDA is not available; use --device cpu or auto")
    return torch.device(name)


@contextlib.contextmanager
def _reproducible(ctx: DeviceContext, seed: int, num_threads: int | None) -> Iterable[None]:
    """Seed every RNG; on CPU force deterministic kernels. Global settings are restored after."""
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_threads = torch.get_num_threads()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if num_threads:
        torch.set_num_threads(num_threads)
    if ctx.device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    else:
        # Speed over bit-exactness on GPU (documented): autotuned convolutions, TF32 matmuls.
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev_det)
        torch.set_num_threads(prev_threads)


def _peak_memory(ctx: DeviceContext) -> dict[str, Any]:
    if ctx.device.type == "cuda":
        return {"bytes": int(torch.cuda.max_memory_allocated(ctx.device)), "kind": "cuda_max_memory_allocated"}
    # ru_maxrss is in KiB on Linux; it is the whole process's high-water mark.
    return {"bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "kind": "process_max_rss"}


def _device_name(ctx: DeviceContext) -> str:
    if ctx.device.type == "cuda":
        return f"{ctx.device} ({torch.cuda.get_device_name(ctx.device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


# --------------------------------------------------------------------------- data


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
        splits.append(load_split(path))
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


def _batches(n: int, batch_size: int, generator: torch.Generator, device: torch.device) -> list[torch.Tensor]:
    perm = torch.randperm(n, generator=generator).to(device)
    return list(perm.split(batch_size))


# --------------------------------------------------------------------------- stage 1


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


def stage1_epoch(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
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
    if sampler == "balanced":
        epoch_batches = [b.to(ctx.device) for b in balanced_batches(targets.cpu(), batch_size, shuffle_gen)]
    else:
        epoch_batches = _batches(targets.shape[0], batch_size, shuffle_gen, ctx.device)
    for idx in epoch_batches:
        if idx.numel() < 2:
            singletons += 1
            continue
        y = targets.index_select(0, idx)
        if views == 1:
            x = batches(idx, aug_gen)
        else:
            x = torch.cat([batches(idx, aug_gen) for _ in range(views)])
        with ctx.autocast():
            z = model(x)
        if views > 1:
            # rows are [view 0 of the batch; view 1; ...] -> [B, V, D], sample-major
            z = z.view(views, idx.numel(), -1).transpose(0, 1)
        steps += 1
        images += idx.numel() * views
        if skip_step is not None and skip_step(z.float(), y):
            skipped += 1
            if on_step is not None:
                on_step()
            continue
        loss = loss_fn(z.float(), y)
        if not _step_if_finite(loss, optimizer):
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


def _step_if_finite(loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> bool:
    """Backward and optimiser step unless ``loss`` is NaN/inf; True when a step was taken.

    A skipped step leaves the weights and the optimiser state untouched. One host sync per
    step: the skip decision must precede the optimiser step.
    """
    optimizer.zero_grad(set_to_none=True)
    if not bool(torch.isfinite(loss)):
        return False
    loss.backward()
    optimizer.step()
    return True


def _check_nan_fraction(stage: str, history: list[dict], limit: float) -> tuple[int, int]:
    """Total (steps, skipped NaN/inf steps) of a stage's epoch history; fail past ``limit``."""
    steps = sum(r["steps"] for r in history)
    nan_steps = sum(r["nan_steps"] for r in history)
    if steps and nan_steps / steps > limit:
        raise TooManyNonFiniteSteps(
            f"{stage}: {nan_steps} of {steps} steps ({100 * nan_steps / steps:.1f}%) had a NaN/inf "
            f"loss and were skipped, more than the allowed {100 * limit:.1f}% (--max-nan-fraction "
            f"{limit}); the run is unreliable. Check the loss settings (eta, gamma, temperature) "
            "or raise the threshold."
        )
    return steps, nan_steps


# --------------------------------------------------------------------------- progress


def _fmt(loss: float | None) -> str:
    return "n/a (no finite step)" if loss is None else f"{loss:.4f}"


class _Progress:
    """A tqdm bar on a terminal; nothing per step otherwise (per-epoch log lines instead)."""

    def __init__(self, desc: str, total: int) -> None:
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="step", leave=False, file=sys.stderr)

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def epoch_line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(text)
        else:
            log.info(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------------------- checkpoints


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(path: Path, spec: RunSpec, ctx: DeviceContext) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location=ctx.device, weights_only=True)
    except Exception as err:
        raise ConfigError(
            f"stage-1 checkpoint {path} cannot be read ({err}); delete it to start the run afresh"
        ) from err
    mismatched = {
        k: (state["identity"].get(k), v) for k, v in spec.stage1_identity().items() if state["identity"].get(k) != v
    }
    if mismatched:
        detail = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in sorted(mismatched.items()))
        raise ConfigError(
            f"stage-1 checkpoint {path} was written with other settings ({detail}); "
            "use another --out folder or delete the checkpoint"
        )
    if state["epoch"] > spec.epochs1:
        raise ConfigError(
            f"stage-1 checkpoint {path} is at epoch {state['epoch']}, beyond --epochs1 {spec.epochs1}; "
            "use another --out folder or delete the checkpoint"
        )
    return state


# --------------------------------------------------------------------------- stage 2


@torch.no_grad()
def extract_features(encoder: torch.nn.Module, batches: BatchMaker, n: int, ctx: DeviceContext) -> torch.Tensor:
    """Frozen-encoder features ``[n, d]`` (fp32) of un-augmented images, in index order."""
    encoder.eval()
    out = []
    for idx in torch.arange(n, device=ctx.device).split(FEATURE_BATCH):
        with ctx.autocast():
            out.append(encoder(batches(idx)).float())
    return torch.cat(out)


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
    progress: _Progress | None = None,
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
        for idx in _batches(feats.shape[0], spec.batch_size, gen, ctx.device):
            loss = loss_fn(head(feats.index_select(0, idx)), targets.index_select(0, idx))
            steps += 1
            if not _step_if_finite(loss, optimizer):
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
                f"stage 2 epoch {epoch}/{spec.epochs2}: loss {_fmt(record['loss'])}, nan steps {nan_steps}"
            )
        if not finite:
            raise TooManyNonFiniteSteps(f"stage 2 epoch {epoch}: all {steps} steps had a NaN/inf loss; stopping")
    return head, history


# --------------------------------------------------------------------------- one run


def run(spec: RunSpec) -> dict[str, Any] | None:
    """Train and evaluate one run; write ``OUT/metrics.json``; return the metrics.

    Returns ``None`` when ``spec.stop_after_epoch`` stopped the run early (debug option).
    Raises `ConfigError` for bad settings or inputs, `models.PretrainedWeightsError` when
    weights cannot be obtained, `TooManyNonFiniteSteps` when too many steps were skipped.
    """
    spec.validate()
    wall_start = time.perf_counter()
    ctx = DeviceContext.for_device(resolve_device(spec.device))
    train, test = load_subset(spec.data)
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    if ctx.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(ctx.device)
    with _reproducible(ctx, spec.seed, spec.num_threads):
        return _run(spec, ctx, train, test, out, wall_start)


def _run(spec: RunSpec, ctx: DeviceContext, train: PackedSplit, test: PackedSplit, out: Path, wall_start: float) -> dict[str, Any] | None:
    from asymcl.losses import AFCL

    classes = list(train.classes)
    model = models.build_contrastive_model(spec.arch, spec.pretrained).to(ctx.device)
    if ctx.channels_last:
        model = model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if (spec.compile and ctx.device.type == "cuda") else model
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.lr)
    loss_fn = AFCL(eta=spec.eta, gamma=spec.gamma, temperature=spec.temperature, normalization=spec.normalization)

    train_targets = train.targets.to(ctx.device)
    augment = BatchAugment(max_degrees=spec.rotation, hflip=spec.hflip)
    train_batches = BatchMaker(train.images, ctx, augment)
    shuffle_gen = torch.Generator().manual_seed(spec.seed)
    aug_gen = torch.Generator(device=ctx.device).manual_seed(spec.seed + 1)

    ckpt_path = out / CHECKPOINT_FILE
    history: list[dict[str, Any]] = []
    start_epoch = 1
    resumed_from = None
    if ckpt_path.exists():
        state = _load_checkpoint(ckpt_path, spec, ctx)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        shuffle_gen.set_state(state["shuffle_gen"].cpu())
        aug_gen.set_state(state["aug_gen"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        history = list(state["history"])
        start_epoch = state["epoch"] + 1
        resumed_from = state["epoch"]
        log.info("%s: resuming stage 1 after epoch %d from %s", out, state["epoch"], ckpt_path)

    skip_step = None
    if spec.nan_policy == "released":
        from asymcl.released_loss import released_step_fails

        def skip_step(z: torch.Tensor, y: torch.Tensor) -> bool:
            return released_step_fails(z, y, spec.eta, spec.gamma, spec.temperature)

    n_train = train_targets.shape[0]
    steps_per_epoch = math.ceil(n_train / spec.batch_size)
    timed_images, timed_s, epoch_rates, ckpt_s = 0, 0.0, [], 0.0
    # Checkpoints by wall time, not per epoch: writing model + Adam state costs about a
    # quarter second, as much as a whole FMNIST epoch on a GPU. A killed run loses at most
    # `checkpoint_every` seconds of stage 1.
    last_checkpoint = time.monotonic()
    progress = _Progress("stage 1", steps_per_epoch * max(0, spec.epochs1 - start_epoch + 1))
    try:
        for epoch in range(start_epoch, spec.epochs1 + 1):
            ctx.synchronize()
            t0 = time.perf_counter()
            record = stage1_epoch(
                step_model, loss_fn, optimizer, train_batches, train_targets, batch_size=spec.batch_size,
                shuffle_gen=shuffle_gen, aug_gen=aug_gen, ctx=ctx, on_step=progress.step,
                views=spec.views, sampler=spec.batch_sampler, skip_step=skip_step,
            )
            ctx.synchronize()
            dt = time.perf_counter() - t0
            timed_images += record["images"]
            timed_s += dt
            epoch_rates.append(record["images"] / dt if dt > 0 else None)
            history.append({"epoch": epoch, **{k: v for k, v in record.items() if k != "images"}})
            progress.epoch_line(
                f"stage 1 epoch {epoch}/{spec.epochs1}: loss {_fmt(record['loss'])}, nan steps "
                f"{record['nan_steps']}/{record['steps']}, {record['images'] / dt:.0f} images/s"
            )
            if record["steps"] and record["nan_steps"] == record["steps"]:
                raise TooManyNonFiniteSteps(
                    f"stage 1 epoch {epoch}: all {record['steps']} steps had a NaN/inf loss; stopping "
                    "(check the loss settings: eta, gamma, temperature)"
                )
            stop_now = spec.stop_after_epoch is not None and epoch >= spec.stop_after_epoch
            if not stop_now and time.monotonic() - last_checkpoint < spec.checkpoint_every:
                continue
            t1 = time.perf_counter()
            _save_checkpoint(ckpt_path, {
                "epoch": epoch,
                "identity": spec.stage1_identity(),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "shuffle_gen": shuffle_gen.get_state(),
                "aug_gen": aug_gen.get_state(),
                "torch_rng": torch.get_rng_state(),
                "history": history,
            })
            ckpt_s += time.perf_counter() - t1
            last_checkpoint = time.monotonic()
            if stop_now:
                log.warning("%s: stopping after stage-1 epoch %d as asked (--stop-after-epoch)", out, epoch)
                return None
    finally:
        progress.close()

    s1_steps, s1_nan = _check_nan_fraction("stage 1", history, spec.max_nan_fraction)

    # Stage 2: frozen encoder (eval mode: BatchNorm uses its running statistics), features once.
    ctx.synchronize()
    t2 = time.perf_counter()
    encoder = model.encoder
    encoder.requires_grad_(False)
    feats_train = extract_features(encoder, BatchMaker(train.images, ctx), n_train, ctx)
    test_targets = test.targets.to(ctx.device)
    feats_test = extract_features(encoder, BatchMaker(test.images, ctx), test_targets.shape[0], ctx)
    progress2 = _Progress("stage 2", spec.epochs2 * math.ceil(n_train / spec.batch_size))
    try:
        head, history2 = train_linear_head(feats_train, train_targets, len(classes), spec, ctx, progress2)
    finally:
        progress2.close()
    s2_steps, s2_nan = _check_nan_fraction("stage 2", history2, spec.max_nan_fraction)
    ctx.synchronize()
    t3 = time.perf_counter()

    with torch.no_grad():
        probs = torch.softmax(head(feats_test).float(), dim=1)
    pred = probs.argmax(dim=1)
    metrics = classification_metrics(test_targets.cpu().numpy(), pred.cpu().numpy(), probs.cpu().numpy(), classes)
    t4 = time.perf_counter()

    n_test_per_class = metrics.pop("n_test_per_class")
    n_train_per_class = {c: int((train.targets == i).sum()) for i, c in enumerate(classes)}
    if len(classes) > 2:
        metrics.update(shot_group_metrics(
            metrics["per_class_recall"], n_train_per_class,
            many=spec.many_shot_threshold, few=spec.few_shot_threshold,
        ))
    if spec.save_embeddings:
        save_embeddings(out / EMBEDDINGS_FILE, model, feats_test, test, ctx)
    result = {
        "format_version": METRICS_FORMAT,
        **metrics,
        "classes": classes,
        "n_train": int(n_train),
        "n_train_per_class": n_train_per_class,
        "n_test_per_class": n_test_per_class,
        "image_shape": list(train.images.shape[1:]),
        "nan_steps": s1_nan + s2_nan,
        "nan_steps_by_stage": {"stage1": s1_nan, "stage2": s2_nan},
        "steps_by_stage": {"stage1": s1_steps, "stage2": s2_steps},
        "stage1_skipped_singletons": sum(r["skipped_singletons"] for r in history),
        "stage1_released_skipped_steps": sum(r.get("skipped_steps", 0) for r in history),
        "settings": spec.settings(),
        "code": code_version(),
        "device_type": ctx.device.type,
        "stage1": {"epochs": history},
        "stage2": {"epochs": history2},
        "runtime": {
            "timings": {
                "stage1_s": timed_s,
                "stage1_checkpoint_s": ckpt_s,
                "stage2_s": t3 - t2,
                "evaluate_s": t4 - t3,
                "total_s": time.perf_counter() - wall_start,
            },
            "throughput": {
                "stage1_images_per_s": timed_images / timed_s if timed_s > 0 else None,
                "stage1_epoch_images_per_s": epoch_rates,
            },
            "peak_memory": _peak_memory(ctx),
            "resumed_from_epoch": resumed_from,
            "device": _device_name(ctx),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "paths": {"data": str(spec.data), "out": str(spec.out)},
        },
    }
    write_json_atomic(out / METRICS_FILE, result)
    if not spec.keep_checkpoint:
        ckpt_path.unlink(missing_ok=True)
    log.info(
        "%s: accuracy %.2f%%, UWA %.2f%%, nan steps %d, %.1f s",
        out, result["accuracy"], result["uwa"], result["nan_steps"], result["runtime"]["timings"]["total_s"],
    )
    return result


# --------------------------------------------------------------------------- many runs


def spec_from_mapping(obj: dict[str, Any], where: str = "spec") -> RunSpec:
    """Build a `RunSpec` from a dict whose keys are field names (``-`` or ``_`` spelling)."""
    if not isinstance(obj, dict):
        raise ConfigError(f"{where}: expected an object of run settings, got {type(obj).__name__}")
    names = RunSpec.field_names()
    norm = {str(k).replace("-", "_"): v for k, v in obj.items()}
    unknown = sorted(set(norm) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {unknown}; allowed: {names}")
    missing = [k for k in ("data", "out", "eta", "gamma", "seed") if k not in norm]
    if missing:
        raise ConfigError(f"{where}: missing required setting(s) {missing}")
    spec = RunSpec(**norm)
    try:
        spec.validate()
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    return spec


def run_cells(specs: list[RunSpec]) -> list[dict[str, Any]]:
    """Run several runs sequentially in this process (amortising interpreter/CUDA start-up).

    All specs are validated before any run starts. A run whose ``OUT/metrics.json`` exists is
    skipped. A failing run is logged and the others still run. Returns one status dict per
    spec: ``{"out", "status": "done" | "skipped" | "stopped" | "failed", "error"}``.
    """
    for spec in specs:
        spec.validate()
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

"""`RunSpec`: every setting of one training run, defined once (importable without torch).

Each field carries its command-line flag, help text, choices and bounds in its dataclass
metadata; `add_run_options` builds the ``asymcl train`` options from them, `RunSpec.validate`
checks a spec against them, and tests/test_settings.py ties them to the workflow's config
schema (``$defs.training``). Defaults are the paper's FMNIST setup.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from asymcl.errors import InputError

#: Encoders (`asymcl.models.FEATURE_DIMS`; a test checks they agree).
ARCHS = ("resnet18", "resnet50")
NORMALIZATIONS = ("reference", "paper")
#: ``stable``: train on every batch (our loss is finite everywhere); ``released``: skip the
#: steps on which the authors' released loss arithmetic is non-finite, as their code did.
NAN_POLICIES = ("stable", "released")
STAGE2_LOSSES = ("ce", "focal")
#: Stage-2 BatchNorm mode of the frozen encoder: ``eval`` (running statistics, features
#: computed once) or ``train`` (batch statistics, running statistics updated, as the ISIC
#: code the authors adapt).
STAGE2_BN_MODES = ("eval", "train")
#: Largest seed: every RNG seeded from it (torch, numpy) accepts [0, 2**32 - 1].
MAX_SEED = 2**32 - 1
#: Stage-1 batch samplers (`asymcl.sampling.SAMPLERS`; a test checks they agree).
BATCH_SAMPLERS = ("random", "balanced")
ABLATIONS = "ablations beyond the paper (defaults: the paper's setting)"
#: Training methods: the paper's contrastive stage 1 + linear head, or encoder + linear head
#: trained end to end with a classifier loss (`asymcl.engine.one_stage`).
METHODS = ("two-stage", "one-stage")
#: Stage-1 losses of the two-stage method (`asymcl.engine.losses_choice`).
STAGE1_LOSSES = ("afcl", "kcl", "class-averaged")
#: One-stage classifier losses (`asymcl.losses.classification`, spelled with '-' so that a
#: value can be part of a run path: ``weighted-ce`` is the library's ``weighted_ce``).
CLASSIFIER_LOSSES = ("ce", "weighted-ce", "focal", "logit-adjusted", "balanced-softmax")
BASELINES = "imbalance baselines beyond the paper (defaults: the paper's method)"


class ConfigError(InputError):
    """A setting or input file is wrong; the message names it and what is allowed."""


def _opt(default: Any, help: str, *, type: Any = None, choices: tuple | None = None,
         minimum: float | None = None, metavar: str | None = None, config: bool = True,
         required: bool = False, group: str | None = None) -> Any:
    """A RunSpec field with what the CLI and the config schema need to know about it.

    ``config``: the workflow's config may set it (``$defs.training`` of the schema);
    ``required``: ``asymcl train`` demands the flag (the Python API has a default for it).
    """
    meta = {"help": help, "type": type if type is not None else (builtin_type(default)),
            "choices": choices, "minimum": minimum, "metavar": metavar, "config": config,
            "required": required, "group": group}
    if default is MISSING:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


def builtin_type(default: Any) -> Any:
    return None if default is MISSING or default is None else type(default)


@dataclass
class RunSpec:
    """Everything that defines one run. Defaults: the paper's FMNIST setup."""

    data: str = _opt(MISSING, "subset folder with train.pt and test.pt", type=str, metavar="SUBSET_DIR",
                     config=False, required=True)
    out: str = _opt(MISSING, "run folder: metrics.json and the stage-1 checkpoint", type=str, metavar="DIR",
                    config=False, required=True)
    eta: float = _opt(0.0, "AFCL asymmetry eta (0 = CL/FCL)", minimum=0, config=False, required=True)
    gamma: float = _opt(0.0, "AFCL focusing gamma (0 = CL/ACL)", minimum=0, config=False, required=True)
    seed: int = _opt(0, "seed for initialisation, shuffling and augmentation, in [0, 2**32 - 1]", minimum=0,
                     config=False, required=True)
    epochs1: int = _opt(20, "stage-1 epochs (paper: 20 FMNIST, 40 ISIC; default %(default)s)", minimum=0)
    epochs2: int = _opt(10, "stage-2 (linear head) epochs (default %(default)s)", minimum=1)
    arch: str = _opt("resnet18", "encoder (paper: resnet18 FMNIST, resnet50 ISIC; default %(default)s)",
                     choices=ARCHS)
    pretrained: str = _opt("imagenet", "encoder initialisation: torchvision ImageNet weights (needs network or "
                           "the torch hub cache), random ('none'), or a local state_dict file (default %(default)s)",
                           metavar="imagenet|none|PATH")
    batch_size: int = _opt(128, "default %(default)s", minimum=2)
    lr: float = _opt(1e-3, "Adam learning rate, both stages (default %(default)s)")
    temperature: float = _opt(0.07, "contrastive temperature tau (default %(default)s)")
    normalization: str = _opt("reference", "AFCL normalisation variant (see the losses section; default "
                              "%(default)s)", choices=NORMALIZATIONS)
    stage2_loss: str = _opt("ce", "linear-head loss (paper: ce FMNIST, focal ISIC; default %(default)s)",
                            choices=STAGE2_LOSSES)
    focal_gamma: float = _opt(2.0, "gamma of the stage-2 focal loss (default %(default)s)", minimum=0)
    stage2_bn: str = _opt("eval", "stage-2 BatchNorm of the frozen encoder: eval (running statistics, features "
                          "computed once) or train (batch statistics, running statistics updated while the head "
                          "trains, as the ISIC code the paper adapts; evaluation in eval mode; default %(default)s)",
                          choices=STAGE2_BN_MODES)
    stage2_augment: bool = _opt(False, "augment stage-2 batches like stage 1 (--rotation, --hflip), features "
                                "recomputed per batch (default off)")
    rotation: float = _opt(15.0, "max random rotation in degrees, stage 1 (paper gives none; default "
                           "%(default)s)", minimum=0)
    hflip: bool = _opt(True, "random horizontal flips with p=0.5 in stage 1 (default on)")
    device: str = _opt("auto", "auto | cpu | cuda | cuda:N (default %(default)s)")
    max_nan_fraction: float = _opt(0.05, "fail when more than this fraction of a stage's steps had a NaN/inf "
                                   "loss (default %(default)s)", minimum=0)
    nan_policy: str = _opt("stable", "stable: train on every batch (our loss is finite everywhere); released: "
                           "skip the stage-1 steps on which the authors' released loss arithmetic is NaN/inf, "
                           "as their code did (counted in metrics.json; default %(default)s)", choices=NAN_POLICIES)
    checkpoint_every: float = _opt(60.0, "stage-1 checkpoint at most this often (0: after every epoch; "
                                   "default %(default)s)", minimum=0, metavar="SECONDS")
    num_threads: int | None = _opt(None, "CPU threads for torch (default: torch's choice)", type=int,
                                   config=False)
    compile: bool = _opt(False, "torch.compile the model on CUDA (off by default)", config=False)
    keep_checkpoint: bool = _opt(False, "keep the stage-1 checkpoint after success", config=False)
    stop_after_epoch: int | None = _opt(None, "debug: stop after writing the stage-1 checkpoint of epoch N, "
                                        "as if killed", type=int, metavar="N", config=False)
    views: int = _opt(1, "independently augmented views per image in stage 1; the loss gets features "
                      "[N, V, D] (default %(default)s, the paper)", minimum=1, metavar="V", group=ABLATIONS)
    batch_sampler: str = _opt("random", "stage-1 batches: shuffled (the paper) or class-balanced, minority "
                              "classes repeated (default %(default)s)", choices=BATCH_SAMPLERS, group=ABLATIONS)
    save_embeddings: bool = _opt(False, "write the test embeddings (encoder, projection) and labels to "
                                 "OUT/embeddings.npz", group=ABLATIONS)
    many_shot_threshold: int = _opt(100, "> 2 classes: classes with more than N training images are many-shot "
                                    "(default %(default)s)", minimum=0, metavar="N", group=ABLATIONS)
    few_shot_threshold: int = _opt(20, "> 2 classes: classes with fewer than N training images are few-shot "
                                   "(default %(default)s)", minimum=0, metavar="N", group=ABLATIONS)
    method: str = _opt("two-stage", "two-stage: contrastive stage 1, then a linear head on the frozen encoder "
                       "(the paper); one-stage: encoder + linear head trained end to end for --epochs1 epochs "
                       "with --classifier-loss (default %(default)s)", choices=METHODS, group=BASELINES)
    classifier_loss: str = _opt("ce", "one-stage loss: cross-entropy, class-weighted ce (w_c = n / (C n_c)), "
                                "focal (--focal-gamma), logit-adjusted (--logit-adjust-tau), balanced softmax; "
                                "class counts from the training split (default %(default)s)",
                                choices=CLASSIFIER_LOSSES, group=BASELINES)
    logit_adjust_tau: float = _opt(1.0, "tau of the logit-adjusted loss (default %(default)s)", minimum=0,
                                   group=BASELINES)
    stage1_loss: str = _opt("afcl", "two-stage: stage-1 loss, AFCL (--eta, --gamma; the paper), KCL "
                            "(--kcl-k positives per anchor) or BCL's class-averaged SupCon (default %(default)s)",
                            choices=STAGE1_LOSSES, group=BASELINES)
    kcl_k: int = _opt(6, "KCL: positives per anchor from its class (default %(default)s)", minimum=1,
                      metavar="K", group=BASELINES)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def validate(self) -> None:
        """Raise `ConfigError` naming the first bad setting and its allowed values."""
        for f in fields(self):
            if f.metadata["type"] is bool and not isinstance(getattr(self, f.name), bool):
                raise self._bad(f.name, "true or false")
            if f.metadata["choices"] and getattr(self, f.name) not in f.metadata["choices"]:
                raise self._bad(f.name, f"one of {list(f.metadata['choices'])}")
            self._check_number(f.name)
        if self.released_policy_acts() and self.views != 1:
            raise self._bad("nan_policy", "stable when views > 1 (the released code is single-view)")
        if not (self.device in ("auto", "cpu", "cuda") or str(self.device).startswith("cuda:")):
            raise self._bad("device", "auto, cpu, cuda or cuda:N")
        if self.few_shot_threshold > self.many_shot_threshold + 1:
            raise self._bad("few_shot_threshold", f"at most many_shot_threshold + 1 = {self.many_shot_threshold + 1}")
        if str(self.pretrained) not in ("imagenet", "none") and not Path(self.pretrained).is_file():
            raise self._bad("pretrained", "imagenet, none, or the path of an existing local weights file")
        self._validate_method()

    def _validate_method(self) -> None:
        """Settings that only mean something for one of the methods or stage-1 losses."""
        if self.method == "two-stage":
            if self.classifier_loss != "ce":
                raise self._bad("classifier_loss", "ce with method two-stage (the classifier loss is the "
                                "one-stage method's; set method one-stage, or stage2_loss for the linear head)")
            if self.stage1_loss != "afcl":
                for key in ("eta", "gamma"):
                    if getattr(self, key) != 0:
                        raise self._bad(key, f"0 with stage1_loss {self.stage1_loss} (eta and gamma are AFCL's)")
            return
        # (setting, the only value one-stage accepts): the others configure the contrastive stage
        for key, only in (("eta", 0), ("gamma", 0), ("stage1_loss", "afcl"), ("views", 1),
                          ("save_embeddings", False)):
            if getattr(self, key) != only:
                raise self._bad(key, f"{only} with method one-stage (it has no contrastive stage 1)")

    def released_policy_acts(self) -> bool:
        """Whether ``nan_policy="released"`` skips steps: only where the released arithmetic
        exists, the AFCL stage 1 of the two-stage method; the other losses (KCL,
        class-averaged, the one-stage classifier losses) train on every step under both
        policies, so a config's default ``released`` applies the authors' protocol where it
        is defined."""
        return self.nan_policy == "released" and self.method == "two-stage" and self.stage1_loss == "afcl"

    def check_paths(self) -> None:
        """Raise `ConfigError` when ``data`` is not a folder or ``out`` cannot be a folder.

        Separate from `validate` (which checks values only) so a spec can be checked before
        its folders exist; `asymcl.engine.run` calls both before any work.
        """
        data = Path(self.data)
        if not data.exists():
            raise ConfigError(f"--data {data} does not exist: expected a subset folder with train.pt and test.pt "
                              "(made by `asymcl subset` for FMNIST or `asymcl resize` for ISIC)")
        if not data.is_dir():
            raise ConfigError(f"--data {data} is a file: expected a subset folder with train.pt and test.pt "
                              "(made by `asymcl subset` or `asymcl resize`)")
        out = Path(self.out)
        existing = next((p for p in (out, *out.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            what = "is an existing file" if existing == out else f"lies under the file {existing}"
            raise ConfigError(f"--out {out} {what}: expected a run folder (created when missing); "
                              "choose another --out or move the file away")

    def _bad(self, key: str, allowed: str) -> ConfigError:
        return ConfigError(f"setting {key}={getattr(self, key)!r} ({flag(key)}) is invalid: expected {allowed}")

    def _check_number(self, key: str) -> None:
        value = getattr(self, key)
        if key in _RULES:
            ok, allowed = _RULES[key]
            if not ok(value):
                raise self._bad(key, allowed)

    def settings(self) -> dict[str, Any]:
        """The echo written to metrics.json (paths go under ``runtime``)."""
        echo = asdict(self)
        for key in ("data", "out", "stop_after_epoch"):
            echo.pop(key)
        return echo

    def stage1_identity(self) -> dict[str, Any]:
        """Settings a stage-1 checkpoint must share with the run that resumes it.

        A key of `IDENTITY_ADDED` missing from a checkpoint is read as its value there (the
        checkpoints written before the key existed); the loss parameters follow the method
        and loss, which are themselves compared.
        """
        keys = ["eta", "gamma", "seed", "arch", "pretrained", "batch_size", "lr", "temperature",
                "normalization", "rotation", "hflip", "views", "batch_sampler", "nan_policy", "method",
                "stage1_loss"]
        if self.method == "one-stage":
            keys.append("classifier_loss")
            keys += {"focal": ["focal_gamma"], "logit-adjusted": ["logit_adjust_tau"]}.get(self.classifier_loss, [])
        elif self.stage1_loss == "kcl":
            keys.append("kcl_k")
        return {k: getattr(self, k) for k in keys}


#: Identity keys added after stage-1 checkpoints were first written, with the value that an
#: older checkpoint (which lacks them) was trained with.
IDENTITY_ADDED = {"method": "two-stage", "stage1_loss": "afcl"}


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    """A real number that is neither NaN nor infinite (``--eta inf`` would reach the loss)."""
    return _number(value) and math.isfinite(value)


def _optional_int_at_least_1(value: Any) -> bool:
    return value is None or (_int(value) and value >= 1)


#: torch.set_num_threads takes a C int; more threads than this is a typo, not a machine.
MAX_THREADS = 4096


#: Checks of numeric settings, in field order: (accepts the value, what is allowed).
_RULES: dict[str, tuple[Any, str]] = {
    "eta": (lambda v: _finite(v) and v >= 0, "a finite number >= 0"),
    "gamma": (lambda v: _finite(v) and v >= 0, "a finite number >= 0"),
    "seed": (lambda v: _int(v) and 0 <= v <= MAX_SEED, f"an integer in [0, {MAX_SEED}] (2**32 - 1)"),
    "epochs1": (lambda v: _int(v) and v >= 0, "an integer >= 0"),
    "epochs2": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "batch_size": (lambda v: _int(v) and v >= 2, "an integer >= 2 (the contrastive loss needs pairs)"),
    "lr": (lambda v: _finite(v) and v > 0, "a finite number > 0"),
    "temperature": (lambda v: _finite(v) and v > 0, "a finite number > 0"),
    "focal_gamma": (lambda v: _finite(v) and v >= 0, "a finite number >= 0"),
    "rotation": (lambda v: _finite(v) and 0 <= v <= 180, "degrees in [0, 180]"),
    "max_nan_fraction": (lambda v: _finite(v) and 0 <= v <= 1, "a fraction in [0, 1]"),
    "checkpoint_every": (lambda v: _finite(v) and v >= 0,
                         "finite seconds >= 0 (0: a checkpoint after every stage-1 epoch)"),
    "num_threads": (lambda v: v is None or (_int(v) and 1 <= v <= MAX_THREADS),
                    f"an integer in [1, {MAX_THREADS}] or null (torch's choice)"),
    "stop_after_epoch": (_optional_int_at_least_1, "an integer >= 1 or null"),
    "views": (lambda v: _int(v) and v >= 1, "an integer >= 1 (1 = the paper's single view)"),
    "many_shot_threshold": (lambda v: _int(v) and v >= 0, "an integer >= 0 (a training-image count)"),
    "few_shot_threshold": (lambda v: _int(v) and v >= 0, "an integer >= 0 (a training-image count)"),
    "logit_adjust_tau": (lambda v: _number(v) and math.isfinite(v) and v >= 0, "a number >= 0 (0: plain ce)"),
    "kcl_k": (lambda v: _int(v) and v >= 1, "an integer >= 1 (positives per anchor)"),
}


def flag(name: str) -> str:
    """The command-line flag of a setting: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Add one ``asymcl train`` option per `RunSpec` field, from the field's metadata."""
    groups: dict[str | None, Any] = {None: parser}
    for f in fields(RunSpec):
        meta = f.metadata
        group = meta["group"]
        if group not in groups:
            groups[group] = parser.add_argument_group(group)
        kwargs: dict[str, Any] = {"help": meta["help"]}
        if meta["required"]:
            kwargs["required"] = True
        else:
            kwargs["default"] = f.default
        if meta["type"] is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = meta["type"]
            if meta["choices"]:
                kwargs["choices"] = list(meta["choices"])
            if meta["metavar"]:
                kwargs["metavar"] = meta["metavar"]
        groups[group].add_argument(flag(f.name), **kwargs)


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    """The `RunSpec` of parsed ``asymcl train`` options (or a namespace with the same names)."""
    return RunSpec(**{name: getattr(args, name) for name in RunSpec.field_names()})


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

"""`asymcl train` (one run) and `asymcl train-many` (several runs in one process)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from asymcl.cli import UserError

log = logging.getLogger(__name__)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="SUBSET_DIR", help="subset folder with train.pt and test.pt")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder: metrics.json and the stage-1 checkpoint")
    p.add_argument("--eta", type=float, required=True, help="AFCL asymmetry eta (0 = CL/FCL)")
    p.add_argument("--gamma", type=float, required=True, help="AFCL focusing gamma (0 = CL/ACL)")
    p.add_argument("--seed", type=int, required=True, help="seed for initialisation, shuffling and augmentation")
    p.add_argument("--epochs1", type=int, default=20, help="stage-1 epochs (paper: 20 FMNIST, 40 ISIC; default %(default)s)")
    p.add_argument("--epochs2", type=int, default=10, help="stage-2 (linear head) epochs (default %(default)s)")
    p.add_argument("--arch", choices=["resnet18", "resnet50"], default="resnet18",
                   help="encoder (paper: resnet18 FMNIST, resnet50 ISIC; default %(default)s)")
    p.add_argument("--pretrained", default="imagenet", metavar="imagenet|none|PATH",
                   help="encoder initialisation: torchvision ImageNet weights (needs network or the torch hub "
                        "cache), random ('none'), or a local state_dict file (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=128, help="default %(default)s")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate, both stages (default %(default)s)")
    p.add_argument("--temperature", type=float, default=0.07, help="contrastive temperature tau (default %(default)s)")
    p.add_argument("--normalization", choices=["reference", "paper"], default="reference",
                   help="AFCL normalisation variant (see the losses section; default %(default)s)")
    p.add_argument("--stage2-loss", choices=["ce", "focal"], default="ce",
                   help="linear-head loss (paper: ce FMNIST, focal ISIC; default %(default)s)")
    p.add_argument("--focal-gamma", type=float, default=2.0, help="gamma of the stage-2 focal loss (default %(default)s)")
    p.add_argument("--rotation", type=float, default=15.0,
                   help="max random rotation in degrees, stage 1 (paper gives none; default %(default)s)")
    p.add_argument("--hflip", action=argparse.BooleanOptionalAction, default=True,
                   help="random horizontal flips with p=0.5 in stage 1 (default on)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default %(default)s)")
    p.add_argument("--max-nan-fraction", type=float, default=0.05,
                   help="fail when more than this fraction of a stage's steps had a NaN/inf loss (default %(default)s)")
    p.add_argument("--nan-policy", choices=["stable", "released"], default="stable",
                   help="stable: train on every batch (our loss is finite everywhere); released: skip the "
                        "stage-1 steps on which the authors' released loss arithmetic is NaN/inf, as their "
                        "code did (counted in metrics.json; default %(default)s)")
    p.add_argument("--checkpoint-every", type=float, default=60.0, metavar="SECONDS",
                   help="stage-1 checkpoint at most this often (0: after every epoch; default %(default)s)")
    p.add_argument("--num-threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model on CUDA (off by default)")
    p.add_argument("--keep-checkpoint", action="store_true", help="keep the stage-1 checkpoint after success")
    p.add_argument("--stop-after-epoch", type=int, default=None, metavar="N",
                   help="debug: stop after writing the stage-1 checkpoint of epoch N, as if killed")
    abl = p.add_argument_group("ablations beyond the paper (defaults: the paper's setting)")
    abl.add_argument("--views", type=int, default=1, metavar="V",
                     help="independently augmented views per image in stage 1; the loss gets "
                          "features [N, V, D] (default %(default)s, the paper)")
    abl.add_argument("--batch-sampler", choices=["random", "balanced"], default="random",
                     help="stage-1 batches: shuffled (the paper) or class-balanced, minority classes "
                          "repeated (default %(default)s)")
    abl.add_argument("--save-embeddings", action="store_true",
                     help="write the test embeddings (encoder, projection) and labels to OUT/embeddings.npz")
    abl.add_argument("--many-shot-threshold", type=int, default=100, metavar="N",
                     help="> 2 classes: classes with more than N training images are many-shot (default %(default)s)")
    abl.add_argument("--few-shot-threshold", type=int, default=20, metavar="N",
                     help="> 2 classes: classes with fewer than N training images are few-shot (default %(default)s)")


def _spec_from_args(args: argparse.Namespace):
    from asymcl.train import RunSpec

    return RunSpec(**{name: getattr(args, name) for name in RunSpec.field_names()})


def _run_train(args: argparse.Namespace) -> int:
    """`asymcl train`: hand the run to the warm server when one is named, else run here.

    The client path imports neither torch nor the engine (that start-up is what the warm
    workers save); the server's worker calls `run_train_in_process` with these same args.
    """
    import os

    from asymcl import worker

    socket_path = os.environ.get(worker.SOCKET_ENV, "")
    if socket_path:
        rc = worker.submit(socket_path, "train", args)
        if rc is not None:
            return rc
    else:
        log.info("train: running in this process (%s unset)", worker.SOCKET_ENV)
    return run_train_in_process(args)


def run_train_in_process(args: argparse.Namespace) -> int:
    """One run in this process (also what a warm worker executes for a client)."""
    from asymcl import models, train

    try:
        result = train.run(_spec_from_args(args))
    except (train.ConfigError, models.PretrainedWeightsError) as err:
        raise UserError(str(err)) from None
    except train.TooManyNonFiniteSteps as err:
        print(f"asymcl train: run failed: {err}", file=sys.stderr)
        return 1
    if result is None:
        return 3  # stopped on purpose (--stop-after-epoch): not a finished run
    return 0


def _run_train_many(args: argparse.Namespace) -> int:
    from asymcl import train

    path = Path(args.spec)
    try:
        items = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"spec file {path} does not exist") from None
    except json.JSONDecodeError as err:
        raise UserError(f"spec file {path} is not valid JSON: {err}") from None
    if not isinstance(items, list):
        raise UserError(f"spec file {path} must hold a JSON list of run objects")
    try:
        specs = [train.spec_from_mapping(item, f"{path} item {i}") for i, item in enumerate(items)]
        statuses = train.run_cells(specs)
    except train.ConfigError as err:
        raise UserError(str(err)) from None
    failed = [s for s in statuses if s["status"] == "failed"]
    for s in failed:
        print(f"asymcl train-many: {s['out']} failed: {s['error']}", file=sys.stderr)
    counts = {k: sum(s["status"] == k for s in statuses) for k in ("done", "skipped", "stopped", "failed")}
    log.info("train-many: %s", ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 1 if failed else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train and evaluate one run (stage 1 contrastive, stage 2 linear head)",
        description=(
            "Train the encoder + projection head with AFCL(eta, gamma) (stage 1), then a linear "
            "head on the frozen encoder (stage 2), evaluate on the test split and write "
            "OUT/metrics.json. Defaults are the paper's FMNIST setup (resnet18, 20 + 10 epochs, "
            "Adam 1e-3, batch 128, tau 0.07, CE); the ISIC setup is --arch resnet50 --epochs1 40 "
            "--stage2-loss focal. Rerunning after an interruption resumes from the last stage-1 "
            "epoch checkpoint in OUT. Exit status: 0 done, 1 too many NaN/inf steps, 2 bad input, "
            "3 stopped by --stop-after-epoch."
        ),
    )
    _add_run_options(p)
    p.set_defaults(func=_run_train)

    m = subparsers.add_parser(
        "train-many",
        help="run several `train` runs in one process from a JSON spec file",
        description=(
            "Run a JSON list of runs sequentially in one process (saves interpreter and CUDA "
            "start-up per run). Each item is an object with the `asymcl train` option names as "
            "keys (dashes or underscores; data, out, eta, gamma, seed required), e.g. "
            '[{"data": "sub/50_50", "out": "runs/a", "eta": 0, "gamma": 0, "seed": 0}]. '
            "Runs whose OUT/metrics.json exists are skipped; a failed run does not stop the "
            "others (exit status 1 at the end)."
        ),
    )
    m.add_argument("--spec", required=True, metavar="FILE.json", help="JSON list of run objects")
    m.set_defaults(func=_run_train_many)

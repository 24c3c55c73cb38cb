"""`asymcl train` (one run) and `asymcl train-many` (several runs in one process)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from asymcl.engine.spec import add_run_options, spec_from_args
from asymcl.errors import InputError

log = logging.getLogger(__name__)


def _run_train(args: argparse.Namespace) -> int:
    """`asymcl train`: hand the run to the warm server when one is named, else run here.

    The client path imports neither torch nor the engine (that start-up is what the warm
    workers save); the server's worker calls `run_train_in_process` with these same args.
    """
    import os

    from asymcl import worker

    # Settings and paths first, torch-free: bad input fails in well under a second.
    spec = spec_from_args(args)
    spec.validate()
    spec.check_paths()
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
    from asymcl.engine.run import run
    from asymcl.engine.steps import TooManyNonFiniteSteps

    try:
        result = run(spec_from_args(args))
    except TooManyNonFiniteSteps as err:
        print(f"asymcl train: run failed: {err}", file=sys.stderr)
        return 1
    if result is None:
        return 3  # stopped on purpose (--stop-after-epoch): not a finished run
    return 0


def _run_train_many(args: argparse.Namespace) -> int:
    from asymcl.engine.run import run_cells
    from asymcl.engine.spec import spec_from_mapping

    path = Path(args.spec)
    try:
        items = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"--spec {path} does not exist: expected a JSON file listing the runs") from None
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise InputError(f"--spec {path} cannot be read ({reason}): expected a JSON file listing the runs") from None
    except json.JSONDecodeError as err:
        raise InputError(f"spec file {path} is not valid JSON: {err}") from None
    if not isinstance(items, list):
        raise InputError(f"spec file {path} must hold a JSON list of run objects")
    specs = []
    for i, item in enumerate(items):
        where = f"{path} item {i}"
        spec = spec_from_mapping(item, where)
        try:
            spec.check_paths()
        except InputError as err:
            raise InputError(f"{where}: {err}") from None
        specs.append(spec)
    statuses = run_cells(specs)
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
            "epoch checkpoint in OUT. One run per OUT at a time (a second one is refused: OUT/.lock). "
            "Exit status: 0 done, 1 too many NaN/inf steps, 2 bad input or an output that cannot be "
            "written (disk full, permissions) or OUT in use, 3 stopped by --stop-after-epoch, "
            "130 interrupted (Ctrl-C; rerun to resume)."
        ),
    )
    add_run_options(p)
    p.set_defaults(func=_run_train)

    m = subparsers.add_parser(
        "train-many",
        help="run several `train` runs in one process from a JSON spec file",
        description=(
            "Run a JSON list of runs sequentially in one process (saves interpreter and CUDA "
            "start-up per run). Each item is an object with the `asymcl train` option names as "
            "keys (dashes or underscores; data, out, eta, gamma, seed required), e.g. "
            '[{"data": "sub/50_50", "out": "runs/a", "eta": 0, "gamma": 0, "seed": 0}]. '
            "All items are checked first (settings, paths, readable data folders: exit status 2 "
            "before any training). Runs whose OUT/metrics.json exists are skipped; a failed run "
            "(including an OUT in use by another run) does not stop the others (exit status 1 at the end)."
        ),
    )
    m.add_argument("--spec", required=True, metavar="FILE.json", help="JSON list of run objects")
    m.set_defaults(func=_run_train_many)

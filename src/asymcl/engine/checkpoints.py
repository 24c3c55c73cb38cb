"""The stage-1 checkpoint: model, optimiser, generator and RNG states, epoch, history.

Written atomically to ``OUT/stage1_checkpoint.pt`` by wall time (`asymcl.engine.stage1`).
Running the same command again resumes after the last saved epoch; on CPU the final metrics
are identical to those of an uninterrupted run. A checkpoint written with other settings
(`RunSpec.stage1_identity`) is refused, and so is a file that is not a checkpoint (truncated,
or holding arbitrary Python objects: read with ``weights_only=True``, never executed).

A failed write (disk full, quota) is one `asymcl.io.OutputError` line naming the file and
the OS error; the previous checkpoint stays intact (the write goes to a temporary file).
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from asymcl.engine.device import DeviceContext
from asymcl.engine.spec import IDENTITY_ADDED, ConfigError, RunSpec
from asymcl.io import atomic_path, output_errors

CHECKPOINT_FILE = "stage1_checkpoint.pt"
#: Exceptions of `torch.load` (and of picking fields out of what it returned) that mean:
#: this file is not what we wrote. Anything else is a bug and keeps its traceback.
UNREADABLE = (pickle.UnpicklingError, EOFError, RuntimeError, OSError, KeyError, TypeError, ValueError,
              AttributeError, IndexError)


def unreadable_reason(err: BaseException) -> str:
    """Why a torch file could not be used, in our words.

    Never torch's own text: for a pickle of arbitrary objects it advises retrying with
    ``weights_only=False``, which would run whatever code the file holds.
    """
    if isinstance(err, pickle.UnpicklingError):
        return "it holds Python objects other than tensors and plain lists/dicts (refused unread)"
    if isinstance(err, EOFError):
        return "the file is empty"
    if isinstance(err, (RuntimeError, OSError)) and not isinstance(err, (FileNotFoundError, PermissionError)):
        return "the file is truncated or was not written by torch.save"
    if isinstance(err, OSError):
        return f"it cannot be read ({err.strerror})"
    if isinstance(err, (KeyError, TypeError, AttributeError, IndexError)):
        return "its contents are not the expected dict of tensors and lists"
    return str(err)  # our own ValueErrors (asymcl.data.packed) are written for people


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    # Through a file handle: a failed write then surfaces as an OSError behind torch's
    # RuntimeError (with a path torch reports only its own stream error).
    with output_errors(path, "the stage-1 checkpoint"), atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(state, fh)


def load_checkpoint(path: Path, spec: RunSpec, ctx: DeviceContext) -> dict[str, Any]:
    """Read a checkpoint and check it belongs to ``spec``; `ConfigError` says what to do."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols on odd files
            state = torch.load(path, map_location=ctx.device, weights_only=True)
        saved_identity, saved_epoch = dict(state["identity"]), int(state["epoch"])
    except UNREADABLE as err:
        raise ConfigError(
            f"stage-1 checkpoint {path} is not a usable checkpoint: {unreadable_reason(err)}; "
            "delete it to start the run afresh"
        ) from None
    # keys added to the identity later read as their defaults in older checkpoints
    saved_identity = {**IDENTITY_ADDED, **saved_identity}
    mismatched = {k: (saved_identity.get(k), v) for k, v in spec.stage1_identity().items()
                  if saved_identity.get(k) != v}
    if mismatched:
        detail = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in sorted(mismatched.items()))
        raise ConfigError(
            f"stage-1 checkpoint {path} was written with other settings ({detail}); "
            "use another --out folder or delete the checkpoint"
        )
    if saved_epoch > spec.epochs1:
        raise ConfigError(
            f"stage-1 checkpoint {path} is at epoch {saved_epoch}, beyond --epochs1 {spec.epochs1}; "
            "use another --out folder or delete the checkpoint"
        )
    return state

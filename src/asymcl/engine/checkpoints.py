"""The stage-1 checkpoint: model, optimiser, generator and RNG states, epoch, history.

Written atomically to ``OUT/stage1_checkpoint.pt`` by wall time (`asymcl.engine.stage1`).
Running the same command again resumes after the last saved epoch; on CPU the final metrics
are identical to those of an uninterrupted run. A checkpoint written with other settings
(`RunSpec.stage1_identity`) is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from asymcl.engine.device import DeviceContext
from asymcl.engine.spec import IDENTITY_ADDED, ConfigError, RunSpec
from asymcl.io import atomic_path

CHECKPOINT_FILE = "stage1_checkpoint.pt"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, spec: RunSpec, ctx: DeviceContext) -> dict[str, Any]:
    """Read a checkpoint and check it belongs to ``spec``; `ConfigError` says what to do."""
    try:
        state = torch.load(path, map_location=ctx.device, weights_only=True)
    except Exception as err:
        raise ConfigError(
            f"stage-1 checkpoint {path} cannot be read ({err}); delete it to start the run afresh"
        ) from err
    saved = {**IDENTITY_ADDED, **state["identity"]}
    mismatched = {k: (saved.get(k), v) for k, v in spec.stage1_identity().items() if saved.get(k) != v}
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

"""One optimiser step unless the loss is NaN/inf, and the per-stage NaN accounting.

A step whose loss is NaN or inf is skipped (no backward, no optimiser step) and counted.
After each stage, if the fraction of skipped steps exceeds ``max_nan_fraction`` the run
fails with `TooManyNonFiniteSteps`; it also fails at once when a whole epoch produced no
finite loss.
"""

from __future__ import annotations

import torch


class TooManyNonFiniteSteps(RuntimeError):
    """The fraction of skipped NaN/inf loss steps passed ``max_nan_fraction``."""


def step_if_finite(loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> bool:
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


def check_nan_fraction(stage: str, history: list[dict], limit: float) -> tuple[int, int]:
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

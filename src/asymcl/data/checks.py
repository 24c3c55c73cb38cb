"""Validation of command-line values at the edge, before any work starts.

Each check raises `asymcl.errors.InputError` with a message naming the option, the value
given, what was expected and (where useful) what to do, so that ``asymcl`` prints one line
and exits with status 2 instead of failing deep inside numpy, Pillow or the OS.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from asymcl.errors import InputError

# numpy's default_rng accepts any non-negative int, but the legacy RandomState, torch's
# manual_seed on some paths and most other RNGs take 32 bits; one range for every seed.
SEED_MAX = 2**32 - 1
# The largest square side the resize step and FMNIST packing accept: far above any use
# (ISIC originals are 600 x 450) and small enough that a typo fails here, not in malloc.
IMAGE_SIZE_MAX = 4096


def check_int(option: str, value: int | None, low: int, high: int, hint: str = "") -> int | None:
    """``value`` (None passes) must be an integer in ``[low, high]``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"{option} {value}: expected an integer in [{low}, {high}]{'; ' + hint if hint else ''}")
    return value


def check_seed(option: str, value: int | None) -> int | None:
    return check_int(option, value, 0, SEED_MAX, "seeds are 32-bit, e.g. 0, 1, 2")


def check_float(
    option: str,
    value: float | None,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
    hint: str = "",
) -> float | None:
    """``value`` (None passes) must be a finite number in the given interval."""
    if value is None:
        return None
    inside = (
        math.isfinite(value)
        and (low < value if low_open else low <= value)
        and (value < high if high_open else value <= high)
    )
    if not inside:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise InputError(f"{option} {value}: expected a finite number in {interval}{'; ' + hint if hint else ''}")
    return value


def check_input_file(option: str, path: Path, hint: str = "") -> Path:
    """``path`` must be an existing regular file (not a folder)."""
    tail = f"; {hint}" if hint else ""
    if path.is_dir():
        raise InputError(f"{option} {path} is a folder, expected a file{tail}")
    if not path.is_file():
        raise InputError(f"{option} {path} does not exist{tail}")
    return path


def check_input_dir(option: str, path: Path, hint: str = "") -> Path:
    """``path`` must be an existing folder."""
    tail = f"; {hint}" if hint else ""
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path} is a file, expected a folder{tail}")
    if not path.is_dir():
        raise InputError(f"{option} {path} does not exist{tail}")
    return path


def check_output_dir(option: str, path: Path) -> Path:
    """``path`` must be a writable folder, or creatable as one (nothing is created here).

    Reports a file in the way (at ``path`` or at a parent) or a read-only parent now, naming
    the path, rather than as a failure of the work itself.
    """
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path} is an existing file, expected a folder; remove it or choose another path")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{option} {path}: {existing} is a file, so the folder cannot be created; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: {existing} is not writable; fix its permissions or choose another folder")
    return path

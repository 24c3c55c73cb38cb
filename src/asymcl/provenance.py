"""Which code produced a result: the package's version, location and git state.

Every run's ``metrics.json`` (key ``code``) and every ``runs.csv`` row carry this, so a
number can always be traced to the commit that made it, and a job that ran some other
install of `asymcl` (another clone first on ``PATH``) is visible afterwards.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import asymcl

#: The keys of `code_version`, in the order they appear as ``runs.csv`` columns (``code_*``).
FIELDS = ("commit", "dirty", "version", "location")


def _git(package_dir: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(package_dir), *args],
            capture_output=True, text=True, timeout=20, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """``{"commit", "dirty", "version", "location"}`` of the running package.

    ``commit`` is the checkout's ``HEAD`` (``None`` outside a git checkout, e.g. a wheel
    install); ``dirty`` is whether tracked files under the package's source folder differ
    from ``HEAD`` (``None`` when unknown); ``location`` is the package folder that was
    imported. Cached per process: the answer cannot change under a running job.
    """
    package_dir = Path(asymcl.__file__).resolve().parent
    commit = _git(package_dir, "rev-parse", "HEAD")
    dirty = None
    if commit:
        status = _git(package_dir, "status", "--porcelain", "--untracked-files=no", "--", ".")
        dirty = None if status is None else bool(status)
    return {
        "commit": commit or None,
        "dirty": dirty,
        "version": asymcl.__version__,
        "location": str(package_dir),
    }

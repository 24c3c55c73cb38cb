"""Run the `asymcl` CLI as a user would and check how it fails.

Used by the table-driven bad-input suites: each probe runs ``python -m asymcl ...`` in a
fresh process (this checkout's code, whatever is on PATH) and asserts the contract of
`asymcl.errors.InputError`: exit status 2, one error line naming the culprit, no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(args: list[str], cwd: Path | str | None = None, timeout: float = 300,
            env: dict[str, str] | None = None) -> CliResult:
    """``python -m asymcl *args`` with this checkout's ``src`` first on ``PYTHONPATH``."""
    full_env = dict(os.environ, **(env or {}))
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), full_env.get("PYTHONPATH")]))
    full_env.pop("ASYMCL_WORKER_SOCKET", None)
    done = subprocess.run(
        [sys.executable, "-m", "asymcl", *map(str, args)],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


def assert_input_error(result: CliResult, *culprits: str) -> str:
    """Exit status 2, no traceback, and an ``error:`` line naming every culprit. Returns it."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, (result.returncode, result.stderr)
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    for culprit in culprits:
        assert culprit in errors[0], (culprit, errors[0])
    return errors[0]

"""Shared fixtures.

``shared_data`` points at the real development data (``../shared/data``) when it exists;
tests that use it skip without it, so the suite passes on any machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "fmnist").is_dir():
        pytest.skip(f"real development data not found at {SHARED_DATA}")
    return SHARED_DATA

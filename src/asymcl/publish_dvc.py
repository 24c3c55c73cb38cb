"""DVC steps of `asymcl publish`: preconditions checked before anything is copied, then
``dvc add`` / ``dvc push`` of the published folder, with the files DVC touches backed up
so a failed step can be undone (publishing is all-or-nothing)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from asymcl.errors import InputError


@dataclass
class Dvc:
    """DVC calls for one published folder, run in the current directory."""

    dest: Path
    remote: str | None = None

    @property
    def dvc_file(self) -> Path:
        return self.dest.with_name(self.dest.name + ".dvc")

    @property
    def gitignore(self) -> Path:
        return self.dest.parent / ".gitignore"

    def check_ready(self, push: bool) -> None:
        """DVC initialised here and, when pushing, the remote configured (before any write)."""
        from dvc.exceptions import NotDvcRepoError
        from dvc.repo import Repo

        try:
            with Repo(str(self.dest.parent.resolve()), uninitialized=False) as repo:
                core_remote = repo.config.get("core", {}).get("remote")
                remotes = sorted(repo.config.get("remote", {}))
        except NotDvcRepoError:
            raise InputError(
                f"{self.dest.parent} is not inside a DVC project; run `dvc init` in the project "
                "folder (or publish with `--no-dvc`)"
            ) from None
        if not push:
            return
        wanted = self.remote or core_remote
        if not wanted:
            raise InputError(
                "no DVC remote to push to: none given with --remote and no default remote "
                f"(remotes: {', '.join(remotes) or 'none'}); add one with "
                "`dvc remote add -d NAME URL`, or publish with --no-push"
            )
        if wanted not in remotes:
            raise InputError(
                f"DVC remote {wanted!r} is not configured (remotes: {', '.join(remotes) or 'none'}); "
                "add it with `dvc remote add NAME URL` or name another with --remote"
            )

    def run(self, *args: str) -> None:
        proc = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True)
        if proc.returncode != 0:
            detail = " ".join((proc.stderr or proc.stdout).split())
            hint = f"; {IGNORE_HINT.format(dvc_file=self.dvc_file)}" if "git-ignored" in detail else ""
            raise InputError(f"`dvc {' '.join(args)}` failed: {detail}{hint}")

    def sees_dvc_file(self) -> bool:
        """Whether DVC's index lists the .dvc file (it skips .dvc files hidden by .gitignore)."""
        from dvc.repo import Repo

        with Repo() as repo:
            return any(Path(s.path).resolve() == self.dvc_file.resolve() for s in repo.index.stages)


IGNORE_HINT = (
    "git or DVC treats {dvc_file} as ignored, so `dvc pull` would not restore it; in .gitignore, "
    "ignore the other results by name (/results/runs/, /results/runs.csv, ...) rather than "
    "`/results/*` with a `!` exception (treeverse/dvc#10987)"
)


class _FileBackup:
    """The bytes of a few small files (or their absence), to put back on failure."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self.saved = {p: (p.read_bytes() if p.is_file() else None) for p in paths}

    def restore(self) -> None:
        for path, data in self.saved.items():
            if data is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(data)


# ----------------------------------------------------------------------------- record

"""``asymcl publish``: gather the results worth sharing in one folder and version it with DVC.

The workflow's outputs stay where Snakemake wrote them (``results/``); ``publish`` copies
the shareable part (``runs.csv``, ``experiments.json``, ``tables/``, ``figures/`` and every
run's ``metrics.json``, not logs or checkpoints) to ``results/published/``, then
``dvc add`` records it in ``results/published.dvc`` (commit that file with git) and
``dvc push`` uploads it to the DVC remote. A collaborator gets the same bytes with
``git pull && dvc pull``.

The copy is a snapshot: Snakemake never reads it, so DVC rewriting its mtimes on
checkout cannot trigger reruns.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from asymcl.cli import UserError

log = logging.getLogger(__name__)

# What is shared, relative to the results folder (files, folders or glob patterns).
PUBLISHED = ("runs.csv", "experiments.json", "tables", "figures", "runs/**/metrics.json")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "publish",
        help="copy the shareable results to results/published and dvc add + dvc push them",
        description=(
            "Copy runs.csv, experiments.json, tables/, figures/ and every run's metrics.json from "
            "RESULTS to TO (replacing its previous content), then `dvc add TO` and `dvc push` it. "
            "Commit TO.dvc (and the .gitignore next to it) with git afterwards."
        ),
    )
    p.add_argument("--results", type=Path, default=Path("results"), metavar="DIR",
                   help="the workflow's results folder (default: %(default)s)")
    p.add_argument("--to", type=Path, default=None, metavar="DIR",
                   help="published folder (default: RESULTS/published)")
    p.add_argument("--remote", metavar="NAME", help="DVC remote to push to (default: the default remote)")
    p.add_argument("--no-push", action="store_true", help="only dvc add; push later with `dvc push`")
    p.set_defaults(func=run)


def collect(results: Path) -> list[Path]:
    """The shareable files under ``results`` (relative paths, sorted)."""
    files: set[Path] = set()
    for pattern in PUBLISHED:
        for path in results.glob(pattern):
            if path.is_file():
                files.add(path.relative_to(results))
            elif path.is_dir():
                files.update(p.relative_to(results) for p in path.rglob("*") if p.is_file())
    return sorted(files)


def copy_snapshot(results: Path, to: Path) -> int:
    """Replace ``to`` with a copy of the shareable results; returns the number of files.

    The copy is built in a temporary sibling folder and renamed into place, so ``to`` is
    never half-written."""
    if not (results / "runs.csv").is_file():
        raise UserError(
            f"{results / 'runs.csv'} does not exist; run the workflow (`snakemake`) before publishing"
        )
    files = collect(results)
    to.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{to.name}.", dir=to.parent))
    try:
        for rel in files:
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(results / rel, staging / rel)
        if to.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{to.name}.old.", dir=to.parent))
            to.rename(old / to.name)
            staging.rename(to)
            shutil.rmtree(old)
        else:
            staging.rename(to)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return len(files)


def _dvc(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "dvc", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"`dvc {' '.join(args)}` failed:\n{(proc.stderr or proc.stdout).strip()}")
    return proc


def _dvc_sees(dvc_file: Path) -> bool:
    """Whether DVC's index lists ``dvc_file`` (it skips .dvc files hidden by .gitignore)."""
    from dvc.repo import Repo

    with Repo() as repo:
        return any(Path(stage.path).resolve() == dvc_file.resolve() for stage in repo.index.stages)


IGNORE_HINT = (
    "git or DVC treats {dvc_file} as ignored, so `dvc pull` would not restore it; in .gitignore, "
    "ignore the other results by name (/results/runs/, /results/runs.csv, ...) rather than "
    "`/results/*` with a `!` exception (treeverse/dvc#10987)"
)


def run(args: argparse.Namespace) -> int:
    to = args.to or args.results / "published"
    dvc_file = to.with_name(to.name + ".dvc")
    count = copy_snapshot(args.results, to)
    log.info("copied %d files from %s to %s", count, args.results, to)
    try:
        _dvc("add", str(to))
    except UserError as err:
        if "git-ignored" in str(err):
            raise UserError(f"{err}\n{IGNORE_HINT.format(dvc_file=dvc_file)}") from None
        raise
    # DVC silently skips .dvc files matched by a negated .gitignore pattern: then a plain
    # `dvc push`/`dvc pull` would transfer nothing. Fail now rather than publish nothing.
    if not _dvc_sees(dvc_file):
        raise UserError(IGNORE_HINT.format(dvc_file=dvc_file))
    if not args.no_push:
        _dvc("push", *(["--remote", args.remote] if args.remote else []), str(dvc_file))
        log.info("pushed %s to the DVC remote%s", to, f" {args.remote}" if args.remote else "")
    print(f"published {count} files to {to}; commit with: git add {dvc_file} {to.parent / '.gitignore'}")
    return 0

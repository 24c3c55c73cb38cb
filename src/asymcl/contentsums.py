"""The content list of a raw-data folder: ``sha256  name`` lines, sorted by name.

The workflow's download rules write it next to the raw files (``CONTENT.sha256``) and the
rules that read raw data take it as an ordinary input, while the raw files themselves are
``ancient()``. Snakemake compares small inputs by checksum, so restoring the same bytes with
new modification times (``dvc pull``, ``touch``) reruns nothing, while different bytes give
a different list and rerun the subsets and runs built from them.

    python -m asymcl.contentsums --root data/raw/fmnist --out data/raw/fmnist/CONTENT.sha256 \
        data/raw/fmnist/*.gz
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Iterable

from asymcl.io import write_text_atomic

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def content_lines(root: Path, paths: Iterable[Path]) -> list[str]:
    """``sha256  relative/name`` of every file in ``paths`` (folders walked), sorted by name."""
    root = Path(root)
    files: set[Path] = set()
    for path in map(Path, paths):
        if path.is_dir():
            files.update(p for p in path.rglob("*") if p.is_file())
        else:
            files.add(path)
    return sorted(
        (f"{sha256_file(f)}  {f.relative_to(root).as_posix()}" for f in files),
        key=lambda line: line.split("  ", 1)[1],
    )


def write_content_list(root: Path, paths: Iterable[Path], out: Path) -> None:
    write_text_atomic(Path(out), "".join(line + "\n" for line in content_lines(root, paths)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asymcl.contentsums", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="names are written relative to this folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("paths", type=Path, nargs="+", help="files or folders (walked) to list")
    args = parser.parse_args(argv)
    write_content_list(args.root, args.paths, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

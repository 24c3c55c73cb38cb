"""``asymcl resize``: resize a manifest's images (ISIC) and pack them per split."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from asymcl.cli import UserError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "resize",
        help="resize a subset's images to SIZE x SIZE RGB and pack train.pt/test.pt",
        description="Read MANIFEST (id,label,split), load IMAGES/<id>.jpg with Pillow, resize with an "
        "antialiasing filter and write OUT/train.pt, OUT/test.pt and OUT/manifest.csv.",
    )
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--images", required=True, type=Path, metavar="DIR", help="e.g. data/raw/isic2018/images")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--out", required=True, type=Path, metavar="DIR")
    parser.add_argument("--classes", nargs="+", metavar="CLASS",
                        help="target order (default: order of first appearance in the manifest)")
    parser.add_argument("--resample", choices=["lanczos", "box"], default="lanczos")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from asymcl.data.download import copy_file_atomic
    from asymcl.data.resize import resize_manifest

    if not args.images.is_dir():
        raise UserError(f"--images {args.images} is not a folder; run `asymcl download isic2018` first")
    try:
        counts = resize_manifest(args.manifest, args.images, args.size, args.out,
                                 classes=args.classes, resample=args.resample)
        copy_file_atomic(args.manifest, args.out / "manifest.csv")
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from err
    log.info("packed %s into %s at %dx%d", counts, args.out, args.size, args.size)
    return 0

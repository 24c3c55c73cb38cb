"""``asymcl resize``: resize a manifest's images (ISIC) and pack them per split."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "resize",
        help="resize a subset's images to SIZE x SIZE RGB and pack train.pt/test.pt",
        description="Read MANIFEST (id,label,split), load IMAGES/<id>.jpg with Pillow, resize with an "
        "antialiasing filter and write OUT/train.pt, OUT/test.pt and OUT/manifest.csv, all or nothing.",
    )
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--images", required=True, type=Path, metavar="DIR", help="e.g. data/raw/isic2018/images")
    parser.add_argument("--size", type=int, default=128, help="pixels per side, 1..4096 (default: 128)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR")
    parser.add_argument("--classes", nargs="+", metavar="CLASS",
                        help="target order (default: order of first appearance in the manifest)")
    parser.add_argument("--resample", choices=["lanczos", "box"], default="lanczos")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from asymcl.data.checks import check_input_dir, check_input_file, check_output_dir
    from asymcl.data.resize import check_resize_options, resize_manifest

    check_resize_options(args.size, args.resample)
    check_input_file("--manifest", args.manifest, "pass the manifest.csv written by `asymcl subset`")
    check_input_dir("--images", args.images, "run `asymcl download isic2018` first")
    check_output_dir("--out", args.out)
    counts = resize_manifest(args.manifest, args.images, args.size, args.out,
                             classes=args.classes, resample=args.resample)
    log.info("packed %s into %s at %dx%d", counts, args.out, args.size, args.size)
    return 0

"""``asymcl synth fmnist|isic2018``: tiny synthetic datasets in the official formats."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="write a tiny synthetic dataset in the official file formats (+ SHA256SUMS)",
        description="For tests and the smoke workflow: use the output with "
        "`asymcl download DATASET --source file://DIR --checksums DIR/SHA256SUMS`.",
    )
    datasets = parser.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    fm = datasets.add_parser("fmnist", help="10 classes, idx .gz files")
    fm.add_argument("--out", required=True, type=Path, metavar="DIR")
    fm.add_argument("--per-class", type=int, default=20, help="train images per class (default: 20)")
    fm.add_argument("--test-per-class", type=int, help="test images per class (default: --per-class)")
    fm.add_argument("--seed", type=int, default=0)
    fm.set_defaults(func=run_fmnist)
    isic = datasets.add_parser("isic2018", help="all 7 classes, official zips + metadata CSV")
    isic.add_argument("--out", required=True, type=Path, metavar="DIR")
    isic.add_argument("--per-class", type=int, default=12, help="MEL and DF images each (default: 12)")
    isic.add_argument("--other-per-class", type=int, default=3, help="images of each other class (default: 3)")
    isic.add_argument("--seed", type=int, default=0)
    isic.set_defaults(func=run_isic)


# Synthetic sets are for tests and smoke runs; these caps keep a typo from filling memory.
MAX_FMNIST_PER_CLASS = 100_000
MAX_ISIC_PER_CLASS = 10_000


def _check_common(args: argparse.Namespace) -> None:
    from asymcl.data.checks import check_output_dir, check_seed

    check_seed("--seed", args.seed)
    check_output_dir("--out", args.out)


def run_fmnist(args: argparse.Namespace) -> int:
    from asymcl.data.checks import check_int
    from asymcl.data.synthetic import synth_fmnist

    check_int("--per-class", args.per_class, 1, MAX_FMNIST_PER_CLASS, "train images per class")
    check_int("--test-per-class", args.test_per_class, 0, MAX_FMNIST_PER_CLASS, "test images per class")
    _check_common(args)
    sums = synth_fmnist(args.out, args.per_class, args.test_per_class, args.seed)
    log.info("synthetic FMNIST written to %s (checksums: %s)", args.out, sums)
    return 0


def run_isic(args: argparse.Namespace) -> int:
    from asymcl.data.checks import check_int
    from asymcl.data.synthetic import synth_isic

    check_int("--per-class", args.per_class, 1, MAX_ISIC_PER_CLASS, "MEL and DF images each")
    check_int("--other-per-class", args.other_per_class, 0, MAX_ISIC_PER_CLASS, "images of each other class")
    _check_common(args)
    sums = synth_isic(args.out, args.per_class, args.other_per_class, args.seed)
    log.info("synthetic ISIC 2018 written to %s (checksums: %s)", args.out, sums)
    return 0

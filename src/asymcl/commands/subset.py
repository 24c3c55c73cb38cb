"""``asymcl subset``: draw an imbalance scenario and a stratified train/test split."""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from pathlib import Path

from asymcl.errors import InputError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "subset",
        help="draw a scenario (ratio, total) and a train/test split (stratified or random)",
        description="Write OUT/manifest.csv (id,label,split) and, for fmnist, packed OUT/train.pt "
        "and OUT/test.pt. Deterministic for a seed.",
    )
    parser.add_argument("--dataset", required=True, choices=["fmnist", "isic2018"])
    parser.add_argument("--raw", required=True, type=Path, metavar="DIR", help="folder written by `asymcl download`")
    parser.add_argument("--classes", nargs="+", metavar="CLASS",
                        help="class labels, majority first (default: fmnist 0 6, isic2018 MEL DF)")
    parser.add_argument("--ratio", metavar="R1:R2[:...]", help="class proportions, e.g. 98:2 (with --total)")
    parser.add_argument("--total", type=int, metavar="N", help="images in the scenario (with --ratio)")
    parser.add_argument("--imbalance-factor", type=float, metavar="IF",
                        help="long-tailed scenario (with --max-per-class): class k of K (in --classes order) "
                        "gets round(max * IF^(-k/(K-1))) images, e.g. --classes 0 1 ... 9 --imbalance-factor 100")
    parser.add_argument("--max-per-class", type=int, metavar="N",
                        help="long-tailed scenario: images of the first (largest) class")
    parser.add_argument("--from-split", choices=["train", "test"], default="train",
                        help="official split to draw from (fmnist; default: train)")
    parser.add_argument("--group-by-lesion", action="store_true",
                        help="isic2018: keep all images of a lesion in one split")
    parser.add_argument("--split", choices=["stratified", "random"], default="stratified",
                        help="stratified: each class split 70/30 (test mix fixed); random: a plain random "
                        "split of the scenario's images, as the paper's numbers imply (default: stratified)")
    parser.add_argument("--test-fraction", type=float, default=0.3, help="test share per class (default: 0.3)")
    parser.add_argument("--image-size", type=int, metavar="PX",
                        help="fmnist: resize the packed images to PX x PX with the ISIC resize rule "
                        "(Pillow LANCZOS); default 28, the original size (no resize)")
    parser.add_argument("--seed", type=int, required=True, help="0 .. 2^32-1")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from asymcl.data.checks import check_float, check_input_dir, check_int, check_output_dir, check_seed
    from asymcl.data.splits import parse_ratio
    from asymcl.data.subset import DEFAULT_CLASSES, build_subset

    # Every value checked before any file is read or written.
    check_seed("--seed", args.seed)
    check_int("--total", args.total, 1, 10**9, "the number of images in the scenario")
    check_int("--max-per-class", args.max_per_class, 1, 10**9, "images of the largest class")
    check_float("--imbalance-factor", args.imbalance_factor, 1.0, 1e9, hint="largest / smallest class, e.g. 100")
    check_float("--test-fraction", args.test_fraction, 0.0, 1.0, low_open=True, high_open=True,
                hint="the test share of each class, e.g. 0.3")
    if args.image_size is not None and args.dataset != "fmnist":
        raise InputError("--image-size applies to --dataset fmnist only; size ISIC images with `asymcl resize --size`")
    check_input_dir("--raw", args.raw, f"run `asymcl download {args.dataset}` first")
    check_output_dir("--out", args.out)
    classes = args.classes or DEFAULT_CLASSES[args.dataset]
    ratio = parse_ratio(args.ratio, len(classes)) if args.ratio is not None else None
    rows = build_subset(
        args.dataset, args.raw, args.out, seed=args.seed, classes=classes, ratio=ratio,
        total=args.total, from_split=args.from_split, group_by_lesion=args.group_by_lesion,
        test_fraction=args.test_fraction, imbalance_factor=args.imbalance_factor,
        max_per_class=args.max_per_class, image_size=args.image_size, split=args.split,
    )
    counts = Counter((r.split, r.label) for r in rows)
    log.info("subset %s -> %s: %s", args.dataset, args.out,
             ", ".join(f"{s}/{c}={counts[s, c]}" for s in ("train", "test") for c in classes))
    return 0

"""``asymcl download fmnist|isic2018``: fetch, verify and (ISIC) extract the raw data."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from asymcl.data.download import MAX_RETRIES
from asymcl.errors import InputError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "download",
        help="fetch and verify the raw archives of a dataset",
        description="Fetch a dataset's official files from SRC (http(s):// or file:// base URL, or a "
        "local folder) into DIR, verify checksums and write every file atomically.",
    )
    datasets = parser.add_subparsers(dest="dataset", metavar="DATASET", required=True)

    fm = datasets.add_parser("fmnist", help="the four Fashion-MNIST idx .gz files")
    _common(fm, default_source="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/")
    fm.set_defaults(func=run_fmnist)

    isic = datasets.add_parser("isic2018", help="ISIC 2018 Task 3 training zips, then extract classes")
    _common(isic, default_source="https://isic-challenge-data.s3.amazonaws.com/2018/")
    isic.add_argument("--classes", nargs="+", default=["MEL", "DF"], metavar="CLASS",
                      help="classes to extract (MEL NV BCC AKIEC BKL DF VASC; default: MEL DF)")
    isic.add_argument("--metadata-source", metavar="SRC",
                      help="where HAM10000_metadata.csv lives if not at --source (optional)")
    isic.set_defaults(func=run_isic)


def _common(parser: argparse.ArgumentParser, default_source: str) -> None:
    parser.add_argument("--source", default=default_source, metavar="SRC",
                        help=f"base URL (http, https, file) or local folder (default: {default_source})")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    parser.add_argument("--checksums", type=Path, metavar="FILE",
                        help="sha256sum-format list overriding the built-in checksums")
    parser.add_argument("--retries", type=int, default=3,
                        help=f"extra attempts on transient network errors, 0..{MAX_RETRIES} (default: 3)")


def _check_source(option: str, source: str) -> str:
    if "://" not in source:
        if Path(source).exists() and not Path(source).is_dir():
            raise InputError(f"{option} {source} is a file, expected a URL (http://, https://, file://) or a folder")
        if not Path(source).is_dir():
            raise InputError(f"{option} {source} is neither a URL (http://, https://, file://) nor an existing folder")
    return source


def _check_common(args: argparse.Namespace) -> None:
    """Everything checkable before the first byte is fetched."""
    from asymcl.data.checks import check_input_file, check_int, check_output_dir

    _check_source("--source", args.source)
    check_int("--retries", args.retries, 0, MAX_RETRIES, "extra attempts after a network error")
    if args.checksums is not None:
        check_input_file("--checksums", args.checksums, "pass a sha256sum-format file such as DIR/SHA256SUMS")
    check_output_dir("--out", args.out)


def run_fmnist(args: argparse.Namespace) -> int:
    from asymcl.data import download, fmnist

    _check_common(args)
    expected = fmnist.OFFICIAL_CHECKSUMS
    if args.checksums:
        listed = download.read_checksum_file(args.checksums)
        missing = [n for n in fmnist.FILE_NAMES if n not in listed]
        if missing:
            raise InputError(f"--checksums {args.checksums} lists no checksum for {', '.join(missing)}")
        expected = {n: listed[n] for n in fmnist.FILE_NAMES}
    for name in fmnist.FILE_NAMES:  # each file must verify and parse before it is kept
        download.fetch(args.source, name, args.out, expected[name], retries=args.retries,
                       validate=fmnist.validate_download)
    for split, names in fmnist.FILES.items():
        try:  # both files parse; their counts must agree too
            images, _ = fmnist.load_split(args.out, split)
        except fmnist.IdxFormatError as err:
            for name in names:  # a pair that does not fit together is not kept either
                (args.out / name).unlink(missing_ok=True)
            raise fmnist.IdxFormatError(f"{err}; removed {' and '.join(names)} from {args.out}") from None
        log.info("FMNIST %s: %d images of 28x28", split, images.shape[0])
    return 0


def run_isic(args: argparse.Namespace) -> int:
    from asymcl.data import download, isic

    _check_common(args)
    if args.metadata_source is not None:
        _check_source("--metadata-source", args.metadata_source)
    classes = isic.check_classes(args.classes)
    listed = download.read_checksum_file(args.checksums) if args.checksums else {}
    for name in (isic.INPUT_ZIP, isic.GT_ZIP):
        download.fetch(args.source, name, args.out, listed.get(name), retries=args.retries,
                       validate=isic.validate_download)
    try:
        download.fetch(args.metadata_source or args.source, isic.METADATA_CSV, args.out,
                       listed.get(isic.METADATA_CSV), retries=args.retries)
    except download.SourceNotFoundError as err:
        log.warning("%s; continuing without lesion ids", err)
    isic.extract_classes(args.out, classes)
    return 0

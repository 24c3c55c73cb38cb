"""ISIC 2018 Task 3 (HAM10000): read the official archives and extract chosen classes.

Official layout (what the challenge publishes and what the reader insists on):

- ``ISIC2018_Task3_Training_Input.zip``: ``ISIC2018_Task3_Training_Input/<image_id>.jpg``
  (plus licence/attribution text files, ignored);
- ``ISIC2018_Task3_Training_GroundTruth.zip``:
  ``ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv`` with the
  header ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC`` and one-hot rows (``0.0``/``1.0``);
- ``HAM10000_metadata.csv`` (optional): ``lesion_id,image_id,dx,...``; several images can
  show one lesion, which a leakage-free split must keep together.

Extraction streams only the wanted members out of the (2.6 GB official) input zip; zipfile
checks each member's CRC-32 as it is read, so a corrupt archive fails rather than yielding
damaged images. Images land in a temporary folder that is renamed into place at the end.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import shutil
import zipfile
import zlib
from pathlib import Path

from tqdm import tqdm

from asymcl.errors import InputError
from asymcl.io import read_csv_rows, write_csv_atomic

log = logging.getLogger(__name__)

OFFICIAL_URL = "https://isic-challenge-data.s3.amazonaws.com/2018/"
INPUT_ZIP = "ISIC2018_Task3_Training_Input.zip"
GT_ZIP = "ISIC2018_Task3_Training_GroundTruth.zip"
METADATA_CSV = "HAM10000_metadata.csv"
INPUT_FOLDER = "ISIC2018_Task3_Training_Input"
GT_FOLDER = "ISIC2018_Task3_Training_GroundTruth"
GT_CSV_MEMBER = f"{GT_FOLDER}/ISIC2018_Task3_Training_GroundTruth.csv"

CLASSES = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]  # GT CSV column order
DEFAULT_CLASSES = ["MEL", "DF"]  # melanoma (majority) vs dermatofibroma (minority)
GT_HEADER = ["image", *CLASSES]
METADATA_COLUMNS = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]
LABELS_HEADER = ["id", "label", "lesion_id"]


class IsicFormatError(InputError):
    """An archive or CSV does not have the official ISIC 2018 layout, or is corrupt."""


def check_classes(classes: list[str]) -> list[str]:
    """Validate class labels against the GT CSV columns; returns them in the given order."""
    unknown = [c for c in classes if c not in CLASSES]
    if unknown:
        raise InputError(f"--classes: unknown ISIC 2018 class(es) {unknown}; allowed: {' '.join(CLASSES)}")
    if len(set(classes)) != len(classes):
        raise InputError(f"--classes must be distinct, got {classes}")
    return list(classes)


def _open_zip(path: Path, display: Path | None = None) -> zipfile.ZipFile:
    name = display or path
    if not path.is_file():
        raise InputError(f"{name} does not exist; run `asymcl download isic2018` first")
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:  # truncated: no central directory
        raise IsicFormatError(f"{name} is not a readable zip archive ({err}); download it again") from err


def validate_download(path: Path, dest: Path) -> None:
    """`asymcl.data.download.fetch` validator: the zips must open (central directory intact)."""
    if dest.suffix == ".zip":
        _open_zip(path, dest).close()


def read_ground_truth(gt_zip: str | os.PathLike) -> dict[str, str]:
    """``{image_id: class}`` from the one-hot ground-truth CSV inside ``gt_zip``."""
    gt_zip = Path(gt_zip)
    with _open_zip(gt_zip) as zf:
        bad = zf.testzip()  # small archive: check every member's CRC
        if bad is not None:
            raise IsicFormatError(f"{gt_zip}: member {bad} fails its CRC check; download it again")
        if GT_CSV_MEMBER not in zf.namelist():
            raise IsicFormatError(
                f"{gt_zip} lacks {GT_CSV_MEMBER} (found: {zf.namelist()[:5]}); is it the "
                "official Task 3 training ground truth?"
            )
        text = zf.read(GT_CSV_MEMBER).decode("utf-8-sig")
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header != GT_HEADER:
        raise IsicFormatError(f"{gt_zip}:{GT_CSV_MEMBER}: header {header}, expected {','.join(GT_HEADER)}")
    labels: dict[str, str] = {}
    for lineno, row in enumerate(rows, start=2):
        if not row:
            continue
        try:
            values = [float(v) for v in row[1:]]
        except ValueError:
            values = []
        if len(row) != len(GT_HEADER) or sorted(values) != [0.0] * (len(CLASSES) - 1) + [1.0]:
            raise IsicFormatError(f"{gt_zip}:{GT_CSV_MEMBER}:{lineno}: not a one-hot row: {row}")
        labels[row[0]] = CLASSES[values.index(1.0)]
    return labels


def read_lesions(metadata_csv: str | os.PathLike) -> dict[str, str]:
    """``{image_id: lesion_id}`` from ``HAM10000_metadata.csv``."""
    metadata_csv = Path(metadata_csv)
    with open(metadata_csv, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = {"lesion_id", "image_id"} - set(reader.fieldnames or [])
        if missing:
            raise IsicFormatError(f"{metadata_csv}: columns {sorted(missing)} missing (header {reader.fieldnames})")
        return {row["image_id"]: row["lesion_id"] for row in reader}


def extract_classes(
    raw_dir: str | os.PathLike,
    classes: list[str],
    *,
    progress: bool = True,
) -> list[tuple[str, str, str]]:
    """Extract the images of ``classes`` from the archives in ``raw_dir``.

    Writes ``raw_dir/images/<image_id>.jpg`` and ``raw_dir/labels.csv`` (``id,label,lesion_id``,
    sorted by id; ``lesion_id`` empty without ``HAM10000_metadata.csv``). Returns the rows.
    """
    raw_dir = Path(raw_dir)
    classes = check_classes(classes)
    truth = read_ground_truth(raw_dir / GT_ZIP)
    wanted = sorted(image for image, label in truth.items() if label in classes)
    metadata = raw_dir / METADATA_CSV
    lesions = read_lesions(metadata) if metadata.is_file() else {}
    if not lesions:
        log.warning("%s not found: labels.csv gets empty lesion ids (no lesion-grouped split)", metadata)

    input_zip = raw_dir / INPUT_ZIP
    images_dir = raw_dir / "images"
    partial = raw_dir / ".images.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        with _open_zip(input_zip) as zf:
            members = {
                Path(name).stem: name
                for name in zf.namelist()
                if name.startswith(f"{INPUT_FOLDER}/") and name.lower().endswith(".jpg")
            }
            absent = [image for image in wanted if image not in members]
            if absent:
                raise IsicFormatError(
                    f"{input_zip}: {len(absent)} image(s) of classes {classes} listed in the ground "
                    f"truth are missing from {INPUT_FOLDER}/, e.g. {absent[:3]}"
                )
            for image in tqdm(wanted, desc=f"extract {'+'.join(classes)}", unit="img", disable=not progress):
                try:
                    with zf.open(members[image]) as src, open(partial / f"{image}.jpg", "wb") as dst:
                        shutil.copyfileobj(src, dst)  # CRC-32 checked when the member is read fully
                except (zipfile.BadZipFile, zlib.error, EOFError) as err:
                    raise IsicFormatError(
                        f"{input_zip}: member {members[image]} is corrupt ({err}); download it again"
                    ) from err
        shutil.rmtree(images_dir, ignore_errors=True)
        os.replace(partial, images_dir)
    finally:
        shutil.rmtree(partial, ignore_errors=True)

    rows = [(image, truth[image], lesions.get(image, "")) for image in wanted]
    write_labels(raw_dir / "labels.csv", rows)
    counts = {c: sum(1 for _, label, _ in rows if label == c) for c in classes}
    log.info("extracted %d images into %s: %s", len(rows), images_dir, counts)
    return rows


def write_labels(path: Path, rows: list[tuple[str, str, str]]) -> None:
    write_csv_atomic(path, LABELS_HEADER, rows)


def read_labels(path: str | os.PathLike) -> list[tuple[str, str, str]]:
    """Rows ``(id, label, lesion_id)`` of a ``labels.csv`` written by `extract_classes`."""
    try:
        rows = read_csv_rows(path, LABELS_HEADER, "run `asymcl download isic2018` first", IsicFormatError)
    except FileNotFoundError as err:
        raise IsicFormatError(str(err)) from None
    except UnicodeDecodeError:
        raise IsicFormatError(f"{path} is not a text CSV file; rerun `asymcl download isic2018`") from None
    return [tuple(row) for row in rows]  # type: ignore[misc]

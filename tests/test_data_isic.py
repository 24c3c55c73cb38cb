"""ISIC 2018: extraction of chosen classes from the official zip layout, lesion join, integrity."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression

from asymcl.cli import main
from asymcl.data import isic
from asymcl.data.synthetic import synth_isic


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth_isic")
    synth_isic(out, per_class=10, other_per_class=3, seed=2)
    return out


def reference_truth(gt_zip: Path) -> pd.Series:
    """image -> class, read independently with pandas (argmax of the one-hot columns)."""
    with zipfile.ZipFile(gt_zip) as zf:
        table = pd.read_csv(io.BytesIO(zf.read(isic.GT_CSV_MEMBER)))
    return table.set_index("image")[isic.CLASSES].idxmax(axis=1)


def test_synthetic_archives_have_the_official_layout(synth_dir):
    with zipfile.ZipFile(synth_dir / isic.GT_ZIP) as zf:
        assert zf.namelist() == ["ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv"]
        header = zf.read(isic.GT_CSV_MEMBER).decode().splitlines()[0]
    assert header == "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC"
    truth = reference_truth(synth_dir / isic.GT_ZIP)
    assert truth.value_counts().to_dict() == {"MEL": 10, "DF": 10, "NV": 3, "BCC": 3, "AKIEC": 3, "BKL": 3, "VASC": 3}
    with zipfile.ZipFile(synth_dir / isic.INPUT_ZIP) as zf:
        jpgs = [n for n in zf.namelist() if n.endswith(".jpg")]
        assert all(n.startswith("ISIC2018_Task3_Training_Input/ISIC_") for n in jpgs)
        assert sorted(Path(n).stem for n in jpgs) == sorted(truth.index)
    meta = pd.read_csv(synth_dir / isic.METADATA_CSV)
    assert list(meta.columns) == isic.METADATA_COLUMNS
    assert meta.groupby("lesion_id").size().max() >= 2  # some lesions have several images


def test_download_extracts_only_chosen_classes(synth_dir, tmp_path):
    out = tmp_path / "raw"
    code = main(["download", "isic2018", "--source", synth_dir.as_uri(), "--out", str(out),
                 "--checksums", str(synth_dir / "SHA256SUMS"), "--classes", "DF", "VASC"])
    assert code == 0
    truth = reference_truth(synth_dir / isic.GT_ZIP)
    wanted = sorted(truth[truth.isin(["DF", "VASC"])].index)
    assert sorted(p.stem for p in (out / "images").iterdir()) == wanted
    labels = pd.read_csv(out / "labels.csv", dtype=str)
    assert list(labels.columns) == ["id", "label", "lesion_id"]
    assert labels["id"].tolist() == wanted
    assert (labels.set_index("id")["label"] == truth[wanted]).all()
    meta = pd.read_csv(synth_dir / isic.METADATA_CSV).set_index("image_id")["lesion_id"]
    assert (labels.set_index("id")["lesion_id"] == meta[wanted]).all()
    with zipfile.ZipFile(synth_dir / isic.INPUT_ZIP) as zf:  # bytes are the archive's
        first = wanted[0]
        assert (out / "images" / f"{first}.jpg").read_bytes() == zf.read(f"{isic.INPUT_FOLDER}/{first}.jpg")
    assert not list(out.glob(".*"))  # no temporary files or folders


def test_without_metadata_lesion_ids_are_empty(synth_dir, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in (isic.INPUT_ZIP, isic.GT_ZIP):
        shutil.copy(synth_dir / name, mirror / name)
    out = tmp_path / "raw"
    assert main(["download", "isic2018", "--source", str(mirror), "--out", str(out)]) == 0
    labels = pd.read_csv(out / "labels.csv", dtype=str, keep_default_na=False)
    assert len(labels) == 20 and set(labels["label"]) == {"MEL", "DF"} and (labels["lesion_id"] == "").all()
    assert not (out / isic.METADATA_CSV).exists()


def test_unknown_class_lists_the_allowed_ones(synth_dir, tmp_path, capsys):
    code = main(["download", "isic2018", "--source", str(synth_dir), "--out", str(tmp_path), "--classes", "MEL", "XYZ"])
    assert code == 2
    err = capsys.readouterr().err
    assert "XYZ" in err and "MEL NV BCC AKIEC BKL DF VASC" in err


def _member_data_offset(path: Path, member: str) -> int:
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    raw = path.read_bytes()
    name_len, extra_len = np.frombuffer(raw[info.header_offset + 26: info.header_offset + 30], "<u2")
    return info.header_offset + 30 + int(name_len) + int(extra_len)


@pytest.mark.reliability
def test_corrupt_member_fails_crc_and_keeps_no_images(synth_dir, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in (isic.INPUT_ZIP, isic.GT_ZIP):
        shutil.copy(synth_dir / name, raw / name)
    truth = reference_truth(synth_dir / isic.GT_ZIP)
    victim = f"{isic.INPUT_FOLDER}/{sorted(truth[truth == 'MEL'].index)[3]}.jpg"
    data = bytearray((raw / isic.INPUT_ZIP).read_bytes())
    data[_member_data_offset(raw / isic.INPUT_ZIP, victim) + 40] ^= 0xFF
    (raw / isic.INPUT_ZIP).write_bytes(bytes(data))
    with pytest.raises(isic.IsicFormatError, match=victim):
        isic.extract_classes(raw, ["MEL", "DF"], progress=False)
    assert not (raw / "images").exists() and not (raw / ".images.partial").exists()
    assert not (raw / "labels.csv").exists()


@pytest.mark.reliability
def test_truncated_zip_and_checksum_mismatch(synth_dir, tmp_path, capsys):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in (isic.INPUT_ZIP, isic.GT_ZIP, isic.METADATA_CSV):
        shutil.copy(synth_dir / name, mirror / name)
    full = (mirror / isic.INPUT_ZIP).read_bytes()
    (mirror / isic.INPUT_ZIP).write_bytes(full[: len(full) * 2 // 3])
    out = tmp_path / "out"
    # With checksums: a mismatch, nothing kept.
    code = main(["download", "isic2018", "--source", mirror.as_uri(), "--out", str(out),
                 "--checksums", str(synth_dir / "SHA256SUMS"), "--retries", "0"])
    assert code == 2
    assert isic.INPUT_ZIP in capsys.readouterr().err
    assert not (out / isic.INPUT_ZIP).exists() and not list(out.glob(".*"))
    # Without checksums: the zip reader itself refuses the truncated archive.
    code = main(["download", "isic2018", "--source", mirror.as_uri(), "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert isic.INPUT_ZIP in err and "not a readable zip" in err
    assert not (out / "images").exists()


def test_ground_truth_header_is_checked(tmp_path):
    with zipfile.ZipFile(tmp_path / isic.GT_ZIP, "w") as zf:
        zf.writestr(isic.GT_CSV_MEMBER, "image,MEL,DF\nISIC_1,1.0,0.0\n")
    with pytest.raises(isic.IsicFormatError, match="image,MEL,NV,BCC,AKIEC,BKL,DF,VASC"):
        isic.read_ground_truth(tmp_path / isic.GT_ZIP)


def test_synthetic_mel_and_df_are_learnable(tmp_path):
    synth_isic(tmp_path, per_class=40, other_per_class=0, seed=5)
    truth = reference_truth(tmp_path / isic.GT_ZIP)
    with zipfile.ZipFile(tmp_path / isic.INPUT_ZIP) as zf:
        x = np.stack([
            np.asarray(Image.open(io.BytesIO(zf.read(f"{isic.INPUT_FOLDER}/{i}.jpg"))).resize((16, 12)), float).ravel()
            for i in truth.index
        ]) / 255.0
    y = (truth.values == "MEL").astype(int)
    model = LogisticRegression(max_iter=2000).fit(x[::2], y[::2])
    assert model.score(x[1::2], y[1::2]) >= 0.9


@pytest.fixture(scope="module")
def real_isic_raw(shared_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("real_isic")
    code = main(["download", "isic2018", "--source", (shared_data / "isic2018").as_uri(), "--out", str(out),
                 "--checksums", str(shared_data / "SHA256SUMS")])
    assert code == 0
    return out


def test_real_isic_gives_1113_mel_and_115_df(real_isic_raw, shared_data):
    labels = pd.read_csv(real_isic_raw / "labels.csv", dtype=str)
    assert labels["label"].value_counts().to_dict() == {"MEL": 1113, "DF": 115}
    assert len(list((real_isic_raw / "images").iterdir())) == 1228
    truth = reference_truth(shared_data / "isic2018" / isic.GT_ZIP)
    assert (labels.set_index("id")["label"] == truth[labels["id"]]).all()
    assert labels.groupby("label")["lesion_id"].nunique().to_dict() == {"MEL": 614, "DF": 73}


@pytest.mark.slow
def test_real_isic_subset_and_resize(real_isic_raw, tmp_path):
    import torch

    from asymcl.data.packed import load_split

    sub = tmp_path / "sub"
    assert main(["subset", "--dataset", "isic2018", "--raw", str(real_isic_raw), "--group-by-lesion",
                 "--seed", "0", "--out", str(sub)]) == 0
    manifest = pd.read_csv(sub / "manifest.csv", dtype=str)
    assert manifest["label"].value_counts().to_dict() == {"MEL": 1113, "DF": 115}
    lesions = pd.read_csv(real_isic_raw / "labels.csv", dtype=str).set_index("id")["lesion_id"]
    assert manifest.assign(lesion=manifest["id"].map(lesions)).groupby("lesion")["split"].nunique().max() == 1
    test_share = manifest[manifest.split == "test"]["label"].value_counts() / manifest["label"].value_counts()
    assert ((test_share - 0.3).abs() < 0.03).all()
    assert main(["resize", "--manifest", str(sub / "manifest.csv"), "--images", str(real_isic_raw / "images"),
                 "--size", "128", "--out", str(sub)]) == 0
    train, test = load_split(sub / "train.pt"), load_split(sub / "test.pt")
    assert train.images.shape[1:] == (3, 128, 128) and train.images.dtype == torch.uint8
    assert len(train.ids) + len(test.ids) == 1228 and train.classes == ["MEL", "DF"]

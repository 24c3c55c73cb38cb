"""idx parsing against hand-built files, and the synthetic FMNIST generator."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from asymcl.data import fmnist
from asymcl.data.fmnist import IdxFormatError, read_idx
from asymcl.data.synthetic import synth_fmnist


def handmade_images() -> bytes:
    """Two 2x3 uint8 images, written byte by byte from the idx specification."""
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">III", 2, 2, 3)
    return header + bytes(range(12))


def test_read_handmade_uint8_idx_gz(tmp_path):
    path = tmp_path / "imgs.gz"
    path.write_bytes(gzip.compress(handmade_images()))
    array = read_idx(path, expected_magic=2051)
    assert array.dtype == np.uint8 and array.shape == (2, 2, 3)
    assert array[1, 0].tolist() == [6, 7, 8]


def test_read_handmade_int32_plain_idx(tmp_path):
    # 0x0C = int32, big-endian; -2 and 70000 exercise sign and byte order.
    path = tmp_path / "ints"
    path.write_bytes(bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 2) + struct.pack(">ii", -2, 70000))
    assert read_idx(path).tolist() == [-2, 70000]


def test_magic_number_errors(tmp_path):
    path = tmp_path / "imgs.gz"
    path.write_bytes(gzip.compress(handmade_images()))
    with pytest.raises(IdxFormatError, match=r"magic number 0x00000803, expected 0x00000801"):
        read_idx(path, expected_magic=fmnist.LABELS_MAGIC)
    junk = tmp_path / "junk"
    junk.write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(IdxFormatError, match="not an idx magic number"):
        read_idx(junk)


def test_truncated_payload_and_gzip(tmp_path):
    short = tmp_path / "short"
    short.write_bytes(handmade_images()[:-1])
    with pytest.raises(IdxFormatError, match=r"short.*12 data bytes.*holds 11"):
        read_idx(short)
    gz = gzip.compress(handmade_images())
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gz[: len(gz) // 2])
    with pytest.raises(IdxFormatError, match="cut.gz"):
        read_idx(cut)


def test_write_idx_round_trip_is_byte_stable(tmp_path):
    rng = np.random.default_rng(0)
    for dtype in (np.uint8, np.int16, np.int32, np.float32, np.float64):
        array = (rng.normal(size=(3, 4, 5)) * 100).astype(dtype)
        fmnist.write_idx(tmp_path / "a.gz", array)
        fmnist.write_idx(tmp_path / "b.gz", array)
        assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()
        np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), array)


def test_load_split_checks_counts(tmp_path):
    fmnist.write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((3, 28, 28), np.uint8))
    fmnist.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(2, np.uint8))
    with pytest.raises(IdxFormatError, match="3 images .* but 2 labels"):
        fmnist.load_split(tmp_path, "train")


def test_synthetic_fmnist_has_all_classes_and_is_learnable(tmp_path):
    synth_fmnist(tmp_path, per_class=30, test_per_class=20, seed=3)
    x_train, y_train = fmnist.load_split(tmp_path, "train")
    x_test, y_test = fmnist.load_split(tmp_path, "test")
    assert np.bincount(y_train).tolist() == [30] * 10 and np.bincount(y_test).tolist() == [20] * 10
    # The paper's pair must be separable by a linear model on pixels (so a CNN has signal).
    pair_train, pair_test = np.isin(y_train, [0, 6]), np.isin(y_test, [0, 6])
    model = LogisticRegression(max_iter=2000).fit(x_train[pair_train].reshape(-1, 784) / 255.0, y_train[pair_train])
    assert model.score(x_test[pair_test].reshape(-1, 784) / 255.0, y_test[pair_test]) >= 0.9

"""Fashion-MNIST: the official idx files, their checksums, and an idx reader/writer.

The idx format (LeCun et al.) is a big-endian header followed by the raw array:

    bytes 0-1  zero
    byte  2    element type (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
               0x0E float64)
    byte  3    number of dimensions d
    then d big-endian uint32 sizes, then prod(sizes) elements in C order.

Images are ``0x00000803`` (2051: uint8, 3-d ``[N, 28, 28]``), labels ``0x00000801`` (2049:
uint8, 1-d ``[N]``). The reader checks the magic number and that the payload holds exactly
the announced number of bytes, so a truncated or foreign file fails with its name.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

from asymcl.data.download import Expected
from asymcl.errors import InputError
from asymcl.io import atomic_path

OFFICIAL_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FILE_NAMES = [name for pair in FILES.values() for name in pair]

# md5: published by Zalando; sha256: of the same byte-identical files.
OFFICIAL_CHECKSUMS = {
    "train-images-idx3-ubyte.gz": Expected(
        sha256="3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    ),
    "train-labels-idx1-ubyte.gz": Expected(
        sha256="a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        md5="25c81989df183df01b3e8a0aad5dffbe",
    ),
    "t10k-images-idx3-ubyte.gz": Expected(
        sha256="346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        md5="bef4ecab320f06d8554ea6380940ec79",
    ),
    "t10k-labels-idx1-ubyte.gz": Expected(
        sha256="67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        md5="bb300cfdad3c16e7a12a480ee83cd310",
    ),
}

CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
CLASSES = [str(i) for i in range(10)]  # labels as they appear in manifests
DEFAULT_CLASSES = ["0", "6"]  # T-shirt/top (majority) vs Shirt (minority), as in the paper

IMAGE_SIDE = 28  # pixels per side of the official images
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {(dt.kind, dt.itemsize): code for code, dt in _IDX_DTYPES.items()}


class IdxFormatError(InputError):
    """A file is not a well-formed idx file of the expected kind."""


def _read_maybe_gzip(path: Path, name: Path) -> bytes:
    with open(path, "rb") as fh:
        head = fh.read(2)
    try:
        if head == b"\x1f\x8b":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError) as err:  # truncated or corrupt gzip stream
        raise IdxFormatError(f"{name}: cannot decompress ({err}); download it again") from err


def read_idx(
    path: str | os.PathLike, expected_magic: int | None = None, display: str | os.PathLike | None = None
) -> np.ndarray:
    """Read an idx file (gzip-compressed or plain) into a native-endian numpy array.

    ``display`` is the name used in error messages (default: ``path``), e.g. the final
    name of a temporary file that is being validated before it is renamed into place.
    """
    path = Path(path)
    name = Path(display) if display is not None else path
    if path.is_dir():
        raise IdxFormatError(f"idx file {name} is a folder, expected a file")
    if not path.is_file():
        raise InputError(f"idx file {name} does not exist; run `asymcl download fmnist` first")
    data = _read_maybe_gzip(path, name)
    if len(data) < 4:
        raise IdxFormatError(f"{name}: {len(data)} bytes, too short for an idx header")
    (magic,) = struct.unpack(">I", data[:4])
    if expected_magic is not None and magic != expected_magic:
        raise IdxFormatError(
            f"{name}: magic number 0x{magic:08x}, expected 0x{expected_magic:08x}"
        )
    zero, code, ndim = magic >> 16, (magic >> 8) & 0xFF, magic & 0xFF
    if zero != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise IdxFormatError(f"{name}: 0x{magic:08x} is not an idx magic number")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxFormatError(f"{name}: truncated header ({len(data)} of {header} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _IDX_DTYPES[code]
    want = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got != want:
        raise IdxFormatError(
            f"{name}: header announces shape {shape} ({want} data bytes) but the file holds "
            f"{got}; it is truncated or corrupt"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as a gzip-compressed idx file, atomically and byte-reproducibly."""
    code = _IDX_CODES.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise ValueError(f"idx cannot store dtype {array.dtype}")
    dtype = _IDX_DTYPES[code]
    header = struct.pack(">I", (code << 8) | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=dtype).tobytes()
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        # mtime=0 and no file name in the gzip header: same array -> same bytes (checksums).
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write(payload)


def validate_download(path: Path, dest: Path) -> None:
    """`asymcl.data.download.fetch` validator: ``dest`` must parse as the idx file it names."""
    images = {pair[0] for pair in FILES.values()}
    read_idx(path, IMAGES_MAGIC if dest.name in images else LABELS_MAGIC, display=dest)


def load_split(raw_dir: str | os.PathLike, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 [N, 28, 28]`` and labels ``uint8 [N]`` of an official split."""
    if split not in FILES:
        raise InputError(f"FMNIST split must be one of {sorted(FILES)}, got {split!r}")
    raw_dir = Path(raw_dir)
    images_name, labels_name = FILES[split]
    images = read_idx(raw_dir / images_name, IMAGES_MAGIC)
    labels = read_idx(raw_dir / labels_name, LABELS_MAGIC)
    if images.shape[1:] != (28, 28):
        raise IdxFormatError(f"{raw_dir / images_name}: images are {images.shape[1:]}, expected (28, 28)")
    if images.shape[0] != labels.shape[0]:
        raise IdxFormatError(
            f"{raw_dir}: {images.shape[0]} images in {images_name} but {labels.shape[0]} labels "
            f"in {labels_name}"
        )
    if labels.size and int(labels.max()) > 9:
        raise IdxFormatError(f"{raw_dir / labels_name}: label {int(labels.max())} outside 0..9")
    return images, labels

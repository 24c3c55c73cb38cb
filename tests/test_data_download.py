"""Download: file:// and folder sources, checksum verification, atomicity, retries."""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import urllib.error
from pathlib import Path

import pytest

from asymcl.cli import main
from asymcl.data import download, fmnist
from asymcl.data.download import ChecksumError, DownloadError, Expected, SourceNotFoundError
from asymcl.data.synthetic import synth_fmnist
from asymcl.errors import InputError


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth_fmnist")
    synth_fmnist(out, per_class=3, seed=1)
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_fetch_file_url_verifies_and_copies(synth_dir, tmp_path):
    name = fmnist.FILE_NAMES[0]
    src = synth_dir / name
    dest = download.fetch(synth_dir.as_uri(), name, tmp_path / "out", Expected(sha256=sha256(src), md5=md5(src)))
    assert dest == tmp_path / "out" / name
    assert dest.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [name]  # no temp files left


def test_fetch_plain_folder_source(synth_dir, tmp_path):
    name = fmnist.FILE_NAMES[1]
    dest = download.fetch(str(synth_dir), name, tmp_path, Expected(md5=md5(synth_dir / name)))
    assert dest.read_bytes() == (synth_dir / name).read_bytes()


@pytest.mark.reliability
@pytest.mark.parametrize("damage", ["corrupt", "truncate"])
def test_checksum_mismatch_leaves_nothing(synth_dir, tmp_path, damage):
    name = fmnist.FILE_NAMES[0]
    good = (synth_dir / name).read_bytes()
    bad = bytearray(good)
    if damage == "corrupt":
        bad[len(bad) // 2] ^= 0xFF
    else:
        bad = bad[: len(bad) // 2]
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / name).write_bytes(bytes(bad))
    out = tmp_path / "out"
    want = hashlib.sha256(good).hexdigest()
    with pytest.raises(ChecksumError) as info:
        download.fetch(mirror.as_uri(), name, out, Expected(sha256=want))
    message = str(info.value)
    assert name in message and want in message and hashlib.sha256(bytes(bad)).hexdigest() in message
    assert list(out.iterdir()) == []  # neither the file nor a temporary file


@pytest.mark.reliability
def test_cli_corrupt_archive_exits_nonzero_and_keeps_out_clean(synth_dir, tmp_path, capsys):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in fmnist.FILE_NAMES:
        (mirror / name).write_bytes((synth_dir / name).read_bytes())
    victim = fmnist.FILE_NAMES[2]
    data = bytearray((mirror / victim).read_bytes())
    data[-10] ^= 0x55
    (mirror / victim).write_bytes(bytes(data))
    out = tmp_path / "out"
    code = main(["download", "fmnist", "--source", mirror.as_uri(), "--out", str(out),
                 "--checksums", str(synth_dir / "SHA256SUMS"), "--retries", "0"])
    assert code != 0
    err = capsys.readouterr().err
    assert victim in err and sha256(synth_dir / victim) in err and hashlib.sha256(bytes(data)).hexdigest() in err
    assert victim not in {p.name for p in out.iterdir()}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files


def test_cli_official_checksums_reject_synthetic_files(synth_dir, tmp_path, capsys):
    """Without --checksums the built-in official md5/sha256 apply."""
    code = main(["download", "fmnist", "--source", str(synth_dir), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert fmnist.OFFICIAL_CHECKSUMS[fmnist.FILE_NAMES[0]].sha256 in err
    assert list((tmp_path / "o").iterdir()) == []


def test_cli_download_ok_and_second_run_is_a_no_op(synth_dir, tmp_path, caplog):
    out = tmp_path / "raw"
    args = ["download", "fmnist", "--source", synth_dir.as_uri(), "--out", str(out),
            "--checksums", str(synth_dir / "SHA256SUMS")]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(fmnist.FILE_NAMES)
    for name in fmnist.FILE_NAMES:
        assert (out / name).read_bytes() == (synth_dir / name).read_bytes()
    caplog.clear()
    caplog.set_level(logging.INFO, logger="asymcl")
    assert main(args) == 0
    assert caplog.text.count("already present and verified") == 4


def test_cli_checksum_file_must_list_every_file(synth_dir, tmp_path, capsys):
    partial = tmp_path / "SUMS"
    partial.write_text("\n".join((synth_dir / "SHA256SUMS").read_text().splitlines()[:3]) + "\n")
    code = main(["download", "fmnist", "--source", str(synth_dir), "--out", str(tmp_path / "o"),
                 "--checksums", str(partial)])
    assert code == 2
    assert "lists no checksum for" in capsys.readouterr().err


def test_missing_source_folder_is_a_user_error(tmp_path, capsys):
    assert main(["download", "fmnist", "--source", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "neither a URL" in capsys.readouterr().err


def test_read_checksum_file_keys_by_basename(tmp_path):
    digest = "a" * 64
    path = tmp_path / "SUMS"
    path.write_text(f"{digest}  fmnist/x.gz\n{'b' * 64} *y.gz\n\n")
    sums = download.read_checksum_file(path)
    assert sums == {"x.gz": Expected(sha256=digest), "y.gz": Expected(sha256="b" * 64)}
    path.write_text("nothex  x.gz\n")
    with pytest.raises(DownloadError, match="SUMS:1"):
        download.read_checksum_file(path)


class FlakyOpener:
    """Fails the first ``failures`` calls with a transient error, then serves ``payload``."""

    def __init__(self, payload: bytes, failures: int):
        self.payload, self.failures, self.calls = payload, failures, 0

    def __call__(self, location: str):
        self.calls += 1
        if self.calls <= self.failures:
            raise urllib.error.URLError(ConnectionResetError("connection reset by peer"))
        return io.BytesIO(self.payload)


def test_retry_after_transient_failure(tmp_path):
    payload = b"hello idx"
    opener = FlakyOpener(payload, failures=2)
    dest = download.fetch("https://example.invalid/base", "f.bin", tmp_path,
                          Expected(sha256=hashlib.sha256(payload).hexdigest()),
                          retries=2, backoff=0.0, opener=opener)
    assert opener.calls == 3 and dest.read_bytes() == payload


def test_retries_exhausted_raise_and_leave_nothing(tmp_path):
    opener = FlakyOpener(b"x", failures=5)
    with pytest.raises(DownloadError, match="after 3 attempts"):
        download.fetch("https://example.invalid/base", "f.bin", tmp_path, retries=2, backoff=0.0, opener=opener)
    assert opener.calls == 3 and list(tmp_path.iterdir()) == []


class ShortBodyOpener:
    """An HTTP-like body that declares ``len(payload)`` bytes but, on the first ``short``
    calls, ends early without an error (a dropped connection)."""

    def __init__(self, payload: bytes, short: int):
        self.payload, self.short, self.calls = payload, short, 0

    def __call__(self, location: str):
        self.calls += 1
        body = self.payload[: len(self.payload) // 2] if self.calls <= self.short else self.payload
        response = io.BytesIO(body)
        response.headers = {"Content-Length": str(len(self.payload))}
        return response


def test_short_http_body_without_checksum_is_retried_not_stored(tmp_path):
    payload = b"lesion_id,image_id\n" * 50
    opener = ShortBodyOpener(payload, short=1)
    dest = download.fetch("https://example.invalid/base", "meta.csv", tmp_path, retries=1, backoff=0.0, opener=opener)
    assert opener.calls == 2 and dest.read_bytes() == payload

    always_short = ShortBodyOpener(payload, short=99)
    with pytest.raises(DownloadError, match="after 2 attempts"):
        download.fetch("https://example.invalid/base", "m2.csv", tmp_path, retries=1, backoff=0.0, opener=always_short)
    assert not (tmp_path / "m2.csv").exists()


def test_missing_file_and_bad_checksum_are_not_retried(synth_dir, tmp_path):
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        download.fetch(synth_dir.as_uri(), "absent.gz", tmp_path, retries=3, backoff=10.0)

    calls = []

    def opener(location):
        calls.append(location)
        return io.BytesIO(b"payload")

    with pytest.raises(ChecksumError):
        download.fetch("https://h.invalid", "f", tmp_path, Expected(md5="0" * 32), retries=3, backoff=10.0, opener=opener)
    assert calls == ["https://h.invalid/f"]


class FullDiskFile(io.BytesIO):
    """A destination file whose writes fail as on a full disk."""

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_local_write_error_is_not_retried_and_names_the_destination(tmp_path, monkeypatch):
    """ENOSPC while writing is the user's disk, not the network: one attempt, the path, no temp file."""
    opener = FlakyOpener(b"payload", failures=0)
    real_open = open
    monkeypatch.setattr(download, "open", lambda path, mode="r", *a, **k:
                        FullDiskFile() if "w" in mode else real_open(path, mode, *a, **k), raising=False)
    with pytest.raises(download.LocalWriteError, match=r"cannot write .*f\.bin: No space left on device") as info:
        download.fetch("https://example.invalid/base", "f.bin", tmp_path, retries=3, backoff=10.0, opener=opener)
    assert "could not fetch" not in str(info.value)
    assert opener.calls == 1 and list(tmp_path.iterdir()) == []


def test_source_errors_are_still_retried_after_the_split(tmp_path):
    """An OSError while *reading* the source is transient (retried), unlike one while writing."""

    class DyingBody(io.BytesIO):
        def read(self, *args):
            raise ConnectionResetError("reset while reading")

    calls = []

    def opener(location):
        calls.append(location)
        return DyingBody(b"") if len(calls) == 1 else io.BytesIO(b"ok")

    dest = download.fetch("https://example.invalid", "g.bin", tmp_path, retries=1, backoff=0.0, opener=opener)
    assert len(calls) == 2 and dest.read_bytes() == b"ok"


@pytest.mark.parametrize("retries", [-1, 101, 1.5, True])
def test_retries_out_of_range_is_input_error(tmp_path, retries):
    with pytest.raises(InputError, match="--retries"):
        download.fetch("https://example.invalid", "f", tmp_path, retries=retries, opener=FlakyOpener(b"", 0))


def test_validator_rejects_a_body_matching_its_checksum(synth_dir, tmp_path):
    """A truncated .gz whose checksum was made to match is not kept; a good one is."""
    name = "train-labels-idx1-ubyte.gz"
    cut = (synth_dir / name).read_bytes()[:-20]
    with pytest.raises(DownloadError, match=f"{name}.*not kept"):
        download.fetch("https://example.invalid", name, tmp_path, Expected(sha256=hashlib.sha256(cut).hexdigest()),
                       opener=lambda loc: io.BytesIO(cut), validate=fmnist.validate_download)
    assert list(tmp_path.iterdir()) == []
    good = (synth_dir / name).read_bytes()
    download.fetch("https://example.invalid", name, tmp_path, Expected(sha256=hashlib.sha256(good).hexdigest()),
                   opener=lambda loc: io.BytesIO(good), validate=fmnist.validate_download)
    assert (tmp_path / name).read_bytes() == good


def test_data_errors_are_input_errors():
    from asymcl.data.fmnist import IdxFormatError
    from asymcl.data.isic import IsicFormatError
    from asymcl.data.manifest import ManifestError
    from asymcl.data.resize import ImageReadError
    from asymcl.data.splits import SplitError

    for cls in (DownloadError, SourceNotFoundError, ChecksumError, download.FetchFailedError,
                download.LocalWriteError, IdxFormatError, IsicFormatError, ManifestError, ImageReadError, SplitError):
        assert issubclass(cls, InputError), cls


def test_real_fmnist_download_with_official_checksums(shared_data, tmp_path):
    out = tmp_path / "fmnist"
    assert main(["download", "fmnist", "--source", (shared_data / "fmnist").as_uri(), "--out", str(out)]) == 0
    for name in fmnist.FILE_NAMES:
        assert md5(out / name) == fmnist.OFFICIAL_CHECKSUMS[name].md5
    _, labels = fmnist.load_split(out, "train")
    assert labels.shape == (60000,) and (labels == 0).sum() == 6000 and (labels == 6).sum() == 6000

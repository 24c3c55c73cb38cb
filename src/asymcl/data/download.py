"""Fetch files from a URL or a local mirror, verify their checksums, write them atomically.

A *source* is a base location that holds files by name:

- ``http://...`` / ``https://...``: fetched with `urllib` (the official hosts);
- ``file:///abs/folder``: the same code path on a local mirror (tests, offline machines);
- a plain folder path: read directly.

Every file is streamed into a temporary file next to its destination while its sha256 and
md5 are computed, compared with the expected values, and only then renamed into place. A
mismatch deletes the temporary file and raises `ChecksumError` naming the file and both
checksums, so a corrupt or truncated archive never sits in the output folder looking
finished. Transient I/O errors are retried with exponential back-off; a missing file or a
wrong checksum is not (retrying cannot fix either).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from asymcl.errors import InputError
from asymcl.io import atomic_path

log = logging.getLogger(__name__)

CHUNK = 1 << 20
HASH_ALGORITHMS = ("sha256", "md5")


class DownloadError(InputError):
    """A file could not be fetched from its source, or did not verify.

    All of these are reported as one line with exit status 2 (`InputError`): a wrong
    source, a checksum list that does not fit, a corrupt mirror and an unwritable ``--out``
    are the user's to fix. A network outage that outlasts the retries (`FetchFailedError`)
    is not bad input as such, but a traceback would not help either: the message names the
    URL, the attempts and the last error, and the fix is the user's too (check the network or
    ``--source``, rerun later). asymcl has no bug to report there.
    """


class SourceNotFoundError(DownloadError):
    """The source does not hold the requested file (HTTP 404, missing local file)."""


class FetchFailedError(DownloadError):
    """Transient errors (network, short reads) persisted through every retry."""


class LocalWriteError(DownloadError):
    """The destination cannot be written (``--out`` is a file, read-only, disk full)."""

    def __init__(self, path: str | os.PathLike, err: OSError):
        self.path, self.error = Path(path), err
        super().__init__(
            f"cannot write {path}: {err.strerror or err}; check that --out is a writable folder "
            "with free space; the partial file was removed"
        )


class ChecksumError(DownloadError):
    """The fetched bytes do not match the expected checksum."""

    def __init__(self, name: str, algorithm: str, expected: str, actual: str, source: str):
        self.name, self.algorithm = name, algorithm
        self.expected, self.actual, self.source = expected, actual, source
        super().__init__(
            f"checksum mismatch for {name} (from {source}): expected {algorithm} {expected}, "
            f"got {actual}; the file is corrupt or truncated and was not kept"
        )


@dataclass(frozen=True)
class Expected:
    """Expected digests of one file; either may be None (then it is not checked)."""

    sha256: str | None = None
    md5: str | None = None

    def items(self) -> list[tuple[str, str]]:
        return [(a, getattr(self, a).lower()) for a in HASH_ALGORITHMS if getattr(self, a)]


def read_checksum_file(path: str | os.PathLike) -> dict[str, Expected]:
    """Parse a ``sha256sum``-format file (``<hex>  <name>``) into ``{basename: Expected}``.

    Names are keyed by their base name so one list can describe a mirror with
    sub-folders (``fmnist/train-images-idx3-ubyte.gz``).
    """
    path = Path(path)
    if path.is_dir():
        raise DownloadError(
            f"checksum file {path} is a folder, expected a sha256sum-format file (e.g. {path / 'SHA256SUMS'})"
        )
    if not path.is_file():
        raise DownloadError(f"checksum file {path} does not exist")
    result: dict[str, Expected] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        digest = parts[0].lower()
        if len(parts) != 2 or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise DownloadError(
                f"{path}:{lineno}: expected '<64 hex sha256>  <file name>', got {line!r}"
            )
        name = Path(parts[1].lstrip("*").strip()).name  # '*' marks binary mode in sha256sum
        if name in result and result[name].sha256 != digest:
            raise DownloadError(f"{path}: two different checksums for {name}")
        result[name] = Expected(sha256=digest)
    return result


def file_digests(path: str | os.PathLike) -> dict[str, str]:
    """sha256 and md5 hex digests of a file."""
    hashes = {a: hashlib.new(a) for a in HASH_ALGORITHMS}
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            for h in hashes.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashes.items()}


def join_source(source: str, name: str) -> str:
    """The location of ``name`` inside ``source`` (URL or folder), as a string."""
    if "://" in source:
        return source.rstrip("/") + "/" + urllib.parse.quote(name)
    return str(Path(source) / name)


Opener = Callable[[str], BinaryIO]


def open_location(location: str, timeout: float = 60.0) -> BinaryIO:
    """Open a URL (http, https, file) or a local path for binary reading."""
    if "://" not in location:
        try:
            return open(location, "rb")
        except FileNotFoundError:
            raise SourceNotFoundError(f"{location} does not exist") from None
    scheme = urllib.parse.urlsplit(location).scheme
    if scheme not in ("http", "https", "file"):
        raise DownloadError(f"unsupported URL scheme {scheme!r} in {location}; use http(s):// or file://")
    try:
        return urllib.request.urlopen(location, timeout=timeout)  # noqa: S310 (scheme checked)
    except urllib.error.HTTPError as err:
        if err.code == 404:
            raise SourceNotFoundError(f"{location} does not exist (HTTP 404)") from None
        raise
    except urllib.error.URLError as err:
        if isinstance(err.reason, FileNotFoundError):
            raise SourceNotFoundError(f"{location} does not exist") from None
        raise


# Errors worth another try: network hiccups and short reads. They are only treated as
# transient when they come from the source (opening or reading it); an OSError of the
# destination (a full disk, a read-only folder) is the user's to fix and is never retried.
TRANSIENT_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, OSError)
MAX_RETRIES = 100

Validator = Callable[[Path, Path], None]  # (file to read, path to name in messages)


class _SourceFailure(Exception):
    """Internal: wraps a transient error raised while opening or reading the source."""


def fetch(
    source: str,
    name: str,
    out_dir: str | os.PathLike,
    expected: Expected | None = None,
    *,
    retries: int = 3,
    backoff: float = 1.0,
    opener: Opener = open_location,
    validate: Validator | None = None,
) -> Path:
    """Fetch ``name`` from ``source`` into ``out_dir/name``, verified and atomically.

    An existing destination whose checksums match (and that ``validate`` accepts) is kept
    (no transfer). ``retries`` is the number of extra attempts after a transient failure of
    the source, waiting ``backoff * 2**k`` seconds. ``validate(tmp, dest)`` runs on the verified
    temporary file before it is renamed into place and raises (an `InputError`) if its
    content is malformed, so a file whose checksum was made to match a corrupt body is not
    kept either. Returns the destination path.
    """
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise InputError(f"--retries {retries}: expected an integer in [0, {MAX_RETRIES}] (extra attempts)")
    expected = expected or Expected()
    dest = Path(out_dir) / name
    location = join_source(source, name)
    if dest.is_file():
        if expected.items() and _mismatch(file_digests(dest), expected) is None and _valid(dest, validate):
            log.info("%s already present and verified; not downloading again", dest)
            return dest
        log.info("%s exists but is unverified or differs; fetching it again", dest)

    attempt = 0
    while True:
        try:
            log.info("fetching %s -> %s%s", location, dest, f" (attempt {attempt + 1})" if attempt else "")
            return _fetch_once(location, name, dest, expected, opener, validate)
        except _SourceFailure as failure:
            err = failure.__cause__
            if attempt == retries:
                raise FetchFailedError(
                    f"could not fetch {location} after {retries + 1} attempts: {err}; check the "
                    "network or --source and rerun (verified files are kept)"
                ) from err
            wait = backoff * 2**attempt
            log.warning("fetching %s failed (%s); retrying in %.1f s", location, err, wait)
            time.sleep(wait)
            attempt += 1


def _valid(path: Path, validate: Validator | None) -> bool:
    if validate is None:
        return True
    try:
        validate(path, path)
    except InputError as err:
        log.info("%s does not validate (%s)", path, err)
        return False
    return True


def _fetch_once(
    location: str, name: str, dest: Path, expected: Expected, opener: Opener, validate: Validator | None
) -> Path:
    hashes = {a: hashlib.new(a) for a in HASH_ALGORITHMS}
    tmp: Path | None = None
    try:
        with atomic_path(dest) as tmp:  # removed on any exception, renamed on success
            received = 0
            with open(tmp, "wb") as out:
                src = _from_source(opener, location)
                with src:
                    while chunk := _from_source(src.read, CHUNK):
                        received += len(chunk)
                        out.write(chunk)
                        for h in hashes.values():
                            h.update(chunk)
                    declared = _declared_length(src)
            bad = _mismatch({a: h.hexdigest() for a, h in hashes.items()}, expected)
            if bad is not None:  # with a checksum, a short body is reported (and not retried) as such
                algorithm, want, got = bad
                raise ChecksumError(name, algorithm, want, got, location)
            if declared is not None and declared != received:
                # Without a checksum (e.g. the ISIC metadata) a body cut short by a dropped
                # connection ends the reads without an error: retry it instead of storing it.
                raise _SourceFailure() from http.client.IncompleteRead(b"", declared - received)
            if validate is not None:
                try:
                    validate(tmp, dest)
                except InputError as err:
                    raise DownloadError(
                        f"{err} ({name} from {location} matches its checksum but is malformed, so it "
                        "was not kept; fix the mirror or the checksum list)"
                    ) from None
            if not expected.items():
                log.warning("%s: no checksum given, stored unverified (sha256 %s)", name, hashes["sha256"].hexdigest())
    except OSError as err:  # everything not wrapped by _from_source happened on the local side
        raise LocalWriteError(dest if tmp else dest.parent, err) from err
    return dest


def _from_source(call: Callable, *args):
    """Call ``call(*args)`` on the source; its transient errors become `_SourceFailure`."""
    try:
        return call(*args)
    except DownloadError:  # missing file, bad scheme: another try cannot help
        raise
    except TRANSIENT_ERRORS as err:
        raise _SourceFailure() from err


def _declared_length(src: BinaryIO) -> int | None:
    """The Content-Length an HTTP response announced (None for files and unknown lengths)."""
    headers = getattr(src, "headers", None)
    declared = headers.get("Content-Length") if headers is not None else None
    return int(declared) if declared is not None and declared.isdigit() else None


def _mismatch(actual: dict[str, str], expected: Expected) -> tuple[str, str, str] | None:
    for algorithm, want in expected.items():
        if actual[algorithm] != want:
            return algorithm, want, actual[algorithm]
    return None


def copy_file_atomic(src: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Copy ``src`` onto ``dest`` atomically (a no-op when they are the same file)."""
    src, dest = Path(src), Path(dest)
    if dest.exists() and src.resolve() == dest.resolve():
        return
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)

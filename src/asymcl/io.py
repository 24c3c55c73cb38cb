"""Atomic file output, stale temporary files, write errors for people, folder locks.

Every artefact is written to a temporary file in the destination folder and renamed into
place, so an interrupted job never leaves a half-written output that a rerun (or
Snakemake) would mistake for a finished one. A job killed mid-write (SIGKILL, power loss)
can leave such a temporary file (``.NAME.XXXXXXXX.tmp``); `remove_stale_temps` removes
them on the next run of that folder, under the folder's lock (`folder_lock`), so no other
writer's temporary file is touched.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from asymcl.errors import InputError, find_in_chain

#: The random part `tempfile.mkstemp` puts between ``atomic_path``'s prefix and suffix.
_TEMP_TAIL = re.compile(r"[a-z0-9_]{8}\.tmp")
LOCK_FILE = ".lock"


class OutputError(InputError):
    """An output cannot be written: disk full, quota, permissions, a read-only file system.

    Not a bug in asymcl but the environment, which the user must fix; like bad input it is
    shown as one line naming the path and the OS error, with exit status 2.
    """


class FolderLockedError(InputError):
    """Another process holds the folder's lock (`folder_lock`); exit status 2."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates owner-only files; give the output the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def os_error_in(err: BaseException) -> OSError | None:
    """The `OSError` behind ``err``: itself or one in its cause/context chain (torch.save
    reports a failed write as a RuntimeError whose context is the OSError)."""
    return find_in_chain(err, OSError)  # type: ignore[return-value]


@contextlib.contextmanager
def output_errors(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Turn an OS-level write failure inside the block into one `OutputError` line.

    The message names ``what`` (e.g. "the stage-1 checkpoint"), the path and the OS error;
    exceptions without an `OSError` behind them are bugs and pass through unchanged.
    """
    try:
        yield
    except InputError:
        raise
    except Exception as err:
        os_err = os_error_in(err)
        if os_err is None:
            raise
        reason = os_err.strerror or str(os_err)
        code = f"errno {os_err.errno}, " if os_err.errno else ""
        raise OutputError(
            f"cannot write {what} {path}: {reason} ({code}{type(os_err).__name__}); nothing was half-written: "
            "free disk space or fix the folder's permissions, then rerun the same command"
        ) from None


def stale_temps(folder: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Temporary files that `atomic_path` left in ``folder`` for outputs called ``names``.

    Only this project's pattern matches: ``.NAME.`` + mkstemp's 8 random characters +
    ``.tmp``; any other file is never listed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    prefixes = [f".{name}." for name in names]
    found = []
    for entry in sorted(folder.iterdir()):
        for prefix in prefixes:
            if entry.name.startswith(prefix) and _TEMP_TAIL.fullmatch(entry.name[len(prefix):]) and entry.is_file():
                found.append(entry)
                break
    return found


def remove_stale_temps(folder: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Delete `stale_temps` of ``folder``; returns what was removed.

    Call it only while holding the folder's lock: an unlocked writer's temporary file of
    the moment looks the same as a stale one.
    """
    removed = stale_temps(folder, names)
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, option: str) -> Iterator[Path]:
    """Hold an exclusive, non-blocking lock on ``folder`` (``fcntl.flock`` on ``folder/.lock``).

    A second holder is refused at once with `FolderLockedError` naming the folder (as
    ``option``, e.g. ``--out``) and the holder's pid and host as it recorded them. The kernel
    releases the lock when the holder exits in any way (Ctrl-C, kill -9), so a stale lock
    cannot block a rerun; the ``.lock`` file itself stays (removing it would race).
    """
    folder = Path(folder)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            who = f"process {holder}" if holder else "another process"
            raise FolderLockedError(
                f"{option} {folder} is in use by {who} (lock {path}): two runs must not write one folder; "
                f"wait for that run to finish or choose another {option}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON (stable bytes for the same content)."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_csv_atomic(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write ``header`` and ``rows`` as CSV with ``\\n`` line ends (stable bytes)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def read_csv_rows(
    path: str | os.PathLike,
    header: Sequence[str],
    missing_hint: str,
    error: type[Exception] = ValueError,
) -> list[list[str]]:
    """The non-empty rows of a CSV whose first line must be exactly ``header``.

    A missing file raises FileNotFoundError ending in ``missing_hint`` (what to run); a
    different header raises ``error`` naming the file, the header found and the one expected.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; {missing_hint}")
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        found = next(reader, None)
        if found != list(header):
            raise error(f"{path}: header {found}, expected {','.join(header)}")
        return [row for row in reader if row]


def json_differs(path: str | os.PathLike, text: str) -> bool:
    """Whether the JSON file at ``path`` exists and holds other data than the JSON ``text``
    (an unreadable file differs; a missing one does not: nothing to compare)."""
    try:
        return json.loads(Path(path).read_text()) != json.loads(text)
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True

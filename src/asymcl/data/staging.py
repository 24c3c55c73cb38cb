"""All-or-nothing output of several files into one folder.

A subset folder (``manifest.csv``, ``train.pt``, ``test.pt``) is one result: a run that
fails half-way (a corrupt test-split image, a full disk, a kill) must leave the folder as it
was, never a new ``train.pt`` beside an old ``test.pt``. `staged_outputs` hands out one
temporary path per output file, in the destination folder (same file system, so renames
are atomic); only when the caller's block finishes are they all renamed into place. On an
error they are deleted.

Temporary names carry this host and process id (``.train.pt.asymcl-partial-HOST-PID-XXXX.tmp``):
a run killed before its cleanup leaves them behind, and the next run into that folder
deletes those whose process is gone. Other files in the folder are never touched, so a
subset folder may hold other things (the ISIC ``split/`` folder, logs).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import socket
from pathlib import Path
from typing import Iterable, Iterator

from asymcl.errors import InputError
from asymcl.io import os_error_in

log = logging.getLogger(__name__)

MARK = ".asymcl-partial-"
_STALE = re.compile(re.escape(MARK) + r"(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]+\.tmp")
# OS errors of the destination that the user fixes (space, quota, permissions), not bugs.
LOCAL_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(out_dir: str | os.PathLike) -> list[Path]:
    """Delete this project's temporary files in ``out_dir`` left by dead processes on this host."""
    out_dir, host = Path(out_dir), socket.gethostname()
    removed = []
    if not out_dir.is_dir():
        return removed
    for entry in out_dir.iterdir():
        match = _STALE.search(entry.name)
        if match and entry.is_file() and match["host"] == host and not _alive(int(match["pid"])):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    if removed:
        log.info("removed %d stale temporary file(s) of an interrupted run from %s", len(removed), out_dir)
    return removed


def temp_name(name: str) -> str:
    return f".{name}{MARK}{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}.tmp"


@contextlib.contextmanager
def staged_outputs(out_dir: str | os.PathLike, names: Iterable[str]) -> Iterator[dict[str, Path]]:
    """Yield ``{name: temporary path}``; rename all onto ``out_dir/name`` when the block succeeds.

    Every temporary path must have been written by then. An OS error of the destination
    (disk full, read-only, no permission) becomes an `InputError` naming the folder.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_dir)
    temps = {name: out_dir / temp_name(name) for name in names}
    try:
        yield temps
        unwritten = [name for name, tmp in temps.items() if not tmp.is_file()]
        if unwritten:
            raise RuntimeError(f"staged output(s) {unwritten} were never written (a bug)")
        for name, tmp in temps.items():
            os.replace(tmp, out_dir / name)
    except InputError:
        raise
    except Exception as err:
        # torch.save reports a failed write as a RuntimeError with the OSError behind it (or
        # the other way round): look through the chain for the OS error
        os_err = os_error_in(err)
        if os_err is None:
            raise
        elsewhere = os_err.filename is not None and Path(os_err.filename).parent != out_dir
        if os_err.errno not in LOCAL_WRITE_ERRNOS or elsewhere:
            raise
        raise InputError(f"cannot write into {out_dir}: {os_err.strerror}; nothing was half-written: "
                         "free space or fix permissions, then rerun") from None
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)

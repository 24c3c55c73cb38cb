"""The warm-worker wire protocol: one request per Unix-socket connection, length-prefixed
JSON frames (4-byte big-endian length).

Requests: ``{"op": "run", "command": "train", "args": {...}, "cwd": "..."}`` followed by the
client's stdout and stderr descriptors (``SCM_RIGHTS``), ``{"op": "ping"}`` and
``{"op": "stop"}``. Replies: ``{"event": "started", "pid": ...}`` then ``{"rc": ..., "error":
...}`` for a run; the server's state for a ping; ``{"stopping": true}`` for a stop.
No torch here: the client side (`asymcl.worker.client`) must start fast.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

#: Environment variable naming the server's socket for ``asymcl train``.
SOCKET_ENV = "ASYMCL_WORKER_SOCKET"
#: Unix socket paths are limited to 108 bytes (sun_path) on Linux.
MAX_SOCKET_PATH = 100
_HEADER = struct.Struct(">I")
_MAX_FRAME = 16 * 1024 * 1024


class WorkerError(RuntimeError):
    """The server could not be reached or answered out of protocol."""


def send_frame(sock: socket.socket, obj: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(obj).encode()
    payload = _HEADER.pack(len(data)) + data
    if fds:
        # The descriptors ride with the first byte; the rest follows as plain data.
        sent = socket.send_fds(sock, [payload[:1]], fds)
        sock.sendall(payload[sent:])
    else:
        sock.sendall(payload)


def _recv_exact(sock: socket.socket, n: int, fds: list[int] | None = None) -> bytes:
    chunks, got = [], 0
    while got < n:
        if fds is not None and got == 0:
            data, new_fds, _flags, _addr = socket.recv_fds(sock, n, 4)
            fds.extend(new_fds)
        else:
            data = sock.recv(n - got)
        if not data:
            raise EOFError("connection closed")
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


def recv_frame(sock: socket.socket, fds: list[int] | None = None) -> dict[str, Any]:
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size, fds))
    if size > _MAX_FRAME:
        raise WorkerError(f"frame of {size} bytes is larger than the {_MAX_FRAME} allowed")
    return json.loads(_recv_exact(sock, size))


def connect(path: str, timeout: float | None = 5.0) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    sock.settimeout(None)
    return sock


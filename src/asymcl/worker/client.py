"""The warm-worker client: hand an ``asymcl train`` run to a server, ping it, stop it.

Used by ``asymcl train`` when ``ASYMCL_WORKER_SOCKET`` names a reachable socket: it sends
the parsed arguments and its working directory, and passes its own stdout and stderr file
descriptors, so the worker writes the run's output exactly where the job's own output goes
(the rule's ``log:`` file). It waits for the exit status and returns it. This module never
imports torch (that start-up is what the warm workers save).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from asymcl.worker.protocol import SOCKET_ENV, connect, recv_frame, send_frame

log = logging.getLogger("asymcl.worker")


def _jsonable_args(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed options as JSON values (drops ``func`` and anything not plain data)."""
    out = {}
    for key, value in vars(args).items():
        if value is None or isinstance(value, (str, int, float, bool)):
            out[key] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float, bool)) for v in value):
            out[key] = list(value)
    return out


def submit(socket_path: str, command: str, args: argparse.Namespace) -> int | None:
    """Run ``command`` with ``args`` on the warm server at ``socket_path``.

    Returns the run's exit status, or ``None`` when the server is unreachable (the caller
    then runs in-process). A server that fails after accepting the run yields status 1 and
    a message on stderr: the run may have been half done, so it is not repeated here.
    """
    try:
        sock = connect(socket_path)
    except OSError as err:
        log.info("%s: warm worker socket %s unreachable (%s); running in this process",
                 command, socket_path, err.strerror or err)
        return None
    with sock:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            request = {"op": "run", "command": command, "args": _jsonable_args(args), "cwd": os.getcwd()}
            send_frame(sock, request, fds=[sys.stdout.fileno(), sys.stderr.fileno()])
            log.info("%s: running in a warm worker of %s (%s=%s)", command, socket_path, SOCKET_ENV, socket_path)
            while True:
                reply = recv_frame(sock)
                if reply.get("event") == "started":
                    log.debug("%s: worker pid %s started the run", command, reply.get("pid"))
                    continue
                break
        except (OSError, EOFError, ValueError) as err:
            print(f"asymcl {command}: error: the warm worker server at {socket_path} failed during "
                  f"the run ({err}); rerun the job, or unset {SOCKET_ENV} to run in-process",
                  file=sys.stderr)
            return 1
    if reply.get("error"):
        print(f"asymcl {command}: error: {reply['error']}", file=sys.stderr)
    return int(reply.get("rc", 1))


def ping(socket_path: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """The server's status (slots, idle workers, pid), or ``None`` when unreachable."""
    try:
        with connect(socket_path, timeout) as sock:
            sock.settimeout(timeout)
            send_frame(sock, {"op": "ping"})
            return recv_frame(sock)
    except (OSError, EOFError, ValueError):
        return None


def stop(socket_path: str, timeout: float = 30.0) -> bool:
    """Ask the server to stop; wait until it has. False when none was running."""
    try:
        with connect(socket_path, 2.0) as sock:
            sock.settimeout(timeout)
            send_frame(sock, {"op": "stop"})
            recv_frame(sock)
    except (OSError, EOFError, ValueError):
        return False
    deadline = time.monotonic() + timeout
    while Path(socket_path).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


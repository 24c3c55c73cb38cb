"""Warm run server: K worker processes that keep torch imported (and CUDA initialised).

Why. A small run of the paper's grid is about 1 s of GPU work (FMNIST: 700 images x 20
epochs), while a fresh ``asymcl train`` process spends seconds importing torch,
torchvision and scikit-learn and initialising CUDA. Keeping one Snakemake job per run
(exact incremental reruns) and paying that start-up once per *worker* instead of once per
*run* needs a long-lived server that the jobs hand their run to.

Pieces:

* ``asymcl worker serve --socket PATH --slots K`` (`serve`): listens on a Unix socket and
  keeps K worker processes (``spawn`` context: a clean interpreter, never a fork of a
  process that may hold a CUDA context). Each worker imports the engine once, optionally
  initialises the device, then executes run requests one at a time with the same function
  as an in-process ``asymcl train`` (`asymcl.commands.train.run_train_in_process`). On
  CUDA the K workers share the GPU, so K runs proceed concurrently on one device.
* The client (`submit`), used by ``asymcl train`` when ``ASYMCL_WORKER_SOCKET`` names a
  reachable socket: sends the parsed arguments and its working directory, and passes its
  own stdout and stderr file descriptors (``SCM_RIGHTS``), so the worker writes the run's
  output exactly where the job's own output goes (the rule's ``log:`` file). It waits for
  the exit status and returns it. The client never imports torch.
* Crash safety: a handler thread per client watches the worker's result pipe, the
  worker's process sentinel and the client socket together. A worker that dies mid-run
  gives the client exit status 1 and a message naming the pid and signal; a client that
  goes away (job killed) gets its worker terminated. Either way the slot is refilled with
  a fresh worker. A server whose ``--parent-pid`` (Snakemake) has gone exits by itself.

Protocol: one request per connection, length-prefixed JSON frames (4-byte big-endian
length). Requests: ``{"op": "run", "command": "train", "args": {...}, "cwd": "..."}``
followed by the two descriptors, ``{"op": "ping"}`` and ``{"op": "stop"}``.
"""

from __future__ import annotations

import argparse
import array
import json
import logging
import os
import queue
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Environment variable naming the server's socket for ``asymcl train``.
SOCKET_ENV = "ASYMCL_WORKER_SOCKET"
#: Unix socket paths are limited to 108 bytes (sun_path) on Linux.
MAX_SOCKET_PATH = 100
_HEADER = struct.Struct(">I")
_MAX_FRAME = 16 * 1024 * 1024
#: Modules a worker imports before its first run (the cost a warm worker saves).
PRELOAD = ("torch", "torchvision", "sklearn.metrics", "asymcl.train", "asymcl.commands.train")


class WorkerError(RuntimeError):
    """The server could not be reached or answered out of protocol."""


# --------------------------------------------------------------------------- framing


def _send_frame(sock: socket.socket, obj: dict[str, Any], fds: list[int] | None = None) -> None:
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


def _recv_frame(sock: socket.socket, fds: list[int] | None = None) -> dict[str, Any]:
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size, fds))
    if size > _MAX_FRAME:
        raise WorkerError(f"frame of {size} bytes is larger than the {_MAX_FRAME} allowed")
    return json.loads(_recv_exact(sock, size))


def _connect(path: str, timeout: float | None = 5.0) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    sock.settimeout(None)
    return sock


# --------------------------------------------------------------------------- client


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
        sock = _connect(socket_path)
    except OSError as err:
        log.info("%s: warm worker socket %s unreachable (%s); running in this process",
                 command, socket_path, err.strerror or err)
        return None
    with sock:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            request = {"op": "run", "command": command, "args": _jsonable_args(args), "cwd": os.getcwd()}
            _send_frame(sock, request, fds=[sys.stdout.fileno(), sys.stderr.fileno()])
            log.info("%s: running in a warm worker of %s (%s=%s)", command, socket_path, SOCKET_ENV, socket_path)
            while True:
                reply = _recv_frame(sock)
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
        with _connect(socket_path, timeout) as sock:
            sock.settimeout(timeout)
            _send_frame(sock, {"op": "ping"})
            return _recv_frame(sock)
    except (OSError, EOFError, ValueError):
        return None


def stop(socket_path: str, timeout: float = 30.0) -> bool:
    """Ask the server to stop; wait until it has. False when none was running."""
    try:
        with _connect(socket_path, 2.0) as sock:
            sock.settimeout(timeout)
            _send_frame(sock, {"op": "stop"})
            _recv_frame(sock)
    except (OSError, EOFError, ValueError):
        return False
    deadline = time.monotonic() + timeout
    while Path(socket_path).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


# --------------------------------------------------------------------------- worker process


def _commands() -> dict[str, Any]:
    from asymcl.commands import train as train_cmd

    return {"train": train_cmd.run_train_in_process}


def _warm_up(device: str) -> None:
    """Import the engine; on CUDA create the context and the cuBLAS handle once."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    if device != "cpu":
        import torch

        if device == "auto" and not torch.cuda.is_available():
            return
        dev = torch.device("cuda" if device == "auto" else device)
        a = torch.ones(64, 64, device=dev)
        (a @ a).sum().item()


def _execute(request: dict[str, Any], out_fd: int, err_fd: int) -> int:
    """Run one request with stdout/stderr on the client's descriptors; return its status."""
    from asymcl.cli import UserError

    command = request.get("command")
    verbose = bool(request.get("args", {}).get("verbose"))
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    # The same format as `asymcl.cli.main`, so a log reads the same either way.
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    old_handlers, old_level = root.handlers[:], root.level
    root.handlers = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    try:
        os.chdir(request["cwd"])
        func = _commands()[command]
        try:
            return int(func(argparse.Namespace(**request["args"])) or 0)
        except UserError as err:
            print(f"asymcl {command}: error: {err}", file=sys.stderr)
            return 2
        except Exception:  # as an uncaught exception in-process: traceback, status 1
            traceback.print_exc()
            return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        root.handlers, root.level = old_handlers, old_level
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, out_fd, err_fd):
            os.close(fd)


def _release_device_memory() -> None:
    """Hand cached GPU memory back after a large run (K workers share the card)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        if torch.cuda.memory_reserved() > 4 * 2**30:
            torch.cuda.empty_cache()


def _worker_main(conn: Any, device: str) -> None:
    """Entry point of a worker process: warm up, then serve requests until EOF."""
    from multiprocessing.reduction import recv_handle

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the server, which stops us
    _warm_up(device)
    conn.send({"event": "ready", "pid": os.getpid()})
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        out_fd = recv_handle(conn)
        err_fd = recv_handle(conn)
        rc = _execute(request, out_fd, err_fd)
        _release_device_memory()
        conn.send({"rc": rc})


# --------------------------------------------------------------------------- server


class _Worker:
    def __init__(self, ctx: Any, device: str) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_worker_main, args=(child, device), daemon=True)
        self.process.start()
        child.close()
        self.ready = False

    def describe_death(self) -> str:
        self.process.join(timeout=1)
        code = self.process.exitcode
        if code is not None and code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exited with status {code}"
        return f"warm worker pid {self.process.pid} {how}"

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(timeout=5)
        self.conn.close()


class Server:
    """The socket server and its pool of K warm workers (see the module docstring)."""

    def __init__(self, socket_path: str, slots: int, device: str = "auto", parent_pid: int | None = None) -> None:
        import multiprocessing

        if slots < 1:
            raise ValueError(f"--slots must be >= 1, got {slots}")
        self.path = str(Path(socket_path).absolute())
        if len(self.path.encode()) > MAX_SOCKET_PATH:
            raise ValueError(
                f"socket path {self.path} is {len(self.path.encode())} bytes; Unix sockets allow about "
                f"{MAX_SOCKET_PATH}: choose a shorter path (e.g. under /tmp)"
            )
        self.slots = slots
        self.device = device
        self.parent_pid = parent_pid
        self.ctx = multiprocessing.get_context("spawn")
        self.idle: queue.Queue[_Worker] = queue.Queue()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.workers: list[_Worker] = []
        self.served = 0
        self.crashes = 0

    # -- pool

    def _new_worker(self) -> None:
        worker = _Worker(self.ctx, self.device)
        with self.lock:
            self.workers.append(worker)
        self.idle.put(worker)

    def _retire(self, worker: _Worker, replace: bool = True) -> None:
        worker.kill()
        with self.lock:
            if worker in self.workers:
                self.workers.remove(worker)
        if replace and not self.stopping.is_set():
            self._new_worker()

    def _wait_ready(self, worker: _Worker) -> bool:
        """Wait for a new worker's warm-up message (imports happen while runs queue)."""
        from multiprocessing.connection import wait

        while not worker.ready:
            ready = wait([worker.conn, worker.process.sentinel])
            if worker.conn in ready:
                try:
                    msg = worker.conn.recv()
                except (EOFError, OSError):
                    return False
                worker.ready = msg.get("event") == "ready"
            elif worker.process.sentinel in ready:
                return False
        return True

    # -- requests

    def _handle(self, sock: socket.socket) -> None:
        with sock:
            fds: list[int] = []
            try:
                request = _recv_frame(sock, fds)
                op = request.get("op")
                if op == "ping":
                    with self.lock:
                        alive = sum(w.process.is_alive() for w in self.workers)
                    _send_frame(sock, {"pid": os.getpid(), "slots": self.slots, "alive": alive,
                                       "idle": self.idle.qsize(), "served": self.served,
                                       "crashes": self.crashes, "device": self.device})
                elif op == "stop":
                    _send_frame(sock, {"stopping": True})
                    self.stopping.set()
                elif op == "run":
                    if len(fds) != 2:
                        raise WorkerError(f"a run request needs stdout and stderr descriptors, got {len(fds)}")
                    if request.get("command") not in ("train",):
                        _send_frame(sock, {"rc": 2, "error": f"the warm server cannot run {request.get('command')!r}"})
                    else:
                        self._run(sock, request, fds)
                        fds = []  # handed over and closed by _run
                else:
                    _send_frame(sock, {"rc": 2, "error": f"unknown request {op!r}"})
            except (OSError, EOFError, ValueError, WorkerError) as err:
                log.warning("bad request: %s", err)
            finally:
                for fd in fds:
                    os.close(fd)

    def _run(self, sock: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
        from multiprocessing.connection import wait
        from multiprocessing.reduction import send_handle

        label = request["args"].get("out", "?")
        while True:
            worker = self.idle.get()
            if self._wait_ready(worker):
                break
            log.error("%s failed while warming up; replacing it", worker.describe_death())
            self.crashes += 1
            self._retire(worker)
        try:
            _send_frame(sock, {"event": "started", "pid": worker.process.pid})
            worker.conn.send(request)
            for fd in fds:
                send_handle(worker.conn, fd, worker.process.pid)
        except (OSError, EOFError) as err:
            log.warning("%s: could not hand the run to pid %s: %s", label, worker.process.pid, err)
            self._retire(worker)
            return
        finally:
            for fd in fds:
                os.close(fd)
        log.info("%s: started on worker pid %s", label, worker.process.pid)
        while True:
            ready = wait([worker.conn, worker.process.sentinel, sock])
            if worker.conn in ready:
                try:
                    reply = worker.conn.recv()
                except (EOFError, OSError):
                    reply = None
                if reply is not None:
                    self.served += 1
                    self.idle.put(worker)
                    log.info("%s: finished on worker pid %s, status %s", label, worker.process.pid, reply.get("rc"))
                    try:
                        _send_frame(sock, {"rc": reply.get("rc", 1), "error": None})
                    except OSError:
                        pass
                    return
            if worker.conn in ready or worker.process.sentinel in ready:
                why = worker.describe_death()
                self.crashes += 1
                log.error("%s: %s during the run; starting a replacement", label, why)
                self._retire(worker)
                try:
                    _send_frame(sock, {"rc": 1, "error": f"{why} during the run of {label}; the server "
                                                         "replaced it. Rerun the job (a partial stage-1 checkpoint resumes)."})
                except OSError:
                    pass
                return
            if sock in ready:  # the client hung up (job killed): stop its run
                log.warning("%s: client went away; terminating worker pid %s", label, worker.process.pid)
                self._retire(worker)
                return

    # -- main loop

    def _parent_alive(self) -> bool:
        if self.parent_pid is None:
            return True
        try:
            os.kill(self.parent_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _bind(self) -> socket.socket:
        if Path(self.path).exists():
            if ping(self.path) is not None:
                raise WorkerError(f"a warm worker server already answers on {self.path}")
            Path(self.path).unlink()  # stale socket of a server that died
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(self.path)
        sock.listen(256)
        sock.settimeout(0.5)
        return sock

    def serve(self) -> None:
        listener = self._bind()
        for _ in range(self.slots):
            self._new_worker()
        log.info("warm worker server pid %d on %s: %d worker(s), device %s",
                 os.getpid(), self.path, self.slots, self.device)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: self.stopping.set())
        try:
            while not self.stopping.is_set():
                if not self._parent_alive():
                    log.warning("parent pid %s has gone; stopping", self.parent_pid)
                    break
                try:
                    conn, _ = listener.accept()
                except (socket.timeout, InterruptedError):
                    continue
                conn.settimeout(None)
                threading.Thread(target=self._handle, args=(conn,), daemon=True).start()
        finally:
            self.stopping.set()
            listener.close()
            Path(self.path).unlink(missing_ok=True)
            with self.lock:
                workers = list(self.workers)
            for worker in workers:
                worker.kill()
            log.info("warm worker server stopped: %d run(s) served, %d worker crash(es)", self.served, self.crashes)

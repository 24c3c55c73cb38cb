"""The warm run server: K worker processes that keep torch imported (and CUDA initialised).

``asymcl worker serve --socket PATH --slots K`` (`Server.serve`) listens on a Unix socket and
keeps K worker processes (``spawn`` context: a clean interpreter, never a fork of a process
that may hold a CUDA context). Each worker imports the engine once, optionally initialises
the device, then executes run requests one at a time with the same function as an
in-process ``asymcl train`` (`asymcl.commands.train.run_train_in_process`). On CUDA the K
workers share the GPU, so K runs proceed concurrently on one device.

Crash safety: a handler thread per client watches the worker's result pipe, the worker's
process sentinel and the client socket together. A worker that dies mid-run gives the
client exit status 1 and a message naming the pid and signal; a client that goes away (job
killed) gets its worker terminated. Either way the slot is refilled with a fresh worker. A
server whose ``--parent-pid`` (Snakemake) has gone exits by itself.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import socket
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from asymcl.errors import InputError
from asymcl.worker.client import ping
from asymcl.worker.protocol import MAX_SOCKET_PATH, WorkerError, recv_frame, send_frame

log = logging.getLogger("asymcl.worker")

#: Modules a worker imports before its first run (the cost a warm worker saves).
PRELOAD = ("torch", "torchvision", "sklearn.metrics", "asymcl.engine.run", "asymcl.commands.train")


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
        except InputError as err:
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
            raise InputError(f"--slots must be >= 1, got {slots}")
        self.path = str(Path(socket_path).absolute())
        if len(self.path.encode()) > MAX_SOCKET_PATH:
            raise InputError(
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
                request = recv_frame(sock, fds)
                op = request.get("op")
                if op == "ping":
                    with self.lock:
                        alive = sum(w.process.is_alive() for w in self.workers)
                    send_frame(sock, {"pid": os.getpid(), "slots": self.slots, "alive": alive,
                                       "idle": self.idle.qsize(), "served": self.served,
                                       "crashes": self.crashes, "device": self.device})
                elif op == "stop":
                    send_frame(sock, {"stopping": True})
                    self.stopping.set()
                elif op == "run":
                    if len(fds) != 2:
                        raise WorkerError(f"a run request needs stdout and stderr descriptors, got {len(fds)}")
                    if request.get("command") not in ("train",):
                        send_frame(sock, {"rc": 2, "error": f"the warm server cannot run {request.get('command')!r}"})
                    else:
                        self._run(sock, request, fds)
                        fds = []  # handed over and closed by _run
                else:
                    send_frame(sock, {"rc": 2, "error": f"unknown request {op!r}"})
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
            send_frame(sock, {"event": "started", "pid": worker.process.pid})
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
                        send_frame(sock, {"rc": reply.get("rc", 1), "error": None})
                    except OSError:
                        pass
                    return
            if worker.conn in ready or worker.process.sentinel in ready:
                why = worker.describe_death()
                self.crashes += 1
                log.error("%s: %s during the run; starting a replacement", label, why)
                self._retire(worker)
                try:
                    send_frame(sock, {"rc": 1, "error": f"{why} during the run of {label}; the server "
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
                raise InputError(f"a warm worker server already answers on {self.path}")
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

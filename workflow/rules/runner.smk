# Warm workers for local training jobs (config `runner.warm_workers`).
#
# A small run of the grid is about a second of GPU work, while a fresh `asymcl train`
# process spends seconds importing torch and initialising CUDA. With warm_workers = K > 0
# and local execution, `onstart` starts `asymcl worker serve` (its own session, so it
# survives no job and outlives no Snakemake: --parent-pid) with K warm processes and
# exports ASYMCL_WORKER_SOCKET; every `asymcl train` job, still one job per run, hands its
# run to a free worker and waits (K runs at a time share the GPU). `onsuccess`/`onerror`
# stop it. Dry runs start nothing (Snakemake calls no hook for -n), cluster executors
# ignore the setting, and a job that cannot reach the socket runs in-process as usual.
#
# Scheduling: the train rule still asks for `gpu=resources.train.gpu`. Snakemake only
# limits resources named in --resources, so locally K jobs (and more, queued in the server)
# run at once; do not pass `--resources gpu=1` with warm workers (use gpu=2K or nothing).

import os
import shutil
import subprocess
import tempfile
import time

from asymcl import worker as _worker

WARM_WORKERS = config.get("runner", {}).get("warm_workers", 0)
_WARM = {}


def _warm_socket_path():
    """`.snakemake/asymcl-worker.sock`, or a private tmp folder when that path is too long."""
    path = Path(".snakemake/asymcl-worker.sock").absolute()
    if len(str(path).encode()) > _worker.MAX_SOCKET_PATH:
        path = Path(tempfile.mkdtemp(prefix="asymcl-")) / "worker.sock"
    return str(path)


def start_warm_workers():
    if WARM_WORKERS < 1:
        return
    if not workflow.local_exec:
        logger.info("runner.warm_workers ignored: jobs do not run on this machine")
        return
    exe = shutil.which("asymcl")
    if exe is None:
        logger.warning("runner.warm_workers: no `asymcl` on PATH; jobs run in-process")
        return
    path = _warm_socket_path()
    log_path = Path(LOGS) / "asymcl-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    device = config["training"].get("device", "auto")
    cmd = [exe, "worker", "serve", "--socket", path, "--slots", str(WARM_WORKERS)]
    cmd += ["--device", device, "--parent-pid", str(os.getpid())]
    with open(log_path, "a") as log_file:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while _worker.ping(path) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            logger.warning(
                f"runner.warm_workers: the server did not start (see {log_path}); "
                "jobs run in-process"
            )
            return
        time.sleep(0.1)
    _WARM.update(proc=proc, path=path)
    os.environ[_worker.SOCKET_ENV] = path
    logger.info(
        f"warm worker server pid {proc.pid}: {WARM_WORKERS} worker(s) on {path} "
        f"(device {device}; log {log_path})"
    )


def stop_warm_workers():
    if not _WARM:
        return
    os.environ.pop(_worker.SOCKET_ENV, None)
    _worker.stop(_WARM["path"])
    try:
        _WARM["proc"].wait(timeout=30)
    except subprocess.TimeoutExpired:
        _WARM["proc"].kill()
    _WARM.clear()


onstart:
    start_warm_workers()


onsuccess:
    stop_warm_workers()


onerror:
    stop_warm_workers()

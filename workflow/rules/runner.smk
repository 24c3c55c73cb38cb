# Warm workers for local training jobs (config `runner.warm_workers`).
#
# A small run of the grid is about a second of GPU work, while a fresh `asymcl train`
# process spends seconds importing torch and initialising CUDA. With warm_workers = K > 0
# and local execution, `onstart` starts this workflow's `asymcl worker serve` (its own
# session, so it survives no job and outlives no Snakemake: --parent-pid) with K warm
# processes and exports ASYMCL_WORKER_SOCKET; every `asymcl train` job, still one job per
# run, hands its run to a free worker and waits (K runs at a time share the GPU).
# `onsuccess`/`onerror` stop it. The socket lies in a fresh temporary folder per Snakemake
# invocation, so two workflows in one checkout never share a server. Dry runs start
# nothing (Snakemake calls no hook for -n); cluster executors and `--sdm conda` (training
# must run in the rule's environment) ignore the setting; a job that cannot reach the
# socket runs in-process as usual.
#
# Scheduling: the train rule still asks for `gpu=resources.train.gpu`. Snakemake only
# limits resources named in --resources, so locally K jobs (and more, queued in the server)
# run at once; do not pass `--resources gpu=1` with warm workers (use gpu=2K or nothing).

import shutil
import subprocess
import tempfile
import time

from asymcl import worker as _worker

WARM_WORKERS = config.get("runner", {}).get("warm_workers", 0)
_WARM = {}


def _warm_socket_path():
    """A socket in a fresh private folder: one server per run of the workflow, never shared
    with another workflow running in the same checkout (smoke next to real-cpu)."""
    path = Path(tempfile.mkdtemp(prefix="asymcl-worker-")) / "worker.sock"
    if len(str(path).encode()) > _worker.MAX_SOCKET_PATH:
        shutil.rmtree(path.parent, ignore_errors=True)
        return None
    return str(path)


def start_warm_workers():
    if WARM_WORKERS < 1:
        return
    if not workflow.local_exec:
        logger.info("runner.warm_workers ignored: jobs do not run on this machine")
        return
    if USES_CONDA:
        # the server would run training in this (host) environment, not the rule's
        logger.info(
            "runner.warm_workers ignored under --sdm conda: each train job runs in the "
            "rule's conda environment"
        )
        return
    path = _warm_socket_path()
    if path is None:
        logger.warning(
            "runner.warm_workers: the temporary folder's path is too long for a socket "
            "(set TMPDIR to a short folder); jobs run in-process"
        )
        return
    log_path = Path(LOGS) / "asymcl-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    device = config["training"].get("device", "auto")
    # this workflow's package and the interpreter of the jobs (common.smk), not PATH's asymcl
    cmd = [JOB_PYTHON, "-m", "asymcl", "worker", "serve"]
    cmd += ["--socket", path, "--slots", str(WARM_WORKERS)]
    cmd += ["--device", device, "--parent-pid", str(os.getpid())]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(WORKFLOW_SRC), os.environ.get("PYTHONPATH")])
    )
    with open(log_path, "a") as log_file:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    deadline = time.monotonic() + 60
    while _worker.ping(path) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            logger.warning(
                f"runner.warm_workers: the server did not start (see {log_path}); "
                "jobs run in-process"
            )
            if proc.poll() is None:
                proc.kill()
            shutil.rmtree(Path(path).parent, ignore_errors=True)
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
    shutil.rmtree(Path(_WARM["path"]).parent, ignore_errors=True)
    _WARM.clear()


onstart:
    start_warm_workers()


onsuccess:
    stop_warm_workers()


onerror:
    stop_warm_workers()

"""The warm run server (`asymcl worker`): a served run equals an in-process run, the client
path stays light, an unreachable socket falls back, and a worker crash is a clear failure
after which the server refills its slot."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asymcl import worker
from asymcl.cli import main
from asymcl.data.packed import save_split

sys.path.insert(0, str(Path(__file__).parent))
from test_train import _patterns  # noqa: E402  (the engine tests' learnable tiny data)

RUN = ["--eta", "60", "--gamma", "1", "--seed", "3", "--epochs1", "2", "--epochs2", "2",
       "--pretrained", "none", "--batch-size", "32", "--num-threads", "1", "--device", "cpu"]

# Runs `asymcl train` as the console script would, then reports what it imported.
CLIENT = """
import json, sys
from asymcl.cli import main
rc = main(sys.argv[1:])
heavy = sorted(m for m in ("torch", "torchvision", "sklearn", "numpy", "asymcl.engine.run") if m in sys.modules)
print(json.dumps({"rc": rc, "heavy": heavy}))
"""


def _stable(path: Path) -> dict:
    metrics = json.loads(path.read_text())
    metrics.pop("runtime")
    return metrics


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fm")
    save_split(folder / "train.pt", _patterns(64, 1, 28, 0))
    save_split(folder / "test.pt", _patterns(32, 1, 28, 1))
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One CPU server with one worker for the module (its warm-up overlaps other tests)."""
    folder = tmp_path_factory.mktemp("srv")
    sock = str(folder / "w.sock")
    log = open(folder / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "asymcl", "worker", "serve", "--socket", sock, "--slots", "1", "--device", "cpu"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while worker.ping(sock) is None:
        assert proc.poll() is None, (folder / "server.log").read_text()
        assert time.monotonic() < deadline, "server did not answer within 30 s"
        time.sleep(0.1)
    yield sock
    assert worker.stop(sock)
    assert proc.wait(timeout=30) == 0
    log.close()
    assert not Path(sock).exists()


def _client(sock: str, *argv: str, cwd: Path, **popen) -> subprocess.Popen:
    env = {**os.environ, worker.SOCKET_ENV: sock}
    return subprocess.Popen([sys.executable, "-c", CLIENT, *argv], cwd=cwd, env=env, text=True, **popen)


@pytest.fixture(scope="module")
def served(server, data, tmp_path_factory):
    """A run through the server, from a relative --out in the client's own folder."""
    cwd = tmp_path_factory.mktemp("client")
    logfile = cwd / "job.log"
    with open(logfile, "w") as log:
        proc = _client(server, "train", "--data", str(data), "--out", "runs/served", *RUN,
                       cwd=cwd, stdout=subprocess.PIPE, stderr=log)
        out, _ = proc.communicate(timeout=120)
    return json.loads(out.strip().splitlines()[-1]), cwd / "runs/served", logfile.read_text()


def test_unreachable_socket_falls_back_to_an_in_process_run(data, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(worker.SOCKET_ENV, str(tmp_path / "nobody-listens.sock"))
    caplog.set_level("INFO")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), *RUN]) == 0
    assert "unreachable" in caplog.text and "running in this process" in caplog.text
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_served_run_writes_the_same_metrics_as_an_in_process_run(served, data, tmp_path, monkeypatch):
    monkeypatch.delenv(worker.SOCKET_ENV, raising=False)
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "local"), *RUN]) == 0
    report, out, job_log = served
    assert report["rc"] == 0
    # The run's output went to the client's stderr (the job's log), relative to its cwd.
    assert "running in a warm worker" in job_log
    assert "stage 1 epoch 2/2" in job_log and "accuracy" in job_log
    assert _stable(out / "metrics.json") == _stable(tmp_path / "local" / "metrics.json")


def test_the_client_path_does_not_import_torch(served):
    report, _, _ = served
    assert report["heavy"] == []


def test_a_user_error_in_the_worker_is_reported_like_in_process(server, tmp_path):
    proc = _client(server, "train", "--data", str(tmp_path / "missing"), "--out", "x", *RUN,
                   cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=120)
    assert json.loads(out.strip().splitlines()[-1])["rc"] == 2
    # the client checks paths before handing the run over, with the in-process message
    assert f"asymcl train: error: --data {tmp_path / 'missing'} does not exist" in err


def test_a_worker_crash_is_a_clear_failure_and_the_slot_is_refilled(server, data, tmp_path):
    proc = _client(server, "-v", "train", "--data", str(data), "--out", "runs/long",
                   *[a if a != "2" else "200" for a in RUN],  # long enough to be killed mid-run
                   cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "started the run" in line:
            pid = int(line.split("worker pid ")[1].split()[0])
            break
    else:
        pytest.fail("the client never saw its run start:\n" + "".join(lines))
    os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert json.loads(out.strip().splitlines()[-1])["rc"] == 1
    assert f"warm worker pid {pid} killed by SIGKILL during the run of runs/long" in err
    deadline = time.monotonic() + 30
    while (state := worker.ping(server))["alive"] != 1 or state["crashes"] != 1:
        assert time.monotonic() < deadline, state
        time.sleep(0.1)
    assert state["slots"] == 1

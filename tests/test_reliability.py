"""Fault injection: what a user sees when inputs are bad or jobs die (DESIGN.md section 7).

Each fault is produced for real, through the same entry points a user calls: a damaged
archive fed to ``asymcl download`` (from a folder and from an HTTP server that cuts the
transfer short), a bad value in a config file given to ``snakemake``, an ``asymcl train``
process killed with SIGKILL after its first stage-1 checkpoint, and NaN losses. The failing
cluster job (retried, reported, ``--keep-going``) is in ``test_slurm.py``: it needs SLURM.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workflow_runs import copy_project, describe, project_env, run, tail  # noqa: E402

pytestmark = pytest.mark.reliability

FMNIST_FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]
CLI_TIMEOUT = 300


def asymcl(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "asymcl", *args], cwd, dict(os.environ), CLI_TIMEOUT,
               check=check)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listed_checksums(sums: Path) -> dict[str, str]:
    out = {}
    for line in sums.read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            out[name.lstrip("*")] = digest
    return out


@pytest.fixture(scope="module")
def fmnist_source(tmp_path_factory) -> Path:
    """A synthetic Fashion-MNIST source folder in the official format, with SHA256SUMS."""
    src = tmp_path_factory.mktemp("fmnist-src")
    asymcl("synth", "fmnist", "--out", str(src), "--per-class", "40", "--seed", "0", cwd=src)
    return src


# ------------------------------------------------------------------ downloads


def damage(data: bytes, how: str) -> bytes:
    if how == "corrupted":  # one flipped bit in the middle
        i = len(data) // 2
        return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]
    return data[: len(data) // 2]  # truncated


def assert_nothing_unverified_left(out: Path, source: Path, bad: str) -> None:
    """``out`` holds no trace of ``bad`` (no partial or temporary file) and every file left
    in it is a complete, verified copy of its source."""
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert not [n for n in left if bad in n], f"pieces of {bad} left in {out}: {left}"
    for name in left:
        assert name in FMNIST_FILES, f"unexpected file {name} left in {out}: {left}"
        assert sha256(out / name) == sha256(source / name), f"{out / name} is not a verified copy"


@pytest.mark.parametrize("how", ["corrupted", "truncated"])
def test_damaged_download_from_folder_fails_and_leaves_nothing(fmnist_source, tmp_path, how):
    bad_name = "t10k-images-idx3-ubyte.gz"
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in FMNIST_FILES:
        data = (fmnist_source / name).read_bytes()
        (mirror / name).write_bytes(damage(data, how) if name == bad_name else data)
    out = tmp_path / "raw"

    proc = asymcl("download", "fmnist", "--source", str(mirror),
                  "--checksums", str(fmnist_source / "SHA256SUMS"), "--out", str(out),
                  cwd=tmp_path, check=False)

    assert proc.returncode == 2, describe(proc, tmp_path)
    expected = listed_checksums(fmnist_source / "SHA256SUMS")[bad_name]
    actual = sha256(mirror / bad_name)  # independent digest of the damaged bytes
    for needle in (bad_name, expected, actual):
        assert needle in proc.stderr, f"{needle!r} missing from the error:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    assert_nothing_unverified_left(out, fmnist_source, bad_name)


class _FlakyHandler(http.server.BaseHTTPRequestHandler):
    """Serves files from ``server.root``; ``server.cut`` names one that is sent short:
    ``header-lies`` announces the full length and closes early (a dropped connection),
    ``short-file`` serves a consistently truncated file (a broken mirror)."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        name = self.path.lstrip("/")
        self.server.requests.append(name)
        path = self.server.root / name
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        body, length = data, len(data)
        if name == self.server.cut_name:
            body = data[: len(data) // 2]
            length = len(data) if self.server.cut == "header-lies" else len(body)
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.mark.parametrize("cut", ["header-lies", "short-file"])
def test_truncated_http_download_fails_and_leaves_nothing(fmnist_source, tmp_path, cut):
    bad_name = "train-labels-idx1-ubyte.gz"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FlakyHandler)
    server.root, server.cut, server.cut_name, server.requests = fmnist_source, cut, bad_name, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    out = tmp_path / "raw"
    try:
        proc = asymcl("download", "fmnist", "--source", f"http://127.0.0.1:{server.server_port}/",
                      "--checksums", str(fmnist_source / "SHA256SUMS"), "--out", str(out),
                      "--retries", "1", cwd=tmp_path, check=False)
    finally:
        server.shutdown()
        server.server_close()

    assert proc.returncode == 2, describe(proc, tmp_path)
    assert "Traceback" not in proc.stderr, proc.stderr
    # Either way the bytes received are the first half: caught by the checksum (a dropped
    # connection is not reported by urllib's chunked reads), both digests named.
    full = (fmnist_source / bad_name).read_bytes()
    actual = hashlib.sha256(full[: len(full) // 2]).hexdigest()
    expected = listed_checksums(fmnist_source / "SHA256SUMS")[bad_name]
    for needle in (bad_name, expected, actual):
        assert needle in proc.stderr, f"{needle!r} missing from the error:\n{proc.stderr}"
    assert server.requests.count(bad_name) == 1, f"a checksum error is not retried: {server.requests}"
    assert_nothing_unverified_left(out, fmnist_source, bad_name)


# ------------------------------------------------------------------ config


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("cfg") / "project")


@pytest.mark.workflow
@pytest.mark.parametrize(
    "bad_config, key_path, allowed",
    [
        ("training:\n  arch: resnet99\n", "['training']['arch']", ["resnet18", "resnet50"]),
        (
            "experiments:\n  table1:\n    cells: [{eta: 0, gamma: 11}]\n",
            "['experiments']['table1']['cells'][0]['gamma']",
            ["maximum of 10"],
        ),
        (
            "datasets:\n  fmnist:\n    subset: {from_split: validation}\n",
            "['datasets']['fmnist']['subset']['from_split']",
            ["train", "test"],
        ),
    ],
    ids=["arch", "gamma", "from_split"],
)
def test_invalid_config_fails_at_parse_time_naming_key_and_allowed_values(
    project, tmp_path, bad_config, key_path, allowed
):
    bad = tmp_path / "bad.yaml"
    bad.write_text(bad_config)
    # A real run (not -n): if validation let it through, jobs would start and write files.
    proc = run(["snakemake", "--configfile", "config/smoke.yaml", str(bad), "--cores", "1"],
               project, project_env(project), timeout=300, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"snakemake accepted {bad_config!r}:\n{tail(output)}"
    assert key_path in output, f"the error does not name {key_path}:\n{tail(output)}"
    for value in allowed:
        assert value in output, f"the error does not give the allowed {value!r}:\n{tail(output)}"
    assert "Building DAG" not in output, f"the DAG was built before the check:\n{tail(output)}"
    for folder in ("data", "results", "logs"):
        assert not (project / folder).exists(), f"a job ran: {folder}/ was created"


# ------------------------------------------------------------------ training faults


@pytest.fixture(scope="module")
def fmnist_subset(fmnist_source, tmp_path_factory) -> Path:
    """A tiny 80:20 FMNIST scenario (35 train images) packed for `asymcl train`."""
    base = tmp_path_factory.mktemp("subset")
    asymcl("download", "fmnist", "--source", str(fmnist_source),
           "--checksums", str(fmnist_source / "SHA256SUMS"), "--out", str(base / "raw"), cwd=base)
    asymcl("subset", "--dataset", "fmnist", "--raw", str(base / "raw"), "--ratio", "80:20",
           "--total", "50", "--seed", "0", "--out", str(base / "subset"), cwd=base)
    return base / "subset"


def train_args(data: Path, out: Path) -> list[str]:
    return [
        "train", "--data", str(data), "--out", str(out), "--eta", "60", "--gamma", "2",
        "--seed", "3", "--epochs1", "3", "--epochs2", "2", "--pretrained", "none",
        "--batch-size", "8", "--device", "cpu", "--num-threads", "1",
        "--checkpoint-every", "0",  # a checkpoint after every epoch: the kill lands mid-training
    ]


@pytest.mark.slow
def test_killed_stage1_job_resumes_from_checkpoint_with_identical_metrics(fmnist_subset, tmp_path):
    import torch

    # The uninterrupted reference run goes alongside (one thread each, two cores).
    reference = tmp_path / "uninterrupted"
    ref_cmd = [sys.executable, "-m", "asymcl", *train_args(fmnist_subset, reference)]
    ref_log, log = tmp_path / "uninterrupted.log", tmp_path / "killed.log"
    out = tmp_path / "killed"
    ckpt = out / "stage1_checkpoint.pt"
    cmd = [sys.executable, "-m", "asymcl", *train_args(fmnist_subset, out)]
    with ref_log.open("w") as ref_sink, log.open("w") as sink:
        ref_proc = subprocess.Popen(ref_cmd, cwd=tmp_path, stdout=ref_sink, stderr=subprocess.STDOUT)
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + CLI_TIMEOUT
            while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)  # no chance to clean up: like a node failure
            proc.wait(timeout=60)
            ref_proc.wait(timeout=CLI_TIMEOUT)
        finally:
            for p in (proc, ref_proc):
                if p.poll() is None:
                    p.kill()
                    p.wait()
    assert ref_proc.returncode == 0, f"the reference run failed:\n{tail(ref_log.read_text())}"
    assert proc.returncode == -signal.SIGKILL, (
        f"the run was not killed mid-training (exit {proc.returncode}); log:\n{tail(log.read_text())}"
    )
    assert not (out / "metrics.json").exists()
    killed_at = torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"]
    assert 1 <= killed_at < 3, f"checkpoint at epoch {killed_at}: the kill was not mid stage 1"

    resumed = asymcl(*train_args(fmnist_subset, out), cwd=tmp_path)
    assert "resuming" in resumed.stderr, tail(resumed.stderr)
    got = json.loads((out / "metrics.json").read_text())
    want = json.loads((reference / "metrics.json").read_text())
    assert got["runtime"]["resumed_from_epoch"] == killed_at
    assert want["runtime"]["resumed_from_epoch"] is None
    got.pop("runtime"), want.pop("runtime")  # timings, memory, paths: differ by nature
    assert got == want, "a resumed run must reproduce the uninterrupted run's metrics exactly"
    assert not ckpt.exists(), "the checkpoint is removed once metrics.json is written"


@pytest.mark.slow
def test_nan_producing_setting_fails_loudly_through_the_cli(fmnist_subset, tmp_path):
    # tau = 1e-40: similarities / tau overflow float32, every stage-1 loss is NaN/inf.
    out = tmp_path / "run"
    proc = asymcl(*train_args(fmnist_subset, out), "--temperature", "1e-40", "--epochs1", "1",
                  cwd=tmp_path, check=False)
    assert proc.returncode == 1, describe(proc, tmp_path)
    assert "NaN/inf" in proc.stderr and "temperature" in proc.stderr, tail(proc.stderr)
    assert not (out / "metrics.json").exists()


class _NaNOnCalls:
    """Wraps the engine's loss class: calls number ``bad`` (1-based, counted over the
    whole run) return NaN, like an overflow in a real step."""

    def __init__(self, loss_cls, bad: set[int]):
        self.loss_cls, self.bad, self.calls = loss_cls, bad, 0

    def __call__(self, *args, **kwargs):
        wrapper = self
        base = self.loss_cls

        class Poisoned(base):
            def forward(self, features, labels):
                wrapper.calls += 1
                loss = super().forward(features, labels)
                return loss * float("nan") if wrapper.calls in wrapper.bad else loss

        return Poisoned(*args, **kwargs)


def _spec(data: Path, out: Path, max_nan_fraction: float):
    from asymcl.engine.spec import RunSpec

    return RunSpec(data=str(data), out=str(out), eta=0.0, gamma=0.0, seed=0, epochs1=2,
                   epochs2=1, pretrained="none", batch_size=8, device="cpu", num_threads=1,
                   max_nan_fraction=max_nan_fraction)


@pytest.mark.slow
def test_nan_steps_are_counted_and_fail_past_the_threshold(fmnist_subset, tmp_path, monkeypatch):
    import asymcl.losses
    from asymcl.engine import run as train, steps

    # 35 train images, batch 8: 5 stage-1 steps per epoch, 10 in all; steps 2 and 7 are NaN.
    poison = _NaNOnCalls(asymcl.losses.AFCL, {2, 7})
    monkeypatch.setattr(asymcl.losses, "AFCL", poison)
    result = train.run(_spec(fmnist_subset, tmp_path / "ok", max_nan_fraction=0.25))
    assert poison.calls == 10, f"expected 10 stage-1 loss calls, saw {poison.calls}"
    assert result["nan_steps_by_stage"]["stage1"] == 2
    assert result["steps_by_stage"]["stage1"] == 10
    assert [e["nan_steps"] for e in result["stage1"]["epochs"]] == [1, 1]
    written = json.loads((tmp_path / "ok" / "metrics.json").read_text())
    assert written["nan_steps"] == 2 + written["nan_steps_by_stage"]["stage2"]

    # The same 20% with a 15% threshold: the run fails, naming the counts and the option.
    poison = _NaNOnCalls(asymcl.losses.AFCL.loss_cls, {2, 7})
    monkeypatch.setattr(asymcl.losses, "AFCL", poison)
    with pytest.raises(steps.TooManyNonFiniteSteps) as err:
        train.run(_spec(fmnist_subset, tmp_path / "fail", max_nan_fraction=0.15))
    message = str(err.value)
    assert "2 of 10 steps" in message and "max-nan-fraction" in message, message
    assert not (tmp_path / "fail" / "metrics.json").exists()

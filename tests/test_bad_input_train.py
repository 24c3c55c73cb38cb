"""`asymcl train` and `asymcl train-many` on bad input, as a user runs them (issue 13).

Every row runs ``python -m asymcl`` in a fresh process and asserts exit status 2, one error
line naming the culprit, no traceback, and what is left in the output folder. Settings are
checked before torch is imported; data-file rows use tiny packed splits.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from asymcl.data.packed import PackedSplit, save_split
from cli_probe import SRC, assert_input_error, run_cli

FAST = ["--pretrained", "none", "--batch-size", "8", "--num-threads", "1", "--device", "cpu"]


def _split(n: int, seed: int) -> PackedSplit:
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 1, 28, 28, generator=g) * 255).to(torch.uint8)
    return PackedSplit(x, torch.arange(n) % 2, [str(i) for i in range(n)], ["a", "b"])


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    save_split(folder / "train.pt", _split(16, 0))
    save_split(folder / "test.pt", _split(8, 1))
    return folder


def _train_args(data: Path, out: Path, *extra: str, epochs1: int = 1) -> list[str]:
    return ["train", "--data", str(data), "--out", str(out), "--eta", "0", "--gamma", "0", "--seed", "0",
            "--epochs1", str(epochs1), "--epochs2", "1", *FAST, *extra]


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# (extra options, culprits the error line must name); each replaces the base value.
BAD_OPTIONS = [
    (["--eta", "inf"], ["--eta", "inf"]),
    (["--eta", "nan"], ["--eta", "nan"]),
    (["--eta", "-1"], ["--eta"]),
    (["--gamma", "-1"], ["--gamma"]),
    (["--gamma", "inf"], ["--gamma"]),
    (["--lr", "inf"], ["--lr", "inf"]),
    (["--lr", "0"], ["--lr"]),
    (["--lr", "nan"], ["--lr"]),
    (["--temperature", "nan"], ["--temperature"]),
    (["--temperature", "0"], ["--temperature"]),
    (["--focal-gamma", "inf"], ["--focal-gamma"]),
    (["--focal-gamma", "-2"], ["--focal-gamma"]),
    (["--rotation", "1e9"], ["--rotation", "[0, 180]"]),
    (["--rotation", "-5"], ["--rotation"]),
    (["--rotation", "nan"], ["--rotation"]),
    (["--max-nan-fraction", "2"], ["--max-nan-fraction"]),
    (["--max-nan-fraction", "nan"], ["--max-nan-fraction"]),
    (["--checkpoint-every", "inf"], ["--checkpoint-every"]),
    (["--checkpoint-every", "-1"], ["--checkpoint-every"]),
    (["--seed", "-1"], ["--seed", "4294967295"]),
    (["--seed", "4294967296"], ["--seed", "4294967295"]),
    (["--seed", str(2**70)], ["--seed"]),
    (["--seed", "1.5"], ["--seed", "invalid int"]),
    (["--epochs1", "-1"], ["--epochs1"]),
    (["--epochs2", "0"], ["--epochs2"]),
    (["--batch-size", "1"], ["--batch-size"]),
    (["--num-threads", "0"], ["--num-threads"]),
    (["--num-threads", str(10**12)], ["--num-threads"]),
    (["--views", "0"], ["--views"]),
    (["--many-shot-threshold", "-1"], ["--many-shot-threshold"]),
    (["--few-shot-threshold", "102"], ["--few-shot-threshold", "many_shot_threshold + 1"]),
    (["--stop-after-epoch", "0"], ["--stop-after-epoch"]),
    (["--stage2-bn", "batch"], ["--stage2-bn"]),
    (["--nan-policy", "skip"], ["--nan-policy"]),
    (["--arch", "vgg"], ["--arch"]),
    (["--device", "tpu"], ["--device"]),
    (["--pretrained", "/no/such/weights.pt"], ["--pretrained"]),
]


@pytest.mark.parametrize("extra,culprits", BAD_OPTIONS, ids=[" ".join(r[0]) for r in BAD_OPTIONS])
def test_bad_option_values(data, tmp_path, extra, culprits):
    out = tmp_path / "run"
    result = run_cli(_train_args(data, out, *extra))
    assert_input_error(result, *culprits)
    assert not out.exists()  # refused before anything was created


def _truncated(folder: Path) -> None:
    blob = (folder / "train.pt").read_bytes()
    (folder / "train.pt").write_bytes(blob[: len(blob) // 2])


class Anything:
    """Stands for an arbitrary pickled object (never unpickled by the code under test)."""


def _pickled_object(folder: Path) -> None:
    (folder / "train.pt").write_bytes(pickle.dumps(Anything()))


def _wrong_dict(folder: Path) -> None:
    torch.save({"pixels": torch.zeros(3)}, folder / "train.pt")


def _float_images(folder: Path) -> None:
    torch.save({"images": torch.zeros(4, 1, 28, 28), "targets": torch.zeros(4, dtype=torch.int64),
                "ids": ["0", "1", "2", "3"], "classes": ["a", "b"]}, folder / "train.pt")


def _empty(folder: Path) -> None:
    (folder / "train.pt").write_bytes(b"")


def _no_test(folder: Path) -> None:
    (folder / "test.pt").unlink()


DATA_FAULTS = [
    (_truncated, ["train.pt", "not a packed split", "truncated", "asymcl subset", "asymcl resize"]),
    (_pickled_object, ["train.pt", "not a packed split", "asymcl subset"]),
    (_wrong_dict, ["train.pt", "not a packed split"]),
    (_float_images, ["train.pt", "uint8"]),
    (_empty, ["train.pt", "empty"]),
    (_no_test, ["test.pt", "not found"]),
]


@pytest.mark.parametrize("fault,culprits", DATA_FAULTS, ids=[f.__name__ for f, _ in DATA_FAULTS])
def test_bad_subset_files(data, tmp_path, fault, culprits):
    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("train.pt", "test.pt"):
        (folder / name).write_bytes((data / name).read_bytes())
    fault(folder)
    out = tmp_path / "run"
    result = run_cli(_train_args(folder, out))
    line = assert_input_error(result, *culprits)
    assert "weights_only" not in result.stderr, line  # never torch's advice to unpickle anything
    assert not out.exists()


def test_bad_paths(data, tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases = [
        (["--data", str(tmp_path / "missing")], ["--data", "missing", "does not exist", "asymcl subset"]),
        (["--data", str(a_file)], ["--data", "file.txt", "is a file"]),
        (["--out", str(a_file)], ["--out", "file.txt", "existing file"]),
        (["--out", str(a_file / "run")], ["--out", "file.txt"]),
    ]
    for extra, culprits in cases:
        args = _train_args(data, tmp_path / "run")
        i = args.index(extra[0])
        args[i + 1] = extra[1]
        assert_input_error(run_cli(args), *culprits)
        assert a_file.read_text() == "x" and not (tmp_path / "run").exists()


@pytest.mark.parametrize("content", [b"garbage", pickle.dumps(Anything())], ids=["truncated", "object"])
def test_corrupt_checkpoint_says_delete_it(data, tmp_path, content):
    out = tmp_path / "run"
    out.mkdir()
    (out / "stage1_checkpoint.pt").write_bytes(content)
    result = run_cli(_train_args(data, out))
    assert_input_error(result, "stage1_checkpoint.pt", "not a usable checkpoint", "delete it")
    assert "weights_only" not in result.stderr
    assert (out / "stage1_checkpoint.pt").read_bytes() == content  # left for the user to inspect
    assert _files(out) == [".lock", "stage1_checkpoint.pt"]


def _train_many(tmp_path: Path, items: list) -> tuple:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(items))
    return run_cli(["train-many", "--spec", str(spec)])


def test_train_many_checks_every_item_before_training(data, tmp_path):
    common = {"data": str(data), "eta": 0, "gamma": 0, "seed": 0, "pretrained": "none", "epochs1": 1,
              "epochs2": 1, "batch_size": 8, "num_threads": 1, "device": "cpu"}
    good = {**common, "out": str(tmp_path / "good")}
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "train.pt").write_bytes((data / "train.pt").read_bytes()[:100])
    (broken / "test.pt").write_bytes((data / "test.pt").read_bytes())
    rows = [
        ({"eta": float("inf")}, ["item 1", "eta", "inf"]),  # json.dumps writes Infinity
        ({"lr": 0}, ["item 1", "lr"]),
        ({"seed": 2**40}, ["item 1", "seed"]),
        ({"temperature": "hot"}, ["item 1", "temperature"]),
        ({"stage2_augment": "yes"}, ["item 1", "stage2_augment"]),
        ({"data": str(tmp_path / "missing")}, ["item 1", "--data", "missing"]),
        ({"out": str(a_file)}, ["item 1", "--out", "file.txt"]),
        ({"data": str(broken)}, ["train.pt", "not a packed split"]),
    ]
    for change, culprits in rows:
        bad = {**common, "out": str(tmp_path / "bad"), **change}
        assert_input_error(_train_many(tmp_path, [good, bad]), *culprits)
        assert not (tmp_path / "good").exists() and not (tmp_path / "bad").exists()
    spec = tmp_path / "spec.json"
    for path, culprits in [(tmp_path / "nope.json", ["nope.json", "does not exist"]),
                           (tmp_path, ["--spec", "cannot be read"])]:
        assert_input_error(run_cli(["train-many", "--spec", str(path)]), *culprits)
    spec.write_text("[{")
    assert_input_error(run_cli(["train-many", "--spec", str(spec)]), "spec.json", "not valid JSON")


def _limited_run(args: list[str], max_file_bytes: int) -> subprocess.CompletedProcess:
    """``python -m asymcl`` with every file write capped (a full disk, as the process sees it)."""

    def cap():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    env = dict(os.environ, PYTHONPATH=str(SRC), PYTHONDONTWRITEBYTECODE="1")
    env.pop("ASYMCL_WORKER_SOCKET", None)
    return subprocess.run([sys.executable, "-m", "asymcl", *args], env=env, capture_output=True, text=True,
                          timeout=600, preexec_fn=cap)


@pytest.mark.parametrize("what,epochs1,culprit", [("checkpoint", 1, "stage1_checkpoint.pt"),
                                                   ("metrics", 0, "metrics.json")])
def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(data, tmp_path, what, epochs1, culprit):
    out = tmp_path / "run"
    done = _limited_run(_train_args(data, out, "--checkpoint-every", "0", epochs1=epochs1), 1000)
    assert_input_error(done, culprit, "File too large", "free disk space")  # type: ignore[arg-type]
    assert _files(out) == [".lock"]  # no checkpoint, no metrics, no temporary file


def _popen_train(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    env.pop("ASYMCL_WORKER_SOCKET", None)
    return subprocess.Popen([sys.executable, "-m", "asymcl", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_lock_refuses_a_second_run_and_ctrl_c_keeps_the_checkpoint(data, tmp_path):
    out = tmp_path / "run"
    first = _popen_train(_train_args(data, out, "--checkpoint-every", "0", epochs1=10_000))
    ckpt = out / "stage1_checkpoint.pt"
    try:
        deadline = time.monotonic() + 600
        while not ckpt.exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "no checkpoint within 10 minutes"
            time.sleep(0.5)
        # a second run on the same folder is refused at once, naming the folder and the holder
        second = run_cli(_train_args(data, out, epochs1=10_000))
        assert_input_error(second, "--out", str(out), f"pid {first.pid}", "in use")
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "asymcl train: interrupted"
    state = torch.load(ckpt, weights_only=True)  # intact: written atomically
    epoch = state["epoch"]
    assert epoch >= 1 and not [p for p in _files(out) if p.endswith(".tmp")]

    # A kill during a checkpoint write leaves a temporary file: the next run removes it, and
    # only it (other files that merely look alike stay).
    stale = out / ".stage1_checkpoint.pt.k3y_9abc.tmp"
    stale.write_bytes(b"half a checkpoint")
    keep = [out / ".stage1_checkpoint.pt.mine.tmp", out / "stage1_checkpoint.pt.tmp", out / "notes.tmp"]
    for path in keep:
        path.write_text("not ours")
    again = run_cli(_train_args(data, out, epochs1=epoch + 1))
    assert again.returncode == 0, again.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["runtime"]["resumed_from_epoch"] == epoch
    assert not stale.exists() and all(p.read_text() == "not ours" for p in keep)
    assert re.search(r"removed \.stage1_checkpoint\.pt\.k3y_9abc\.tmp", again.stderr)

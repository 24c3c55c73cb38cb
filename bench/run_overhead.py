"""Whole-run overhead of the engine: wall time of one full-protocol FMNIST run divided by
its stage-1 training-step time (the sum of the stage-1 epoch times).

Everything that is not stage-1 training counts as overhead: process-level set-up inside
`run` (model build, data load), stage-1 checkpoints, stage 2 (features once + the head),
scoring and writing metrics.json. Target: <= 1.05 on CPU (it was about 1.31 when a
checkpoint was written after every stage-1 epoch).

The run: ResNet-18 (random init: no network needed), 28 px, 20 + 10 epochs, batch 128, the
paper's 50:50 FMNIST scenario of 1,000 images (700 training images), CPU, 2 threads, default
``--checkpoint-every``. Data: the official Fashion-MNIST files from ``--fmnist`` through
``asymcl download`` + ``asymcl subset`` into a temporary folder; synthetic images of the
same shape when that folder is absent (said so in the output).

    python3 bench/run_overhead.py                    # writes bench/results/run_overhead_cpu.json
    python3 bench/run_overhead.py --epochs1 2 --epochs2 1 --out /tmp/quick.json   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from asymcl.engine.run import run
from asymcl.engine.spec import RunSpec

REPO = Path(__file__).resolve().parents[1]


def _fmnist_subset(source: Path, work: Path) -> tuple[Path, str]:
    """A 50:50 FMNIST subset folder (700 train / 300 test); real data when available."""
    sub = work / "subset"
    if source.is_dir():
        raw = work / "raw"
        for argv in (["download", "fmnist", "--source", str(source), "--out", str(raw)],
                     ["subset", "--dataset", "fmnist", "--raw", str(raw), "--ratio", "50:50", "--total", "1000",
                      "--seed", "0", "--out", str(sub)]):
            subprocess.run([sys.executable, "-m", "asymcl", *argv], check=True, capture_output=True, text=True)
        return sub, f"fmnist 50:50, 1000 images, from {source}"
    from asymcl.data.packed import PackedSplit, save_split

    g = torch.Generator().manual_seed(0)
    for name, n in (("train", 700), ("test", 300)):
        images = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
        save_split(sub / f"{name}.pt", PackedSplit(images, torch.arange(n) % 2, [str(i) for i in range(n)], ["0", "6"]))
    return sub, "synthetic 700 + 300 images of 28 px (no FMNIST folder found)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fmnist", type=Path, default=Path("/work/shared/data/fmnist"))
    parser.add_argument("--subset", type=Path, default=None,
                        help="an existing subset folder (train.pt, test.pt) instead of download + subset")
    parser.add_argument("--epochs1", type=int, default=20)
    parser.add_argument("--epochs2", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "run_overhead_cpu.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.subset:
            data, described = args.subset, f"subset folder {args.subset}"
        else:
            data, described = _fmnist_subset(args.fmnist, Path(tmp))
        spec = RunSpec(data=str(data), out=str(Path(tmp) / "run"), eta=0.0, gamma=0.0, seed=0,
                       epochs1=args.epochs1, epochs2=args.epochs2, pretrained="none", device="cpu",
                       num_threads=args.threads)
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        metrics = run(spec)
        wall = time.perf_counter() - t0
        load_after = os.getloadavg()
    timings = metrics["runtime"]["timings"]
    ratio = wall / timings["stage1_s"]
    record = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "data": described,
        "setting": {"arch": spec.arch, "pretrained": spec.pretrained, "epochs1": spec.epochs1,
                    "epochs2": spec.epochs2, "batch_size": spec.batch_size, "threads": args.threads,
                    "checkpoint_every_s": spec.checkpoint_every, "n_train": metrics["n_train"]},
        "wall_s": wall,
        "stage1_train_s": timings["stage1_s"],
        "overhead_ratio": ratio,
        "target": 1.05,
        "timings": timings,
        "load_average_1_5_15": {"before": load_before, "after": load_after},
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version()},
        "torch": torch.__version__,
        "code": metrics["code"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"whole run {wall:.2f} s / stage-1 steps {timings['stage1_s']:.2f} s = {ratio:.3f} "
          f"(target <= 1.05); load average {load_before[0]:.1f} -> {load_after[0]:.1f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

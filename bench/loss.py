"""Loss benchmark: forward + backward time of asymcl's AFCL against the released formula.

The baseline is the direct vectorised transcription of the authors' released code in
tests/released_formula.py (the same one the tests check against). Both get the same
L2-normalised float32 features [N, D] with requires_grad and the same labels; one timed
repeat is loss(features, labels).backward(). Prints a table with the ratio
ours / transcription (below 1 = faster) and writes JSON to bench/results/loss_<device>.json.

    python3 bench/loss.py                          # CPU, N = 128 ... 8192
    python3 bench/loss.py --device cuda --repeats 20
    python3 bench/loss.py --sizes 128 1024 --configs 60:2
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the single copy of the transcription lives there

from released_formula import released_afcl  # noqa: E402

from asymcl.io import write_json_atomic  # noqa: E402
from asymcl.losses import AFCL  # noqa: E402


def parse_config(text: str) -> tuple[float, float]:
    try:
        eta, gamma = (float(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ETA:GAMMA (e.g. 60:2), got {text!r}")
    return eta, gamma


def time_call(fn, device: torch.device, repeats: int, warmup: int) -> list[float]:
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def bench_one(n, dim, eta, gamma, temperature, device, repeats, warmup, seed, min_time):
    gen = torch.Generator().manual_seed(seed + n)
    feats = torch.nn.functional.normalize(torch.randn(n, dim, generator=gen), dim=1)
    labels = (torch.rand(n, generator=gen) < 0.1).long()  # 90:10 class mix
    feats = feats.to(device).requires_grad_()
    labels = labels.to(device)
    ours = AFCL(eta=eta, gamma=gamma, temperature=temperature, normalization="reference")

    def run_ours():
        feats.grad = None
        ours(feats, labels).backward()

    def run_released():
        feats.grad = None
        released_afcl(feats, labels, eta=eta, gamma=gamma, temperature=temperature).backward()

    # Interleave the two so drift in machine load hits both alike; small sizes get more
    # repeats (up to min_time seconds of the baseline) so the median is not one hiccup.
    t_ours, t_rel = [], []
    while len(t_rel) < repeats or (sum(t_rel) < min_time and len(t_rel) < 200):
        t_ours += time_call(run_ours, device, 1, warmup)
        t_rel += time_call(run_released, device, 1, warmup)
        warmup = 0
    return statistics.median(t_ours), statistics.median(t_rel), len(t_rel)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+",
                    default=[128, 256, 512, 1024, 2048, 4096, 8192])
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--configs", type=parse_config, nargs="+",
                    default=[(0.0, 0.0), (60.0, 0.0), (60.0, 2.0)],
                    help="ETA:GAMMA pairs to time (default: CL 0:0, ACL 60:0, AFCL 60:2)")
    ap.add_argument("--temperature", type=float, default=0.07)
    ap.add_argument("--repeats", type=int, default=5,
                    help="minimum timed repeats per size (the median is kept)")
    ap.add_argument("--min-time", type=float, default=2.0,
                    help="repeat small sizes until the baseline has run this many seconds")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:K")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON path (default bench/results/loss_<device>.json)")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda given but CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    device_name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else platform.processor() or platform.machine())
    out = args.out or REPO / "bench" / "results" / f"loss_{device.type}.json"

    rows = []
    print(f"device={device} ({device_name}), torch {torch.__version__}, "
          f"threads={torch.get_num_threads()}, D={args.dim}, median of {args.repeats}")
    print(f"{'eta':>5} {'gamma':>5} {'N':>6} {'ours_s':>10} {'released_s':>11} {'ratio':>6}"
          f" {'reps':>5}")
    for eta, gamma in args.configs:
        for n in args.sizes:
            t_ours, t_rel, reps = bench_one(n, args.dim, eta, gamma, args.temperature,
                                            device, args.repeats, args.warmup, args.seed,
                                            args.min_time)
            ratio = t_ours / t_rel
            rows.append({"eta": eta, "gamma": gamma, "N": n, "D": args.dim,
                         "ours_s": t_ours, "transcription_s": t_rel, "ratio": ratio,
                         "repeats": reps})
            print(f"{eta:5g} {gamma:5g} {n:6d} {t_ours:10.5f} {t_rel:11.5f} {ratio:6.3f}"
                  f" {reps:5d}", flush=True)

    write_json_atomic(out, {
        "benchmark": "AFCL forward+backward vs released-formula transcription",
        "device": str(device), "device_name": device_name,
        "torch_version": torch.__version__, "threads": torch.get_num_threads(),
        "min_repeats": args.repeats, "min_time_s": args.min_time,
        "statistic": "median seconds per forward+backward (ours and baseline interleaved)",
        "normalization": "reference", "temperature": args.temperature,
        "label_mix": "90:10 two classes", "results": rows,
    })
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Whole-run overhead measured on finished runs: for every ``metrics.json`` under a results
folder, the in-process wall time of the run (``runtime.timings.total_s``: data load, model
build, stage 1, checkpoints, stage 2, scoring, metrics) divided by its stage-1
training-step time (``stage1_s``, the sum of the stage-1 epoch times). Target <= 1.05.

This reads what the workflow already measured (e.g. the 176 runs of the CPU record), so it
costs no training; `bench/run_overhead.py` measures one fresh run instead.

    python3 bench/record_overhead.py results/record-cpu     # writes bench/results/run_overhead_record_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a results folder with runs/**/metrics.json")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "run_overhead_record_cpu.json")
    args = parser.parse_args()
    ratios, checkpoint_shares, totals, threads = [], [], [], set()
    for path in sorted(args.results.glob("runs/**/metrics.json")):
        metrics = json.loads(path.read_text())
        timings = metrics["runtime"]["timings"]
        ratios.append(timings["total_s"] / timings["stage1_s"])
        checkpoint_shares.append(timings.get("stage1_checkpoint_s", 0.0) / timings["total_s"])
        totals.append(timings["total_s"])
        threads.add(metrics["runtime"].get("device"))
    if not ratios:
        parser.error(f"no runs/**/metrics.json under {args.results}")
    quantiles = statistics.quantiles(ratios, n=10)
    result = {
        "what": "per-run total_s / stage1_s (whole in-process run over stage-1 training steps)",
        "target": 1.05,
        "runs": len(ratios),
        "median_ratio": statistics.median(ratios),
        "p10_ratio": quantiles[0],
        "p90_ratio": quantiles[-1],
        "max_ratio": max(ratios),
        "median_checkpoint_share": statistics.median(checkpoint_shares),
        "median_total_s": statistics.median(totals),
        "devices": sorted(str(t) for t in threads),
        "results": str(args.results),
        "machine": platform.platform(),
        "command": f"python3 bench/record_overhead.py {args.results}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{result['runs']} runs: whole run / stage-1 steps = {result['median_ratio']:.3f} median "
          f"(p10 {result['p10_ratio']:.3f}, p90 {result['p90_ratio']:.3f}, max {result['max_ratio']:.3f}); "
          f"target <= {result['target']}; checkpoints {100 * result['median_checkpoint_share']:.1f}% of a run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Measure how strong eta is under each loss normalisation, to map the eta grids.

For each FMNIST scenario the script draws the subset (real data, seed 0), trains stage 1 for
a few epochs with eta = 1, gamma = 0 under ``reference`` and under ``paper`` (eta = 1 barely
moves training; the terms scale linearly in eta), and reads the per-epoch loss diagnostics
from metrics.json: ``eta_to_positive`` = (eta-term) / (positive-term), the mean over the
epoch's batches of each. Because Adam is invariant to the overall scale of the loss, this
ratio is the *effective* strength of eta. The mapping between the two normalisations is

    eta_paper = eta_reference * r_reference / r_paper     (r = eta_to_positive at eta = 1)

and the analytic approximation (per-anchor terms about equal across anchors) is

    r_reference / r_paper ~= mean_i |N_i| / mean_i |P_i|
                          = 2 p (1 - p) / (p^2 + (1 - p)^2)  (two classes, shares p, 1-p)

Prints one row per scenario and writes bench/results/normalization_mapping.json.

    python3 bench/normalization_mapping.py --raw ../shared/data/fmnist
    python3 bench/normalization_mapping.py --raw data/raw/fmnist --scenarios 50:50 98:2 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from asymcl.cli import main as asymcl
from asymcl.io import write_json_atomic

REPO = Path(__file__).resolve().parents[1]


def analytic_ratio(shares: list[float], batch: int) -> float:
    """mean |N_i| / mean |P_i| for a batch of ``batch`` anchors with class shares ``shares``."""
    pos = sum(s * (s * batch - 1) for s in shares)
    neg = sum(s * (1 - s) * batch for s in shares)
    return neg / pos


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", required=True, help="folder with the four official FMNIST idx .gz files")
    ap.add_argument("--scenarios", nargs="+", default=["50:50", "70:30", "80:20", "90:10", "95:5", "98:2"])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "normalization_mapping.json"))
    args = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in args.scenarios:
            sub = Path(tmp) / scenario.replace(":", "-")
            assert asymcl(["subset", "--dataset", "fmnist", "--raw", args.raw, "--ratio", scenario,
                           "--total", "1000", "--seed", "0", "--out", str(sub)]) == 0
            ratios = {}
            for norm in ("reference", "paper"):
                out = sub / f"run-{norm}"
                assert asymcl(["train", "--data", str(sub), "--out", str(out), "--eta", "1", "--gamma", "0",
                               "--seed", "0", "--epochs1", str(args.epochs), "--epochs2", "1",
                               "--pretrained", "none", "--batch-size", str(args.batch_size),
                               "--normalization", norm, "--num-threads", str(args.threads),
                               "--device", args.device]) == 0
                m = json.loads((out / "metrics.json").read_text())
                ratios[norm] = [e["diagnostics"]["eta_to_positive"] for e in m["stage1"]["epochs"]]
            maj, mino = (float(x) for x in scenario.split(":"))
            p = maj / (maj + mino)
            measured = [r / q for r, q in zip(ratios["reference"], ratios["paper"])]
            rows.append({
                "scenario": scenario,
                "r_reference_per_epoch": ratios["reference"],
                "r_paper_per_epoch": ratios["paper"],
                "factor_per_epoch": measured,
                "factor_mean": statistics.fmean(measured),
                "factor_analytic": analytic_ratio([p, 1 - p], args.batch_size),
            })
            print(f"{scenario:>6}: r_ref {statistics.fmean(ratios['reference']):.4g}  r_paper "
                  f"{statistics.fmean(ratios['paper']):.4g}  eta_paper/eta_ref = {rows[-1]['factor_mean']:.3g} "
                  f"(analytic {rows[-1]['factor_analytic']:.3g})", flush=True)
    write_json_atomic(args.out, {"batch_size": args.batch_size, "epochs": args.epochs, "device": args.device,
                                 "pretrained": "none", "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

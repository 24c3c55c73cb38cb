"""The paper's grid (Tables 1-3, 504 runs) through the real workflow, timed.

Copies the project (code, Snakefile, config; no data, results or caches) to a work folder,
replaces the copy's config.yaml by the repository's merged with overrides (sources: a local mirror of the official files,
`pretrained: none`, the device, warm workers K, optional epoch/size reductions and a
deterministic fraction of the grid), and runs `snakemake` there as a subprocess in two
timed phases:

  prepare: download -> subset -> resize (`--until subset_fmnist resize_isic2018`)
  grid:    every train job, the aggregation, tables and figures

Wall times include Snakemake's own overhead. From the runs' metrics.json (``runtime``)
and benchmark files it reports runs per minute, per-run stage-1 images/s, the job wall
times, and the aggregate stage-1 images/s of all runs together (K at a time share one
GPU); the ratios are taken against the bare model train-step ceiling of bench/train.py
(`ceiling_rate`, measured here alone on the device before the grid). A fraction < 1, or
a time limit reached, is extrapolated to the full grid and labelled as such.

    # CPU check (tiny: 11 runs, 1 epoch, 100 FMNIST images):
    python3 bench/grid.py --data ../shared/data --device cpu --workers 2 --cores 2 \\
        --fraction 0.02 --datasets fmnist --fmnist-total 100 --epochs1 1 --epochs2 1
    # GPU (the paper's settings, the full grid; see bench/gpu_session.sh):
    python3 bench/grid.py --data .gpu-data --device cuda --workers 8 --cores 16 --time-limit 480

Writes bench/results/grid_<device type>.json (``--out`` to change).
"""

from __future__ import annotations

import argparse
import copy
import csv
import importlib.util
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
sys.path.insert(0, str(REPO / "src"))
from asymcl.experiments import build_grid  # noqa: E402  (standard library only)

# Never copied into the work folder.
SKIP_TOP = {".git", "results", "data", "logs", "benchmarks", ".snakemake", ".pytest_cache",
            ".whl", ".gpu-data", ".gl", "build", ".venv"}
SKIP_ANY = {"__pycache__", ".ipynb_checkpoints"}


# --------------------------------------------------------------------------- config


def merge(base: dict, over: dict) -> dict:
    """Snakemake's config merge: mappings key by key, everything else replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def spread(items: list, n: int) -> list:
    """``n`` items evenly spaced over ``items``, first and last included (deterministic)."""
    if n >= len(items):
        return list(items)
    if n == 1:
        return [items[0]]
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def fraction_overrides(config: dict, fraction: float, datasets: list[str]) -> dict:
    """Experiment overrides keeping about ``fraction`` of each dataset's (scenario, seed)
    pairs (every cell kept, so every table column stays): seeds first, then scenarios."""
    experiments = {}
    for name, exp in config["experiments"].items():
        if exp["dataset"] not in datasets:
            continue
        scenarios, seeds = list(exp["scenarios"]), list(exp["seeds"])
        if fraction < 1:
            n_seeds = max(1, min(len(seeds), round(len(seeds) * fraction)))
            n_scen = max(1, min(len(scenarios), round(fraction * len(scenarios) * len(seeds) / n_seeds)))
            scenarios, seeds = spread(scenarios, n_scen), seeds[:n_seeds]
        experiments[name] = {"scenarios": scenarios, "seeds": seeds}
    return experiments


def grid_config(args: argparse.Namespace, base: dict) -> dict:
    data = args.data.resolve()
    over: dict[str, Any] = {
        "datasets": {
            "fmnist": {"source": str(data / "fmnist")},
            # The shared mirror's ISIC zip is a reduced-resolution copy: its own checksums.
            "isic2018": {"source": str(data / "isic2018"), "checksums": str(data / "SHA256SUMS")},
        },
        "training": {"pretrained": "none", "device": args.device},
        "runner": {"warm_workers": args.workers},
        "resources": {"train": {"retries": 0}},
    }
    if args.epochs1 is not None:
        for ds in ("fmnist", "isic2018"):
            over["datasets"][ds]["training"] = {"epochs1": args.epochs1}
    if args.epochs2 is not None:
        over["training"]["epochs2"] = args.epochs2
    if args.fmnist_total is not None:
        over["datasets"]["fmnist"]["subset"] = {"total": args.fmnist_total}
    if args.isic_size is not None:
        over["datasets"]["isic2018"]["image_size"] = args.isic_size
    experiments = fraction_overrides(base, args.fraction, args.datasets)
    # An experiment left out of the selection is dropped by replacing the whole mapping.
    over["experiments"] = {name: {**base["experiments"][name], **sel} for name, sel in experiments.items()}
    return over


# --------------------------------------------------------------------------- running


def copy_project(dest: Path) -> None:
    def ignore(folder: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n in SKIP_ANY or n.endswith(".egg-info")}
        if Path(folder) == REPO:
            skip |= {n for n in names if n in SKIP_TOP}
        return skip

    shutil.copytree(REPO, dest, ignore=ignore, symlinks=True)


def snakemake(work: Path, args: argparse.Namespace, extra: list[str], log: Path, limit: float | None) -> dict:
    """Run snakemake in ``work``; return wall time, exit status and whether it was cut off."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", str(args.cores),
           "--scheduler", args.scheduler, "--nolock", *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(work / "src"), os.environ.get("PYTHONPATH")]))}
    env.pop("ASYMCL_WORKER_SOCKET", None)
    t0 = time.perf_counter()
    with open(log, "w") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        cut = False
        try:
            rc = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            cut = True
            os.killpg(proc.pid, signal.SIGINT)  # Snakemake stops its jobs, runs onerror
            try:
                rc = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                rc = proc.wait()
    return {"cmd": " ".join(cmd), "wall_s": time.perf_counter() - t0, "rc": rc, "cut_at_time_limit": cut}


# --------------------------------------------------------------------------- measurements


def _stats(values: list[float]) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"n": len(values), "median": statistics.median(values), "min": min(values), "max": max(values),
            "mean": statistics.fmean(values)}


def collect_runs(work: Path, grid) -> dict:
    per_ds: dict[str, dict[str, list]] = {}
    done = 0
    for run in grid.runs:
        rel = f"{run.dataset}/{run.scenario}/{run.cell}/seed{run.seed}"
        path = work / "results" / "runs" / rel / "metrics.json"
        d = per_ds.setdefault(run.dataset, {"img_s": [], "total_s": [], "job_s": [], "images": [], "devices": set()})
        bench = work / "benchmarks" / "train" / f"{rel}.tsv"
        if bench.is_file():
            with open(bench) as fh:
                rows = list(csv.DictReader(fh, delimiter="\t"))
            if rows:
                d["job_s"].append(float(rows[-1]["s"]))
        if not path.is_file():
            continue
        done += 1
        m = json.loads(path.read_text())
        rt = m["runtime"]
        d["img_s"].append(rt["throughput"]["stage1_images_per_s"])
        d["total_s"].append(rt["timings"]["total_s"])
        d["images"].append(m["n_train"] * m["settings"]["epochs1"])
        d["devices"].add(rt["device"])
    summary = {}
    for ds, d in per_ds.items():
        summary[ds] = {
            "runs_done": len(d["img_s"]),
            "stage1_images_per_s_per_run": _stats(d["img_s"]),
            "run_total_s": _stats(d["total_s"]),
            "job_wall_s (benchmark: client + queue + run)": _stats(d["job_s"]),
            "stage1_images": sum(d["images"]),
            "devices": sorted(d["devices"]),
        }
    return {"runs_done": done, "by_dataset": summary}


def _load_bench_train():
    spec = importlib.util.spec_from_file_location("bench_train", REPO / "bench" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ceilings(args: argparse.Namespace, datasets: list[str], cfg: dict) -> dict:
    """bench/train.py's bare train-step ceiling for each dataset's model and image size."""
    import torch

    bt = _load_bench_train()
    ctx = bt.DeviceContext.for_device(bt.resolve_device(args.device))
    if ctx.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        torch.set_num_threads(1)  # as one train job (threads: 1)
    out = {}
    for ds in datasets:
        dcfg = cfg["datasets"][ds]
        arch = dcfg.get("training", {}).get("arch", cfg["training"]["arch"])
        size = dcfg.get("image_size", 28) if ds == "isic2018" else 28
        batch = cfg["training"]["batch_size"]
        steps = args.ceiling_steps or (30 if ctx.device.type == "cuda" else 2)
        rate = bt.ceiling_rate(SimpleNamespace(arch=arch, batch=batch, size=size, steps=steps), ctx)
        out[ds] = {"arch": arch, "image_size": size, "batch": batch, "steps": steps, "images_per_s": rate}
    name = torch.cuda.get_device_name(ctx.device) if ctx.device.type == "cuda" else (platform.processor() or platform.machine())
    return {"device_type": ctx.device.type, "device_name": name, "by_dataset": out,
            "precision": "bf16 autocast, channels_last" if ctx.amp_dtype else "fp32, 1 thread"}


def startup_costs(reps: int = 3) -> dict:
    """Per-job fixed costs: a bare interpreter, the engine's imports, and the light client."""

    def wall(code: list[str]) -> float:
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            subprocess.run(code, check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    py = sys.executable
    return {
        "reps": reps,
        "python_s": wall([py, "-c", "pass"]),
        "engine_imports_s": wall([py, "-c", "import torch, torchvision, sklearn.metrics, asymcl.engine.run"]),
        "client_cli_s": wall([py, "-c", "from asymcl.cli import build_parser; build_parser()"]),
    }


# --------------------------------------------------------------------------- main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data",
                   help="local mirror: fmnist/, isic2018/, SHA256SUMS (default ../shared/data)")
    p.add_argument("--device", default="auto", help="training device for every run (auto | cpu | cuda)")
    p.add_argument("--workers", type=int, default=8, help="runner.warm_workers K (0 = a process per job)")
    p.add_argument("--cores", type=int, default=os.cpu_count(), help="snakemake --cores")
    p.add_argument("--scheduler", default="greedy", help="snakemake --scheduler (greedy: no ILP solve per round)")
    p.add_argument("--fraction", type=float, default=1.0,
                   help="fraction of each dataset's (scenario, seed) pairs, all cells kept (default 1: the full grid)")
    p.add_argument("--datasets", type=lambda s: s.split(","), default=["fmnist", "isic2018"])
    p.add_argument("--epochs1", type=int, default=None, help="override stage-1 epochs (default: the paper's)")
    p.add_argument("--epochs2", type=int, default=None, help="override stage-2 epochs (default: the paper's)")
    p.add_argument("--fmnist-total", type=int, default=None, help="override FMNIST images per scenario")
    p.add_argument("--isic-size", type=int, default=None, help="override the ISIC image size")
    p.add_argument("--time-limit", type=float, default=None, help="seconds for the grid phase; the rest is extrapolated")
    p.add_argument("--ceiling-steps", type=int, default=None, help="bare-step ceiling: timed steps (default 30 cuda, 2 cpu)")
    p.add_argument("--no-ceiling", action="store_true", help="skip the bare-step ceiling")
    p.add_argument("--work", type=Path, default=None, help="work folder (default: a fresh one under /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/grid_<device>.json)")
    args = p.parse_args()
    if not (0 < args.fraction <= 1):
        p.error("--fraction must be in (0, 1]")
    for ds in args.datasets:
        if not (args.data / ds).is_dir():
            p.error(f"--data {args.data}: no {ds}/ folder (a mirror of the official files)")

    base = yaml.safe_load((REPO / "config.yaml").read_text())
    full = build_grid(base)
    over = grid_config(args, base)
    cfg = merge(base, over)
    cfg["experiments"] = over["experiments"]
    grid = build_grid(cfg)
    paper_settings = all(getattr(args, k) is None for k in ("epochs1", "epochs2", "fmnist_total", "isic_size"))
    print(f"grid: {len(grid.runs)} of the full grid's {len(full.runs)} runs; settings "
          f"{'of the paper' if paper_settings else 'reduced (see JSON)'}; K={args.workers} on {args.device}", flush=True)

    work = args.work or Path(f"/tmp/asymcl-grid-{os.getpid()}")
    if work.exists():
        shutil.rmtree(work)
    copy_project(work)
    # The copy's config.yaml becomes the merged config: a --configfile merge could not drop
    # an experiment (table3 when only FMNIST is asked for).
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    result: dict[str, Any] = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "python": platform.python_version()}
    result["startup"] = startup_costs()
    print(f"per-job start-up: {json.dumps(result['startup'])}", flush=True)
    if not args.no_ceiling:
        result["ceiling"] = ceilings(args, args.datasets, cfg)
        print(f"bare train-step ceiling: {json.dumps(result['ceiling']['by_dataset'])}", flush=True)

    prep = snakemake(work, args, ["--until", "subset_fmnist", "resize_isic2018"], work / "prepare.log", None)
    print(f"prepare: {prep['wall_s']:.1f} s, rc {prep['rc']}", flush=True)
    if prep["rc"] != 0:
        print((work / "prepare.log").read_text()[-4000:])
    main_phase = snakemake(work, args, [], work / "grid.log", args.time_limit) if prep["rc"] == 0 else None
    if main_phase:
        print(f"grid: {main_phase['wall_s']:.1f} s, rc {main_phase['rc']}"
              f"{' (cut at the time limit)' if main_phase['cut_at_time_limit'] else ''}", flush=True)
        if main_phase["rc"] != 0 and not main_phase["cut_at_time_limit"]:
            print((work / "grid.log").read_text()[-4000:])

    runs = collect_runs(work, grid)
    n_sel, n_full = len(grid.runs), len(full.runs)
    result.update({
        "device": args.device,
        "device_name": result.get("ceiling", {}).get("device_name", args.device),
        "warm_workers": args.workers,
        "cores": args.cores,
        "scheduler": args.scheduler,
        "paper_settings": paper_settings,
        "overrides": {k: getattr(args, k) for k in ("epochs1", "epochs2", "fmnist_total", "isic_size")},
        "fraction_requested": args.fraction,
        "config_overrides": over,
        "runs_selected": n_sel,
        "runs_full_grid": n_full,
        "phases": {"prepare": prep, "grid": main_phase},
        "runs": runs,
    })
    if main_phase:
        grid_s = main_phase["wall_s"]
        done = runs["runs_done"]
        total_s = prep["wall_s"] + grid_s
        result["runs_per_minute"] = 60 * done / grid_s if grid_s > 0 else None
        complete = done == n_full and main_phase["rc"] == 0
        result["full_grid_measured"] = complete
        # Extrapolation: the grid phase scales with the runs; preparation is per (scenario,
        # seed) pair and scales with the pairs kept (about the same fraction).
        scale = n_full / done if done else math.inf
        result["full_grid_wall_s"] = {
            "value": total_s if complete else prep["wall_s"] * n_full / n_sel + grid_s * scale,
            "kind": "measured" if complete else f"EXTRAPOLATED from {done} of {n_full} runs (x{scale:.1f})",
            "target_s": 360,
        }
        if "ceiling" in result:
            for ds, r in runs["by_dataset"].items():
                c = result["ceiling"]["by_dataset"].get(ds)
                per = r["stage1_images_per_s_per_run"]
                if c and per:
                    r["ratio_median_run_to_ceiling"] = per["median"] / c["images_per_s"]
            imgs = sum(r["stage1_images"] for r in runs["by_dataset"].values())
            result["aggregate_stage1_images_per_s"] = imgs / grid_s if grid_s > 0 else None
    device_type = result.get("ceiling", {}).get("device_type") or ("cpu" if args.device == "cpu" else args.device.split(":")[0])
    out = args.out or RESULTS / f"grid_{device_type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: result.get(k) for k in ("runs_selected", "runs_per_minute", "full_grid_wall_s")}, indent=2))
    print(f"wrote {out}; logs in {work}/prepare.log, {work}/grid.log")
    if not args.keep and args.work is None:
        for name in ("prepare.log", "grid.log"):  # kept beside a JSON outside bench/results
            if (work / name).exists() and out.resolve().parent != RESULTS:
                shutil.copy(work / name, out.with_suffix(f".{name}"))
        shutil.rmtree(work, ignore_errors=True)
    return 0 if main_phase and main_phase["rc"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

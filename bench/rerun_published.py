"""Does the current code reproduce a published record? Retrains a sample of its runs in-process
and compares each new ``metrics.json`` with the published one.

A record can hold runs made at several commits (``record.json`` lists them): runs added to
a record later are trained by newer code, next to runs restored from the snapshot. That is
only sound if the newer code computes the same numbers, which this checks: every key of
``metrics.json`` except ``runtime`` (wall times, paths, memory) and ``code`` (the commit)
must be equal, exactly (training on CPU is deterministic for a seed). Settings that did
not exist at the published run's commit count as the same when the rerun has them at
their default (listed as ``settings_added_since_at_default``).

Needs the runs' data subsets at their recorded paths (``runtime.paths.data``, relative to
``--root``): rebuild them with the record's config first, e.g.

    snakemake --configfile config/record-cpu.yaml --cores 2 data/interim/record-cpu/fmnist/98-2/seed0/train.pt
    python3 bench/rerun_published.py --runs 3 --run fmnist/98-2/eta60_gamma0/seed0   # writes bench/results/rerun_published.json

Exit status 1 when any run differs.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
IGNORED = ("runtime", "code")


def differences(old: Any, new: Any, where: str = "") -> list[str]:
    """Paths (``a.b[2]``) at which two JSON values differ, with both values."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            if not where and key in IGNORED:
                continue
            out += differences(old.get(key), new.get(key), f"{where}.{key}" if where else key)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, f"{where}[{i}]")]
    return [] if old == new else [f"{where}: published {old!r}, now {new!r}"]


def added_settings(published: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """Settings the published run does not record because they did not exist at its commit,
    and that the rerun has at their default: the same run. Removed from ``now``."""
    from asymcl.engine.spec import RunSpec

    defaults = RunSpec.__dataclass_fields__
    old, new = published.get("settings", {}), now.get("settings", {})
    added = {k: v for k, v in new.items() if k not in old and k in defaults and v == defaults[k].default}
    for key in added:
        del new[key]
    return added


def rerun(metrics_path: Path, root: Path) -> tuple[list[str], dict[str, Any], float]:
    """Retrain the run of ``metrics_path``; its differences from the published metrics, the
    settings added since its commit (at their defaults) and the wall time."""
    from asymcl.engine.run import run
    from asymcl.engine.spec import spec_from_mapping

    published = json.loads(metrics_path.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        settings = {**published["settings"], "data": str(root / published["runtime"]["paths"]["data"]),
                    "out": str(Path(tmp) / "run")}
        start = time.perf_counter()
        run(spec_from_mapping(settings, where=str(metrics_path)))
        wall = time.perf_counter() - start
        now = json.loads((Path(tmp) / "run" / "metrics.json").read_text())
    added = added_settings(published, now)
    return differences(published, now), added, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--published", type=Path, default=REPO / "results" / "published",
                        help="the published record (default: results/published)")
    parser.add_argument("--root", type=Path, default=Path.cwd(),
                        help="the project folder whose data/ holds the runs' subsets (default: here)")
    parser.add_argument("--runs", type=int, default=2, help="how many runs to retrain, drawn at random "
                        "(besides those named with --run)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw")
    parser.add_argument("--run", action="append", default=[],
                        help="a run to retrain, e.g. fmnist/98-2/eta60_gamma0/seed0 (repeatable)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "rerun_published.json")
    args = parser.parse_args()
    every = sorted(p.parent.relative_to(args.published / "runs").as_posix()
                   for p in (args.published / "runs").glob("**/metrics.json"))
    if not every:
        parser.error(f"no runs/**/metrics.json under {args.published}")
    unknown = sorted(set(args.run) - set(every))
    if unknown:
        parser.error(f"not in {args.published}: {unknown}")
    rest = [rel for rel in every if rel not in args.run]
    chosen = args.run + random.Random(args.seed).sample(rest, min(args.runs, len(rest)))
    from asymcl.provenance import code_version

    code = code_version()  # the code that retrains, read before anything runs
    results = []
    for rel in chosen:
        path = args.published / "runs" / rel / "metrics.json"
        commit = json.loads(path.read_text()).get("code", {}).get("commit")
        diffs, added, wall = rerun(path, args.root.resolve())
        results.append({"run": rel, "published_commit": commit, "identical": not diffs,
                        "differences": diffs[:20], "settings_added_since_at_default": added,
                        "wall_s": round(wall, 1)})
        print(f"{rel}: {'identical' if not diffs else f'{len(diffs)} differences, e.g. {diffs[0]}'} "
              f"(published at {str(commit)[:10]}, {wall:.0f} s)", flush=True)
    report = {
        "what": "retrained runs of a published record compared with their published metrics.json "
                f"(all keys but {', '.join(IGNORED)})",
        "command": "python3 bench/rerun_published.py " + " ".join(sys.argv[1:]),
        "code": code,
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "runs": results,
        "identical": sum(r["identical"] for r in results),
        "of": len(results),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    tmp.replace(args.out)
    print(f"{report['identical']} of {report['of']} runs identical; wrote {args.out}")
    return 0 if report["identical"] == report["of"] else 1


if __name__ == "__main__":
    sys.exit(main())

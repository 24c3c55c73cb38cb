"""Publish the results of one config as a versioned snapshot, and restore it.

`publish` copies the shareable part of a config's results folder (``runs.csv``,
``experiments.json``, ``tables/``, ``figures/`` and the ``metrics.json`` of exactly the runs
the config selects, no logs or checkpoints) into ``results/published`` together with a
provenance record (``record.json`` and ``RECORD.md``: command, code versions, machine, wall
time, date, config files), then ``dvc add`` records it and ``dvc push`` uploads it.

It is all-or-nothing:

1. everything that can be checked first is checked before anything is written: the config
   parses, every selected run has a readable ``metrics.json`` with the metric keys, DVC is
   initialised and (when pushing) a remote is configured;
2. the snapshot is built in a temporary sibling folder and renamed into place;
3. when a DVC step fails afterwards, the previous snapshot, ``.dvc`` file and ``.gitignore``
   are put back.

`restore` is the reverse: it copies a snapshot back into the config's results folder with
increasing modification times in the workflow's order (metrics, then experiments.json,
runs.csv, tables, figures), so that ``snakemake -n`` with the same config plans nothing.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from asymcl.config_checks import load_yaml_file
from asymcl.errors import InputError
from asymcl.experiments import GridError, build_grid
from asymcl.io import write_json_atomic
from asymcl.publish_dvc import IGNORE_HINT, Dvc, _FileBackup

#: Shared besides the runs' metrics, in the order Snakemake writes them (restore order).
REPORT_ITEMS = ("experiments.json", "runs.csv", "tables", "figures")
#: Keys every published metrics.json must hold (what the tables are made of).
METRIC_KEYS = ("accuracy", "uwa")
RECORD_JSON = "record.json"
RECORD_MD = "RECORD.md"
#: How many culprits an error message names before it says "and N more".
MAX_NAMED = 10


# ----------------------------------------------------------------------------- config


def merge_config(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into ``base`` as Snakemake merges config files: mappings key by
    key (recursively), every other value (lists included) replaced."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"config file {path} does not exist; give an existing --configfile")
    data = load_yaml_file(path)  # a syntax error names the file, line and column
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"config file {path}: expected a mapping at the top level")
    return data


def load_config(configfiles: Sequence[Path], base: Path = Path("config.yaml")) -> tuple[dict[str, Any], list[Path]]:
    """The workflow's config: ``base`` (when it exists, as the Snakefile loads it) with each
    of ``configfiles`` merged over it in order. Returns (config, files read)."""
    files = ([base] if base.is_file() else []) + [Path(f) for f in configfiles]
    if not files:
        raise InputError(f"no config: {base} does not exist here and no --configfile was given; "
                         "run from the project folder or pass --configfile")
    config: dict[str, Any] = {}
    for path in files:
        config = merge_config(config, _read_yaml(path))
    return config, files


def results_folder(config: dict[str, Any]) -> Path:
    try:
        return Path(config["paths"]["results"])
    except (KeyError, TypeError):
        raise InputError("config: paths.results is not set; give the config.yaml of the project "
                         "(or a --configfile that sets it)") from None


def selected_metrics(config: dict[str, Any]) -> list[str]:
    """``runs/<dataset>/<scenario>/<cell>/seed<seed>/metrics.json`` of every run the config
    selects (relative to the results folder), sorted."""
    try:
        grid = build_grid(config)
    except GridError as err:
        raise InputError(f"config: {err}") from None
    except (KeyError, TypeError) as err:
        raise InputError(f"config: the experiments cannot be expanded (missing or wrong key {err}); "
                         "check it with `snakemake -n`") from None
    return sorted(f"runs/{r.dataset}/{r.scenario}/{r.cell}/seed{r.seed}/metrics.json" for r in grid.runs)


# ----------------------------------------------------------------------------- checks


def _named(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_NAMED])
    return shown + (f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else "")


def read_run_metrics(results: Path, rels: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each selected run's metrics; raises `InputError` naming every missing, unreadable or
    incomplete ``metrics.json`` (nothing is written)."""
    metrics: dict[str, dict[str, Any]] = {}
    missing, unreadable, incomplete = [], [], []
    for rel in rels:
        path = results / rel
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            missing.append(rel)
            continue
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            unreadable.append(rel)
            continue
        if not isinstance(data, dict) or any(k not in data for k in METRIC_KEYS):
            incomplete.append(rel)
            continue
        metrics[rel] = data
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({_named(missing)})")
    if unreadable:
        problems.append(f"{len(unreadable)} truncated or not JSON ({_named(unreadable)})")
    if incomplete:
        problems.append(f"{len(incomplete)} without the keys {'/'.join(METRIC_KEYS)} ({_named(incomplete)})")
    if problems:
        raise InputError(
            f"refusing to publish {results}: of the config's {len(metrics) + len(missing) + len(unreadable) + len(incomplete)} "
            f"runs' metrics.json, {'; '.join(problems)}; rerun the workflow with the same "
            "--configfile (`snakemake --configfile ...`) so every run is complete, then publish again"
        )
    return metrics


def stray_metrics(results: Path, selected: Iterable[str]) -> list[str]:
    """``metrics.json`` files under ``results/runs`` that the config does not select."""
    chosen = set(selected)
    found = (str(p.relative_to(results)) for p in (results / "runs").rglob("metrics.json"))
    return sorted(p for p in found if p not in chosen)


def report_files(results: Path) -> list[str]:
    """The report files to share (relative paths); refuses when one is missing."""
    missing = [name for name in REPORT_ITEMS if not (results / name).exists()]
    if missing:
        raise InputError(
            f"refusing to publish {results}: {', '.join(missing)} not found there; run the workflow "
            "to the end (`snakemake --configfile ...`) before publishing"
        )
    files = []
    for name in REPORT_ITEMS:
        path = results / name
        if path.is_dir():
            files += sorted(str(p.relative_to(results)) for p in path.rglob("*") if p.is_file())
        else:
            files.append(name)
    return files


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def detect_machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }


def code_versions(metrics: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Distinct (commit, dirty) pairs of the runs' ``code`` keys, with how many runs each."""
    counts: dict[tuple[Any, Any], int] = {}
    for data in metrics.values():
        code = data.get("code") if isinstance(data.get("code"), dict) else {}
        key = (code.get("commit"), code.get("dirty"))
        counts[key] = counts.get(key, 0) + 1
    return [{"commit": c, "dirty": d, "runs": n}
            for (c, d), n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Record:
    command: str | None
    machine: dict[str, Any] | str
    wall_time_s: float | None
    configfiles: list[Path]
    results: Path
    runs: int
    ignored_strays: int
    code: list[dict[str, Any]] = field(default_factory=list)
    date: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command or "unknown",
            "code": self.code,
            "machine": self.machine,
            "wall_time_s": self.wall_time_s,
            "date": self.date,
            "configfiles": [{"path": str(p), "sha256": _sha256(p)} for p in self.configfiles],
            "results": str(self.results),
            "runs": self.runs,
            "ignored_stray_metrics": self.ignored_strays,
        }

    def to_markdown(self) -> str:
        data = self.to_json()
        if isinstance(self.machine, dict):
            m = self.machine
            machine = f"{m['platform']}; {m['cpu']}; {m['cores']} cores; Python {m['python']}"
        else:
            machine = str(self.machine)
        wall = "unknown" if self.wall_time_s is None else f"{self.wall_time_s:.0f} s ({self.wall_time_s / 3600:.2f} h)"
        code = "; ".join(
            f"{c['commit'] or 'unknown commit'}{' (dirty tree)' if c['dirty'] else ''}"
            f"{' (tree state unknown)' if c['dirty'] is None and c['commit'] else ''}: {c['runs']} runs"
            for c in self.code
        ) or "unknown"
        lines = [
            "# Published results",
            "",
            f"- Command: `{data['command']}`",
            f"- Config files: {', '.join('`' + c['path'] + '`' for c in data['configfiles'])}",
            f"- Runs: {self.runs} (from `{self.results}`)",
            f"- Code: {code}",
            f"- Machine: {machine}",
            f"- Wall time: {wall}",
            f"- Date (UTC): {self.date}",
            "",
            f"Machine-readable: `{RECORD_JSON}`. Restore into the config's results folder with "
            f"`asymcl restore {' '.join(f'--configfile {p}' for p in self.configfiles[1:])}`.".replace("  ", " "),
            "",
        ]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- publish


@dataclass
class PublishResult:
    dest: Path
    files: int
    runs: int
    ignored_strays: int
    pushed: bool
    dvc_file: Path | None


def _stage(results: Path, dest: Path, files: list[str], record: Record) -> Path:
    """A temporary sibling of ``dest`` holding the snapshot (removed on failure)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.new.", dir=dest.parent))
    try:
        for rel in files:
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(results / rel, staging / rel)
        write_json_atomic(staging / RECORD_JSON, record.to_json())
        (staging / RECORD_MD).write_text(record.to_markdown())
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def _swap_in(staging: Path, dest: Path) -> Path | None:
    """Rename ``staging`` onto ``dest``; returns where the previous ``dest`` went (or None)."""
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old.", dir=dest.parent)) / dest.name
        dest.rename(old)
    staging.rename(dest)
    return old


def _swap_back(dest: Path, old: Path | None) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    if old is not None:
        old.rename(dest)
        shutil.rmtree(old.parent, ignore_errors=True)


def publish(
    configfiles: Sequence[Path],
    dest: Path = Path("results/published"),
    *,
    command: str | None = None,
    machine: str | None = None,
    wall_time_s: float | None = None,
    dvc: bool = True,
    push: bool = True,
    remote: str | None = None,
) -> PublishResult:
    """Publish the results of the config (``config.yaml`` + ``configfiles``) to ``dest``."""
    config, files_read = load_config(configfiles)
    results = results_folder(config)
    selected = selected_metrics(config)
    if not selected:
        raise InputError("config: it selects no runs; nothing to publish")
    # Preconditions, before anything is written.
    strays = stray_metrics(results, selected)
    try:
        metrics = read_run_metrics(results, selected)
    except InputError as err:
        if strays:
            raise InputError(f"{err} ({len(strays)} stray metrics.json not in the config would be "
                             f"ignored: {_named(strays)})") from None
        raise
    report = report_files(results)
    inside = dest.resolve().relative_to(results.resolve()).parts[:1] if dest.resolve().is_relative_to(results.resolve()) else None
    if inside is not None and (not inside or inside[0] in {"runs", *REPORT_ITEMS}):
        raise InputError(f"--dest {dest} lies inside the published files of {results}; choose another folder")
    tracker = Dvc(dest, remote) if dvc else None
    if tracker:
        tracker.check_ready(push)
    record = Record(command, machine or detect_machine(), wall_time_s, files_read, results,
                    len(selected), len(strays), code_versions(metrics))

    staging = _stage(results, dest, selected + report, record)
    backup = _FileBackup([tracker.dvc_file, tracker.gitignore]) if tracker else None
    old = _swap_in(staging, dest)
    try:
        if tracker:
            tracker.run("add", str(dest))
            # DVC silently skips .dvc files matched by a negated .gitignore pattern: then
            # `dvc push`/`dvc pull` would transfer nothing. Fail rather than publish nothing.
            if not tracker.sees_dvc_file():
                raise InputError(IGNORE_HINT.format(dvc_file=tracker.dvc_file))
            if push:
                tracker.run("push", *(["--remote", remote] if remote else []), str(tracker.dvc_file))
    except BaseException:
        _swap_back(dest, old)
        if backup:
            backup.restore()
        raise
    if old is not None:
        shutil.rmtree(old.parent, ignore_errors=True)
    return PublishResult(dest, len(selected) + len(report) + 2, len(selected), len(strays),
                         bool(tracker and push), tracker.dvc_file if tracker else None)


# ----------------------------------------------------------------------------- restore


def restore(configfiles: Sequence[Path], source: Path = Path("results/published")) -> tuple[Path, int]:
    """Copy the snapshot ``source`` into the config's results folder so that Snakemake sees
    finished outputs: modification times increase in the workflow's order (every run's
    metrics.json, then experiments.json, runs.csv, tables/, figures/) and are set explicitly,
    since Snakemake reruns a job whose input is newer than its output.

    Refuses (before writing) when the snapshot lacks a run the config selects or a report
    file. Returns (results folder, files copied)."""
    config, _ = load_config(configfiles)
    results = results_folder(config)
    if not source.is_dir():
        raise InputError(f"--from {source}: no such folder; `dvc pull` the published results first")
    selected = selected_metrics(config)
    try:
        read_run_metrics(source, selected)
        report = report_files(source)
    except InputError as err:
        raise InputError(f"cannot restore from {source}, it does not hold this config's results: "
                         f"{str(err).replace('refusing to publish ', '')}") from None
    # Layers in the workflow's order; each gets a later mtime than the one before. The
    # first is "now": every file of a checkout made before the restore (code inputs of the
    # rules) is older than the restored outputs, so nothing looks out of date; the last
    # layers lie a few seconds in the future, which nothing minds.
    layers: list[list[str]] = [selected]
    for name in REPORT_ITEMS:
        layers.append([rel for rel in report if rel == name or rel.startswith(name + "/")])
    start = time.time()
    copied = 0
    for i, layer in enumerate(layers):
        stamp = start + i
        for rel in layer:
            target = results / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.restore.tmp")
            shutil.copyfile(source / rel, tmp)
            os.utime(tmp, (stamp, stamp))
            os.replace(tmp, target)
            copied += 1
    return results, copied

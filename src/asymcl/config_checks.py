"""Checks of a workflow config that its JSON schema cannot express, run at parse time.

The Snakefile calls `check_config` after schema validation, so a config that would fail
inside a job (a class with zero images, a class the dataset does not have, a mirror folder
that is not there) fails before any job runs, with a message naming the key, the value and
what is allowed. Standard library only: the workflow parses without torch or numpy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import yaml

from asymcl.errors import InputError

#: Class labels as the data commands name them (FMNIST digits as strings; ISIC GT columns).
DATASET_CLASSES: dict[str, list[str]] = {
    "fmnist": [str(i) for i in range(10)],
    "isic2018": ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"],
}

_URL_PREFIXES = ("http://", "https://", "ftp://")


def load_yaml_file(path: str | Path) -> Any:
    """A YAML file's content; a syntax error names the file, line and column."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise InputError(f"{path}: cannot read the config file ({err.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err)
        raise InputError(f"{where}: YAML syntax error: {problem}; fix the file and rerun") from None


def _scenario_options(config: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any], str]]:
    """(key, dataset, subset options, key of the ratio) of every dataset default and every
    scenario (a scenario written as a string is its ratio)."""
    for dataset, settings in (config.get("datasets") or {}).items():
        key = f"datasets.{dataset}.subset"
        yield key, dataset, dict(settings.get("subset") or {}), f"{key}.ratio"
    for name, exp in (config.get("experiments") or {}).items():
        for i, scenario in enumerate(exp.get("scenarios") or []):
            key = f"experiments.{name}.scenarios[{i}]"
            if isinstance(scenario, str):
                options = {} if scenario == "all" else {"ratio": scenario}
                yield key, exp.get("dataset", ""), options, key
            else:
                yield key, exp.get("dataset", ""), dict(scenario), f"{key}.ratio"


def check_ratio(key: str, ratio: str, n_classes: int | None) -> None:
    """Every part of ``ratio`` ('95:5') must be positive, one part per class."""
    parts = ratio.split(":")
    if any(float(p) <= 0 for p in parts):
        raise InputError(
            f"{key}: ratio {ratio!r} gives a class zero images; every part must be at "
            f"least 1 (e.g. '99:1')"
        )
    if n_classes is not None and len(parts) != n_classes:
        raise InputError(
            f"{key}: ratio {ratio!r} has {len(parts)} parts for {n_classes} classes; "
            f"give one part per class, majority first"
        )


def check_classes(key: str, dataset: str, classes: list[str]) -> None:
    allowed = DATASET_CLASSES.get(dataset)
    if allowed is None:
        return
    unknown = [c for c in classes if str(c) not in allowed]
    if unknown:
        raise InputError(
            f"{key}: {dataset} has no class {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(allowed)}"
        )
    repeated = sorted({str(c) for c in classes if list(map(str, classes)).count(str(c)) > 1})
    if repeated:
        raise InputError(f"{key}: class {', '.join(map(repr, repeated))} listed twice")


def _local_path(source: str) -> Path | None:
    """The local path a `source` names (None for a remote URL)."""
    if source.startswith(_URL_PREFIXES):
        return None
    if source.startswith("file://"):
        return Path(source[len("file://"):])
    return Path(source)


def check_sources(config: dict[str, Any], workdir: str | Path = ".") -> None:
    """Local `source` folders/files and `checksums` files of non-synthetic datasets exist
    (relative paths are relative to ``workdir``, the workflow's working directory)."""
    workdir = Path(workdir)
    for dataset, settings in (config.get("datasets") or {}).items():
        if settings.get("synthetic"):
            continue  # the synthetic fixture is the source
        for key in ("source", "checksums"):
            value = settings.get(key) or ""
            if not value:
                continue
            path = _local_path(value) if key == "source" else Path(value)
            if path is not None and not (workdir / path).exists():
                raise InputError(
                    f"datasets.{dataset}.{key}: {value!r} does not exist (relative paths are "
                    f"relative to the working directory {workdir.resolve()}); give an existing "
                    + ("mirror folder or an http(s):// URL" if key == "source" else "sha256sum-format file")
                    + (", or '' for the built-in checksums" if key == "checksums" else "")
                )


def check_config(config: dict[str, Any], workdir: str | Path = ".") -> None:
    """Everything above; raises `InputError` naming the first offending key."""
    datasets = config.get("datasets") or {}
    for dataset, settings in datasets.items():
        check_classes(f"datasets.{dataset}.classes", dataset, settings.get("classes") or [])
    for key, dataset, options, ratio_key in _scenario_options(config):
        classes = options.get("classes")
        if classes is not None:
            check_classes(f"{key}.classes", dataset, classes)
        else:
            classes = (datasets.get(dataset) or {}).get("classes")
        if options.get("ratio"):
            check_ratio(ratio_key, str(options["ratio"]), len(classes) if classes else None)
    check_sources(config, workdir)

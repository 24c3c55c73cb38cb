# The grid and helpers shared by the rules.
#
# The experiment tables of the config are expanded by `asymcl.experiments` (pure standard
# library, imported from this workflow's src/ so parsing needs neither torch nor an
# installed package) into runs (dataset, scenario, cell, seed). Identity is in paths, run
# settings reach the jobs through `params:`, so editing a value reruns exactly the runs it
# touches.

import os
import shlex
import sys
from pathlib import Path

WORKFLOW_SRC = Path(workflow.basedir).resolve() / "src"
PACKAGE_DIR = WORKFLOW_SRC / "asymcl"
sys.path.insert(0, str(WORKFLOW_SRC))

import asymcl

if Path(asymcl.__file__).resolve().parent != PACKAGE_DIR:
    raise WorkflowError(
        f"the workflow parses with the asymcl package at {Path(asymcl.__file__).parent}, "
        f"not its own {PACKAGE_DIR}; run snakemake in a fresh process"
    )

from asymcl.codedeps import module_files, package_modules
from asymcl.config_checks import check_config
from asymcl.errors import InputError
from asymcl.experiments import GridError, build_grid, cli_args, training_settings
from asymcl.families import diagnostics_series, embedding_panels

try:
    GRID = build_grid(config)
    check_config(config)
except (GridError, InputError) as err:
    raise WorkflowError(f"config: {err}")


# ---------------------------------------------------------------- the code jobs run
# Every job runs this workflow's package, whatever `asymcl` is on PATH: `python -m asymcl`
# with the workflow's src/ first on PYTHONPATH. The interpreter is the one running
# Snakemake (it has the dependencies, it parsed this file); under `--sdm conda` it is the
# rule environment's `python`. Both reach the shell commands through environment
# variables, so the command text (Snakemake's `code` rerun trigger) does not depend on
# where the checkout lives, and cluster jobs (which parse this file again) set their own.


def _uses_conda():
    methods = getattr(workflow.deployment_settings, "deployment_method", None) or ()
    return any(str(getattr(m, "name", m)).lower() == "conda" for m in methods)


USES_CONDA = _uses_conda()
JOB_PYTHON = "python" if USES_CONDA else sys.executable
os.environ.update(ASYMCL_WORKFLOW_SRC=str(WORKFLOW_SRC), ASYMCL_PYTHON=JOB_PYTHON)
# `python -m` of this workflow's package (braces doubled: rule shell strings are formatted)
_PYTHON_M = (
    'PYTHONPATH="$ASYMCL_WORKFLOW_SRC${{PYTHONPATH:+:$PYTHONPATH}}" "$ASYMCL_PYTHON" -m'
)


def asymcl_shell(*commands):
    """A rule's shell text: ``commands`` in order, output to the rule's log.

    Each is written as the user would type it, ``asymcl CMD ...`` or ``python -m
    asymcl.MODULE ...``, and runs as ``python -m asymcl CMD ...`` of this workflow's
    package (never an `asymcl` found on PATH).
    """
    parts = []
    for command in commands:
        program, _, rest = command.partition(" ")
        if program == "asymcl":
            parts.append(f"{_PYTHON_M} asymcl {rest}")
        elif command.startswith("python -m asymcl."):
            parts.append(f"{_PYTHON_M} {command[len('python -m '):]}")
        else:
            raise ValueError(f"not an asymcl command: {command!r}")
    return "(" + " && ".join(parts) + ") > {log} 2>&1"


def workflow_path(path):
    """A file of the workflow itself (package sources, paper_results): a relative path is
    relative to the workflow's folder; returned relative to the working directory when it
    lies inside it (the usual case), else absolute."""
    path = Path(path)
    if not path.is_absolute():
        path = Path(workflow.basedir) / path
    path = path.resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def code_inputs(command, *entry_points):
    """Source files a rule's command runs, as the rule's inputs (a code edit reruns the
    jobs it touches; Snakemake compares small files by checksum, so a fresh checkout with
    new mtimes reruns nothing).

    The import closure (`asymcl.codedeps`) of `python -m asymcl` and of ``command`` (a
    module of asymcl.commands); with ``entry_points``, of those library modules instead of
    the whole command module (a command module serving several rules imports each rule's
    library lazily, so e.g. an edit to report/tables.py does not rerun the aggregation).
    """
    command_module = f"asymcl.commands.{command}"
    libraries = [f"asymcl.{e}" for e in entry_points] or [command_module]
    files = set(module_files("asymcl.__main__", *libraries, source_dir=PACKAGE_DIR))
    files.add(package_modules(PACKAGE_DIR)[command_module])
    return sorted(workflow_path(f) for f in files)


def module_inputs(*modules):
    """Source files of package modules run as scripts (``python -m asymcl.<module>``)."""
    files = module_files(*(f"asymcl.{m}" for m in modules), source_dir=PACKAGE_DIR)
    return sorted(workflow_path(f) for f in files)


RAW = config["paths"]["raw"]
INTERIM = config["paths"]["interim"]
RESULTS = config["paths"]["results"]
LOGS = config["paths"]["logs"]
BENCHMARKS = config["paths"]["benchmarks"]

DATASETS = sorted({run.dataset for run in GRID.runs})


wildcard_constraints:
    dataset="|".join(DATASETS) or "fmnist",
    scenario=r"[A-Za-z0-9.+-]+",
    cell=r"eta[^/]+",
    seed=r"\d+",
    experiment="|".join(GRID.experiments) or "none",


TRAIN_CODE = code_inputs("train")
DATA_CODE = {
    command: code_inputs(command)
    for command in ("synth", "download", "subset", "resize")
}
# the content lists of raw folders (see rule download_fmnist)
CONTENT_CODE = module_inputs("contentsums")


# ---------------------------------------------------------------- data helpers


def dataset_config(dataset):
    """A dataset's config section ({} when the config does not use the dataset)."""
    return config["datasets"].get(dataset, {})


def is_synthetic(dataset):
    return bool(dataset_config(dataset).get("synthetic"))


def synthetic_dir(dataset):
    return f"{INTERIM}/synthetic/{dataset}"


def download_source(dataset):
    """Params function: where `asymcl download` reads from: the config's source, or the
    synthetic folder (the folder of the rule's `sums` input)."""

    def source(wildcards, input):
        if is_synthetic(dataset):
            return os.path.dirname(input.sums)
        return dataset_config(dataset).get("source", "")

    return source


def download_checksums(dataset):
    """Params function: the --checksums flag (the synthetic fixture's SHA256SUMS input, or
    the config's file; none for the built-in checksums)."""

    def checksums(wildcards, input):
        path = (
            input.sums
            if is_synthetic(dataset)
            else dataset_config(dataset).get("checksums")
        )
        return cli_args({"checksums": path or None})

    return checksums


# The official Fashion-MNIST files, named for the rules that write and read them.
FMNIST_RAW = {
    "train_images": f"{RAW}/fmnist/train-images-idx3-ubyte.gz",
    "train_labels": f"{RAW}/fmnist/train-labels-idx1-ubyte.gz",
    "test_images": f"{RAW}/fmnist/t10k-images-idx3-ubyte.gz",
    "test_labels": f"{RAW}/fmnist/t10k-labels-idx1-ubyte.gz",
}


def download_inputs(dataset):
    """The synthetic fixture when the dataset is synthetic (else nothing: a URL or mirror),
    and the code of the download and of the content list."""
    inputs = {"code": DATA_CODE["download"] + CONTENT_CODE}
    if is_synthetic(dataset):
        inputs["sums"] = f"{synthetic_dir(dataset)}/SHA256SUMS"
    return inputs


def content_list(dataset):
    """``sha256  name`` of every raw file of ``dataset``, written by its download rule.

    The rules reading raw data take the raw files as ancient() (DVC and `touch` rewrite
    mtimes: no rerun) and this small list as a normal input (compared by checksum: other
    bytes rerun them)."""
    return f"{RAW}/{dataset}/CONTENT.sha256"


def subset_args(dataset):
    """Input function: `asymcl subset` flags of a scenario of ``dataset`` (ratio, total,
    split options; the classes, majority first: the scenario's own, else the dataset's).
    """

    def args(wildcards):
        options = dict(GRID.scenarios[dataset][wildcards.scenario])
        options.setdefault("classes", dataset_config(dataset)["classes"])
        return cli_args(options)

    return args


def subset_dir(dataset="{dataset}", scenario="{scenario}", seed="{seed}"):
    return f"{INTERIM}/{dataset}/{scenario}/seed{seed}"


# ---------------------------------------------------------------- training helpers


def run_dir(dataset="{dataset}", scenario="{scenario}", cell="{cell}", seed="{seed}"):
    return f"{RESULTS}/runs/{dataset}/{scenario}/{cell}/seed{seed}"


def train_args(wildcards):
    """`asymcl train` flags of one run, all but --data/--seed/--out (those are in paths)."""
    try:
        cell = GRID.cells[wildcards.dataset][wildcards.cell]
    except KeyError:
        raise WorkflowError(
            f"no cell {wildcards.cell!r} for {wildcards.dataset} in the config's experiments"
        )
    return cli_args(training_settings(config, wildcards.dataset, cell))


def train_resource(name):
    return config["resources"]["train"][name]


def all_metrics():
    return [
        f"{run_dir(r.dataset, r.scenario, r.cell, r.seed)}/metrics.json"
        for r in GRID.runs
    ]


# ---------------------------------------------------------------- report helpers


def final_outputs():
    """Every run's metrics.json (a deleted one is rebuilt by the next `snakemake`), the
    aggregate, tables and figures."""
    return [
        *all_metrics(),
        f"{RESULTS}/runs.csv",
        *expand(f"{RESULTS}/tables/{{experiment}}.tex", experiment=GRID.experiments),
        f"{RESULTS}/tables/summary.csv",
        f"{RESULTS}/tables/paired.csv",
        f"{RESULTS}/tables/paired.tex",
        f"{RESULTS}/tables/paper_comparison.csv",
        f"{RESULTS}/tables/paper_comparison.tex",
        *expand(
            f"{RESULTS}/figures/{{experiment}}.{{ext}}",
            experiment=GRID.experiments,
            ext=["png", "pdf"],
        ),
        *expand(f"{RESULTS}/figures/paper_vs_ours.{{ext}}", ext=["png", "pdf"]),
        *expand(f"{RESULTS}/tables/{{experiment}}.csv", experiment=GRID.experiments),
        *[
            f"{RESULTS}/figures/{name}_{kind}.{ext}"
            for name, exp in GRID.experiments.items()
            for kind in exp["figures"]
            for ext in ("png", "pdf")
        ],
    ]


# ---------------------------------------------------------------- family helpers
# (families.smk: each family's own table and its extra figures)

FAMILY_TABLE_CODE = code_inputs("ablations", "families", "io")
FAMILY_FIGURE_CODE = code_inputs("ablations", "embedding")


def family(wildcards):
    return GRID.experiments[wildcards.experiment]


def diagnostics_inputs(wildcards):
    return [
        p for _, paths in diagnostics_series(family(wildcards), run_dir) for p in paths
    ]


def diagnostics_args(wildcards):
    return " ".join(
        "--series " + " ".join(shlex.quote(x) for x in [label, *paths])
        for label, paths in diagnostics_series(family(wildcards), run_dir)
    )


def embedding_inputs(wildcards):
    return [path for _, path in embedding_panels(family(wildcards), run_dir)]


def embedding_args(wildcards):
    return " ".join(
        f"--panel {shlex.quote(title)} {shlex.quote(path)}"
        for title, path in embedding_panels(family(wildcards), run_dir)
    )

# The grid and helpers shared by the rules.
#
# The experiment tables of the config are expanded by `asymcl.experiments` (pure standard
# library, imported from src/ so parsing needs neither torch nor an installed package)
# into runs (dataset, scenario, cell, seed). Identity is in paths, run settings reach the
# jobs through `params:`, so editing a value reruns exactly the runs it touches.

import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

import shlex

from asymcl.experiments import GridError, build_grid, cli_args, training_settings
from asymcl.families import diagnostics_series, embedding_panels

try:
    GRID = build_grid(config)
except GridError as err:
    raise WorkflowError(f"config: {err}")

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


def package_sources(*patterns):
    """Package files (relative to the repository) a rule's command depends on.

    Declared as inputs so a code change reruns the jobs it affects; Snakemake compares
    small files by checksum, so a fresh checkout (new mtimes) does not.
    """
    src = Path(workflow.basedir) / "src" / "asymcl"
    files = set()
    for pattern in patterns:
        files.update(src.glob(pattern))
    return sorted(str(f.relative_to(workflow.basedir)) for f in files)


# What training depends on: the engine, models, losses, augmentation, evaluation, the
# packed format. Data preparation and reporting modules are deliberately left out.
TRAIN_CODE = package_sources(
    "losses*.py",
    "losses/**/*.py",
    "models*.py",
    "models/**/*.py",
    "train*.py",
    "train/**/*.py",
    "engine*.py",
    "augment*.py",
    "sampling*.py",
    "evaluate*.py",
    "data/packed.py",
    "commands/train.py",
)


# ---------------------------------------------------------------- data helpers


def dataset_config(dataset):
    """A dataset's config section ({} when the config does not use the dataset)."""
    return config["datasets"].get(dataset, {})


def is_synthetic(dataset):
    return bool(dataset_config(dataset).get("synthetic"))


def synthetic_dir(dataset):
    return f"{INTERIM}/synthetic/{dataset}"


def download_source(dataset):
    """Where `asymcl download` reads from: the config's source, or the synthetic folder."""
    if is_synthetic(dataset):
        return synthetic_dir(dataset)
    return dataset_config(dataset).get("source", "")


def download_checksums(dataset):
    if is_synthetic(dataset):
        return f"{synthetic_dir(dataset)}/SHA256SUMS"
    return dataset_config(dataset).get("checksums", "")


# The official Fashion-MNIST files, named for the rules that write and read them.
FMNIST_RAW = {
    "train_images": f"{RAW}/fmnist/train-images-idx3-ubyte.gz",
    "train_labels": f"{RAW}/fmnist/train-labels-idx1-ubyte.gz",
    "test_images": f"{RAW}/fmnist/t10k-images-idx3-ubyte.gz",
    "test_labels": f"{RAW}/fmnist/t10k-labels-idx1-ubyte.gz",
}


def download_inputs(dataset):
    """The synthetic fixture when the dataset is synthetic (else nothing: a URL or mirror)."""
    if is_synthetic(dataset):
        return {"sums": f"{synthetic_dir(dataset)}/SHA256SUMS"}
    return {}


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
    return [
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

FAMILY_CODE = package_sources("families.py", "embedding.py", "commands/ablations.py")


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

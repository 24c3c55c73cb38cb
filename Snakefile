# asymcl: rebuild the tables and figures of Vito & Stefanus (2022) from the raw archives.
#
#   snakemake --configfile config/smoke.yaml --cores 2   # tiny synthetic data, CPU, minutes
#   snakemake -n                                          # plan the paper's full grid
#   snakemake --workflow-profile profiles/slurm           # submit the grid to SLURM
#
# The rules live in workflow/rules/; the config schema in workflow/schemas/.

from snakemake.utils import min_version, validate

min_version("8.0")

import sys
from pathlib import Path

# this workflow's package (parse-time helpers; the jobs run it too: common.smk)
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from asymcl.config_checks import load_yaml_file
from asymcl.errors import InputError

# The defaults of every run, next to this file (also when run with -s/--directory).
# Snakemake's own message for a YAML syntax error names neither file nor line: check first.
DEFAULT_CONFIG = Path(workflow.basedir) / "config.yaml"
try:
    load_yaml_file(DEFAULT_CONFIG)
except InputError as err:
    raise WorkflowError(str(err))


configfile: DEFAULT_CONFIG


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/families.smk"
include: "workflow/rules/runner.smk"


localrules:
    all,
    synth,
    download_fmnist,
    download_isic2018,
    experiments_spec,
    aggregate,
    tables,
    figure,
    paper_figure,
    family_table,
    diagnostics_figure,
    embedding_figure,


rule all:
    default_target: True
    input:
        final_outputs(),

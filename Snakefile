# asymcl: rebuild the tables and figures of Vito & Stefanus (2022) from the raw archives.
#
#   snakemake --configfile config/smoke.yaml --cores 2   # tiny synthetic data, CPU, minutes
#   snakemake -n                                          # plan the paper's full grid
#   snakemake --workflow-profile profiles/slurm           # submit the grid to SLURM
#
# The rules live in workflow/rules/; the config schema in workflow/schemas/.

from snakemake.utils import min_version, validate

min_version("8.0")


configfile: "config.yaml"


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

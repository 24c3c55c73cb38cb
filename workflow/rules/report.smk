# Aggregation and reporting: runs.csv -> LaTeX tables, paired comparisons, the comparison
# with the published numbers, figures, and the HTML report (`snakemake --report`).

import json

from asymcl.io import json_differs

# Each report rule's own code: `asymcl.commands.report` serves three commands, each
# importing its library lazily (an edit to tables.py reruns the tables, not the aggregation).
AGGREGATE_CODE = code_inputs("report", "report.aggregate", "io")
TABLES_CODE = code_inputs("report", "report.tables", "io")
FIGURE_CODE = code_inputs("report", "report.figures")


EXPERIMENTS_JSON = json.dumps(
    {"experiments": GRID.experiments}, indent=1, sort_keys=True
)

# experiments.json must follow the config's layout. Snakemake's params trigger rebuilds it
# only when it has a record of the file: results put back by `asymcl restore` or `dvc pull`
# have none, and a stale layout would feed every table and figure (a new family missing,
# old seeds). So the content itself is compared, and a stale file is dated 1970: older than
# its code input, the mtime trigger rebuilds it (and the report after it). The main
# process only: remote jobs never run this rule and must not touch the results.
EXPERIMENTS_PATH = f"{RESULTS}/experiments.json"
if not workflow.remote_exec and json_differs(EXPERIMENTS_PATH, EXPERIMENTS_JSON):
    print(
        f"{EXPERIMENTS_PATH} differs from the config's experiments: it is rebuilt, and the report after it",
        file=sys.stderr,
    )
    # 1, not 0: Snakemake reads an mtime of 0 as "unknown"
    os.utime(EXPERIMENTS_PATH, (1, 1))


rule experiments_spec:
    """The experiment layout (scenarios, cells, seeds, table layout) as JSON for the
    table and figure commands; rewritten only when the layout changes (see above)."""
    input:
        code=module_inputs("experiments"),  # the code that builds the layout at parse time
    output:
        EXPERIMENTS_PATH,
    log:
        f"{LOGS}/report/experiments_spec.log",
    conda:
        "../../envs/asymcl.yaml"
    params:
        spec=EXPERIMENTS_JSON,
    shell:
        # plain shell (no Python start-up); written under a temporary name, then renamed
        "(printf '%s\\n' {params.spec:q} > {output}.tmp && mv {output}.tmp {output}) 2> {log}"


rule aggregate:
    """One row per run: identity from the run's path, metrics and settings from its
    metrics.json."""
    input:
        metrics=all_metrics(),
        spec=f"{RESULTS}/experiments.json",
        code=AGGREGATE_CODE,
    output:
        f"{RESULTS}/runs.csv",
    log:
        f"{LOGS}/report/aggregate.log",
    conda:
        "../../envs/asymcl.yaml"
    shell:
        asymcl_shell(
            "asymcl aggregate --metrics {input.metrics} --spec {input.spec} --out "
            "{output}",
        )


rule tables:
    """The paper's tables (mean +- std, n), paired differences against each family's
    baseline with t intervals, and our means next to the published ones."""
    input:
        runs=f"{RESULTS}/runs.csv",
        spec=f"{RESULTS}/experiments.json",
        paper=workflow_path(config["paper_results"]),
        code=TABLES_CODE,
    output:
        tex=expand(f"{RESULTS}/tables/{{experiment}}.tex", experiment=GRID.experiments),
        summary=report(
            f"{RESULTS}/tables/summary.csv",
            caption="../report/summary.rst",
            category="Tables",
        ),
        paired=report(
            f"{RESULTS}/tables/paired.csv",
            caption="../report/paired.rst",
            category="Tables",
        ),
        paired_tex=f"{RESULTS}/tables/paired.tex",
        comparison=report(
            f"{RESULTS}/tables/paper_comparison.csv",
            caption="../report/paper_comparison.rst",
            category="Tables",
        ),
        comparison_tex=f"{RESULTS}/tables/paper_comparison.tex",
    log:
        f"{LOGS}/report/tables.log",
    conda:
        "../../envs/asymcl.yaml"
    shell:
        asymcl_shell(
            "asymcl tables --runs {input.runs} --spec {input.spec} --paper "
            "{input.paper} --out $(dirname {output.summary})",
        )


rule figure:
    """Accuracy and UWA of one experiment family: against the imbalance ratio per cell
    (grid families), or per loss with 95% intervals (list families)."""
    input:
        runs=f"{RESULTS}/runs.csv",
        spec=f"{RESULTS}/experiments.json",
        code=FIGURE_CODE,
    output:
        png=report(
            f"{RESULTS}/figures/{{experiment}}.png",
            caption="../report/experiment_figure.rst",
            category="Figures",
            subcategory="{experiment}",
        ),
        pdf=f"{RESULTS}/figures/{{experiment}}.pdf",
    log:
        f"{LOGS}/report/figure_{{experiment}}.log",
    conda:
        "../../envs/asymcl.yaml"
    shell:
        asymcl_shell(
            "asymcl figure --runs {input.runs} --spec {input.spec} --experiment "
            "{wildcards.experiment} --out {output.png} --out {output.pdf}",
        )


rule paper_figure:
    """Our means against the published means, one point per table cell and metric."""
    input:
        comparison=f"{RESULTS}/tables/paper_comparison.csv",
        code=FIGURE_CODE,
    output:
        png=report(
            f"{RESULTS}/figures/paper_vs_ours.png",
            caption="../report/paper_vs_ours.rst",
            category="Figures",
            subcategory="paper",
        ),
        pdf=f"{RESULTS}/figures/paper_vs_ours.pdf",
    log:
        f"{LOGS}/report/paper_figure.log",
    conda:
        "../../envs/asymcl.yaml"
    shell:
        asymcl_shell(
            "asymcl figure --comparison {input.comparison} --out {output.png} --out "
            "{output.pdf}",
        )

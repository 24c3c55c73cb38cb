# Per-family outputs: each experiment family's own table (mean +- std, n, paired difference
# against its baseline), and the extra figures a family asks for with `figures:`
# (per-epoch loss diagnostics; PCA of saved test embeddings). Used by the ablation
# families of config/ablations.yaml, available to every family. Helpers: common.smk.


# Runs whose cell asks for save_embeddings also declare their embeddings.npz, so the
# embeddings figure depends on it (same job as `train`, one more output).
use rule train as train_embeddings with:
    output:
        metrics=f"{RESULTS}/runs/{{dataset}}/{{scenario}}/{{cell}}/seed{{seed}}/metrics.json",
        embeddings=f"{RESULTS}/runs/{{dataset}}/{{scenario}}/{{cell}}/seed{{seed}}/embeddings.npz",
    wildcard_constraints:
        cell=r"eta[^/]*_save_embeddings-true[^/]*",


ruleorder: train_embeddings > train


rule family_table:
    """One family's table: every (scenario, cell, metric) with mean, std, n, 95% interval,
    and the paired difference against the family's baseline with its 95% t interval."""
    input:
        summary=f"{RESULTS}/tables/summary.csv",
        paired=f"{RESULTS}/tables/paired.csv",
        spec=f"{RESULTS}/experiments.json",
        code=FAMILY_TABLE_CODE,
    output:
        report(
            f"{RESULTS}/tables/{{experiment}}.csv",
            caption="../report/family_table.rst",
            category="Families",
            subcategory="{experiment}",
        ),
    log:
        f"{LOGS}/report/family_table_{{experiment}}.log",
    conda:
        "../../envs/asymcl.yaml"
    shell:
        asymcl_shell(
            "asymcl family-table --summary {input.summary} --paired {input.paired} "
            "--spec {input.spec} --experiment {wildcards.experiment} --out {output}",
        )


rule diagnostics_figure:
    """A family's per-epoch loss diagnostics (anchors without / with one positive,
    eta-term / positive-term), mean over seeds with a min-max band."""
    input:
        metrics=diagnostics_inputs,
        code=FAMILY_FIGURE_CODE,
    output:
        png=report(
            f"{RESULTS}/figures/{{experiment}}_diagnostics.png",
            caption="../report/diagnostics_figure.rst",
            category="Families",
            subcategory="{experiment}",
        ),
        pdf=f"{RESULTS}/figures/{{experiment}}_diagnostics.pdf",
    log:
        f"{LOGS}/report/diagnostics_figure_{{experiment}}.log",
    conda:
        "../../envs/asymcl.yaml"
    params:
        series=diagnostics_args,
    shell:
        asymcl_shell(
            "asymcl diagnostics-figure {params.series} --out {output.png} --out "
            "{output.pdf}",
        )


rule embedding_figure:
    """PCA of the stage-1 test embeddings of a family's cells (one panel per scenario and
    cell, the family's embeddings seed)."""
    input:
        embeddings=embedding_inputs,
        code=FAMILY_FIGURE_CODE,
    output:
        png=report(
            f"{RESULTS}/figures/{{experiment}}_embeddings.png",
            caption="../report/embedding_figure.rst",
            category="Families",
            subcategory="{experiment}",
        ),
        pdf=f"{RESULTS}/figures/{{experiment}}_embeddings.pdf",
    log:
        f"{LOGS}/report/embedding_figure_{{experiment}}.log",
    conda:
        "../../envs/asymcl.yaml"
    params:
        panels=embedding_args,
    shell:
        asymcl_shell(
            "asymcl embedding-figure {params.panels} --out {output.png} --out "
            "{output.pdf}",
        )

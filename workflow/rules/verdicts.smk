# Verdicts: how well each protocol variant reproduces the published means (fit to paper),
# and the paper's FMNIST claims tested on our runs (claims table). Both read runs.csv.


rule fit_to_paper:
    """Per protocol variant (family with a `paper` key), table and metric: MAE and RMS of
    our cell means against the published ones, and published cells inside our 95% t
    interval; uncertain published cells left out."""
    input:
        runs=f"{RESULTS}/runs.csv",
        spec=f"{RESULTS}/experiments.json",
        paper=workflow_path(config["paper_results"]),
        code=code_inputs("verdicts", "report.fit"),
    output:
        csv=report(
            f"{RESULTS}/tables/fit_to_paper.csv",
            caption="../report/fit_to_paper.rst",
            category="Tables",
        ),
        tex=f"{RESULTS}/tables/fit_to_paper.tex",
        cells=f"{RESULTS}/tables/fit_to_paper_cells.csv",
        png=report(
            f"{RESULTS}/figures/fit_to_paper.png",
            caption="../report/fit_to_paper_figure.rst",
            category="Figures",
            subcategory="paper",
        ),
        pdf=f"{RESULTS}/figures/fit_to_paper.pdf",
    log:
        f"{LOGS}/report/fit_to_paper.log",
    conda:
        "../../envs/asymcl.yaml"
    shell:
        asymcl_shell(
            "asymcl fit-to-paper --runs {input.runs} --spec {input.spec} --paper {input.paper}"
            " --out-dir $(dirname {output.csv}) --figure {output.png} --figure {output.pdf}"
        )


rule claims:
    """The paper's FMNIST claims, each tested by paired per-seed differences against CL
    (Holm-adjusted over all tests): holds / contradicted / not resolved."""
    input:
        runs=f"{RESULTS}/runs.csv",
        spec=f"{RESULTS}/experiments.json",
        paper=workflow_path(config["paper_results"]),
        code=code_inputs("verdicts", "report.claims"),
    output:
        csv=report(
            f"{RESULTS}/tables/claims.csv",
            caption="../report/claims.rst",
            category="Tables",
        ),
        tex=f"{RESULTS}/tables/claims.tex",
    log:
        f"{LOGS}/report/claims.log",
    conda:
        "../../envs/asymcl.yaml"
    params:
        # which family's runs test the claims about each paper table (config
        # `claims_families`; default: the family named like the table)
        families=" ".join(
            f"--family {table}={family}"
            for table, family in sorted(config.get("claims_families", {}).items())
        ),
    shell:
        asymcl_shell(
            "asymcl claims --runs {input.runs} --spec {input.spec} --paper {input.paper}"
            " {params.families} --out-dir $(dirname {output.csv})"
        )

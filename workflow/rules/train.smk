# Training: one job per run (dataset, scenario, cell, seed) -> metrics.json.
#
# `asymcl train` runs stage 1 (encoder + projection head, contrastive loss), stage 2
# (linear head on the frozen encoder) and the evaluation in one process; checkpoints stay
# in the run folder, so a killed job resumes when rerun. One job per run keeps reruns
# exact: changing one cell's setting reruns that cell's runs and nothing else.


rule train:
    """Two-stage training and test-set evaluation of one run."""
    input:
        train=f"{INTERIM}/{{dataset}}/{{scenario}}/seed{{seed}}/train.pt",
        test=f"{INTERIM}/{{dataset}}/{{scenario}}/seed{{seed}}/test.pt",
        code=TRAIN_CODE,
    output:
        metrics=f"{RESULTS}/runs/{{dataset}}/{{scenario}}/{{cell}}/seed{{seed}}/metrics.json",
    log:
        f"{LOGS}/train/{{dataset}}/{{scenario}}/{{cell}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/train/{{dataset}}/{{scenario}}/{{cell}}/seed{{seed}}.tsv"
    retries: train_resource("retries")
    conda:
        "../../envs/asymcl.yaml"
    threads: train_resource("threads")
    resources:
        gpu=train_resource("gpu"),
        mem_mb=train_resource("mem_mb"),
        runtime=train_resource("runtime"),
    params:
        args=train_args,
    shell:
        asymcl_shell(
            "asymcl train --data $(dirname {input.train}) --seed {wildcards.seed} "
            "{params.args} --num-threads {threads} --out $(dirname {output.metrics})",
        )

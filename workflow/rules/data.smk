# Data: (synthetic fixture) -> download -> subset/split -> resize (ISIC).
#
# Raw downloads are consumed through ancient(): DVC rewrites mtimes when it restores them
# (`dvc pull`/`checkout`), which must not retrain the grid. Their content is tracked by the
# download's content list (RAW/<dataset>/CONTENT.sha256, a normal input compared by
# checksum): the same bytes rerun nothing, other bytes rerun the subsets and their runs.
# Every rule also takes the package code its command runs as input (common.smk).


rule synth:
    """A tiny synthetic dataset in the official formats, plus its SHA256SUMS (smoke runs)."""
    input:
        code=DATA_CODE["synth"],
    output:
        sums=f"{INTERIM}/synthetic/{{dataset}}/SHA256SUMS",
    log:
        f"{LOGS}/synth/{{dataset}}.log",
    conda:
        "../../envs/asymcl.yaml"
    params:
        args=lambda w: cli_args(dataset_config(w.dataset)["synthetic"]),
    shell:
        asymcl_shell(
            "asymcl synth {wildcards.dataset} --out $(dirname {output.sums}) "
            "{params.args}",
        )


rule download_fmnist:
    """The four official Fashion-MNIST idx files, checksum-verified, and their content list."""
    input:
        **download_inputs("fmnist"),
    output:
        **FMNIST_RAW,
        content=content_list("fmnist"),
    log:
        f"{LOGS}/download/fmnist.log",
    retries: 2
    conda:
        "../../envs/asymcl.yaml"
    params:
        source=download_source("fmnist"),
        checksums=download_checksums("fmnist"),
    shell:
        asymcl_shell(
            "asymcl download fmnist --source {params.source:q} {params.checksums} "
            "--out $(dirname {output.train_images})",
            "python -m asymcl.contentsums --root $(dirname {output.content}) --out "
            "{output.content} {output.train_images} {output.train_labels} "
            "{output.test_images} {output.test_labels}",
        )


rule download_isic2018:
    """ISIC 2018 Task 3 training zips (+ HAM10000 metadata when the source has it),
    checksum-verified, then the images of the configured classes extracted; and the
    content list of labels and images."""
    input:
        **download_inputs("isic2018"),
    output:
        labels=f"{RAW}/isic2018/labels.csv",
        images=directory(f"{RAW}/isic2018/images"),
        content=content_list("isic2018"),
    log:
        f"{LOGS}/download/isic2018.log",
    retries: 2
    conda:
        "../../envs/asymcl.yaml"
    params:
        source=download_source("isic2018"),
        checksums=download_checksums("isic2018"),
        classes=cli_args({"classes": dataset_config("isic2018").get("classes")}),
    shell:
        asymcl_shell(
            "asymcl download isic2018 --source {params.source:q} {params.checksums} "
            "{params.classes} --out $(dirname {output.labels})",
            "python -m asymcl.contentsums --root $(dirname {output.content}) --out "
            "{output.content} {output.labels} {output.images}",
        )


rule subset_fmnist:
    """One imbalance scenario of the FMNIST class pair, split 70/30, packed to tensors.
    The subset seed is the run seed: seed s of every loss cell sees the same images."""
    input:
        **{name: ancient(path) for name, path in FMNIST_RAW.items()},
        content=content_list("fmnist"),
        code=DATA_CODE["subset"],
    output:
        train=f"{INTERIM}/fmnist/{{scenario}}/seed{{seed}}/train.pt",
        test=f"{INTERIM}/fmnist/{{scenario}}/seed{{seed}}/test.pt",
        manifest=f"{INTERIM}/fmnist/{{scenario}}/seed{{seed}}/manifest.csv",
    log:
        f"{LOGS}/subset/fmnist/{{scenario}}/seed{{seed}}.log",
    conda:
        "../../envs/asymcl.yaml"
    params:
        args=subset_args("fmnist"),
    shell:
        asymcl_shell(
            "asymcl subset --dataset fmnist --raw $(dirname {input.train_images}) "
            "{params.args} --seed {wildcards.seed} --out $(dirname {output.manifest})",
        )


rule subset_isic2018:
    """The ISIC train/test split (manifest only; images are resized next)."""
    input:
        labels=ancient(f"{RAW}/isic2018/labels.csv"),
        content=content_list("isic2018"),
        code=DATA_CODE["subset"],
    output:
        manifest=f"{INTERIM}/isic2018/{{scenario}}/seed{{seed}}/split/manifest.csv",
    log:
        f"{LOGS}/subset/isic2018/{{scenario}}/seed{{seed}}.log",
    conda:
        "../../envs/asymcl.yaml"
    params:
        args=subset_args("isic2018"),
    shell:
        asymcl_shell(
            "asymcl subset --dataset isic2018 --raw $(dirname {input.labels}) "
            "{params.args} --seed {wildcards.seed} --out $(dirname {output.manifest})",
        )


rule resize_isic2018:
    """Resize the split's images (antialiased) and pack them to train.pt/test.pt."""
    input:
        manifest=f"{INTERIM}/isic2018/{{scenario}}/seed{{seed}}/split/manifest.csv",
        images=ancient(f"{RAW}/isic2018/images"),
        content=content_list("isic2018"),
        code=DATA_CODE["resize"],
    output:
        train=f"{INTERIM}/isic2018/{{scenario}}/seed{{seed}}/train.pt",
        test=f"{INTERIM}/isic2018/{{scenario}}/seed{{seed}}/test.pt",
        manifest=f"{INTERIM}/isic2018/{{scenario}}/seed{{seed}}/manifest.csv",
    log:
        f"{LOGS}/resize/isic2018/{{scenario}}/seed{{seed}}.log",
    conda:
        "../../envs/asymcl.yaml"
    params:
        size=dataset_config("isic2018").get("image_size", 128),
        classes=cli_args({"classes": dataset_config("isic2018").get("classes")}),
    shell:
        asymcl_shell(
            "asymcl resize --manifest {input.manifest} --images {input.images} --size "
            "{params.size} {params.classes} --out $(dirname {output.manifest})",
        )

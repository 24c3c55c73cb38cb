"""profiles/slurm/config.yaml against the installed Snakemake and SLURM executor plugin.

No cluster needed: the settings are parsed with Snakemake's own option parsers, and every
commented example under ``set-resources`` (a site uncomments them) is fed to the plugin's
own checks, so an example the plugin would reject fails here rather than on a cluster.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

PROFILE = Path(__file__).resolve().parents[1] / "profiles" / "slurm" / "config.yaml"

plugin_validation = pytest.importorskip("snakemake_executor_plugin_slurm.validation")
plugin_utils = pytest.importorskip("snakemake_executor_plugin_slurm.utils")
snakemake_cli = pytest.importorskip("snakemake.cli")


def profile() -> dict:
    return yaml.safe_load(PROFILE.read_text())


def commented_examples(section: str = "train") -> dict[str, object]:
    """The commented-out ``set-resources.<section>`` block of the profile, uncommented."""
    lines = PROFILE.read_text().splitlines()
    start = lines.index("# set-resources:")
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line[2:])
    return yaml.safe_load("\n".join(block))["set-resources"][section]


class Resources(dict):
    """What the plugin reads from a job: ``job.resources.get(name)`` and attributes."""

    __getattr__ = dict.get


def job(**resources) -> SimpleNamespace:
    return SimpleNamespace(resources=Resources(resources), name="train")


def test_the_examples_are_found():
    assert set(commented_examples()) >= {"slurm_partition", "gpu_model", "qos", "slurm_extra"}


def test_every_slurm_extra_example_passes_the_plugin_check():
    extra = commented_examples()["slurm_extra"]
    plugin_validation.validate_slurm_extra(job(slurm_extra=extra))
    # the check bites: the profile's former example sets a flag the plugin manages
    with pytest.raises(Exception, match="quality of service"):
        plugin_validation.validate_slurm_extra(job(slurm_extra="'--qos=normal'"))


def test_the_gpu_model_example_becomes_a_gpus_flag():
    model = commented_examples()["gpu_model"]
    assert plugin_utils.set_gres_string(job(gpu=1, gpu_model=model)).strip() == f"--gpus={model}:1"


def test_threads_decide_the_cpus():
    """No cpus_per_task anywhere: the plugin then requests each job's threads."""
    settings = profile()
    assert "cpus_per_task" not in settings["default-resources"]
    assert "set-resources" not in settings, "a site uncomments it; no CPU override for training"
    assert "cpus_per_task" not in commented_examples()


def test_training_is_grouped_with_the_installed_snakemake():
    settings = profile()
    assert snakemake_cli.parse_groups(settings["groups"]) == {"train": "train"}
    components = snakemake_cli.parse_group_components(settings["group-components"])
    assert components["train"] > 1
    # 504 paper runs -> tens of training submissions, not hundreds
    assert -(-504 // components["train"]) < 50
    scopes = snakemake_cli.parse_set_resource_scope(settings["set-resource-scopes"])
    assert scopes["gpu"] == "local", "one GPU per submission, not one GPU for the whole cluster"
    assert "gpu=1" in settings["resources"]

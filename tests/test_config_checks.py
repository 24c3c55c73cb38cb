"""Parse-time config checks (asymcl.config_checks): hand-written configs, the messages
name the key, the value and what is allowed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from asymcl.config_checks import DATASET_CLASSES, check_config, load_yaml_file
from asymcl.errors import InputError

sys.path.insert(0, str(Path(__file__).parent))
from cli_probe import assert_input_error, run_cli  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def config(**experiment):
    exp = {"dataset": "fmnist", "scenarios": ["80:20"], "cells": [{"eta": 0}], "seeds": [0]}
    exp.update(experiment)
    return {"datasets": {"fmnist": {"classes": ["0", "6"], "source": "https://example.org/"}},
            "experiments": {"t": exp}}


def test_the_class_lists_are_the_data_modules():
    from asymcl.data import fmnist, isic
    assert DATASET_CLASSES == {"fmnist": fmnist.CLASSES, "isic2018": isic.CLASSES}


def test_a_good_config_passes():
    check_config(config(scenarios=["50:50", "98:2", "all", {"name": "x", "ratio": "9:1"}]))


@pytest.mark.parametrize("scenario, key", [
    ("100:0", "experiments.t.scenarios[0]"),
    ({"name": "x", "ratio": "0:10"}, "experiments.t.scenarios[0].ratio"),
])
def test_a_class_with_zero_images_is_rejected(scenario, key):
    with pytest.raises(InputError, match=r"zero images") as err:
        check_config(config(scenarios=[scenario]))
    assert str(err.value).startswith(f"{key}: ratio ")


def test_a_ratio_needs_one_part_per_class():
    with pytest.raises(InputError, match=r"scenarios\[0\]: ratio '50:30:20' has 3 parts for 2 classes"):
        check_config(config(scenarios=["50:30:20"]))


def test_unknown_classes_are_rejected_with_the_allowed_ones():
    bad = config()
    bad["datasets"]["fmnist"]["classes"] = ["0", "shirt"]
    with pytest.raises(InputError, match=r"datasets.fmnist.classes: fmnist has no class 'shirt'; allowed: 0, 1, 2"):
        check_config(bad)
    with pytest.raises(InputError, match=r"scenarios\[0\].classes: isic2018 has no class 'MELANOMA'; allowed: MEL, NV, BCC, AKIEC, BKL, DF, VASC"):
        check_config({"datasets": {"isic2018": {"classes": ["MEL", "DF"], "source": "http://x/"}},
                      "experiments": {"t": {"dataset": "isic2018",
                                            "scenarios": [{"name": "a", "classes": ["MELANOMA", "DF"]}]}}})


def test_missing_local_sources_and_checksums_are_rejected(tmp_path):
    good = config()
    good["datasets"]["fmnist"]["source"] = str(tmp_path)
    check_config(good)
    good["datasets"]["fmnist"]["source"] = f"file://{tmp_path}"
    check_config(good)
    bad = config()
    bad["datasets"]["fmnist"]["source"] = "mirror/fmnist"
    with pytest.raises(InputError, match=r"datasets.fmnist.source: 'mirror/fmnist' does not exist"):
        check_config(bad, workdir=tmp_path)
    (tmp_path / "mirror" / "fmnist").mkdir(parents=True)
    check_config(bad, workdir=tmp_path)
    bad["datasets"]["fmnist"]["checksums"] = "SUMS"
    with pytest.raises(InputError, match=r"datasets.fmnist.checksums: 'SUMS' does not exist"):
        check_config(bad, workdir=tmp_path)
    # a synthetic dataset has no source to check
    bad["datasets"]["fmnist"]["synthetic"] = {"per_class": 4}
    check_config(bad, workdir=tmp_path)


def test_a_yaml_syntax_error_names_file_line_and_column(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  epochs1: 1\n  lr: [0.1\n")
    with pytest.raises(InputError, match=rf"^{path}:4:1: YAML syntax error"):
        load_yaml_file(path)
    path.write_text("a: 1\n")
    assert load_yaml_file(path) == {"a": 1}


# ----------------------------------------------------------------------------- asymcl check-config
# Snakemake reads --configfile files before the Snakefile runs, so its own message for a
# broken one names neither file nor line: `asymcl check-config` is what the docs point to.

def _check(tmp_path, text: str):
    """`asymcl check-config` in the project folder with ``text`` as an extra config file."""
    extra = tmp_path / "extra.yaml"
    extra.write_text(text)
    return run_cli(["check-config", "--configfile", extra], cwd=REPO)


def test_check_config_names_file_line_and_column_of_a_yaml_error(tmp_path):
    line = assert_input_error(_check(tmp_path, "training:\n  lr: [0.01\n  eta: 3\n"), "extra.yaml:3:6", "YAML syntax")
    assert "fix the file" in line


@pytest.mark.parametrize("text, culprits", [
    ("training:\n  lr: -1\n", ["training.lr", "-1", "config.schema.yaml"]),      # the schema
    ("training:\n  nan_policy: sometimes\n", ["training.nan_policy", "sometimes"]),
    ("experiments:\n  table1:\n    scenarios: ['100:0']\n", ["experiments.table1.scenarios[0]", "100:0"]),
    ("select_experiments: [tabel1]\n", ["tabel1"]),                             # the grid
])
def test_check_config_names_the_key_of_a_bad_value(tmp_path, text, culprits):
    assert_input_error(_check(tmp_path, text), *culprits)


def test_check_config_counts_the_runs_of_a_good_config(tmp_path):
    result = _check(tmp_path, "select_experiments: [table1]\nexperiments:\n  table1:\n    scenarios: ['98:2']\n"
                              "    seeds: [0, 1]\n")
    assert result.returncode == 0, result.stderr
    # Table 1 has 6 eta cells: 1 scenario x 6 cells x 2 seeds
    assert "config OK" in result.stdout and "12 runs of table1" in result.stdout, result.stdout

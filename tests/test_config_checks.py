"""Parse-time config checks (asymcl.config_checks): hand-written configs, the messages
name the key, the value and what is allowed."""

from __future__ import annotations

import pytest

from asymcl.config_checks import DATASET_CLASSES, check_config, load_yaml_file
from asymcl.errors import InputError


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

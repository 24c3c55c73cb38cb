"""One source per setting: `RunSpec` (with its field metadata) defines every training option;
the ``asymcl train`` options are generated from it, and the workflow's config schema
(``$defs.training``) must agree with it."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from asymcl.engine.spec import ARCHS, BATCH_SAMPLERS, ConfigError, RunSpec, add_run_options, flag, spec_from_args
from asymcl.errors import InputError

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
REQUIRED = ["--data", "d", "--out", "o", "--eta", "1", "--gamma", "2", "--seed", "3"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_run_options(parser)
    return parser


def _training_schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())["$defs"]["training"]["properties"]


def _config_fields() -> dict:
    return {f.name: f for f in fields(RunSpec) if f.metadata["config"]}


def test_every_field_is_an_option_with_the_field_default():
    args = _parser().parse_args(REQUIRED)
    spec = spec_from_args(args)
    for f in fields(RunSpec):
        if f.name not in ("data", "out", "eta", "gamma", "seed"):
            assert getattr(spec, f.name) == f.default, f.name
    assert (spec.data, spec.out, spec.eta, spec.gamma, spec.seed) == ("d", "o", 1.0, 2.0, 3)


def test_options_parse_to_typed_values_and_enforce_choices(capsys):
    args = _parser().parse_args(REQUIRED + ["--epochs1", "7", "--lr", "0.5", "--no-hflip", "--save-embeddings",
                                            "--num-threads", "2", "--batch-sampler", "balanced"])
    assert (args.epochs1, args.lr, args.hflip, args.save_embeddings, args.num_threads, args.batch_sampler) == \
        (7, 0.5, False, True, 2, "balanced")
    with pytest.raises(SystemExit):
        _parser().parse_args(REQUIRED + ["--arch", "vgg"])
    assert "invalid choice: 'vgg'" in capsys.readouterr().err


def test_cli_train_parser_is_the_generated_one():
    from asymcl.cli import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {s for a in train._actions for s in a.option_strings if s.startswith("--")}
    assert {flag(f.name) for f in fields(RunSpec)} <= flags


def test_choices_agree_with_the_implementations():
    from asymcl import models, sampling

    assert set(ARCHS) == set(models.FEATURE_DIMS)
    assert set(BATCH_SAMPLERS) == set(sampling.SAMPLERS)


@pytest.mark.parametrize("name", [f.name for f in fields(RunSpec) if f.metadata["minimum"] is not None])
def test_validate_enforces_the_declared_minimum(name, tmp_path):
    f = next(f for f in fields(RunSpec) if f.name == name)
    low = f.metadata["minimum"]
    other = {"few_shot_threshold": 0} if name == "many_shot_threshold" else {}
    RunSpec(data="d", out="o", **other, **{name: f.metadata["type"](low)}).validate()
    below = low - 1 if f.metadata["type"] is int else low - 0.5
    with pytest.raises(ConfigError, match=name):
        RunSpec(data="d", out="o", **other, **{name: f.metadata["type"](below)}).validate()


def test_config_error_is_an_input_error():
    assert issubclass(ConfigError, InputError)


def test_schema_training_keys_are_the_config_fields():
    assert set(_training_schema()) == set(_config_fields())


def test_schema_training_agrees_with_runspec_on_defaults_enums_and_minimums():
    problems = []
    for name, prop in _training_schema().items():
        f = _config_fields()[name]
        if "default" in prop and prop["default"] != f.default:
            problems.append(f"{name}: schema default {prop['default']!r}, RunSpec {f.default!r}")
        choices = list(f.metadata["choices"]) if f.metadata["choices"] else None
        if "enum" in prop and prop["enum"] != choices:
            problems.append(f"{name}: schema enum {prop['enum']}, RunSpec choices {choices}")
        if choices and "enum" not in prop:
            problems.append(f"{name}: RunSpec choices {choices}, schema has no enum")
        if "minimum" in prop and prop["minimum"] != f.metadata["minimum"]:
            problems.append(f"{name}: schema minimum {prop['minimum']}, RunSpec {f.metadata['minimum']}")
        # Defaults live in RunSpec only: a schema default would be filled into every
        # `datasets.<d>.training` block by validation and override the global `training`.
        if "default" in prop:
            problems.append(f"{name}: the schema sets a default; RunSpec is the one source of defaults")
    assert problems == []

"""Stage-2 options (issue 14): BatchNorm mode of the frozen encoder and augmentation.

The default (eval-mode BatchNorm, no augmentation) computes the features once; the other
modes recompute them per batch. Tested on a random-initialised ResNet-18 and tiny images,
without stage 1 (stage 2 does not care how the encoder got its weights).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from asymcl import models
from asymcl.cli import main
from asymcl.data.packed import PackedSplit, save_split
from asymcl.engine.device import DeviceContext
from asymcl.engine.spec import ConfigError, RunSpec, spec_from_mapping
from asymcl.engine.stage2 import LiveFeatures, fixed_features, score, train_linear_head, train_stage2


def _split(n: int, seed: int) -> PackedSplit:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.rand(n, 1, 28, 28, generator=g) * 128
    x[y == 1, :, ::4, :] += 120  # class 1: stripes
    return PackedSplit(x.to(torch.uint8), y, [str(i) for i in range(n)], ["a", "b"])


TRAIN, TEST = _split(20, 0), _split(10, 1)
CTX = DeviceContext.for_device(torch.device("cpu"))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def encoder_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = models.build_contrastive_model("resnet18", "none")
    # Give BatchNorm non-trivial running statistics, as stage 1 would.
    model.train()
    with torch.no_grad():
        model.encoder(torch.randn(8, 3, 28, 28))
    return model


def _spec(**kw) -> RunSpec:
    return RunSpec(**{"data": "d", "out": "o", "seed": 5, "epochs2": 2, "batch_size": 8, "pretrained": "none",
                      "device": "cpu", **kw})


_CACHE: dict = {}


def _stage2(model: torch.nn.Module, **kw):
    """(encoder model after stage 2, Stage2Result, scores); computed once per setting."""
    key = tuple(sorted(kw.items()))
    if key not in _CACHE:
        trained = copy.deepcopy(model)
        torch.manual_seed(123 + len(_CACHE))  # stage 2 must not depend on the global RNG state
        result = train_stage2(_spec(**kw), CTX, trained, TRAIN, TEST)
        _CACHE[key] = (trained, result, score(result, TRAIN, _spec(**kw)))
    return _CACHE[key]


def _bn_running_means(model: torch.nn.Module) -> list[torch.Tensor]:
    return [m.running_mean.clone() for m in model.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def test_defaults_are_todays_protocol():
    spec = _spec()
    assert (spec.stage2_bn, spec.stage2_augment) == ("eval", False) and fixed_features(spec)
    assert not fixed_features(_spec(stage2_bn="train")) and not fixed_features(_spec(stage2_augment=True))


def test_fixed_features_equal_features_recomputed_per_batch_in_eval_mode(encoder_model):
    """The default's computed-once features are what an eval-mode encoder gives per batch."""
    model = copy.deepcopy(encoder_model)
    _, fixed, _ = _stage2(model)
    live = LiveFeatures(model.encoder, TRAIN.images, _spec(), CTX)
    model.encoder.requires_grad_(False)
    torch.manual_seed(0)
    head, history = train_linear_head(live, TRAIN.targets, 2, _spec(), CTX)
    for a, b in zip(head.parameters(), fixed.head.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert [h["steps"] for h in history] == [h["steps"] for h in fixed.history]


def test_eval_mode_leaves_running_statistics_alone(encoder_model):
    model, _, _ = _stage2(encoder_model)
    for a, b in zip(_bn_running_means(model), _bn_running_means(encoder_model)):
        assert torch.equal(a, b)


def test_train_mode_updates_running_statistics_and_changes_the_result(encoder_model):
    _, eval_result, eval_scores = _stage2(encoder_model)
    model, train_result, train_scores = _stage2(encoder_model, stage2_bn="train")
    changed = [not torch.equal(a, b) for a, b in zip(_bn_running_means(model), _bn_running_means(encoder_model))]
    assert all(changed)
    assert not torch.equal(train_result.feats_test, eval_result.feats_test)  # eval with the moved statistics
    assert [h["loss"] for h in train_result.history] != [h["loss"] for h in eval_result.history]
    assert train_scores["per_class_recall"].keys() == eval_scores["per_class_recall"].keys()
    # the weights themselves stay frozen
    for (name, a), b in zip(model.encoder.named_parameters(), encoder_model.encoder.parameters()):
        assert torch.equal(a, b), name
    # test features are computed in eval mode: they are what the encoder gives now
    model.encoder.eval()
    from asymcl.engine.batches import BatchMaker

    with torch.no_grad():
        again = model.encoder(BatchMaker(TEST.images, CTX)(torch.arange(10)))
    torch.testing.assert_close(again, train_result.feats_test, rtol=1e-4, atol=1e-5)


def test_train_mode_survives_a_last_batch_of_one_image(encoder_model):
    spec = _spec(stage2_bn="train", batch_size=19)  # 20 images: batches of 19 and 1
    result = train_stage2(spec, CTX, copy.deepcopy(encoder_model), TRAIN, TEST)
    assert [h["steps"] for h in result.history] == [2, 2]


def test_augmentation_is_seeded_and_changes_the_features(encoder_model):
    _, plain, _ = _stage2(encoder_model)
    _, aug1, _ = _stage2(encoder_model, stage2_augment=True)
    torch.manual_seed(99)
    aug2 = train_stage2(_spec(stage2_augment=True), CTX, copy.deepcopy(encoder_model), TRAIN, TEST)
    assert [h["loss"] for h in aug1.history] == [h["loss"] for h in aug2.history]
    for a, b in zip(aug1.head.parameters(), aug2.head.parameters()):
        assert torch.equal(a, b)
    assert [h["loss"] for h in aug1.history] != [h["loss"] for h in plain.history]
    other_seed = train_stage2(_spec(stage2_augment=True, seed=6), CTX, copy.deepcopy(encoder_model), TRAIN, TEST)
    assert [h["loss"] for h in other_seed.history] != [h["loss"] for h in aug1.history]


def test_augmentation_draws_from_its_generator(encoder_model, monkeypatch):
    """Each stage-2 batch draws its rotation and flip from the stage-2 generator."""
    from asymcl.augment import BatchAugment

    calls = []
    original = BatchAugment.__call__

    def spy(self, x, generator):
        calls.append((x.shape[0], generator.initial_seed()))
        return original(self, x, generator)

    monkeypatch.setattr(BatchAugment, "__call__", spy)
    train_stage2(_spec(stage2_augment=True, epochs2=1), CTX, copy.deepcopy(encoder_model), TRAIN, TEST)
    assert [n for n, _ in calls] == [8, 8, 4] and {s for _, s in calls} == {5 + 3}


@pytest.mark.parametrize("bad", [{"stage2_bn": "batch"}, {"stage2_bn": None}, {"stage2_augment": "yes"},
                                 {"stage2_augment": 1}])
def test_bad_values_are_rejected(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        _spec(**bad).validate()
    with pytest.raises(ConfigError, match="item 0"):
        spec_from_mapping({"data": "d", "out": "o", "eta": 0, "gamma": 0, "seed": 0, **bad}, "item 0")


def test_cli_options_reach_metrics(tmp_path, capsys):
    save_split(tmp_path / "data" / "train.pt", TRAIN)
    save_split(tmp_path / "data" / "test.pt", TEST)
    base = ["train", "--data", str(tmp_path / "data"), "--eta", "0", "--gamma", "0", "--seed", "0",
            "--epochs1", "0", "--epochs2", "1", "--pretrained", "none", "--batch-size", "8",
            "--num-threads", "1", "--device", "cpu"]
    assert main([*base, "--out", str(tmp_path / "r"), "--stage2-bn", "train", "--stage2-augment"]) == 0
    settings = json.loads((tmp_path / "r" / "metrics.json").read_text())["settings"]
    assert (settings["stage2_bn"], settings["stage2_augment"]) == ("train", True)
    assert main([*base, "--out", str(tmp_path / "r2"), "--no-stage2-augment"]) == 0
    settings = json.loads((tmp_path / "r2" / "metrics.json").read_text())["settings"]
    assert (settings["stage2_bn"], settings["stage2_augment"]) == ("eval", False)
    with pytest.raises(SystemExit) as exc:
        main([*base, "--out", str(tmp_path / "r3"), "--stage2-bn", "batch"])
    assert exc.value.code == 2 and "--stage2-bn" in capsys.readouterr().err
    assert not (tmp_path / "r3").exists()

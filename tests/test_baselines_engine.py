"""The imbalance baselines in the engine, end to end on tiny packed data (CPU): one-stage
training of encoder + linear head with each classifier loss, the stage-1 losses KCL and
class-averaged SupCon, their seeds and checkpoints, and the validation of the options."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import asymcl.engine.run as engine_run
from asymcl import losses
from asymcl.cli import main
from asymcl.data.packed import PackedSplit, save_split
from asymcl.engine.checkpoints import CHECKPOINT_FILE
from asymcl.engine.losses_choice import KCL_SEED_OFFSET, stage1_loss
from asymcl.engine.run import default_loss
from asymcl.engine.spec import CLASSIFIER_LOSSES, STAGE1_LOSSES, ConfigError, RunSpec

FAST = ["--pretrained", "none", "--batch-size", "32", "--num-threads", "1", "--device", "cpu"]


def _imbalanced(n_major: int, n_minor: int, seed: int) -> PackedSplit:
    """Class 0 (horizontal stripes) ``n_major`` times, class 1 (vertical) ``n_minor`` times."""
    g = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.zeros(n_major, dtype=torch.long), torch.ones(n_minor, dtype=torch.long)])
    y = y[torch.randperm(y.numel(), generator=g)]
    base = torch.zeros(y.numel(), 1, 28, 28)
    base[y == 0, :, ::4, :] = 1.0
    base[y == 1, :, :, ::4] = 1.0
    x = (0.7 * base + 0.3 * torch.rand(base.shape, generator=g)) * 255
    return PackedSplit(x.to(torch.uint8), y, [str(i) for i in range(y.numel())], ["T-shirt/top", "Shirt"])


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("imb")
    save_split(folder / "train.pt", _imbalanced(48, 16, 0))
    save_split(folder / "test.pt", _imbalanced(24, 8, 1))
    return folder


def _train(data: Path, out: Path, *extra: str, epochs1: int = 2) -> int:
    argv = ["train", "--data", str(data), "--out", str(out), "--eta", "0", "--gamma", "0", "--seed", "3",
            "--epochs1", str(epochs1), "--epochs2", "2", *FAST, *extra]
    return main(argv)


def _stable(out: Path) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    metrics.pop("runtime")
    return metrics


def _spec(**kw) -> RunSpec:
    return RunSpec(data="d", out="o", **kw)


# ----------------------------------------------------------------------------- one-stage


@pytest.fixture(scope="module")
def one_stage(data, tmp_path_factory):
    """A one-stage weighted-CE run, with the model's weights before and after training."""
    out = tmp_path_factory.mktemp("one") / "run"
    seen: dict = {}
    build, head = engine_run.build_one_stage_model, engine_run.trained_head

    def spy_build(spec, ctx, num_classes):
        model, step_model = build(spec, ctx, num_classes)
        seen["before"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return model, step_model

    def spy_head(model, test, ctx):
        seen["after"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return head(model, test, ctx)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine_run, "build_one_stage_model", spy_build)
        mp.setattr(engine_run, "trained_head", spy_head)
        assert _train(data, out, "--method", "one-stage", "--classifier-loss", "weighted-ce") == 0
    return out, seen


def test_one_stage_trains_encoder_and_head(one_stage):
    _, seen = one_stage
    before, after = seen["before"], seen["after"]
    assert set(before) == set(after)
    assert any(k.startswith("encoder.") for k in before) and {"classifier.weight", "classifier.bias"} <= set(before)
    assert not any(k.startswith("head.") for k in before)  # no projection head
    assert before["classifier.weight"].shape == (2, 512)
    conv = [k for k in before if k.startswith("encoder.") and k.endswith("conv1.weight")]
    assert conv and all(not torch.equal(before[k], after[k]) for k in conv)
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])


def test_one_stage_metrics_are_scored_like_stage_2(one_stage):
    out, _ = one_stage
    m = _stable(out)
    cm = torch.tensor(m["confusion"])
    assert int(cm.sum()) == 32 and cm.sum(1).tolist() == [24, 8]
    assert m["accuracy"] == pytest.approx(100 * float(cm.trace()) / 32)
    recalls = [100 * float(cm[i, i]) / n for i, n in enumerate((24, 8))]
    assert m["uwa"] == pytest.approx(sum(recalls) / 2) and 0.0 <= m["roc_auc"] <= 1.0
    # the joint training is recorded as stage 1; there is no stage 2
    assert m["steps_by_stage"] == {"stage1": 4, "stage2": 0} and m["stage2"] == {"epochs": []}
    assert m["nan_steps_by_stage"] == {"stage1": 0, "stage2": 0}
    assert [e["epoch"] for e in m["stage1"]["epochs"]] == [1, 2]
    assert all(math.isfinite(e["loss"]) for e in m["stage1"]["epochs"])
    assert m["settings"]["method"] == "one-stage" and m["settings"]["classifier_loss"] == "weighted-ce"
    assert not (out / CHECKPOINT_FILE).exists()


def test_one_stage_same_seed_same_metrics_and_resume(data, one_stage, tmp_path):
    out, _ = one_stage
    again = tmp_path / "again"
    assert _train(data, again, "--method", "one-stage", "--classifier-loss", "weighted-ce") == 0
    assert _stable(again) == _stable(out)
    # killed after epoch 1, then rerun: the checkpoint holds encoder + classifier
    killed = tmp_path / "killed"
    args = ("--method", "one-stage", "--classifier-loss", "weighted-ce")
    assert _train(data, killed, *args, "--stop-after-epoch", "1") == 3
    state = torch.load(killed / CHECKPOINT_FILE, weights_only=True)
    assert state["identity"]["method"] == "one-stage" and "classifier.weight" in state["model"]
    assert _train(data, killed, *args) == 0
    assert json.loads((killed / "metrics.json").read_text())["runtime"]["resumed_from_epoch"] == 1
    assert _stable(killed) == _stable(out)


def test_classifier_losses_get_the_training_split_counts(data):
    from asymcl.engine.batches import load_subset

    train, _ = load_subset(data)
    counts = torch.tensor([48.0, 16.0])
    expected = {
        "ce": (losses.CrossEntropy, None),
        "weighted-ce": (losses.WeightedCrossEntropy, ("weights", counts.sum() / (2 * counts))),
        "focal": (losses.FocalLoss, None),
        "logit-adjusted": (losses.LogitAdjustedCrossEntropy, ("log_prior", torch.log(counts / 64))),
        "balanced-softmax": (losses.BalancedSoftmaxCrossEntropy, ("log_counts", torch.log(counts))),
    }
    assert set(expected) == set(CLASSIFIER_LOSSES)
    for name, (cls, buffer) in expected.items():
        loss = default_loss(_spec(method="one-stage", classifier_loss=name, focal_gamma=1.5,
                                  logit_adjust_tau=0.5), train)
        assert type(loss) is cls, name
        if buffer is not None:
            torch.testing.assert_close(getattr(loss, buffer[0]).float(), buffer[1].float())
    assert default_loss(_spec(method="one-stage", classifier_loss="focal", focal_gamma=1.5), train).gamma == 1.5
    assert default_loss(_spec(method="one-stage", classifier_loss="logit-adjusted", logit_adjust_tau=0.5),
                        train).tau == 0.5


@pytest.mark.parametrize("name", ["ce", "focal", "logit-adjusted", "balanced-softmax"])
def test_every_classifier_loss_runs_end_to_end(data, tmp_path, name):
    assert _train(data, tmp_path / name, "--method", "one-stage", "--classifier-loss", name, epochs1=1) == 0
    m = _stable(tmp_path / name)
    assert m["settings"]["classifier_loss"] == name and m["steps_by_stage"]["stage1"] == 2
    assert math.isfinite(m["stage1"]["epochs"][0]["loss"]) and 0 <= m["uwa"] <= 100


# ----------------------------------------------------------------------------- stage-1 losses


def test_stage1_losses_are_built_from_the_spec():
    assert set(STAGE1_LOSSES) == {"afcl", "kcl", "class-averaged"}
    afcl = stage1_loss(_spec(eta=60, gamma=1, normalization="paper"))
    assert isinstance(afcl, losses.AFCL) and (afcl.eta, afcl.gamma, afcl.normalization) == (60, 1, "paper")
    kcl = stage1_loss(_spec(stage1_loss="kcl", kcl_k=3, temperature=0.2))
    assert isinstance(kcl, losses.KCL) and (kcl.k, kcl.temperature) == (3, 0.2)
    bcl = stage1_loss(_spec(stage1_loss="class-averaged", temperature=0.2))
    assert isinstance(bcl, losses.ClassAveragedSupCon) and bcl.temperature == 0.2


def test_kcl_positives_are_seeded_from_the_run_seed():
    z = torch.nn.functional.normalize(torch.randn(24, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    y = torch.tensor([0] * 20 + [1] * 4)
    values = {seed: [float(stage1_loss(_spec(stage1_loss="kcl", kcl_k=2, seed=seed))(z, y))] for seed in (0, 1)}
    again = float(stage1_loss(_spec(stage1_loss="kcl", kcl_k=2, seed=0))(z, y))
    assert values[0][0] == again and values[0][0] != values[1][0]
    # the generator is a CPU generator seeded with seed + KCL_SEED_OFFSET: same positives anywhere
    gen = stage1_loss(_spec(stage1_loss="kcl", seed=5)).generator
    assert gen.device.type == "cpu" and gen.initial_seed() == 5 + KCL_SEED_OFFSET


@pytest.fixture(scope="module")
def kcl_run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kcl") / "run"
    assert _train(data, out, "--stage1-loss", "kcl", "--kcl-k", "2") == 0
    return out


def test_kcl_run_is_deterministic_and_resumes_exactly(data, kcl_run, tmp_path):
    ref = _stable(kcl_run)
    assert ref["settings"]["stage1_loss"] == "kcl" and ref["settings"]["kcl_k"] == 2
    assert ref["steps_by_stage"] == {"stage1": 4, "stage2": 4}
    again = tmp_path / "again"
    assert _train(data, again, "--stage1-loss", "kcl", "--kcl-k", "2") == 0
    assert _stable(again) == ref
    # killed after epoch 1: the checkpoint carries KCL's generator, so epoch 2 draws the same positives
    killed = tmp_path / "killed"
    args = ("--stage1-loss", "kcl", "--kcl-k", "2")
    assert _train(data, killed, *args, "--stop-after-epoch", "1") == 3
    assert "loss_gen" in torch.load(killed / CHECKPOINT_FILE, weights_only=True)
    assert _train(data, killed, *args) == 0
    assert json.loads((killed / "metrics.json").read_text())["runtime"]["resumed_from_epoch"] == 1
    assert _stable(killed) == ref


def test_kcl_checkpoint_is_refused_by_another_loss(data, kcl_run, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(data, out, "--stage1-loss", "kcl", "--stop-after-epoch", "1") == 3
    capsys.readouterr()
    assert _train(data, out, "--stage1-loss", "class-averaged") == 2
    err = capsys.readouterr().err
    assert "stage1_loss: checkpoint 'kcl' vs now 'class-averaged'" in err


def test_class_averaged_run_is_deterministic(data, tmp_path):
    for name in ("a", "b"):
        assert _train(data, tmp_path / name, "--stage1-loss", "class-averaged", epochs1=1) == 0
    a = _stable(tmp_path / "a")
    assert a == _stable(tmp_path / "b") and a["settings"]["stage1_loss"] == "class-averaged"
    assert math.isfinite(a["stage1"]["epochs"][0]["loss"]) and len(a["stage2"]["epochs"]) == 2


def test_older_checkpoints_without_the_new_keys_still_resume(tmp_path):
    from asymcl.engine.checkpoints import load_checkpoint
    from asymcl.engine.device import DeviceContext

    spec = _spec(epochs1=2)
    identity = spec.stage1_identity()
    old = {k: v for k, v in identity.items() if k not in ("method", "stage1_loss")}
    torch.save({"identity": old, "epoch": 1}, tmp_path / "c.pt")
    ctx = DeviceContext.for_device(torch.device("cpu"))
    assert load_checkpoint(tmp_path / "c.pt", spec, ctx)["epoch"] == 1
    with pytest.raises(ConfigError, match="stage1_loss: checkpoint 'afcl' vs now 'class-averaged'"):
        load_checkpoint(tmp_path / "c.pt", _spec(epochs1=2, stage1_loss="class-averaged"), ctx)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize("settings, key", [
    ({"method": "one-stage", "eta": 60.0}, "eta"),
    ({"method": "one-stage", "gamma": 1.0}, "gamma"),
    ({"method": "one-stage", "stage1_loss": "kcl"}, "stage1_loss"),
    ({"method": "one-stage", "views": 2}, "views"),
    ({"method": "one-stage", "save_embeddings": True}, "save_embeddings"),
    ({"classifier_loss": "focal"}, "classifier_loss"),
    ({"stage1_loss": "kcl", "eta": 60.0}, "eta"),
    ({"stage1_loss": "class-averaged", "gamma": 2.0}, "gamma"),
    ({"method": "three-stage"}, "method"),
    ({"classifier_loss": "weighted_ce", "method": "one-stage"}, "classifier_loss"),
    ({"kcl_k": 0, "stage1_loss": "kcl"}, "kcl_k"),
    ({"logit_adjust_tau": float("nan")}, "logit_adjust_tau"),
])
def test_settings_that_do_not_fit_the_method_are_named(settings, key):
    with pytest.raises(ConfigError, match=f"setting {key}="):
        _spec(**settings).validate()


def test_valid_method_settings_pass():
    _spec(method="one-stage", classifier_loss="logit-adjusted", logit_adjust_tau=0.0, batch_sampler="balanced").validate()
    _spec(stage1_loss="kcl", kcl_k=1).validate()
    _spec(stage1_loss="class-averaged", views=2).validate()
    _spec(eta=60, gamma=2, kcl_k=3).validate()  # kcl_k is ignored by AFCL, not an error


def test_released_nan_policy_acts_on_afcl_only():
    from asymcl.engine.stage1 import released_skip

    # a config's default nan_policy released (the authors' protocol) stays valid for the
    # baselines and skips nothing there: the released arithmetic is AFCL's
    for settings in ({"method": "one-stage"}, {"stage1_loss": "kcl"}, {"stage1_loss": "class-averaged", "views": 2}):
        spec = _spec(nan_policy="released", **settings)
        spec.validate()
        assert not spec.released_policy_acts() and released_skip(spec) is None, settings
    afcl = _spec(nan_policy="released", eta=60)
    assert afcl.released_policy_acts() and released_skip(afcl) is not None
    with pytest.raises(ConfigError, match="setting nan_policy="):
        _spec(nan_policy="released", views=2).validate()


def test_cli_names_a_bad_combination_before_training(data, tmp_path, capsys):
    assert _train(data, tmp_path / "x", "--method", "one-stage", "--stage1-loss", "kcl") == 2
    err = capsys.readouterr().err
    assert "stage1_loss='kcl'" in err and "one-stage" in err and not (tmp_path / "x" / "metrics.json").exists()

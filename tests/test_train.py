"""The training engine end to end on tiny packed data (CPU): determinism, resume, NaN
handling, pretrained-weight errors, the ISIC configuration and several runs per process."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import pytest
import torch

import asymcl.losses
from asymcl.engine.batches import IMAGENET_MEAN, IMAGENET_STD, BatchMaker
from asymcl.engine.checkpoints import CHECKPOINT_FILE
from asymcl.engine.device import DeviceContext
from asymcl.engine.run import run
from asymcl.engine.spec import RunSpec
from asymcl.engine.stage1 import stage1_epoch
from asymcl.engine.steps import TooManyNonFiniteSteps
from asymcl.cli import main
from asymcl.data.packed import PackedSplit, save_split


def _patterns(n: int, channels: int, size: int, seed: int) -> PackedSplit:
    """Class 0: horizontal stripes, class 1: vertical stripes, plus noise (learnable)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    base = torch.zeros(n, channels, size, size)
    base[y == 0, :, ::4, :] = 1.0
    base[y == 1, :, :, ::4] = 1.0
    x = (0.7 * base + 0.3 * torch.rand(n, channels, size, size, generator=g)) * 255
    return PackedSplit(x.to(torch.uint8), y, [str(i) for i in range(n)], ["T-shirt/top", "Shirt"])


def _subset(folder: Path, n_train: int, n_test: int, channels: int = 1, size: int = 28) -> Path:
    save_split(folder / "train.pt", _patterns(n_train, channels, size, 0))
    save_split(folder / "test.pt", _patterns(n_test, channels, size, 1))
    return folder


@pytest.fixture(scope="module")
def fm(tmp_path_factory) -> Path:
    return _subset(tmp_path_factory.mktemp("fm"), 64, 32)


FAST = ["--pretrained", "none", "--batch-size", "32", "--num-threads", "1", "--device", "cpu"]


def _train(data: Path, out: Path, *extra: str, epochs1: int = 2, epochs2: int = 2) -> int:
    argv = ["train", "--data", str(data), "--out", str(out), "--eta", "60", "--gamma", "1", "--seed", "3",
            "--epochs1", str(epochs1), "--epochs2", str(epochs2), *FAST, *extra]
    return main(argv)


def _stable(path: Path) -> dict:
    metrics = json.loads(path.read_text())
    metrics.pop("runtime")
    return metrics


@pytest.fixture(scope="module")
def reference(fm, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "run"
    assert _train(fm, out) == 0
    return out


def test_metrics_contents(reference):
    m = json.loads((reference / "metrics.json").read_text())
    assert m["classes"] == ["T-shirt/top", "Shirt"]
    assert m["n_train"] == 64 and m["n_test"] == 32
    cm = torch.tensor(m["confusion"])
    assert int(cm.sum()) == 32 and cm.sum(1).tolist() == [16, 16]
    assert m["accuracy"] == pytest.approx(100 * float(cm.trace()) / 32)
    recalls = [100 * float(cm[i, i]) / 16 for i in range(2)]
    assert [m["per_class_recall"][c] for c in m["classes"]] == pytest.approx(recalls)
    assert m["uwa"] == pytest.approx(sum(recalls) / 2)
    assert 0.0 <= m["roc_auc"] <= 1.0
    assert m["nan_steps"] == 0 and m["steps_by_stage"] == {"stage1": 4, "stage2": 4}
    s = m["settings"]
    assert (s["eta"], s["gamma"], s["seed"], s["epochs1"], s["epochs2"], s["arch"]) == (60, 1, 3, 2, 2, "resnet18")
    assert len(m["stage1"]["epochs"]) == 2 and all(e["loss"] > 0 for e in m["stage1"]["epochs"])
    assert "positive_term" in m["stage1"]["epochs"][0]["diagnostics"]
    rt = m["runtime"]
    assert set(rt["timings"]) >= {"stage1_s", "stage2_s", "total_s"}
    assert rt["throughput"]["stage1_images_per_s"] > 0
    assert rt["peak_memory"]["bytes"] > 0 and rt["torch"] == torch.__version__
    # the checkpoint is cleaned up after success
    assert not (reference / CHECKPOINT_FILE).exists()


def test_same_seed_same_metrics(fm, reference, tmp_path):
    assert _train(fm, tmp_path / "again") == 0
    assert _stable(tmp_path / "again" / "metrics.json") == _stable(reference / "metrics.json")


def test_resume_after_a_kill_gives_the_same_metrics(fm, reference, tmp_path):
    out = tmp_path / "resumed"
    assert _train(fm, out, "--stop-after-epoch", "1") == 3
    assert (out / CHECKPOINT_FILE).exists() and not (out / "metrics.json").exists()
    assert _train(fm, out) == 0
    assert json.loads((out / "metrics.json").read_text())["runtime"]["resumed_from_epoch"] == 1
    assert _stable(out / "metrics.json") == _stable(reference / "metrics.json")


def test_resume_refuses_a_checkpoint_from_other_settings(fm, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(fm, out, "--stop-after-epoch", "1", epochs1=1) == 3
    argv = ["train", "--data", str(fm), "--out", str(out), "--eta", "0", "--gamma", "1", "--seed", "3", *FAST]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "eta: checkpoint 60.0 vs now 0.0" in err and CHECKPOINT_FILE in err


class _NaNOnCalls(asymcl.losses.AFCL):
    """AFCL that returns NaN on chosen (1-based) calls."""

    def __init__(self, nan_calls: set[int], **kwargs):
        super().__init__(**kwargs)
        self.nan_calls, self.calls = nan_calls, 0

    def forward(self, features, labels):
        self.calls += 1
        loss = super().forward(features, labels)
        return loss * float("nan") if self.calls in self.nan_calls else loss


def test_nan_steps_are_counted_and_the_threshold_fails_the_run(fm, tmp_path):
    # The loss is passed in: AFCL(eta 60, gamma 1) with NaN on call 2.
    # batch 16 -> 4 steps in one epoch, one NaN: 25 %
    def spec(out, **kw):
        return RunSpec(data=str(fm), out=str(out), eta=60.0, gamma=1.0, seed=3, epochs1=1, epochs2=1,
                       pretrained="none", batch_size=16, num_threads=1, device="cpu", **kw)

    loss = _NaNOnCalls({2}, eta=60.0, gamma=1.0)
    assert run(spec(tmp_path / "ok", max_nan_fraction=0.3), loss=loss) is not None
    assert loss.calls == 4
    m = json.loads((tmp_path / "ok" / "metrics.json").read_text())
    assert m["nan_steps"] == 1 and m["nan_steps_by_stage"]["stage1"] == 1
    assert m["stage1"]["epochs"][0]["steps"] == 4 and m["stage1"]["epochs"][0]["nan_steps"] == 1

    with pytest.raises(TooManyNonFiniteSteps) as err:
        run(spec(tmp_path / "bad"), loss=_NaNOnCalls({2}, eta=60.0, gamma=1.0))
    assert "1 of 4 steps (25.0%)" in str(err.value) and "--max-nan-fraction 0.05" in str(err.value)
    assert not (tmp_path / "bad" / "metrics.json").exists()


def _tiny_setup(n: int):
    torch.manual_seed(0)
    ctx = DeviceContext.for_device(torch.device("cpu"))
    data = _patterns(n, 1, 28, 0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 28 * 28, 8))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    batches = BatchMaker(data.images, ctx)
    kw = dict(batch_size=32, shuffle_gen=torch.Generator().manual_seed(0),
              aug_gen=torch.Generator().manual_seed(1), ctx=ctx)
    return model, opt, batches, data.targets, kw


def test_nan_step_makes_no_update_and_singleton_batch_is_skipped():
    model, opt, batches, targets, kw = _tiny_setup(65)  # batches of 32, 32 and 1
    before = [p.detach().clone() for p in model.parameters()]
    rec = stage1_epoch(model, lambda z, y: z.sum() * float("nan"), opt, batches, targets, **kw)
    assert (rec["steps"], rec["nan_steps"], rec["skipped_singletons"], rec["loss"]) == (2, 2, 1, None)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not opt.state  # Adam never stepped

    loss = asymcl.losses.AFCL()
    rec = stage1_epoch(model, lambda z, y: loss(torch.nn.functional.normalize(z), y), opt, batches, targets, **kw)
    assert (rec["steps"], rec["nan_steps"], rec["images"]) == (2, 0, 64)
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_batch_maker_replicates_grey_and_normalises():
    ctx = DeviceContext.for_device(torch.device("cpu"))
    images = torch.full((2, 1, 4, 4), 255, dtype=torch.uint8)
    x = BatchMaker(images, ctx)(torch.tensor([0, 1]))
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    assert x.shape == (2, 3, 4, 4)
    torch.testing.assert_close(x[0, :, 0, 0], (1 - mean) / std)


def test_imagenet_without_network_is_a_clear_cli_error(fm, tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", offline)
    argv = ["train", "--data", str(fm), "--out", str(tmp_path / "r"), "--eta", "0", "--gamma", "0",
            "--seed", "0", "--pretrained", "imagenet", "--device", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--pretrained none" in err and "--pretrained PATH" in err


def test_bad_inputs_are_named_before_training(fm, tmp_path, capsys):
    base = ["train", "--eta", "0", "--gamma", "0", "--seed", "0", "--out", str(tmp_path / "r")]
    assert main([*base, "--data", str(tmp_path / "missing")]) == 2
    assert "--data" in (err := capsys.readouterr().err) and "does not exist" in err
    (tmp_path / "empty").mkdir()
    assert main([*base, "--data", str(tmp_path / "empty")]) == 2
    assert "train.pt not found" in capsys.readouterr().err
    assert main([*base, "--data", str(fm), "--pretrained", str(tmp_path / "w.pt")]) == 2
    assert "pretrained" in capsys.readouterr().err
    assert main([*base, "--data", str(fm), "--max-nan-fraction", "2"]) == 2
    assert "max_nan_fraction" in capsys.readouterr().err


@pytest.mark.slow
def test_isic_configuration_end_to_end(tmp_path):
    """ResNet-50, RGB 128 px, focal stage 2: runs through and writes sane metrics."""
    data = _subset(tmp_path / "isic", 12, 8, channels=3, size=128)
    argv = ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--eta", "300", "--gamma", "2",
            "--seed", "0", "--arch", "resnet50", "--epochs1", "1", "--epochs2", "1",
            "--stage2-loss", "focal", "--focal-gamma", "2", *FAST[:2], "--batch-size", "8",
            "--num-threads", "1", "--device", "cpu"]
    assert main(argv) == 0
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["image_shape"] == [3, 128, 128] and m["n_train"] == 12 and m["n_test"] == 8
    assert m["settings"]["arch"] == "resnet50" and m["settings"]["stage2_loss"] == "focal"
    assert m["steps_by_stage"] == {"stage1": 2, "stage2": 2}
    assert sum(map(sum, m["confusion"])) == 8 and m["nan_steps"] == 0


def test_train_many_skips_finished_runs_and_validates_first(fm, reference, tmp_path, capsys):
    spec = tmp_path / "spec.json"
    common = {"data": str(fm), "eta": 0, "gamma": 0, "seed": 1, "pretrained": "none",
              "batch-size": 32, "num_threads": 1, "device": "cpu", "epochs1": 1, "epochs2": 1}
    spec.write_text(json.dumps([{**common, "out": str(tmp_path / "bad"), "lr": -1},
                                {**common, "out": str(tmp_path / "new")}]))
    assert main(["train-many", "--spec", str(spec)]) == 2
    assert "item 0" in capsys.readouterr().err and not (tmp_path / "new").exists()

    before = (reference / "metrics.json").read_bytes()
    spec.write_text(json.dumps([{**common, "out": str(reference)}, {**common, "out": str(tmp_path / "new")}]))
    assert main(["train-many", "--spec", str(spec)]) == 0
    assert (reference / "metrics.json").read_bytes() == before  # skipped, untouched
    m = json.loads((tmp_path / "new" / "metrics.json").read_text())
    assert m["settings"]["seed"] == 1 and m["settings"]["epochs1"] == 1

"""Protocol options of the paper's unknowns: the random split, the released NaN policy, and
the stage-1 checkpoint cadence."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from asymcl.engine import checkpoints
from asymcl.engine.batches import BatchMaker
from asymcl.engine.checkpoints import CHECKPOINT_FILE
from asymcl.engine.device import DeviceContext
from asymcl.engine.stage1 import stage1_epoch
from asymcl.cli import main
from asymcl.data.splits import Candidate, SplitError, make_subset
from asymcl.losses import AFCL

sys.path.insert(0, str(Path(__file__).parent))
from released_formula import released_afcl  # noqa: E402  (the independent transcription)
from test_train import FAST, _patterns, _subset  # noqa: E402


# ------------------------------------------------------------------ --split random

def _candidates(per_class: int = 2000) -> list[Candidate]:
    return [Candidate(str(i), label) for label in ("0", "6") for i in
            range(per_class * (label == "6"), per_class * (1 + (label == "6")))]


def _test_minority(rows) -> int:
    return sum(r.split == "test" and r.label == "6" for r in rows)


def test_random_split_varies_the_test_minority_count_across_seeds_at_98_2():
    cands = _candidates()
    counts = [
        _test_minority(make_subset(cands, ["0", "6"], seed=s, ratio=[98, 2], total=1000, split="random"))
        for s in range(12)
    ]
    assert len(set(counts)) > 2, counts           # the paper's varying test mix
    stratified = {
        _test_minority(make_subset(cands, ["0", "6"], seed=s, ratio=[98, 2], total=1000)) for s in range(12)
    }
    assert stratified == {6}                        # 20 minority images -> always 6 in test


def test_random_split_keeps_the_scenario_and_the_overall_test_size():
    rows = make_subset(_candidates(), ["0", "6"], seed=3, ratio=[95, 5], total=1000, split="random")
    by = Counter((r.split, r.label) for r in rows)
    assert by["train", "0"] + by["test", "0"] == 950 and by["train", "6"] + by["test", "6"] == 50
    assert by["test", "0"] + by["test", "6"] == 300
    # the same images as the stratified draw of that seed (the split differs, the draw does not)
    strat = make_subset(_candidates(), ["0", "6"], seed=3, ratio=[95, 5], total=1000)
    assert {r.id for r in rows} == {r.id for r in strat}


def test_random_split_same_seed_same_manifest(tmp_path):
    from asymcl.data.synthetic import synth_fmnist

    synth_fmnist(tmp_path / "raw", per_class=60, seed=0)
    outs = []
    for name in ("a", "b"):
        argv = ["subset", "--dataset", "fmnist", "--raw", str(tmp_path / "raw"), "--ratio", "80:20",
                "--total", "60", "--split", "random", "--seed", "5", "--out", str(tmp_path / name)]
        assert main(argv) == 0
        outs.append((tmp_path / name / "manifest.csv").read_bytes())
    assert outs[0] == outs[1]


def test_random_split_that_empties_a_class_split_is_refused():
    cands = _candidates(10)
    with pytest.raises(SplitError, match="no (train|test) images"):
        for seed in range(200):  # 1 minority image of 10: it lands in one split only
            make_subset(cands, ["0", "6"], seed=seed, ratio=[9, 1], total=10, split="random")


# ------------------------------------------------------------------ --nan-policy released

def _pairs_setup():
    """17 images in batches of 3: five batches of three, where the released loss is finite for
    generic features, and a last batch of two, where it is not (the only other sample has
    p = 1, and the released code takes log(1 - p) = -inf on every entry before masking)."""
    torch.manual_seed(0)
    ctx = DeviceContext.for_device(torch.device("cpu"))
    data = _patterns(17, 1, 28, 0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 28 * 28, 8))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    kw = dict(batch_size=3, shuffle_gen=torch.Generator().manual_seed(0),
              aug_gen=torch.Generator().manual_seed(1), ctx=ctx)
    return model, opt, BatchMaker(data.images, ctx), data.targets, kw


def test_released_policy_skips_exactly_the_steps_where_the_released_formula_is_not_finite():
    from asymcl.released_loss import released_step_fails

    eta, gamma, tau = 60.0, 0.0, 0.07
    model, opt, batches, targets, kw = _pairs_setup()
    seen, trained = [], []
    loss = AFCL(eta=eta, gamma=gamma, temperature=tau)

    def skip(z, y):
        decision = released_step_fails(torch.nn.functional.normalize(z), y, eta, gamma, tau)
        seen.append((torch.nn.functional.normalize(z).detach().clone(), y.clone(), decision))
        return decision

    def loss_fn(z, y):
        trained.append(y.clone())
        return loss(torch.nn.functional.normalize(z), y)

    rec = stage1_epoch(model, loss_fn, opt, batches, targets, skip_step=skip, **kw)
    independent = [not bool(torch.isfinite(released_afcl(z, y, eta, gamma, tau))) for z, y, _ in seen]
    assert [d for _, _, d in seen] == independent
    assert 0 < sum(independent) < len(independent)    # both kinds of batch occurred
    assert rec["skipped_steps"] == sum(independent) and rec["steps"] == len(seen) == 6
    assert rec["nan_steps"] == 0                       # our loss was finite on every batch
    # the loss (and so the optimiser) ran on exactly the other batches
    assert [y.tolist() for y in trained] == [y.tolist() for _, y, d in seen if not d]


def test_released_policy_step_leaves_the_weights_alone():
    model, opt, batches, targets, kw = _pairs_setup()
    before = [p.detach().clone() for p in model.parameters()]
    rec = stage1_epoch(model, lambda z, y: z.sum(), opt, batches, targets,
                              skip_step=lambda z, y: True, **kw)
    assert (rec["steps"], rec["skipped_steps"], rec["loss"]) == (6, 6, None)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters())) and not opt.state


def test_released_policy_end_to_end_counts_skips_in_metrics(tmp_path):
    data = _subset(tmp_path / "d", 32, 16)
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--out", str(out), "--eta", "0", "--gamma", "0.5", "--seed", "0",
            "--epochs1", "1", "--epochs2", "1", *FAST, "--nan-policy", "released"]
    assert main(argv) == 0
    m = json.loads((out / "metrics.json").read_text())
    # gamma = 0.5: the released focal weight takes a negative base on the diagonal, NaN always
    assert m["stage1_released_skipped_steps"] == m["steps_by_stage"]["stage1"] == 1
    assert m["nan_steps"] == 0 and m["settings"]["nan_policy"] == "released"
    assert m["code"]["location"].endswith("asymcl")


# ------------------------------------------------------------------ checkpoint cadence

@pytest.mark.parametrize("every, expected", [("0", 3), ("1000000", 0)])
def test_checkpoints_follow_wall_time_not_epochs(tmp_path, monkeypatch, every, expected):
    writes = []
    real = checkpoints.save_checkpoint
    monkeypatch.setattr(checkpoints, "save_checkpoint", lambda path, state: (writes.append(state["epoch"]), real(path, state)))
    data = _subset(tmp_path / "d", 32, 16)
    argv = ["train", "--data", str(data), "--out", str(tmp_path / "r"), "--eta", "0", "--gamma", "0", "--seed", "0",
            "--epochs1", "3", "--epochs2", "1", *FAST, "--checkpoint-every", every]
    assert main(argv) == 0
    assert len(writes) == expected


def test_stop_after_epoch_always_writes_its_checkpoint(tmp_path):
    data = _subset(tmp_path / "d", 32, 16)
    argv = ["train", "--data", str(data), "--out", str(tmp_path / "r"), "--eta", "0", "--gamma", "0", "--seed", "0",
            "--epochs1", "3", "--epochs2", "1", *FAST, "--checkpoint-every", "1000000", "--stop-after-epoch", "2"]
    assert main(argv) == 3
    assert (tmp_path / "r" / CHECKPOINT_FILE).exists()

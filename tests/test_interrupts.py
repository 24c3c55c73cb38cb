"""Ctrl-C always stops a run and is reported as Ctrl-C (`asymcl.interrupts`).

Found by sending SIGINT to `asymcl train` at random moments: about one in eight landed
inside ``torch.save`` of a stage-1 checkpoint, where torch turns the KeyboardInterrupt
into ``RuntimeError: [enforce fail at inline_container.cc] unexpected pos``, and the CLI
called it a bug (exit 1). A Ctrl-C swallowed by a finaliser would let the run go on.
"""

from __future__ import annotations

import io
import os
import signal

import pytest
import torch

from asymcl import interrupts
from asymcl.cli import EXIT_INTERRUPTED, main
from asymcl.data.packed import PackedSplit, save_split


class _InterruptedFile(io.BytesIO):
    """A file whose third write is interrupted by Ctrl-C."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data) -> int:
        self.writes += 1
        if self.writes == 3:
            raise KeyboardInterrupt
        return super().write(data)


@pytest.fixture
def sigint_handler():
    """Restore the SIGINT handler and the flag after a test that installs them."""
    before = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, before)
    interrupts.reset()


def test_a_ctrl_c_inside_torch_save_is_found_in_the_exception_chain():
    with pytest.raises(BaseException) as caught:
        torch.save({"w": torch.zeros(100_000), "v": torch.ones(100_000)}, _InterruptedFile())
    assert interrupts.caused_by_interrupt(caught.value)
    assert not interrupts.caused_by_interrupt(RuntimeError("a bug"))
    try:
        raise RuntimeError("unexpected pos") from KeyboardInterrupt()
    except RuntimeError as err:
        assert interrupts.caused_by_interrupt(err)


def test_the_cli_reports_a_hidden_ctrl_c_as_interrupted(monkeypatch, capsys, sigint_handler):
    def hidden_interrupt(args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos") from None

    import asymcl.commands.synth as synth

    def register(subparsers):  # `asymcl synth` replaced by a command that is interrupted
        subparsers.add_parser("synth").set_defaults(func=hidden_interrupt)

    monkeypatch.setattr(synth, "register", register)
    assert main(["synth"]) == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert err.strip() == "asymcl synth: interrupted" and "Traceback" not in err


def test_a_swallowed_ctrl_c_still_stops_at_the_next_check(sigint_handler):
    interrupts.install()
    try:  # a finaliser or a careless `except BaseException` eats the KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs at the next bytecode boundary
            pass
    except KeyboardInterrupt:
        pass
    assert interrupts.requested()
    with pytest.raises(KeyboardInterrupt):
        interrupts.check()


def test_training_stops_at_the_next_step_once_ctrl_c_was_requested(tmp_path, monkeypatch, sigint_handler):
    from asymcl.engine.run import run
    from asymcl.engine.spec import spec_from_mapping

    g = torch.Generator().manual_seed(0)
    for name, n in (("train", 16), ("test", 8)):
        x = (torch.rand(n, 1, 28, 28, generator=g) * 255).to(torch.uint8)
        save_split(tmp_path / f"{name}.pt", PackedSplit(x, torch.arange(n) % 2, [str(i) for i in range(n)], ["a", "b"]))
    spec = spec_from_mapping({"data": str(tmp_path), "out": str(tmp_path / "run"), "eta": 0, "gamma": 0, "seed": 0,
                              "epochs1": 3, "epochs2": 1, "pretrained": "none", "batch_size": 8, "device": "cpu",
                              "num_threads": 1})
    monkeypatch.setattr(interrupts, "_requested", True)
    with pytest.raises(KeyboardInterrupt):
        run(spec)
    assert not (tmp_path / "run" / "metrics.json").exists()

"""Progress of a stage: a tqdm bar on a terminal, per-epoch log lines otherwise."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("asymcl.engine")


def fmt_loss(loss: float | None) -> str:
    return "n/a (no finite step)" if loss is None else f"{loss:.4f}"


class Progress:
    """A tqdm bar on a terminal; nothing per step otherwise (per-epoch log lines instead)."""

    def __init__(self, desc: str, total: int) -> None:
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="step", leave=False, file=sys.stderr)

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def epoch_line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(text)
        else:
            log.info(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

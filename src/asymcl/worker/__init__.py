"""Warm run server: K worker processes that keep torch imported (and CUDA initialised).

Why. A small run of the paper's grid is about 1 s of GPU work (FMNIST: 700 images x 20
epochs), while a fresh ``asymcl train`` process spends seconds importing torch,
torchvision and scikit-learn and initialising CUDA. Keeping one Snakemake job per run
(exact incremental reruns) and paying that start-up once per *worker* instead of once per
*run* needs a long-lived server that the jobs hand their run to.

* `asymcl.worker.protocol` -- the socket framing and the request/reply shapes.
* `asymcl.worker.client` -- `submit`, `ping`, `stop` (no torch: used by ``asymcl train`` and
  by the workflow's runner rules).
* `asymcl.worker.server` -- `Server` and the worker processes.

This package exports the client side only, so importing it stays cheap.
"""

from asymcl.worker.client import ping, stop, submit
from asymcl.worker.protocol import MAX_SOCKET_PATH, SOCKET_ENV, WorkerError

__all__ = ["MAX_SOCKET_PATH", "SOCKET_ENV", "WorkerError", "ping", "stop", "submit"]

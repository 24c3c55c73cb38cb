"""Ctrl-C that always stops a run, and is always reported as Ctrl-C.

Python raises `KeyboardInterrupt` wherever the main thread happens to be when SIGINT
arrives, and two places there lose it:

* inside ``torch.save`` (a stage-1 checkpoint): torch's zip writer then fails in its
  ``__exit__`` with ``RuntimeError: [enforce fail at inline_container.cc] unexpected pos``,
  and the `KeyboardInterrupt` survives only as that error's ``__context__``;
* inside a finaliser (``__del__``, a weakref callback): Python prints "Exception ignored"
  and carries on, so the run would train on to its last epoch.

`install` replaces the SIGINT handler by one that also sets a flag; the training loops call
`check` at every step, so a swallowed Ctrl-C stops the run at the next step, and
`caused_by_interrupt` lets the CLI report a Ctrl-C hidden in an exception's chain as the
interruption it is (exit status 130), not as a bug.
"""

from __future__ import annotations

import signal
import threading

from asymcl.errors import find_in_chain

_requested = False


def _on_sigint(signum, frame) -> None:  # noqa: ARG001 (signal handler signature)
    global _requested
    _requested = True
    raise KeyboardInterrupt


def install() -> None:
    """Make SIGINT set the flag `check` reads (and raise `KeyboardInterrupt` as usual).
    Only the main thread may set signal handlers; elsewhere this does nothing."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)


def requested() -> bool:
    """Whether SIGINT arrived since `install` (or the last `reset`)."""
    return _requested


def check() -> None:
    """Raise `KeyboardInterrupt` if SIGINT arrived, even if its first one was swallowed."""
    if _requested:
        raise KeyboardInterrupt


def reset() -> None:
    global _requested
    _requested = False


def caused_by_interrupt(err: BaseException) -> bool:
    """Whether a `KeyboardInterrupt` is ``err`` or in its cause/context chain."""
    return find_in_chain(err, KeyboardInterrupt) is not None

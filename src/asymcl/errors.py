"""The package's one error type for bad input.

`InputError` means: something the user controls (a path, an option value, a config key, an
input file) is wrong. Its message names the culprit, what was expected and what to do;
`asymcl.cli.main` prints it as one line and exits with status 2. Every other exception is
a bug and keeps its traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input the user controls; shown as one line, exit status 2."""


def find_in_chain(err: BaseException, kind: type[BaseException] | tuple[type[BaseException], ...]) -> BaseException | None:
    """The first exception of type ``kind`` among ``err`` and its causes/contexts, or None.

    Libraries re-raise: torch reports a failed write as a RuntimeError with the OSError as
    its context (or the other way round), and a Ctrl-C inside ``torch.save`` as a
    RuntimeError whose context is the KeyboardInterrupt."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None

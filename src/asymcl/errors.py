"""The package's one error type for bad input.

`InputError` means: something the user controls (a path, an option value, a config key, an
input file) is wrong. Its message names the culprit, what was expected and what to do;
`asymcl.cli.main` prints it as one line and exits with status 2. Every other exception is
a bug and keeps its traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input the user controls; shown as one line, exit status 2."""

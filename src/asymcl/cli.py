"""Command-line entry point: ``asymcl <command> ...``.

Subcommands live in `asymcl.commands`, one module per concern; each module's
``register(subparsers)`` adds its commands. Modules are discovered, not listed, so the
parser grows without edits here.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
import traceback

import asymcl
import asymcl.commands
from asymcl import interrupts
from asymcl.errors import InputError
from asymcl.interrupts import caused_by_interrupt

#: Exit statuses of `main` beyond the commands' own (0 done, 1 failed, 3 stopped).
EXIT_INPUT_ERROR = 2
EXIT_BUG = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C


class UserError(InputError):
    """Kept for older callers: the same as `asymcl.errors.InputError`."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asymcl",
        description="Asymmetric contrastive learning on imbalanced data (Vito & Stefanus 2022).",
    )
    parser.add_argument("--version", action="version", version=f"asymcl {asymcl.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(asymcl.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"asymcl.commands.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # The one place errors become exit statuses: bad input is one line (status 2), Ctrl-C
    # one line (130), anything else is a bug in asymcl and keeps its traceback (1).
    interrupts.install()
    try:
        return int(args.func(args) or 0)
    except InputError as err:
        print(f"asymcl {args.command}: error: {err}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except (KeyboardInterrupt, Exception) as err:
        # a Ctrl-C, also one hidden behind another error (torch.save's RuntimeError around it)
        if caused_by_interrupt(err):
            print(f"asymcl {args.command}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        traceback.print_exc()
        print(f"asymcl {args.command}: this is a bug in asymcl (an unexpected {sys.exc_info()[0].__name__}); "
              "please report it with the traceback above", file=sys.stderr)
        return EXIT_BUG

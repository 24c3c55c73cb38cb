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

import asymcl
import asymcl.commands
from asymcl.errors import InputError


class UserError(Exception):
    """An error caused by input the user controls (paths, values, config).

    Its message is shown without a traceback and the process exits with status 2.
    """


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
    try:
        return int(args.func(args) or 0)
    except (UserError, InputError) as err:
        print(f"asymcl {args.command}: error: {err}", file=sys.stderr)
        return 2

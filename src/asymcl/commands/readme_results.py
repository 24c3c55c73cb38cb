"""``asymcl readme-results``: render the README's results section from a published record."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "readme-results",
        help="render the README's results section from results/published",
        description="Replace the text between <!-- results:start --> and <!-- results:end --> in the README "
        "with tables, claims and fit-to-paper rendered from a published record; --check only compares.",
    )
    parser.add_argument("--published", default="results/published", help="published record folder (default %(default)s)")
    parser.add_argument("--paper", default="workflow/paper_results.csv", help="published numbers (default %(default)s)")
    parser.add_argument("--readme", default="README.md", help="default %(default)s")
    parser.add_argument("--check", action="store_true", help="exit 1 when the README's section is out of date")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from asymcl.report.readme_results import render, update_readme

    changed = update_readme(args.readme, render(args.published, args.paper), check=args.check)
    if args.check and changed:
        print(f"{args.readme}: the results section differs from {args.published}; run `asymcl readme-results`",
              file=sys.stderr)
        return 1
    return 0

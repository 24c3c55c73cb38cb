"""``asymcl check-config``: check the workflow's config files before Snakemake reads them.

Snakemake loads ``--configfile`` files before the Snakefile runs, and its message for a
YAML syntax error ("Config file is not valid JSON or YAML") names neither the file nor the
line. This command reads the same files the same way (``config.yaml`` here, then each
``--configfile`` merged over it), and reports the first problem as one line naming the
file, line and column, or the config key: YAML syntax, the workflow's JSON schema, the
checks the Snakefile makes at parse time (ratios, class names, local sources), and the
expansion of the selected experiments into runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

SCHEMA = Path("workflow/schemas/config.schema.yaml")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-config",
        help="check config files (YAML syntax with file:line, schema, values) and count the runs they select",
        description="Read ./config.yaml and each --configfile as `snakemake --configfile` does, and report "
        "the first problem with its file and line or config key; on success, the runs the config selects.",
    )
    parser.add_argument("--configfile", nargs="+", default=[], type=Path, metavar="FILE",
                        help="config files merged over ./config.yaml in order (as snakemake merges them)")
    parser.add_argument("--schema", type=Path, default=SCHEMA,
                        help="the workflow's config schema (default %(default)s, relative to the project folder)")
    parser.set_defaults(func=run)


def _schema_errors(config: dict, schema_path: Path) -> str | None:
    """The first schema violation as 'key.path: message', or None."""
    import jsonschema

    from asymcl.config_checks import load_yaml_file

    schema = load_yaml_file(schema_path)
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return None
    key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    return f"{key}: {error.message}"


def run(args: argparse.Namespace) -> int:
    from asymcl.config_checks import check_config
    from asymcl.errors import InputError
    from asymcl.publish import load_config, results_folder, selected_metrics

    config, files = load_config(args.configfile)
    names = " + ".join(str(f) for f in files)
    if args.schema.is_file():
        problem = _schema_errors(config, args.schema)
        if problem:
            raise InputError(f"{names}: {problem} (schema {args.schema})")
    else:
        print(f"note: {args.schema} not found (not in the project folder?): schema not checked")
    check_config(config)
    runs = selected_metrics(config)
    print(f"config OK ({names}): {len(runs)} runs of {', '.join(config.get('select_experiments') or [])}, "
          f"results in {results_folder(config)}")
    return 0

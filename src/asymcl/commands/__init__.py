"""CLI subcommands.

Every module in this package defines ``register(subparsers)``, which adds one or more
subcommands to the ``asymcl`` parser and sets ``func`` (called with the parsed args,
returning an exit code) as the subparser default. `asymcl.cli` discovers the modules, so
adding a command means adding a module here and nothing else.
"""

"""``jeat`` command line: one sub-command per module in this package.

Each module defines ``add_parser(subparsers)`` which registers its command and sets
``func`` to a callable taking the parsed namespace.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Sub-command -> its module, in --help order ("import" is a Python keyword, hence importer.py).
COMMANDS = {name: name for name in ("train", "info", "evaluate", "compare", "plot", "generate", "denoise")}
COMMANDS["import"] = "importer"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jeat",
        description="Turn image classifiers into energy-based generative models and make them robust "
        "(JEAT, JEM, PGD-AT, ...). Run `jeat COMMAND --help` for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        importlib.import_module(f"jeat.cli.{module}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        if getattr(args, "debug", False):
            raise
        print(f"jeat {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

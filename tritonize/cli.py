"""The ``tritonize`` command line: each subcommand parses arguments and calls one library function.

Subcommands live in ``tritonize/commands/<name>.py``; each module exposes
``register(subparsers)`` (which sets ``func`` on its parser). A :class:`TritonizeError`
exits 1 with its message, not a traceback; so does a missing optional dependency, naming the
extra that installs it (:mod:`tritonize.extras`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from tritonize.errors import TritonizeError

COMMANDS = ("build", "engines", "serve", "health", "classify", "generate", "demo", "loadtest", "bench", "evaluate", "deploy", "tune")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tritonize", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"tritonize.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"tritonize.commands.{name}":
                continue  # command not part of this installation
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except TritonizeError as exc:
        print(f"tritonize: error: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:  # an optional dependency: name the extra that installs it
        from tritonize.extras import missing_extra

        error = missing_extra(exc, args.command)
        if error is None:
            raise
        print(f"tritonize: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The `fakereasoning` command. Each subcommand group lives in its own module of this package.

Exit codes: 0 ok, 1 user error (one line on stderr, no traceback unless --debug), 2 usage.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from fakereasoning import __version__
from fakereasoning.errors import FakeReasoningError

# Modules that add subcommands; each defines `register(subparsers)`. Imported lazily by name so that a
# heavy dependency of one command (torch, fastapi) is not loaded for another.
COMMAND_MODULES: tuple[str, ...] = (
    "fakereasoning.cli.data",
    "fakereasoning.cli.detect",
    "fakereasoning.cli.evaluate",
    "fakereasoning.cli.train",
    "fakereasoning.cli.annotate",
    "fakereasoning.cli.serve",
    "fakereasoning.cli.baseline",
    "fakereasoning.cli.model",
)


class _Parser(argparse.ArgumentParser):
    """argparse with exit code 2 and a one-line hint on usage errors, and `--debug` at every level
    (`fakereasoning --debug detect x.png` and `fakereasoning detect --debug x.png` alike)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # SUPPRESS: a level that is not given --debug leaves the value of the others alone
        self.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                          help="show full tracebacks on errors")

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fakereasoning",
        description="Detect AI-generated images and explain why (Forgery Detection and Reasoning).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    debug = bool(getattr(args, "debug", False))
    if extra:
        # `key=value` overrides may follow options (`train --max-steps 4 optim.lr=1e-4`); argparse cannot
        # give interleaved positionals to a subcommand, so commands that take them say so.
        if getattr(args, "takes_overrides", False) and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.handler(args) or 0)
    except FakeReasoningError as exc:
        if debug:
            raise
        print(f"fakereasoning: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fakereasoning: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError) as exc:
        if debug:
            raise
        print(f"fakereasoning: error: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

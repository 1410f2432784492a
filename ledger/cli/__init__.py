"""The `ledger` command: one module per group of subcommands, each adding its parsers in `register`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

# `ledger serve` forks a child to serialize each checkpoint's wallet state (ledger.core._forked), which uses
# nothing of gRPC: gRPC's fork handlers, which pause its threads around every fork, are not wanted. gRPC reads
# this when it is imported, which the commands below do.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

from ledger import __version__

from . import _audit, _csv, _demo, _info, _keys, _ops, _serve, _wallet
from ._ops import EXIT_USAGE
from ._parse import InputError

COMMAND_MODULES = (_serve, _info, _demo, _ops, _wallet, _csv, _keys, _audit)


class CommandParser(argparse.ArgumentParser):
    """A parser whose errors are one line naming the argument (`--help` shows the usage), and which leaves
    itself in the arguments (`command_parser`), so that a command's own checks can speak in its name."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.set_defaults(command_parser=self)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = CommandParser(prog="ledger", description="A stored-value wallet ledger.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(commands)
    arguments = sys.argv[1:] if argv is None else list(argv)
    if not arguments:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(arguments)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.run(args)
    except InputError as exc:
        print(f"{args.command_parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`ledger history … | head`): nothing more to say; keep Python from saying it
        # again while it flushes standard output at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())

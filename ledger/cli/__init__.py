"""The `ledger` command: one module per group of subcommands, each adding its parsers in `register`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ledger import __version__

from . import _audit, _csv, _demo, _keys, _ops, _serve

COMMAND_MODULES = (_serve, _demo, _ops, _csv, _keys, _audit)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ledger", description="A stored-value wallet ledger.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(commands)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())

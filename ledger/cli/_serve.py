"""`ledger serve`: the ledger behind gRPC."""

from __future__ import annotations

import argparse
import asyncio
import logging

from ledger.config import LedgerConfig
from ledger.server import serve


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("serve", help="run the ledger behind gRPC (SQLite in LEDGER_DATA_DIR by default)")
    parser.add_argument("--store", help="postgresql://… or sqlite:///path (default: SQLite in LEDGER_DATA_DIR)")
    parser.add_argument("--address", help="host:port to listen on (default 127.0.0.1:7100; port 0 picks one)")
    parser.add_argument(
        "--metrics-address",
        help="host:port for Prometheus metrics over HTTP (default 127.0.0.1:9464; port 0 picks one; '' turns them off)",
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    logging.getLogger().setLevel(logging.INFO)
    asyncio.run(
        serve(LedgerConfig.from_env(store=args.store, address=args.address, metrics_address=args.metrics_address))
    )
    return 0

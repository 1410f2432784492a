"""`ledger serve`: the ledger behind gRPC."""

from __future__ import annotations

import argparse
import logging
import sys

from ledger.config import LedgerConfig
from ledger.server import run_event_loop, serve


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("serve", help="run the ledger behind gRPC (SQLite in LEDGER_DATA_DIR by default)")
    parser.add_argument("--store", help="postgresql://… or sqlite:///path (default: SQLite in LEDGER_DATA_DIR)")
    parser.add_argument("--address", help="host:port to listen on (default 127.0.0.1:7100; port 0 picks one)")
    parser.add_argument("--tls-cert", help="PEM certificate chain: serve over TLS (with --tls-key)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--tls-client-ca", help="PEM CA certificates: require client certificates they signed (mTLS)")
    parser.add_argument(
        "--metrics-address",
        help="host:port for Prometheus metrics over HTTP (default 127.0.0.1:9464; port 0 picks one; '' turns them off)",
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    logging.getLogger().setLevel(logging.INFO)
    config = LedgerConfig.from_env(
        store=args.store,
        address=args.address,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        metrics_address=args.metrics_address,
    )
    try:
        run_event_loop(serve(config))
    except OSError as exc:  # an address in use or not ours to listen on: said in one line, no traceback
        print(f"ledger serve: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0

"""`ledger serve`: the ledger behind gRPC, with the HTTP gateway; `ledger gateway`: the gateway on its own."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from ledger.config import LedgerConfig
from ledger.server import run_event_loop, serve
from ledger.server._serve import split_address


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
    parser.add_argument(
        "--http-address",
        help="host:port for the HTTP gateway (default 127.0.0.1:8080; port 0 picks one; '' turns it off)",
    )
    parser.set_defaults(run=_run)

    gateway = commands.add_parser(
        "gateway", help="run the HTTP gateway on its own, for a ledger served elsewhere (LEDGER_GATEWAY_*)"
    )
    gateway.add_argument("--ledger", help="the ledger's gRPC host:port (default 127.0.0.1:7100)")
    gateway.add_argument("--address", help="host:port to serve HTTP on (default 127.0.0.1:8080; port 0 picks one)")
    gateway.add_argument("--workers", type=int, default=1, help="worker processes sharing the port (default 1)")
    gateway.set_defaults(run=_run_gateway)


def _run(args: argparse.Namespace) -> int:
    logging.getLogger().setLevel(logging.INFO)
    config = LedgerConfig.from_env(
        store=args.store,
        address=args.address,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        metrics_address=args.metrics_address,
        http_address=args.http_address,
    )
    try:
        run_event_loop(serve(config))
    except OSError as exc:  # an address in use or not ours to listen on: said in one line, no traceback
        print(f"ledger serve: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def _run_gateway(args: argparse.Namespace) -> int:
    from gateway import GatewayConfig, run_gateway, run_workers

    logging.getLogger().setLevel(logging.INFO)
    overrides: dict[str, Any] = {"ledger": args.ledger}
    if args.address:
        try:
            host, port = split_address(args.address)
        except ValueError:
            args.command_parser.error(f"--address: host:port, got {args.address!r}")
        overrides |= {"host": host, "port": port}
    if not 1 <= args.workers <= 64:
        args.command_parser.error(f"--workers: 1 to 64, got {args.workers}")
    try:
        config = GatewayConfig.from_env(**overrides)
    except ValueError as exc:
        args.command_parser.error(str(exc))
    try:
        if args.workers == 1:
            run_event_loop(run_gateway(config))
        else:
            names = ("ledger", "host", "port", "timeout_seconds", "body_bytes_max")
            os.environ.update({f"LEDGER_GATEWAY_{name.upper()}": str(getattr(config, name)) for name in names})
            run_workers(config, args.workers)
    except OSError as exc:
        print(f"ledger gateway: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0

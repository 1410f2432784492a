"""Run the durable ledger behind its local socket.

    python -m ledger.core --socket /run/ledger.sock [--store URL]

Configuration comes from LEDGER_* variables (see the README); --store wins
over LEDGER_STORE and LEDGER_DATABASE_URL. SIGTERM or SIGINT closes it
gracefully: stop accepting, make everything applied durable, checkpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from ledger.config import LedgerConfig

from ._ledger import Ledger
from ._local import serve_local

logger = logging.getLogger("ledger.core")


async def run(config: LedgerConfig, path: str) -> None:
    ledger = await Ledger.open(config)
    try:
        if os.path.exists(path):
            os.unlink(path)  # left by a process that was killed; the journal lock already proved it is gone
        server = await serve_local(ledger, path)
        logger.info(
            "ledger serving on unix:%s, store %s, engine %s, %d accounts, %d transfers",
            path,
            ledger.store.description,
            ledger.stats().implementation,
            ledger.recovery.accounts_count,
            ledger.recovery.transfers_count,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        logger.info("ledger stopping")
        server.close()
        await server.wait_closed()
    finally:
        await ledger.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ledger.core", description="Run the ledger on a local socket.")
    parser.add_argument("--socket", required=True, help="path of the Unix socket to serve on")
    parser.add_argument("--store", help="postgresql://… or sqlite:///path (default: SQLite in LEDGER_DATA_DIR)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = LedgerConfig.from_env(store=args.store)
    asyncio.run(run(config, args.socket))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Journal stores for tests: a SQLite file, or a fresh schema in the machine's PostgreSQL.

The PostgreSQL DSN comes from LEDGER_TEST_DATABASE_URL (default: the local
server's `test` database). Without CI=true an unreachable server skips the
PostgreSQL variants; under CI=true they must run, so it fails them instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

# Schemas are made the way the benchmarks make theirs; they live in bench/ so that the benchmarks need
# nothing from tests/ (nor pytest) to run.
from bench._harness import DEFAULT_DSN, temporary_schema, with_search_path
from ledger.journal import Store, open_store

__all__ = [
    "DEFAULT_DSN",
    "connected_store",
    "downgrade",
    "execute",
    "fetch",
    "postgres_dsn",
    "postgres_reachable",
    "postgres_schema",
    "private_postgres",
    "PrivatePostgres",
    "require_postgres",
    "store_url",
    "temporary_schema",
    "with_search_path",
]


def postgres_dsn() -> str:
    return os.environ.get("LEDGER_TEST_DATABASE_URL") or DEFAULT_DSN


def postgres_reachable(dsn: str) -> str | None:
    """None if the server answers, else why not."""
    import psycopg

    try:
        psycopg.connect(dsn, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        return str(exc).strip()
    return None


def require_postgres() -> str:
    """The test PostgreSQL's DSN: the test is skipped if it is unreachable, and failed under CI=true."""
    dsn = postgres_dsn()
    problem = postgres_reachable(dsn)
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {dsn} is required under CI=true: {problem}")
        pytest.skip(f"PostgreSQL at {dsn} is not reachable: {problem}")
    return dsn


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema in the test PostgreSQL (see require_postgres)."""
    with temporary_schema(require_postgres(), "ledger_test") as url:
        yield url


@contextmanager
def store_url(kind: str, directory: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'journal.sqlite3'}"
    else:
        with postgres_schema() as dsn:
            yield dsn


@contextmanager
def connected_store(url: str) -> Iterator[Store]:
    """The store at `url`, connected (its lock taken) and closed afterwards."""
    store = open_store(url)
    store.connect()
    try:
        yield store
    finally:
        store.close()


def execute(url: str, statement: str, *params: object) -> None:
    """Run one statement against a store directly (to damage it on purpose)."""
    if url.startswith("sqlite:"):
        import sqlite3

        connection = sqlite3.connect(url.removeprefix("sqlite:///").removeprefix("sqlite:"))
        try:
            connection.execute(statement.replace("%s", "?"), params)
            connection.commit()
        finally:
            connection.close()
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(statement, params)  # type: ignore[arg-type]


def fetch(url: str, query: str, *params: object) -> list[tuple[Any, ...]]:
    """The rows of one query against a store directly."""
    if url.startswith("sqlite:"):
        import sqlite3

        connection = sqlite3.connect(url.removeprefix("sqlite:///").removeprefix("sqlite:"))
        try:
            return connection.execute(query.replace("%s", "?"), params).fetchall()
        finally:
            connection.close()
    import psycopg

    with psycopg.connect(url) as pg:
        return pg.execute(query, params).fetchall()  # type: ignore[arg-type]


def downgrade(url: str, version: int) -> None:
    """Make a journal, in place, what a ledger of an earlier schema version wrote: PostgreSQL's version 1 (raw
    transfer records), 2 (no domain columns), 3 (a timestamptz `created_at` in checkpoints), 4 (no checkpoint
    parts) or 5 (no transfer ids); SQLite's 1, 3 or 4, which stored raw records in a table with no
    `transfer_blocks` (SQLite had no version 2 then), or 5."""
    from ledger.journal._blocks import decompress_transfers

    sqlite = url.startswith("sqlite:")
    assert version in ((1, 3, 4, 5) if sqlite else (1, 2, 3, 4, 5)), version
    statements: list[tuple[str, tuple[object, ...]]] = [("DROP TABLE ledger_transfer_ids", ())]
    if (sqlite and version < 5) or version < 2:
        rows = fetch(url, "SELECT seq, transfers_count, transfers, transfer_blocks FROM ledger_journal")
        for seq, count, transfers, ends in rows:
            if ends is not None:
                raw = decompress_transfers(bytes(transfers), bytes(ends), count, f"seq={seq}")
                statements.append(("UPDATE ledger_journal SET transfers = %s WHERE seq = %s", (raw, seq)))
        statements.append(("ALTER TABLE ledger_journal DROP COLUMN transfer_blocks", ()))
    if version < 3:
        assert not fetch(url, "SELECT seq FROM ledger_journal WHERE length(domain) > 0"), "domain records"
        statements += [(f"ALTER TABLE {table} DROP COLUMN domain", ()) for table in ("ledger_journal",
                                                                                     "ledger_checkpoints")]  # fmt: skip
    if version < 5:
        assert not fetch(url, "SELECT seq FROM ledger_checkpoint_parts"), "checkpoints in parts"
        statements.append(("DROP TABLE ledger_checkpoint_parts", ()))  # its index goes with it
    if version < 4 and not sqlite:
        statements += [
            ("ALTER TABLE ledger_checkpoints ALTER COLUMN created_at_ns TYPE timestamptz "
             "USING to_timestamp(created_at_ns / 1e9)", ()),
            ("ALTER TABLE ledger_checkpoints RENAME COLUMN created_at_ns TO created_at", ()),
            ("ALTER TABLE ledger_checkpoints ALTER COLUMN created_at SET DEFAULT now()", ()),
        ]  # fmt: skip
    versions = "version > %s OR version = 2" if sqlite and version < 5 else "version > %s"
    statements.append((f"DELETE FROM ledger_schema WHERE {versions}", (version,)))
    if sqlite:
        import sqlite3

        connection = sqlite3.connect(url.removeprefix("sqlite:///").removeprefix("sqlite:"))
        try:
            with connection:
                for statement, params in statements:
                    connection.execute(statement.replace("%s", "?"), params)
        finally:
            connection.close()
    else:
        import psycopg

        with psycopg.connect(url) as pg, pg.transaction():
            for statement, params in statements:
                pg.execute(statement, params)  # type: ignore[arg-type]


class PrivatePostgres:
    """A PostgreSQL server of the test's own, in a temporary directory on a free port.

    Tests that stop or restart the database use one of these, so that the tests running beside them on the
    machine's shared server never see it go away. Under root, the server runs as the `postgres` user (it
    refuses root).
    """

    def __init__(self) -> None:
        import glob
        import socket
        import tempfile

        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise FileNotFoundError("no PostgreSQL server binaries under /usr/lib/postgresql")
        self.bin = Path(found[-1]).parent
        self.directory = Path(tempfile.mkdtemp(prefix="ledger-pg-"))
        self.data = self.directory / "data"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            import shutil

            shutil.chown(self.directory, "postgres", "postgres")
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        import subprocess

        argv = [str(self.bin / command[0]), *command[1:]]
        if self.as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    def _ctl(self, action: str) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", action, "-D", str(self.data), "-w", "-m", "fast", "-o", options, "-l", str(self.directory / "log")
        )

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")
        self.start()

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        self._ctl("stop")

    def restart(self) -> None:
        self._ctl("restart")

    def destroy(self) -> None:
        import shutil

        with suppress(Exception):  # it may never have started; the directory goes regardless
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of the test's own (see PrivatePostgres); fails under CI=true if none can start."""
    try:
        server = PrivatePostgres()
    except (FileNotFoundError, KeyError, LookupError) as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"a private PostgreSQL is required under CI=true: {exc}")
        pytest.skip(f"no PostgreSQL server binaries to start a private one with: {exc}")
    try:
        server.init()
        yield server
    finally:
        server.destroy()

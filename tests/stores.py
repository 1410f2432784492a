"""Journal stores for tests: a SQLite file, or a fresh schema in the machine's PostgreSQL.

The PostgreSQL DSN comes from LEDGER_TEST_DATABASE_URL (default: the local
server's `test` database). Without CI=true an unreachable server skips the
PostgreSQL variants; under CI=true they must run, so it fails them instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# Schemas are made the way the benchmarks make theirs; they live in bench/ so that the benchmarks need
# nothing from tests/ (nor pytest) to run.
from bench._harness import DEFAULT_DSN, temporary_schema, with_search_path

__all__ = [
    "DEFAULT_DSN",
    "execute",
    "postgres_dsn",
    "postgres_reachable",
    "postgres_schema",
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

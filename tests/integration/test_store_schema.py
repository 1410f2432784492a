"""The journal stores' tables: one definition (ledger/journal/_schema.py) rendered for each store, so both hold
the same tables and columns at the same version; journals written by earlier versions of either store are
upgraded in place when opened, their rows read as they were written."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ledger.audit import Verdict, audit, open_journal
from ledger.cli import main
from ledger.core import Ledger
from ledger.engine import CreateTransferResult, Transfer, unpack_transfers
from ledger.journal import AccountFilter, Commit, open_store
from ledger.journal._schema import (
    COMMIT_COLUMNS,
    DIALECTS,
    JOURNAL,
    POSTGRESQL,
    SCHEMA_VERSION,
    SQLITE,
    TABLES,
    migrations,
)
from ledger.records.limits import TRANSFER_SIZE
from tests.integration.test_audit import domain_operation, run_readme_reader
from tests.integration.test_journal import FUNDING, REVENUE, WALLETS, config, crash, move, run, snapshot, transfers
from tests.integration.test_postgres_commits import commits
from tests.integration.test_recovery import stored_commits
from tests.journals import rich_journal
from tests.stores import downgrade, execute, fetch, store_url
from tests.support import ManualClock

TR = CreateTransferResult

ALIKE = {("bigint", "INTEGER"), ("integer", "INTEGER"), ("bytea", "BLOB")}
"""A PostgreSQL type and the SQLite type the shared schema renders for the same kind of column."""


def layout(url: str) -> dict[str, list[tuple[str, str, bool]]]:
    """Each table's columns in order: name, declared type, whether NULL is allowed."""
    if url.startswith("sqlite:"):
        names = fetch(url, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        return {
            table: [
                (name, kind, not (notnull or key))
                for _, name, kind, notnull, _, key in fetch(url, f"PRAGMA table_info({table})")
            ]
            for (table,) in names
        }
    rows = fetch(
        url,
        "SELECT table_name, column_name, data_type, is_nullable = 'YES' FROM information_schema.columns "
        "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position",
    )
    tables: dict[str, list[tuple[str, str, bool]]] = {}
    for table, name, kind, nullable in rows:
        tables.setdefault(table, []).append((name, kind, nullable))
    return tables


def versions(url: str) -> list[int]:
    return sorted(row[0] for row in fetch(url, "SELECT version FROM ledger_schema"))


def connect_and_close(url: str) -> None:
    store = open_store(url)
    store.connect()
    store.close()


def run_audit(url: str) -> Verdict:
    journal = open_journal(url)
    try:
        return audit(journal)
    finally:
        journal.close()


def test_the_schema_renders_every_version_in_both_dialects() -> None:
    for dialect in DIALECTS:
        assert [version for version, _ in migrations(dialect)] == list(range(1, SCHEMA_VERSION + 1))
    sqlite, postgresql = dict(migrations(SQLITE)), dict(migrations(POSTGRESQL))
    assert "transfer_blocks BLOB" in sqlite[2][0] and "transfer_blocks bytea" in postgresql[2][0]
    assert sqlite[4] == ()  # SQLite stored created_at_ns from the start


def test_both_stores_create_the_same_tables_and_columns_and_reach_the_same_version(tmp_path: Path) -> None:
    with store_url("sqlite", tmp_path) as lite, store_url("postgresql", tmp_path) as pg:
        for url in (lite, pg):
            connect_and_close(url)
        ours, theirs = layout(lite), layout(pg)
        assert list(ours) == list(theirs) == sorted(table.name for table in TABLES)
        for table in TABLES:
            assert [c[0] for c in ours[table.name]] == [c[0] for c in theirs[table.name]] == list(table.column_names)
            for (name, sqlite_type, sqlite_null), (_, pg_type, pg_null) in zip(
                ours[table.name], theirs[table.name], strict=True
            ):
                assert (pg_type, sqlite_type) in ALIKE, (table.name, name)
                assert sqlite_null == pg_null, (table.name, name)
        assert versions(lite) == versions(pg) == list(range(1, SCHEMA_VERSION + 1))
        # Opening again applies nothing twice.
        for url in (lite, pg):
            connect_and_close(url)
            assert versions(url) == list(range(1, SCHEMA_VERSION + 1))


# --- the rows ---------------------------------------------------------------------------------------------


def test_a_commit_is_the_same_row_in_both_stores(tmp_path: Path) -> None:
    """Transfers in LZ4 blocks with their block index in either store: the same bytes in every column, read
    back whole by recovery's scan and a record at a time by ordinal."""
    written = commits(40)
    with store_url("sqlite", tmp_path) as lite, store_url("postgresql", tmp_path) as pg:
        stored = []
        for url in (lite, pg):
            store = open_store(url)
            store.connect()
            try:
                store.append(written[:1])  # one commit alone (PostgreSQL: an INSERT)
                store.append(written[1:])  # several in one transaction (PostgreSQL: a COPY)
                read = list(store.commits())
                assert [c.seq for c in read] == [c.seq for c in written]
                for ours, theirs in zip(read, written, strict=True):
                    ours.verify()
                    assert bytes(ours.transfers) == bytes(theirs.transfers) and ours.checksum == theirs.checksum
                records = b"".join(bytes(c.transfers) for c in written)
                count = len(records) // TRANSFER_SIZE
                found = store.read_transfers([*range(count), count, count + 1])
                assert found == {o: records[o * TRANSFER_SIZE : (o + 1) * TRANSFER_SIZE] for o in range(count)}
            finally:
                store.close()
            rows = fetch(url, f"SELECT {COMMIT_COLUMNS} FROM ledger_journal ORDER BY seq")
            stored.append([tuple(bytes(v) if isinstance(v, bytes | memoryview) else v for v in row) for row in rows])
        assert stored[0] == stored[1]
        blocks = COMMIT_COLUMNS.split(", ").index("transfer_blocks")
        assert all(row[blocks] is not None for row in stored[0])
        assert any(len(row[blocks]) > 4 for row in stored[0])  # commits of several blocks


# --- journals written before ------------------------------------------------------------------------------

OLD_SQLITE_SCHEMA = {
    # As SQLite's store created them by hand before the shared schema: versions 1 and 3, no transfer blocks.
    1: (
        """CREATE TABLE ledger_journal (
            seq INTEGER PRIMARY KEY,
            timestamp_last INTEGER NOT NULL,
            accounts_first INTEGER NOT NULL,
            transfers_first INTEGER NOT NULL,
            transfers_count INTEGER NOT NULL,
            checksum INTEGER NOT NULL,
            accounts BLOB NOT NULL,
            transfers BLOB NOT NULL,
            expired BLOB NOT NULL,
            balances BLOB NOT NULL
        )""",
        "CREATE INDEX ledger_journal_transfers_first ON ledger_journal (transfers_first, transfers_count)",
        """CREATE TABLE ledger_checkpoints (
            seq INTEGER PRIMARY KEY,
            timestamp_last INTEGER NOT NULL,
            checksum INTEGER NOT NULL,
            accounts BLOB NOT NULL,
            transfer_status BLOB NOT NULL,
            created_at_ns INTEGER NOT NULL
        )""",
        *(
            f"""CREATE TABLE {table} (
                account_lo INTEGER NOT NULL,
                account_hi INTEGER NOT NULL,
                timestamp_first INTEGER NOT NULL,
                timestamp_last INTEGER NOT NULL,
                entries_count INTEGER NOT NULL,
                entries BLOB NOT NULL,
                PRIMARY KEY (account_lo, account_hi, timestamp_first)
            ) WITHOUT ROWID"""
            for table in ("ledger_account_transfers", "ledger_account_balances")
        ),
        "CREATE TABLE ledger_history_position (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL)",
    ),
    3: (
        "ALTER TABLE ledger_journal ADD COLUMN domain BLOB NOT NULL DEFAULT x''",
        "ALTER TABLE ledger_checkpoints ADD COLUMN domain BLOB NOT NULL DEFAULT x''",
    ),
}


def test_the_rendered_sqlite_versions_1_and_3_are_the_tables_sqlite_made_by_hand() -> None:
    def tables(statements: list[str]) -> dict[str, list[tuple[Any, ...]]]:
        connection = sqlite3.connect(":memory:")
        try:
            for statement in statements:
                connection.execute(statement)
            names = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            return {name: connection.execute(f"PRAGMA table_info({name})").fetchall() for (name,) in names}
        finally:
            connection.close()

    rendered = dict(migrations(SQLITE))
    assert tables([*rendered[1], *rendered[3]]) == tables([*OLD_SQLITE_SCHEMA[1], *OLD_SQLITE_SCHEMA[3]])


def write_old_sqlite_journal(
    path: Path, version: int, commits: list[Commit], checkpoints: list[tuple[Any, ...]]
) -> None:
    """A journal as SQLite's store wrote it at `version` (1 or 3): these commits as rows of raw transfer records,
    these checkpoint rows, no history index yet."""
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("CREATE TABLE ledger_schema (version INTEGER NOT NULL)")
            for step, statements in OLD_SQLITE_SCHEMA.items():
                if step <= version:
                    for statement in statements:
                        connection.execute(statement)
                    connection.execute("INSERT INTO ledger_schema (version) VALUES (?)", (step,))
            domain = version >= 3
            for c in commits:
                assert domain or not c.domain
                row = (c.seq, c.timestamp_last, c.accounts_first, c.transfers_first, c.transfers_count, c.checksum,
                       c.accounts, c.transfers, c.expired, c.balances, *((c.domain,) if domain else ()))  # fmt: skip
                connection.execute(f"INSERT INTO ledger_journal VALUES ({','.join('?' * len(row))})", row)
            for checkpoint in checkpoints:
                row = checkpoint if domain else checkpoint[:-1]
                connection.execute(f"INSERT INTO ledger_checkpoints VALUES ({','.join('?' * len(row))})", row)
    finally:
        connection.close()


@pytest.mark.parametrize("version", [1, 3])
def test_an_sqlite_journal_of_raw_records_is_upgraded_in_place(
    tmp_path: Path, version: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows written before SQLite stored blocks keep their raw records (transfer_blocks NULL); recovery, the
    history's reads by ordinal and the audit read them beside the rows written after."""
    scratch = f"sqlite:///{tmp_path / 'scratch.sqlite3'}"
    rich_journal(scratch)
    if version == 3:
        asyncio.run(domain_operation(scratch))
    written = stored_commits(scratch)
    checkpoints = fetch(scratch, "SELECT seq, timestamp_last, checksum, accounts, transfer_status, created_at_ns, "
                                 "domain FROM ledger_checkpoints ORDER BY seq")  # fmt: skip
    assert len(checkpoints) == 2
    path = tmp_path / "old.sqlite3"
    url = f"sqlite:///{path}"
    write_old_sqlite_journal(path, version, written, checkpoints)
    assert versions(url) == ([1] if version == 1 else [1, 3])
    verdict = run_audit(url)  # the auditor reads the old layout as it is
    assert verdict.clean, verdict.problem
    assert main(["audit", "--store", url]) == 0

    clock = ManualClock()
    old_ordinals = sum(c.transfers_count for c in written)

    async def upgrade() -> Any:
        async with await Ledger.open(config(url), clock=clock) as ledger:
            assert ledger.recovery.checkpoint_seq == checkpoints[-1][0]
            paid = move(70_002, WALLETS[0], REVENUE, 3)
            assert await transfers(ledger, move(70_001, FUNDING, WALLETS[0], 5), paid) == [TR.OK] * 2
            assert await transfers(ledger, move(70_003, FUNDING, WALLETS[0], 7)) == [TR.OK]
            history = await all_transfers(ledger, WALLETS[0])
            state = await snapshot(ledger)
            await crash(ledger)  # no checkpoint at the end: the next start replays the new rows
            return history, state

    history, state = run(upgrade())
    assert versions(url) == list(range(1, SCHEMA_VERSION + 1))
    columns = [name for name, *_ in layout(url)["ledger_journal"]]
    # Added in place in version order: after domain in a journal that had version 3 before version 2.
    if version == 3:
        assert columns == [*(c for c in JOURNAL.column_names if c != "transfer_blocks"), "transfer_blocks"]
    else:
        assert columns == list(JOURNAL.column_names)
    rows = fetch(url, "SELECT seq, transfer_blocks IS NULL FROM ledger_journal ORDER BY seq")
    assert [old for seq, old in rows if seq <= len(written)] == [True] * len(written)  # never rewritten
    assert [old for seq, old in rows if seq > len(written)] == [False] * (len(rows) - len(written)) != []
    # The history's reads by ordinal, across the old rows and the new.
    everything = [t for c in stored_commits(url) for t in unpack_transfers(c.transfers)]
    assert len(everything) == old_ordinals + 3
    expected = [t for t in everything if WALLETS[0] in (t.debit_account_id, t.credit_account_id)]
    assert history == expected and {70_001, 70_002, 70_003} <= {t.id for t in history}
    store = open_store(url)
    store.connect()
    try:
        ordinals = [0, 1, old_ordinals - 1, old_ordinals, old_ordinals + 2, old_ordinals + 3, 10**9]
        found = store.read_transfers(ordinals)
        assert {o: unpack_transfers(r)[0] for o, r in found.items()} == {
            o: everything[o] for o in ordinals if o < len(everything)
        }
    finally:
        store.close()
    # Recovery from the journal alone replays the old rows and the new.
    execute(url, "DELETE FROM ledger_checkpoints")

    async def reopen() -> None:
        async with await Ledger.open(config(url), clock=clock) as ledger:
            assert ledger.recovery.checkpoint_seq == 0
            assert await snapshot(ledger) == state

    run(reopen())
    verdict = run_audit(url)
    assert verdict.clean, verdict.problem
    assert verdict.tally.transfers == len(everything)
    assert main(["audit", "--store", url]) == 0
    capsys.readouterr()
    run_readme_reader(path)  # the README's reader, on old rows and new
    assert capsys.readouterr().out.startswith(f"{len(everything)} transfers in 21 accounts, ")


async def all_transfers(ledger: Ledger, account_id: int) -> list[Transfer]:
    got: list[Transfer] = []
    next_filter: AccountFilter | None = AccountFilter(account_id=account_id, limit=7)
    while next_filter is not None:
        page = await ledger.get_account_transfers(next_filter)
        got += unpack_transfers(page.transfers)
        next_filter = page.next
    return got


def test_a_postgresql_journal_of_version_3_keeps_its_checkpoints_creation_time(tmp_path: Path) -> None:
    with store_url("postgresql", tmp_path) as url:
        rich_journal(url)
        stored = dict(fetch(url, "SELECT seq, created_at_ns FROM ledger_checkpoints"))
        downgrade(url, 3)
        assert [name for name, *_ in layout(url)["ledger_checkpoints"]][5] == "created_at"
        assert versions(url) == [1, 2, 3]
        connect_and_close(url)
        assert versions(url) == list(range(1, SCHEMA_VERSION + 1))
        assert [c[0] for c in layout(url)["ledger_checkpoints"]] == [
            "seq", "timestamp_last", "checksum", "accounts", "transfer_status", "created_at_ns", "domain",
        ]  # fmt: skip
        upgraded = dict(fetch(url, "SELECT seq, created_at_ns FROM ledger_checkpoints"))
        assert upgraded.keys() == stored.keys()
        for seq, created_at_ns in stored.items():
            assert abs(upgraded[seq] - created_at_ns) < 1_000_000  # timestamptz holds microseconds
        assert run_audit(url).clean
        assert JOURNAL.column_names == tuple(c[0] for c in layout(url)["ledger_journal"])

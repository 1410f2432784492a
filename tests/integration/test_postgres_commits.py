"""The PostgreSQL journal's two statements for a group commit: one commit is one prepared INSERT, several
are one COPY. Both must store the same row, byte for byte, so that recovery, the history index, the
committed-transfers feed and an outside reader of the format find no difference."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from ledger.journal import Commit, JournalCorrupt, StoreUnavailable, open_store
from ledger.journal._blocks import TRANSFER_BLOCK_RECORDS
from ledger.journal._postgres import PostgresStore
from ledger.records.limits import TRANSFER_SIZE
from tests.stores import postgres_schema


@pytest.fixture
def two_schemas() -> Iterator[tuple[str, str]]:
    with postgres_schema() as first, postgres_schema() as second:
        yield first, second


@contextmanager
def connected(url: str) -> Iterator[PostgresStore]:
    store = open_store(url)
    assert isinstance(store, PostgresStore)
    store.connect()
    try:
        yield store
    finally:
        store.close()


def commits(count: int) -> list[Commit]:
    """Commits of every shape: empty parts, one transfer, a few blocks of them, accounts, expiries, balances,
    domain records."""
    rng = random.Random(7)
    out = []
    transfers_first = accounts_first = 0
    for seq in range(1, count + 1):
        transfers_count = [0, 1, 3, TRANSFER_BLOCK_RECORDS + 5][seq % 4]
        accounts_count = seq % 2
        transfers = b"".join(
            rng.randbytes(16) + rng.randrange(1, 1000).to_bytes(16, "little") + bytes(TRANSFER_SIZE - 32)
            for _ in range(transfers_count)
        )
        out.append(
            Commit.seal(
                seq=seq,
                timestamp_last=1_800_000_000_000_000_000 + seq,
                accounts_first=accounts_first,
                transfers_first=transfers_first,
                accounts=rng.randbytes(128 * accounts_count),
                transfers=bytearray(transfers),  # as the writer hands them over: its batch's buffer, uncopied
                expired=rng.randbytes(24) if seq % 3 == 0 else b"",
                balances=rng.randbytes(64 * transfers_count) if seq % 2 else b"",
                domain=bytearray(rng.randbytes(10 * (seq % 3))),  # as the writer hands them over, or none
            )
        )
        transfers_first += transfers_count
        accounts_first += accounts_count
    return out


def rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute("SELECT * FROM ledger_journal ORDER BY seq").fetchall()


def test_one_commit_is_an_insert_several_a_copy_and_both_store_the_same_row(
    two_schemas: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    used: list[str] = []
    insert, copy = PostgresStore._insert, PostgresStore._copy
    spy_insert = lambda self, connection, c: (used.append("insert"), insert(self, connection, c))  # noqa: E731
    spy_copy = staticmethod(lambda connection, cs: (used.append("copy"), copy(connection, cs)))
    monkeypatch.setattr(PostgresStore, "_insert", spy_insert)
    monkeypatch.setattr(PostgresStore, "_copy", spy_copy)
    written = commits(8)
    with connected(two_schemas[0]) as one_by_one, connected(two_schemas[1]) as all_at_once:
        for commit in written:
            one_by_one.append([commit])
        all_at_once.append(written)
        assert used == ["insert"] * len(written) + ["copy"]
        assert rows(two_schemas[0]) == rows(two_schemas[1])
        for store in (one_by_one, all_at_once):
            read = list(store.commits())
            assert [(c.seq, c.checksum, bytes(c.transfers), bytes(c.domain)) for c in read] == [
                (c.seq, c.checksum, bytes(c.transfers), bytes(c.domain)) for c in written
            ]
            for commit in read:
                commit.verify()


def test_an_insert_that_landed_unacknowledged_is_recognised_and_a_different_one_refused(
    two_schemas: tuple[str, str],
) -> None:
    with connected(two_schemas[0]) as store:
        first, second = commits(2)
        store.append([first])
        store.append([first])  # the retry of an INSERT whose acknowledgement was lost
        store.append([second])
        changed = Commit.seal(
            seq=2, timestamp_last=second.timestamp_last + 1, accounts_first=second.accounts_first,
            transfers_first=second.transfers_first, accounts=b"", transfers=b"", expired=b"",
        )  # fmt: skip
        with pytest.raises(JournalCorrupt, match="different contents"):
            store.append([changed])
        assert [c.seq for c in store.commits()] == [1, 2]


def test_a_lost_connection_fails_the_insert_as_unavailable_and_the_next_session_prepares_it_again(
    two_schemas: tuple[str, str],
) -> None:
    with connected(two_schemas[0]) as store:
        first, second, third = commits(3)
        store.append([first])
        assert store._writer is not None
        backend = store._writer.info.backend_pid
        with psycopg.connect(two_schemas[1], autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
        with pytest.raises(StoreUnavailable, match="commit not confirmed"):
            store.append([second])
        store.append([second])  # a new session: the statement is prepared there before it is used
        store.append([third])
        assert store._writer.info.backend_pid != backend
        assert [c.seq for c in store.commits()] == [1, 2, 3]

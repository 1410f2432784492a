"""Domain records in the journal's commits and checkpoints, on both journal stores: stored, read back and
verified as they were written; nothing is stored for an empty domain."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ledger.journal import Checkpoint, Commit, open_store


def fetch(url: str, query: str) -> list[tuple[Any, ...]]:
    if url.startswith("sqlite:"):
        import sqlite3

        connection = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return connection.execute(query).fetchall()
        finally:
            connection.close()
    import psycopg

    with psycopg.connect(url) as connection:
        return connection.execute(query).fetchall()


# --- the stores ------------------------------------------------------------------------------------------


def commits_with_domain() -> Iterator[Commit]:
    """Commits with domain records and entries, entries alone, domain records alone."""
    transfers_first = 0
    for seq, (count, domain) in enumerate([(2, b"paid 1;paid 2;"), (3, b""), (0, b"tenant 9 renamed"),
                                           (1, bytes(range(256)) * 40)], start=1):  # fmt: skip
        records = b"".join((transfers_first + i).to_bytes(16, "little") + bytes(112) for i in range(count))
        yield Commit.seal(seq=seq, timestamp_last=1_800_000_000_000_000_000 + seq, accounts_first=0,
                          transfers_first=transfers_first, accounts=b"", transfers=records, expired=b"",
                          domain=bytearray(domain))  # as the writer hands it over: its batch's buffer  # fmt: skip
        transfers_first += count


def test_commits_and_checkpoints_with_domain_records_round_trip(store_url: str) -> None:
    written = list(commits_with_domain())
    store = open_store(store_url)
    store.connect()
    try:
        store.append(written[:1])  # one commit (PostgreSQL: an INSERT), then several (a COPY)
        store.append(written[1:])
        read = list(store.commits())
        assert [(c.seq, c.checksum, bytes(c.transfers), bytes(c.domain)) for c in read] == [
            (c.seq, c.checksum, bytes(c.transfers), bytes(c.domain)) for c in written
        ]
        for commit in read:
            commit.verify()
        assert [bytes(row[-1]) for rows in store.commit_rows(1) for row in rows] == [
            bytes(c.domain) for c in written[1:]
        ]

        store.save_checkpoint(Checkpoint.seal(seq=3, timestamp_last=7, accounts=b"", transfer_status=bytes(5),
                                              domain=b"tenants: 9;" * 1000))  # fmt: skip
        checkpoint = store.latest_checkpoint()
        assert checkpoint is not None and checkpoint.domain == b"tenants: 9;" * 1000
        checkpoint.verify()
        store.save_checkpoint(Checkpoint.seal(seq=4, timestamp_last=8, accounts=b"", transfer_status=bytes(6)))
        checkpoint = store.latest_checkpoint()
        assert checkpoint is not None and (checkpoint.seq, checkpoint.domain) == (4, b"")
        checkpoint.verify()
    finally:
        store.close()
    # Nothing is stored for an empty domain; a snapshot is deflated, as the other checkpoint blobs.
    assert [bytes(row[0]) for row in fetch(store_url, "SELECT domain FROM ledger_journal ORDER BY seq")] == [
        bytes(c.domain) for c in written
    ]
    stored = dict(fetch(store_url, "SELECT seq, length(domain) FROM ledger_checkpoints"))
    assert stored[4] == 0 and 0 < stored[3] < 1000

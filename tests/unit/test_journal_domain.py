"""Domain records in the journal's format and its writer, without a store: checksums that journals written
before them still verify with, and appends whose domain records always land in the commit of their entries."""

from __future__ import annotations

import struct
import threading
import zlib
from collections import Counter
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.journal import Checkpoint, Commit, GroupCommitWriter, JournalCorrupt, check_commit_row

T0 = 1_700_000_000_123_456_789
RECORDS = {"accounts": bytes(range(128)), "transfers": bytes(range(128, 256)), "expired": bytes(range(24)),
           "balances": bytes(range(64))}  # fmt: skip
STATUS = bytes([0, 1, 2, 3, 4])


def sealed(domain: bytes = b"") -> Commit:
    return Commit.seal(seq=7, timestamp_last=T0, accounts_first=3, transfers_first=11, **RECORDS, domain=domain)


def sealed_checkpoint(domain: bytes = b"") -> Checkpoint:
    return Checkpoint.seal(
        seq=7, timestamp_last=T0, accounts=RECORDS["accounts"], transfer_status=STATUS, domain=domain
    )


def with_domain(crc: int, domain: bytes) -> int:
    """The README's rule: the CRC goes on over `<4sQ` (LJD1, the length), then the domain's bytes."""
    return zlib.crc32(domain, zlib.crc32(struct.pack("<4sQ", b"LJD1", len(domain)), crc))


def test_without_domain_records_the_checksums_are_those_journals_were_written_with() -> None:
    # Values the ledger computed before commits and checkpoints had a domain: stored journals verify unchanged.
    assert sealed().checksum == 0x847B1515
    assert sealed_checkpoint().checksum == 0xDD30033D
    assert Commit.seal(seq=7, timestamp_last=T0, accounts_first=3, transfers_first=11, **RECORDS).checksum == 0x847B1515
    assert Checkpoint.seal(seq=7, timestamp_last=T0, accounts=RECORDS["accounts"],
                           transfer_status=STATUS).checksum == 0xDD30033D  # fmt: skip


def test_domain_records_extend_the_checksum_and_their_damage_is_caught() -> None:
    commit = sealed(b"tenant 1 created;grant 7 of 500;")
    assert commit.checksum == with_domain(0x847B1515, commit.domain)
    commit.verify()
    assert commit.size == sum(map(len, RECORDS.values())) + len(commit.domain)
    row = (commit.seq, commit.timestamp_last, commit.accounts_first, commit.transfers_first, commit.checksum,
           *RECORDS.values(), commit.domain)  # fmt: skip
    assert Commit.from_row(row) == commit
    check_commit_row(row)
    for damaged in (b"tenant 1 created;grant 7 of 501;", b"", commit.domain + b"\x00"):
        with pytest.raises(JournalCorrupt, match=r"journal commit seq=7.*checksum"):
            check_commit_row((*row[:-1], damaged))
    # A domain of zero bytes differs from none: its header would be in the CRC, and it is not written so.
    assert sealed(b"x").checksum != sealed().checksum

    checkpoint = sealed_checkpoint(b"tenants: 1")
    assert checkpoint.checksum == with_domain(0xDD30033D, b"tenants: 1")
    checkpoint.verify()
    with pytest.raises(JournalCorrupt, match="checkpoint at journal seq=7"):
        Checkpoint(seq=7, timestamp_last=T0, accounts=RECORDS["accounts"], transfer_status=STATUS,
                   checksum=checkpoint.checksum, domain=b"tenants: 2").verify()  # fmt: skip


# --- the writer --------------------------------------------------------------------------------------------


class MemoryStore:
    """Commits and checkpoints kept in memory; appends wait while `gate` is closed."""

    description = "memory"

    def __init__(self) -> None:
        self.transactions: list[list[Commit]] = []
        self.checkpoints: list[Checkpoint] = []
        self.ids = bytearray()
        self.gate = threading.Event()
        self.gate.set()

    def append(self, commits: Sequence[Commit]) -> None:
        self.gate.wait(10)
        self.transactions.append(list(commits))

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.checkpoints.append(checkpoint)

    def transfer_ids_end(self) -> int:
        return len(self.ids) // 16

    def save_transfer_ids(self, first: int, ids: bytes) -> None:
        assert first == len(self.ids) // 16
        self.ids += ids

    @property
    def commits(self) -> list[Commit]:
        return [commit for transaction in self.transactions for commit in transaction]


def writer_on(store: MemoryStore, commit_bytes_max: int) -> GroupCommitWriter:
    def fatal(exc: BaseException) -> None:
        raise AssertionError(f"the writer failed: {exc!r}")

    writer = GroupCommitWriter(
        store, seq_last=0, accounts_count=0, transfers_count=0, commit_bytes_max=commit_bytes_max,  # type: ignore[arg-type]
        on_durable=lambda ticket: None, on_unavailable=fatal, on_available=lambda: None, on_fatal=fatal,
    )  # fmt: skip
    writer.start()
    return writer


def transfers_of(call: int, count: int) -> bytes:
    return b"".join(bytes([call, index]) + bytes(126) for index in range(count))


def test_an_appends_domain_records_land_in_the_commit_of_its_entries() -> None:
    store = MemoryStore()
    writer = writer_on(store, commit_bytes_max=1_000)
    # Call c appends c % 5 transfers and c % 3 bytes of domain records, each byte c; call 20 has domain records
    # and no entries, call 40 more transfers than commit_bytes_max holds.
    transfers_counts = {call: call % 5 for call in range(1, 40)} | {40: 30}
    domain_sizes = {call: call % 3 for call in range(1, 40)} | {20: 7, 40: 3}
    store.gate.clear()  # a backlog: the takes hold many appends, cut into commits past commit_bytes_max
    for call in range(1, 41):
        writer.append(
            b"", transfers_of(call, transfers_counts[call]), b"", b"", T0 + call, bytes([call]) * domain_sizes[call]
        )
    store.gate.set()
    assert writer.stop(10)

    commits = store.commits
    assert [c.seq for c in commits] == list(range(1, len(commits) + 1)) and len(commits) > 3
    seen: list[int] = []
    for commit in commits:
        commit.verify()
        transfers = Counter(commit.transfers[offset] for offset in range(0, len(commit.transfers), 128))
        domain = Counter(commit.domain)
        # Each call here has all its entries here, and all its domain records: one append, one commit.
        assert all(transfers[call] == transfers_counts[call] for call in transfers), commit.seq
        assert all(domain[call] == domain_sizes[call] for call in domain), commit.seq
        assert {call for call in transfers if domain_sizes[call]} <= set(domain), commit.seq
        assert {call for call in domain if transfers_counts[call]} <= set(transfers), commit.seq
        seen += sorted(set(transfers) | set(domain))
    assert seen == [call for call in range(1, 41) if transfers_counts[call] or domain_sizes[call]]
    assert b"".join(c.domain for c in commits) == b"".join(bytes([c]) * domain_sizes[c] for c in range(1, 41))


def test_a_checkpoint_carries_the_domain_snapshot_given_with_it() -> None:
    store = MemoryStore()
    writer = writer_on(store, commit_bytes_max=1 << 20)
    writer.append(b"", transfers_of(1, 2), b"", b"", T0, b"paid")
    saved: list[int | None] = []
    writer.checkpoint(b"", bytes(2), T0, saved.append, domain=b"state after paid")
    writer.checkpoint(b"", bytes(2), T0, saved.append)
    assert writer.stop(10)
    assert saved == [1, 1]
    assert [(c.seq, c.domain) for c in store.checkpoints] == [(1, b"state after paid"), (1, b"")]
    for checkpoint in store.checkpoints:
        checkpoint.verify()


@given(st.binary(max_size=20_000), st.integers(0, 2**32 - 1))
def test_the_journals_crc32_is_zlibs(data: bytes, start: int) -> None:
    # Stored journals were checksummed with zlib's CRC-32 and the audit checks them with it.
    from ledger.journal._format import crc32

    assert crc32(data, start) == zlib.crc32(data, start)
    assert crc32(data) == zlib.crc32(data)

"""What the journal stores: commits of packed engine entries, and checkpoints.

A **commit** is one row of the journal: everything the engine changed between
two group commits, as the packed records the engine returned
(ledger.records.layout), so writing it is appending bytes and replaying it is
handing the same bytes back to the engine. Its fields:

- `seq`: 1, 2, 3, … with no gaps; a gap is a lost commit and refuses recovery.
- `accounts_first`, `transfers_first`: how many accounts and transfers the
  journal held before this commit (the ordinal of its first record), so a
  missing or repeated record is caught as well as a missing commit.
- `accounts`: 128-byte account records as created (zero balances).
- `transfers`: 128-byte transfer records as stored (timestamps set, amounts
  as moved).
- `expired`: 24-byte entries (hold id u128, transfer ordinal u64): the hold
  expired just before the transfer with that ordinal was created, which is
  where replay must release it.
- `balances`: 64-byte AccountBalance entries of accounts with the HISTORY
  flag (ledger.records.layout), for balance history; replay does not need
  them.
- `timestamp_last`: the engine's last timestamp when the commit was cut, so
  timestamps stay strictly increasing across restarts.
- `domain`: the domain records of the calls in this commit (the wallet
  domain's, written beside the engine entries they belong to), one call's
  after the other in append order. Opaque here: the journal stores, checks
  and hands them back, and only the domain layer reads them. Usually empty.
- `checksum`: CRC-32 over all of the above.

A **checkpoint** is the engine's snapshot (balances and transfer statuses)
at the end of commit `seq`, and `domain`, the domain layer's own snapshot
taken at the same moment (opaque, usually empty). Recovery imports it
together with the first `transfers_count` transfer records of the journal,
then replays the commits after it.

An empty `domain` adds nothing to a checksum, so journals written before it
existed verify as they are; a non-empty one extends the CRC over a 12-byte
header (`LJD1` and its length) and then its bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

try:  # the same CRC-32 as zlib's, with SIMD: recovery checks every byte of the journal with it
    from isal.isal_zlib import crc32
except ImportError:  # a platform without its wheel: the same values, about 12 times slower
    from zlib import crc32

from ledger.records.limits import ACCOUNT_BALANCE_SIZE, ACCOUNT_SIZE, TRANSFER_SIZE

Blob = bytes | bytearray
"""Commits read from a store hold bytes; commits being written hold the writer's buffers as they are."""

EXPIRED_SIZE: Final = 24
EXPIRED_STRUCT: Final = struct.Struct("<QQQ")
assert EXPIRED_STRUCT.size == EXPIRED_SIZE

_COMMIT_HEADER: Final = struct.Struct("<4sQQQQQQQQ")
_CHECKPOINT_HEADER: Final = struct.Struct("<4sQQQQQ")
_DOMAIN_HEADER: Final = struct.Struct("<4sQ")


class JournalError(Exception):
    """Base of the journal's errors."""


class JournalCorrupt(JournalError):
    """The stored journal or a checkpoint fails its checksum or its sequence.

    The message names the position (commit seq or checkpoint seq); the ledger
    refuses to start on it rather than serve wrong balances.
    """


def _check_checksum(where: str, stored: int, expected: int) -> None:
    if stored != expected:
        raise JournalCorrupt(f"{where}: checksum {stored:#010x} does not match its contents ({expected:#010x})")


def _domain_checksum(domain: Blob, crc: int) -> int:
    """The CRC so far, extended over non-empty domain bytes (an empty domain leaves it as it was)."""
    return crc32(domain, crc32(_DOMAIN_HEADER.pack(b"LJD1", len(domain)), crc))


def _commit_checksum(
    seq: int,
    timestamp_last: int,
    accounts_first: int,
    transfers_first: int,
    accounts: Blob,
    transfers: Blob,
    expired: Blob,
    balances: Blob,
    domain: Blob,
) -> int:
    header = _COMMIT_HEADER.pack(
        b"LJC1",
        seq,
        timestamp_last,
        accounts_first,
        transfers_first,
        len(accounts),
        len(transfers),
        len(expired),
        len(balances),
    )
    crc = crc32(accounts, crc32(header))
    crc = crc32(balances, crc32(expired, crc32(transfers, crc)))
    return _domain_checksum(domain, crc) if domain else crc


@dataclass(frozen=True, slots=True, kw_only=True)
class Commit:
    seq: int
    timestamp_last: int
    accounts_first: int
    transfers_first: int
    accounts: Blob
    transfers: Blob
    expired: Blob
    balances: Blob
    checksum: int
    domain: Blob = b""
    """The domain records of the calls in this commit, opaque to the journal."""

    @classmethod
    def seal(
        cls,
        *,
        seq: int,
        timestamp_last: int,
        accounts_first: int,
        transfers_first: int,
        accounts: Blob,
        transfers: Blob,
        expired: Blob,
        balances: Blob = b"",
        domain: Blob = b"",
    ) -> Commit:
        checksum = _commit_checksum(
            seq, timestamp_last, accounts_first, transfers_first, accounts, transfers, expired, balances, domain
        )
        return cls(
            seq=seq,
            timestamp_last=timestamp_last,
            accounts_first=accounts_first,
            transfers_first=transfers_first,
            accounts=accounts,
            transfers=transfers,
            expired=expired,
            balances=balances,
            checksum=checksum,
            domain=domain,
        )

    @property
    def accounts_count(self) -> int:
        return len(self.accounts) // ACCOUNT_SIZE

    @property
    def transfers_count(self) -> int:
        return len(self.transfers) // TRANSFER_SIZE

    @property
    def expired_count(self) -> int:
        return len(self.expired) // EXPIRED_SIZE

    @property
    def size(self) -> int:
        """Bytes of records this commit carries, domain records included."""
        return len(self.accounts) + len(self.transfers) + len(self.expired) + len(self.balances) + len(self.domain)

    @classmethod
    def from_row(cls, row: CommitRow) -> Commit:
        (
            seq,
            timestamp_last,
            accounts_first,
            transfers_first,
            checksum,
            accounts,
            transfers,
            expired,
            balances,
            domain,
        ) = row
        return cls(
            seq=seq,
            timestamp_last=timestamp_last,
            accounts_first=accounts_first,
            transfers_first=transfers_first,
            checksum=checksum,
            accounts=accounts,
            transfers=transfers,
            expired=expired,
            balances=balances,
            domain=domain,
        )

    def verify(self) -> None:
        """Raise JournalCorrupt naming this commit unless it is whole and unchanged."""
        check_commit_row(
            (
                self.seq,
                self.timestamp_last,
                self.accounts_first,
                self.transfers_first,
                self.checksum,
                self.accounts,
                self.transfers,
                self.expired,
                self.balances,
                self.domain,
            )
        )


CommitRow = tuple[int, int, int, int, int, Blob, Blob, Blob, Blob, Blob]
"""A commit as the stores read it: seq, timestamp_last, accounts_first, transfers_first, checksum, accounts,
transfers (as raw records), expired, balances, domain. Recovery reads commits this way, with no object per
commit."""


def check_commit_row(row: CommitRow) -> None:
    """Commit.verify of a row: JournalCorrupt naming the commit unless it is whole and unchanged."""
    seq, timestamp_last, accounts_first, transfers_first, checksum, accounts, transfers, expired, balances, domain = row
    if (
        len(accounts) % ACCOUNT_SIZE
        or len(transfers) % TRANSFER_SIZE
        or len(expired) % EXPIRED_SIZE
        or len(balances) % ACCOUNT_BALANCE_SIZE
    ):
        raise JournalCorrupt(f"{_commit_where(seq, transfers_first)}: a record is truncated")
    expected = _commit_checksum(
        seq, timestamp_last, accounts_first, transfers_first, accounts, transfers, expired, balances, domain
    )
    if expected != checksum:  # the message is built only when it is needed: recovery checks millions of commits
        _check_checksum(_commit_where(seq, transfers_first), checksum, expected)


def _commit_where(seq: int, transfers_first: int) -> str:
    return f"journal commit seq={seq} (transfers from ordinal {transfers_first})"


def _checkpoint_checksum(
    seq: int,
    timestamp_last: int,
    accounts_count: int,
    transfers_count: int,
    accounts: bytes,
    transfer_status: bytes,
    domain: bytes,
) -> int:
    header = _CHECKPOINT_HEADER.pack(b"LJK1", seq, timestamp_last, accounts_count, transfers_count, len(accounts))
    crc = crc32(transfer_status, crc32(accounts, crc32(header)))
    return _domain_checksum(domain, crc) if domain else crc


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """The engine's balances and transfer statuses as of the end of commit `seq`, and the domain's snapshot
    taken at the same moment."""

    seq: int
    timestamp_last: int
    accounts: bytes
    transfer_status: bytes
    checksum: int
    domain: bytes = b""
    """The domain layer's snapshot, opaque to the journal."""

    @classmethod
    def seal(
        cls, *, seq: int, timestamp_last: int, accounts: bytes, transfer_status: bytes, domain: bytes = b""
    ) -> Checkpoint:
        checksum = _checkpoint_checksum(
            seq, timestamp_last, len(accounts) // ACCOUNT_SIZE, len(transfer_status), accounts, transfer_status, domain
        )
        return cls(
            seq=seq,
            timestamp_last=timestamp_last,
            accounts=accounts,
            transfer_status=transfer_status,
            checksum=checksum,
            domain=domain,
        )

    @property
    def accounts_count(self) -> int:
        return len(self.accounts) // ACCOUNT_SIZE

    @property
    def transfers_count(self) -> int:
        return len(self.transfer_status)

    def verify(self) -> None:
        where = f"checkpoint at journal seq={self.seq}"
        if len(self.accounts) % ACCOUNT_SIZE:
            raise JournalCorrupt(f"{where}: an account record is truncated")
        expected = _checkpoint_checksum(
            self.seq,
            self.timestamp_last,
            self.accounts_count,
            self.transfers_count,
            self.accounts,
            self.transfer_status,
            self.domain,
        )
        _check_checksum(where, self.checksum, expected)

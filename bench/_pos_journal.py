"""A journal shaped like a POS fleet's: many small commits, holds and their expiries among them.

A ledger serving a fleet of terminals that each send a few transfers at a
time writes one commit per call or two; writing 10M transfers that way
through a ledger costs one store transaction per commit (hours at a fsync
each). So the journal is written here straight through the store API, with
exactly the commits a ledger would write for those calls: a real engine
applies each call of about `commit_transfers` transfers, and its entries
become a commit as `Ledger._record` and the group-commit writer make them
(the same record format, seqs, ordinals, expiry points, balances and
timestamps), sealed with `Commit.seal` and appended in large transactions.
The history index is kept as a ledger keeps it (ledger.journal.HistoryIndex
fed every commit once durable), so a ledger opened on the journal has no
history to catch up on, as one restarted after a crash would not.

The calls mix what a POS fleet sends: wallet payments to merchants, some as
a linked payment and fee, top-ups, and holds (about one per call) of which
about half are captured (some for less), a quarter voided and a quarter left
to expire, which the engine does at the start of a later call, so expiry
entries fall between and inside commits as they do in production.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ledger.engine import Account, AccountFlags, EngineConfig, TransferFlags, pack_accounts, select
from ledger.journal import Checkpoint, Commit, HistoryIndex, open_store
from ledger.records.layout import TRANSFER_STRUCT
from ledger.records.limits import BATCH_EVENTS_MAX, TRANSFER_SIZE

LEDGER = 978
FUNDING = 1
MERCHANTS = range(2, 18)
FEES = 18
FIRST_WALLET = 100
HISTORY_EVERY = 10
"""Every tenth wallet keeps balance history, so commits carry balance entries as they do in production."""
TICK_NS = 1_000_000
"""The clock moves 1 ms between calls: a busy fleet; holds of 1 to 3 s expire thousands of commits later."""
APPEND_COMMITS = 4096
"""Commits per store transaction while writing (the store takes any number; this bounds memory)."""
HISTORY_WAIT_SECONDS = 600.0
_MASK = 2**64 - 1
TF = TransferFlags


@dataclass(frozen=True, slots=True)
class PosJournal:
    transfers: int
    commits: int
    holds: int
    posted: int
    voided: int
    expired: int
    seconds: float
    snapshot_sha256: str
    """Of the writing engine's balances and transfer statuses: a recovery must reach the same."""

    def as_json(self) -> dict[str, Any]:
        return {
            "transfers": self.transfers,
            "commits": self.commits,
            "transfers_per_commit": round(self.transfers / max(1, self.commits), 1),
            "holds": self.holds,
            "posted": self.posted,
            "voided": self.voided,
            "expired": self.expired,
            "write_seconds": round(self.seconds, 1),
        }


def snapshot_digest(accounts: bytes, transfer_status: bytes) -> str:
    return hashlib.sha256(accounts + b"|" + transfer_status).hexdigest()


def _transfer_id(n: int) -> tuple[int, int]:
    """A 128-bit id that looks random (as callers' UUIDs do) and never repeats: odd multipliers are bijections."""
    return (n * 0x9E3779B97F4A7C15 + 1) & _MASK, (n * 0xD1B54A32D192ED03) & _MASK


class _Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000 * 1_000_000_000

    def __call__(self) -> int:
        return self.now


def write_pos_journal(
    url: str,
    transfers_count: int,
    *,
    wallets: int,
    commit_transfers: int = 16,
    checkpoint: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> PosJournal:
    """Journal about `transfers_count` transfers in calls of `commit_transfers` into an empty store.

    With `checkpoint`, the writing engine's state is saved as a checkpoint at the end.
    """
    started = time.perf_counter()
    clock = _Clock()
    config = EngineConfig(
        accounts_max=FIRST_WALLET + wallets, transfers_max=transfers_count + 2 * wallets, pending_transfers_max=100_000
    )
    engine = select(None)(config, clock=clock)  # type: ignore[call-arg]
    store = open_store(url)
    store.connect()
    history = HistoryIndex(store)
    history.start(0)
    seq = accounts_count = transfers_count_written = 0
    pending: list[Commit] = []
    counts = {"holds": 0, "posted": 0, "voided": 0, "expired": 0}

    def record(accounts: bytes, transfers: bytes, expired_ids: bytes, balances: bytes, timestamp_last: int) -> None:
        nonlocal seq, accounts_count, transfers_count_written
        if not (accounts or transfers or expired_ids):
            return
        ordinal = transfers_count_written.to_bytes(8, "little")
        expired = b"".join(expired_ids[i : i + 16] + ordinal for i in range(0, len(expired_ids), 16))
        counts["expired"] += len(expired_ids) // 16
        seq += 1
        pending.append(
            Commit.seal(
                seq=seq,
                timestamp_last=timestamp_last,
                accounts_first=accounts_count,
                transfers_first=transfers_count_written,
                accounts=accounts,
                transfers=transfers,
                expired=expired,
                balances=balances,
            )
        )
        accounts_count += len(accounts) // 128
        transfers_count_written += len(transfers) // TRANSFER_SIZE
        if len(pending) >= APPEND_COMMITS:
            append()

    def append() -> None:
        store.append(pending)
        history.durable(list(pending))
        pending.clear()

    def create_transfers(records: bytearray) -> None:
        clock.now += TICK_NS
        applied = engine.create_transfers(records)
        record(b"", bytes(applied.entries), applied.expired, applied.balances, applied.timestamp_last)

    try:
        accounts = [
            Account(id=FUNDING, ledger=LEDGER, code=1),
            *(Account(id=m, ledger=LEDGER, code=2) for m in MERCHANTS),
            Account(id=FEES, ledger=LEDGER, code=3),
            *(
                Account(
                    id=FIRST_WALLET + w,
                    ledger=LEDGER,
                    code=10,
                    flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
                    | (AccountFlags.HISTORY if w % HISTORY_EVERY == 0 else 0),
                )
                for w in range(wallets)
            ),
        ]
        for start in range(0, len(accounts), BATCH_EVENTS_MAX):
            clock.now += TICK_NS
            applied_accounts = engine.create_accounts(pack_accounts(accounts[start : start + BATCH_EVENTS_MAX]))
            record(bytes(applied_accounts.entries), b"", b"", b"", applied_accounts.timestamp_last)

        pack = TRANSFER_STRUCT.pack_into
        next_id = 1
        buffer = bytearray(commit_transfers * TRANSFER_SIZE)
        # Every wallet topped up first, a call at a time, as a fleet's first customers would.
        for start in range(0, wallets, commit_transfers):
            size = min(commit_transfers, wallets - start)
            for i in range(size):
                lo, hi = _transfer_id(next_id)
                next_id += 1
                pack(buffer, i * TRANSFER_SIZE, lo, hi, FUNDING, 0, FIRST_WALLET + start + i, 0, 10**12,
                     0, 0, 0, 0, 0, 0, 0, LEDGER, 1, 0, 0, 0)  # fmt: skip
            create_transfers(buffer[: size * TRANSFER_SIZE])

        holds: deque[tuple[int, int, int]] = deque()  # (call, id, amount) of holds not resolved yet
        call = 0
        state = 0x2545F4914F6CDD1D
        reported = 0
        while transfers_count_written < transfers_count:
            call += 1
            size = min(commit_transfers, max(4, transfers_count - transfers_count_written))
            i = 0
            # One hold, with a timeout of 1 to 3 s.
            state = (state * 6364136223846793005 + 1442695040888963407) & _MASK
            wallet = FIRST_WALLET + (state >> 20) % wallets
            amount = 100 + (state >> 8) % 5000
            lo, hi = _transfer_id(next_id)
            pack(buffer, 0, lo, hi, wallet, 0, MERCHANTS[state % len(MERCHANTS)], 0, amount,
                 0, 0, 0, 0, call, 0, 1 + (state >> 40) % 3, LEDGER, 2, TF.PENDING, 0, 0)  # fmt: skip
            holds.append((call, next_id, amount))
            next_id += 1
            counts["holds"] += 1
            i = 1
            # Resolve the oldest hold past 50 calls: capture (sometimes less), void, or let it expire.
            if holds and holds[0][0] <= call - 50:
                hold_call, hold_id, hold_amount = holds.popleft()
                choice = hold_call % 4
                if choice != 3:
                    lo, hi = _transfer_id(next_id)
                    plo, phi = _transfer_id(hold_id)
                    flags = TF.VOID_PENDING_TRANSFER if choice == 2 else TF.POST_PENDING_TRANSFER
                    captured = hold_amount - (hold_call % 7) if choice == 0 else 0
                    pack(buffer, i * TRANSFER_SIZE, lo, hi, 0, 0, 0, 0, captured, plo, phi,
                         0, 0, 0, 0, 0, 0, 0, flags, 0, 0)  # fmt: skip
                    next_id += 1
                    counts["voided" if choice == 2 else "posted"] += 1
                    i += 1
            # A payment with its fee, linked.
            state = (state * 6364136223846793005 + 1442695040888963407) & _MASK
            wallet = FIRST_WALLET + (state >> 20) % wallets
            lo, hi = _transfer_id(next_id)
            pack(buffer, i * TRANSFER_SIZE, lo, hi, wallet, 0, MERCHANTS[state % len(MERCHANTS)], 0,
                 1 + (state >> 8) % 5000, 0, 0, 0, 0, call, 0, 0, LEDGER, 1, TF.LINKED, 0, 0)  # fmt: skip
            lo, hi = _transfer_id(next_id + 1)
            pack(buffer, (i + 1) * TRANSFER_SIZE, lo, hi, wallet, 0, FEES, 0, 25,
                 0, 0, 0, 0, call, 0, 0, LEDGER, 3, 0, 0, 0)  # fmt: skip
            next_id += 2
            i += 2
            # The rest: plain payments, and now and then a top-up.
            while i < size:
                state = (state * 6364136223846793005 + 1442695040888963407) & _MASK
                wallet = FIRST_WALLET + (state >> 20) % wallets
                lo, hi = _transfer_id(next_id)
                if state % 64 == 0:
                    debit, credit, amount = FUNDING, wallet, 10_000
                else:
                    debit, credit, amount = wallet, MERCHANTS[state % len(MERCHANTS)], 1 + (state >> 8) % 5000
                pack(buffer, i * TRANSFER_SIZE, lo, hi, debit, 0, credit, 0, amount,
                     0, 0, state >> 32, 0, call, 0, 0, LEDGER, 1, 0, 0, 0)  # fmt: skip
                next_id += 1
                i += 1
            create_transfers(buffer[: i * TRANSFER_SIZE])
            if transfers_count_written - reported >= 1_000_000:
                reported = transfers_count_written
                progress(f"  journaled {transfers_count_written:,} of {transfers_count:,} in commits of ~{size}")
        if pending:
            append()
        if not history.wait_for(seq, HISTORY_WAIT_SECONDS):
            raise RuntimeError(f"the history index did not reach seq={seq} within {HISTORY_WAIT_SECONDS} s")
        snapshot = engine.export_snapshot()
        if checkpoint:
            store.save_checkpoint(
                Checkpoint.seal(
                    seq=seq,
                    timestamp_last=snapshot.timestamp_last,
                    accounts=snapshot.accounts,
                    transfer_status=snapshot.transfer_status,
                )
            )
    finally:
        history.stop()
        store.close()
    return PosJournal(
        transfers=transfers_count_written,
        commits=seq,
        seconds=time.perf_counter() - started,
        snapshot_sha256=snapshot_digest(snapshot.accounts, snapshot.transfer_status),
        **counts,
    )

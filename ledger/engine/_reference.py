"""The pure-Python reference engine.

Written for clarity, not speed: it is the oracle the native engine is tested
against and the fallback where no C compiler is present. The rules live in
the validation ladders below, one early return per rule, in the precedence
order of ledger.records.codes.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ledger.records.codes import (
    ACCOUNT_FLAGS_KNOWN,
    TRANSFER_FLAGS_KNOWN,
    AccountFlags,
    CreateAccountResult,
    CreateTransferResult,
    TransferFlags,
    TransferStatus,
)
from ledger.records.layout import (
    ACCOUNT_BALANCE_STRUCT,
    ACCOUNT_RESULT_STRUCT,
    ID_STRUCT,
    TRANSFER_RESULT_STRUCT,
    Account,
    Buffer,
    Transfer,
    unpack_accounts,
    unpack_ids,
    unpack_transfers,
)
from ledger.records.limits import (
    ACCOUNT_SIZE,
    AMOUNT_MAX,
    ID_INT_MAX,
    ID_SIZE,
    NANOSECONDS_PER_SECOND,
    TIMESTAMP_MAX,
    TRANSFER_SIZE,
)

from ._api import (
    AccountsApplied,
    Clock,
    ClockExhausted,
    ColdReader,
    EngineConfig,
    EngineSnapshot,
    EngineState,
    EngineStats,
    StateMismatch,
    TransfersApplied,
    check_batch,
)

AR = CreateAccountResult
TR = CreateTransferResult
_U64_MASK = 2**64 - 1


class AF:
    """AccountFlags as plain ints: IntFlag arithmetic costs a microsecond per operation."""

    LINKED = int(AccountFlags.LINKED)
    HISTORY = int(AccountFlags.HISTORY)
    DEBITS_MUST_NOT_EXCEED_CREDITS = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
    CREDITS_MUST_NOT_EXCEED_DEBITS = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
    CLOSED = int(AccountFlags.CLOSED)


class TF:
    """TransferFlags as plain ints, for the same reason."""

    LINKED = int(TransferFlags.LINKED)
    PENDING = int(TransferFlags.PENDING)
    POST_PENDING_TRANSFER = int(TransferFlags.POST_PENDING_TRANSFER)
    VOID_PENDING_TRANSFER = int(TransferFlags.VOID_PENDING_TRANSFER)
    BALANCING_DEBIT = int(TransferFlags.BALANCING_DEBIT)
    BALANCING_CREDIT = int(TransferFlags.BALANCING_CREDIT)
    CLOSING_DEBIT = int(TransferFlags.CLOSING_DEBIT)
    CLOSING_CREDIT = int(TransferFlags.CLOSING_CREDIT)


_POST_OR_VOID = TF.POST_PENDING_TRANSFER | TF.VOID_PENDING_TRANSFER
_BALANCING = TF.BALANCING_DEBIT | TF.BALANCING_CREDIT
_CLOSING = TF.CLOSING_DEBIT | TF.CLOSING_CREDIT


class _Balances:
    """Mutable balances and flags of one account; the rest of the record is immutable."""

    __slots__ = ("credits_pending", "credits_posted", "debits_pending", "debits_posted", "flags", "record")

    def __init__(self, record: Account) -> None:
        self.record = record
        self.debits_pending = record.debits_pending
        self.debits_posted = record.debits_posted
        self.credits_pending = record.credits_pending
        self.credits_posted = record.credits_posted
        self.flags = record.flags

    def snapshot(self) -> tuple[int, int, int, int, int]:
        return (self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted, self.flags)

    def restore(self, saved: tuple[int, int, int, int, int]) -> None:
        (self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted, self.flags) = saved

    def to_record(self) -> Account:
        return replace(
            self.record,
            debits_pending=self.debits_pending,
            debits_posted=self.debits_posted,
            credits_pending=self.credits_pending,
            credits_posted=self.credits_posted,
            flags=self.flags,
        )


def _transfer_exists(t: Transfer, e: Transfer) -> TR:
    """Compare a repeated transfer with the stored one, field by field in precedence order."""
    if t.flags != e.flags:
        return TR.EXISTS_WITH_DIFFERENT_FLAGS
    if t.pending_id != e.pending_id:
        return TR.EXISTS_WITH_DIFFERENT_PENDING_ID
    if t.timeout != e.timeout:
        return TR.EXISTS_WITH_DIFFERENT_TIMEOUT
    # Post and void may leave accounts, ledger, code and amount zero: taken from the hold.
    inherits = bool(t.flags & _POST_OR_VOID)
    if t.debit_account_id != e.debit_account_id and not (inherits and t.debit_account_id == 0):
        return TR.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID
    if t.credit_account_id != e.credit_account_id and not (inherits and t.credit_account_id == 0):
        return TR.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID
    if t.flags & _BALANCING:
        # The stored amount is what moved; the request named the most to move.
        if t.amount < e.amount:
            return TR.EXISTS_WITH_DIFFERENT_AMOUNT
    elif t.amount != e.amount and not (inherits and t.amount == 0):
        return TR.EXISTS_WITH_DIFFERENT_AMOUNT
    if t.user_data_128 != e.user_data_128:
        return TR.EXISTS_WITH_DIFFERENT_USER_DATA_128
    if t.user_data_64 != e.user_data_64:
        return TR.EXISTS_WITH_DIFFERENT_USER_DATA_64
    if t.user_data_32 != e.user_data_32:
        return TR.EXISTS_WITH_DIFFERENT_USER_DATA_32
    if t.ledger != e.ledger and not (inherits and t.ledger == 0):
        return TR.EXISTS_WITH_DIFFERENT_LEDGER
    if t.code != e.code and not (inherits and t.code == 0):
        return TR.EXISTS_WITH_DIFFERENT_CODE
    return TR.EXISTS


def _stored(
    t: Transfer, debit_account_id: int, credit_account_id: int, ledger: int, code: int, amount: int, timestamp: int
) -> Transfer:
    """The transfer as stored: what moved, between which accounts, when (dataclasses.replace is 20x slower)."""
    return Transfer(
        id=t.id,
        debit_account_id=debit_account_id,
        credit_account_id=credit_account_id,
        amount=amount,
        ledger=ledger,
        code=code,
        flags=t.flags,
        pending_id=t.pending_id,
        timeout=t.timeout,
        user_data_128=t.user_data_128,
        user_data_64=t.user_data_64,
        user_data_32=t.user_data_32,
        timestamp=timestamp,
    )


def _account_exists(a: Account, e: Account) -> AR:
    if (a.flags & ~AF.CLOSED) != (e.flags & ~AF.CLOSED):
        return AR.EXISTS_WITH_DIFFERENT_FLAGS
    if a.user_data_128 != e.user_data_128:
        return AR.EXISTS_WITH_DIFFERENT_USER_DATA_128
    if a.user_data_64 != e.user_data_64:
        return AR.EXISTS_WITH_DIFFERENT_USER_DATA_64
    if a.user_data_32 != e.user_data_32:
        return AR.EXISTS_WITH_DIFFERENT_USER_DATA_32
    if a.ledger != e.ledger:
        return AR.EXISTS_WITH_DIFFERENT_LEDGER
    if a.code != e.code:
        return AR.EXISTS_WITH_DIFFERENT_CODE
    return AR.EXISTS


@dataclass
class _Chain:
    """What the linked chain being applied has changed."""

    pending_count: int
    balances_count: int
    """How many balance-history entries there were when the chain began."""
    balances: list[tuple[_Balances, tuple[int, int, int, int, int]]] = field(default_factory=list)
    statuses: list[tuple[int, TransferStatus]] = field(default_factory=list)
    transfers: list[int] = field(default_factory=list)
    accounts: list[int] = field(default_factory=list)
    expiries: list[tuple[int, int, int]] = field(default_factory=list)
    """Holds created in the chain, scheduled for expiry only when it commits."""


class ReferenceEngine:
    """The money state machine in plain Python (dicts and objects)."""

    implementation = "python"

    def __init__(
        self, config: EngineConfig | None = None, *, clock: Clock, cold_reader: ColdReader | None = None
    ) -> None:
        # Every record stays in memory here, so the cold reader is never needed; it is taken so that both
        # engines are made alike.
        del cold_reader
        self._config = config or EngineConfig()
        self._clock = clock
        self._accounts: dict[int, _Balances] = {}
        self._transfers: dict[int, Transfer] = {}
        self._status: dict[int, TransferStatus] = {}
        self._pending_count = 0
        # (expires_at, hold timestamp, hold id); entries of holds no longer pending are skipped.
        self._expiry_heap: list[tuple[int, int, int]] = []
        self._timestamp_last = 0
        self._chain: _Chain | None = None
        # Balance-history entries of the batch being applied (accounts with the HISTORY flag).
        self._history: list[bytes] = []

    # -- timestamps --------------------------------------------------------

    def _reserve_timestamps(self, count: int) -> int:
        first = max(int(self._clock()), self._timestamp_last + 1)
        if first + count - 1 > TIMESTAMP_MAX:
            raise ClockExhausted(f"timestamp {first + count - 1} would exceed TIMESTAMP_MAX={TIMESTAMP_MAX}")
        self._timestamp_last = first + count - 1
        return first

    # -- linked chains: what a chain changed, so that a failure can undo it --

    def _touch(self, balances: _Balances) -> None:
        if self._chain is not None:
            self._chain.balances.append((balances, balances.snapshot()))

    def _set_status(self, transfer_id: int, status: TransferStatus) -> None:
        if self._chain is not None:
            self._chain.statuses.append((transfer_id, self._status[transfer_id]))
        self._status[transfer_id] = status

    def _rollback(self) -> None:
        chain = self._chain
        assert chain is not None
        for balances, saved in reversed(chain.balances):
            balances.restore(saved)
        for transfer_id, status in reversed(chain.statuses):
            self._status[transfer_id] = status
        for transfer_id in chain.transfers:
            del self._transfers[transfer_id]
            self._status.pop(transfer_id, None)
        for account_id in chain.accounts:
            del self._accounts[account_id]
        self._pending_count = chain.pending_count
        del self._history[chain.balances_count :]
        self._chain = None

    def _commit_chain(self) -> None:
        assert self._chain is not None
        for entry in self._chain.expiries:
            heapq.heappush(self._expiry_heap, entry)
        self._chain = None

    # -- batches -------------------------------------------------------------

    def _run_chain_batch(
        self,
        linked: list[bool],
        apply: Callable[[int], tuple[int, int, int]],
        exists_only: Callable[[int], tuple[int, int, int]],
        exists: int,
    ) -> list[tuple[int, int, int]]:
        """Apply events one by one with linked-chain semantics.

        `apply(i)` validates and applies event i, returning (result, timestamp,
        amount). `exists_only(i)` returns what the ladder gives up to and
        including the idempotency check, applying nothing. A chain whose events
        all exist unchanged is a retry of a committed chain: every event gets
        `exists`. Otherwise the first failure rolls the chain back; it keeps its
        own code and every other event of the chain gets LINKED_EVENT_FAILED.
        """
        count = len(linked)
        results: list[tuple[int, int, int]] = [(0, 0, 0)] * count
        chain_start = -1
        chain_failed = False
        index = 0
        while index < count:
            if chain_start < 0 and linked[index]:
                chain_start = index
                self._chain = _Chain(pending_count=self._pending_count, balances_count=len(self._history))
            if chain_failed:
                results[index] = (TR.LINKED_EVENT_FAILED, 0, 0)
            elif linked[index] and index == count - 1:
                results[index] = (TR.LINKED_EVENT_CHAIN_OPEN, 0, 0)
                self._fail_chain(results, chain_start, index)
                chain_failed = True
            else:
                results[index] = apply(index)
                if results[index][0] != TR.OK and chain_start >= 0:
                    chain_end = self._chain_end(linked, index)
                    if (
                        index == chain_start
                        and results[index][0] == exists
                        and chain_end is not None
                        and all(exists_only(j)[0] == exists for j in range(index + 1, chain_end + 1))
                    ):
                        for j in range(index + 1, chain_end + 1):
                            results[j] = exists_only(j)
                        index = chain_end
                    else:
                        self._fail_chain(results, chain_start, index)
                        chain_failed = True
            if not linked[index]:
                if chain_start >= 0 and not chain_failed:
                    self._commit_chain()
                chain_start = -1
                chain_failed = False
            index += 1
        assert self._chain is None
        return results

    @staticmethod
    def _chain_end(linked: list[bool], index: int) -> int | None:
        """Index of the last event of the chain holding `index`, or None if the chain is left open."""
        while index < len(linked) and linked[index]:
            index += 1
        return index if index < len(linked) else None

    def _fail_chain(self, results: list[tuple[int, int, int]], start: int, failed: int) -> None:
        self._rollback()
        for j in range(start, failed):
            results[j] = (TR.LINKED_EVENT_FAILED, 0, 0)

    def create_accounts(self, events: Buffer) -> AccountsApplied:
        count = check_batch(events, ACCOUNT_SIZE, "accounts")
        accounts = unpack_accounts(events)
        first = self._reserve_timestamps(count) if count else self._timestamp_last

        def apply(index: int) -> tuple[int, int, int]:
            result, timestamp = self._create_account(accounts[index], first + index)
            return (result, timestamp, 0)

        def exists_only(index: int) -> tuple[int, int, int]:
            result, existing = self._account_prefix(accounts[index])
            return (result, existing, 0)

        results = self._run_chain_batch([bool(a.flags & AF.LINKED) for a in accounts], apply, exists_only, AR.EXISTS)
        entries = b"".join(
            self._accounts[accounts[i].id].record.pack() for i, (r, _, _) in enumerate(results) if r == AR.OK
        )
        self._verify()
        return AccountsApplied(
            results=b"".join(ACCOUNT_RESULT_STRUCT.pack(r, 0, ts) for r, ts, _ in results),
            entries=entries,
            timestamp_last=self._timestamp_last,
        )

    def _account_prefix(self, a: Account) -> tuple[AR, int]:
        """The ladder up to the idempotency check; UNSPECIFIED when it passes."""
        if a.timestamp != 0:
            return AR.TIMESTAMP_MUST_BE_ZERO, 0
        if a.reserved != 0:
            return AR.RESERVED_FIELD, 0
        if a.flags & ~ACCOUNT_FLAGS_KNOWN:
            return AR.RESERVED_FLAG, 0
        if a.id == 0:
            return AR.ID_MUST_NOT_BE_ZERO, 0
        if a.id == ID_INT_MAX:
            return AR.ID_MUST_NOT_BE_INT_MAX, 0
        existing = self._accounts.get(a.id)
        if existing is not None:
            return _account_exists(a, existing.record), existing.record.timestamp
        return AR.UNSPECIFIED, 0

    def _create_account(self, a: Account, timestamp: int) -> tuple[AR, int]:
        result, existing = self._account_prefix(a)
        if result != AR.UNSPECIFIED:
            return result, existing
        if a.flags & AF.DEBITS_MUST_NOT_EXCEED_CREDITS and a.flags & AF.CREDITS_MUST_NOT_EXCEED_DEBITS:
            return AR.FLAGS_ARE_MUTUALLY_EXCLUSIVE, 0
        if a.debits_pending != 0:
            return AR.DEBITS_PENDING_MUST_BE_ZERO, 0
        if a.debits_posted != 0:
            return AR.DEBITS_POSTED_MUST_BE_ZERO, 0
        if a.credits_pending != 0:
            return AR.CREDITS_PENDING_MUST_BE_ZERO, 0
        if a.credits_posted != 0:
            return AR.CREDITS_POSTED_MUST_BE_ZERO, 0
        if a.ledger == 0:
            return AR.LEDGER_MUST_NOT_BE_ZERO, 0
        if a.code == 0:
            return AR.CODE_MUST_NOT_BE_ZERO, 0
        if len(self._accounts) >= self._config.accounts_max:
            return AR.ACCOUNTS_FULL, 0
        self._accounts[a.id] = _Balances(replace(a, timestamp=timestamp))
        if self._chain is not None:
            self._chain.accounts.append(a.id)
        return AR.OK, timestamp

    def expire_pending_transfers(self) -> TransfersApplied:
        first = self._reserve_timestamps(1)
        expired = self._expire(first)
        return TransfersApplied(results=b"", entries=b"", expired=expired, timestamp_first=first, timestamp_last=first)

    def _expire(self, now: int) -> bytes:
        expired: list[int] = []
        heap = self._expiry_heap
        while heap and heap[0][0] <= now:
            _, _, hold_id = heapq.heappop(heap)
            if self._status.get(hold_id) != TransferStatus.PENDING:
                continue
            self._release_hold(self._transfers[hold_id], TransferStatus.EXPIRED)
            expired.append(hold_id)
        return b"".join(ID_STRUCT.pack(i & (2**64 - 1), i >> 64) for i in expired)

    def _release_hold(self, hold: Transfer, status: TransferStatus) -> None:
        """Take a hold's amount off the pending balances and reopen what it closed."""
        dr = self._accounts[hold.debit_account_id]
        cr = self._accounts[hold.credit_account_id]
        self._touch(dr)
        self._touch(cr)
        dr.debits_pending -= hold.amount
        cr.credits_pending -= hold.amount
        if status != TransferStatus.POSTED:
            if hold.flags & TF.CLOSING_DEBIT:
                dr.flags &= ~AF.CLOSED
            if hold.flags & TF.CLOSING_CREDIT:
                cr.flags &= ~AF.CLOSED
        self._set_status(hold.id, status)
        self._pending_count -= 1

    def create_transfers(self, events: Buffer) -> TransfersApplied:
        count = check_batch(events, TRANSFER_SIZE, "transfers")
        if count == 0:
            last = self._timestamp_last
            return TransfersApplied(results=b"", entries=b"", expired=b"", timestamp_first=last, timestamp_last=last)
        transfers = unpack_transfers(events)
        first = self._reserve_timestamps(count)
        expired = self._expire(first)
        self._history = []

        def apply(index: int) -> tuple[int, int, int]:
            result, stored = self._create_transfer(transfers[index], first + index)
            # OK names the transfer stored; an EXISTS* result names the original.
            return (result, stored.timestamp, stored.amount) if stored is not None else (result, 0, 0)

        def exists_only(index: int) -> tuple[int, int, int]:
            result, stored = self._transfer_prefix(transfers[index])
            return (result, stored.timestamp, stored.amount) if stored is not None else (result, 0, 0)

        results = self._run_chain_batch([bool(t.flags & TF.LINKED) for t in transfers], apply, exists_only, TR.EXISTS)
        entries = b"".join(self._transfers[transfers[i].id].pack() for i, (r, _, _) in enumerate(results) if r == TR.OK)
        self._verify()
        return TransfersApplied(
            results=b"".join(TRANSFER_RESULT_STRUCT.pack(r, 0, ts, amount) for r, ts, amount in results),
            entries=entries,
            expired=expired,
            timestamp_first=first,
            timestamp_last=self._timestamp_last,
            balances=self._take_history(),
        )

    def _transfer_prefix(self, t: Transfer) -> tuple[TR, Transfer | None]:
        """The ladder up to the idempotency check; UNSPECIFIED when it passes."""
        if t.timestamp != 0:
            return TR.TIMESTAMP_MUST_BE_ZERO, None
        if t.reserved != 0:
            return TR.RESERVED_FIELD, None
        if t.flags & ~TRANSFER_FLAGS_KNOWN:
            return TR.RESERVED_FLAG, None
        if t.id == 0:
            return TR.ID_MUST_NOT_BE_ZERO, None
        if t.id == ID_INT_MAX:
            return TR.ID_MUST_NOT_BE_INT_MAX, None
        existing = self._transfers.get(t.id)
        if existing is not None:
            return _transfer_exists(t, existing), existing
        return TR.UNSPECIFIED, None

    def _create_transfer(self, t: Transfer, timestamp: int) -> tuple[TR, Transfer | None]:
        result, existing = self._transfer_prefix(t)
        if result != TR.UNSPECIFIED:
            return result, existing
        flags = t.flags
        if (
            (flags & TF.PENDING and flags & _POST_OR_VOID)
            or (flags & TF.POST_PENDING_TRANSFER and flags & TF.VOID_PENDING_TRANSFER)
            or (flags & _POST_OR_VOID and flags & (_BALANCING | _CLOSING))
        ):
            return TR.FLAGS_ARE_MUTUALLY_EXCLUSIVE, None
        if flags & _POST_OR_VOID:
            return self._post_or_void(t, timestamp)
        if t.debit_account_id == 0:
            return TR.DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO, None
        if t.debit_account_id == ID_INT_MAX:
            return TR.DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX, None
        if t.credit_account_id == 0:
            return TR.CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO, None
        if t.credit_account_id == ID_INT_MAX:
            return TR.CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX, None
        if t.debit_account_id == t.credit_account_id:
            return TR.ACCOUNTS_MUST_BE_DIFFERENT, None
        if t.pending_id != 0:
            return TR.PENDING_ID_MUST_BE_ZERO, None
        pending = bool(flags & TF.PENDING)
        if not pending:
            if t.timeout != 0:
                return TR.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER, None
            if flags & _CLOSING:
                return TR.CLOSING_TRANSFER_MUST_BE_PENDING, None
        if t.amount == 0:
            return TR.AMOUNT_MUST_NOT_BE_ZERO, None
        if t.amount > AMOUNT_MAX:
            return TR.AMOUNT_EXCEEDS_MAX, None
        if t.ledger == 0:
            return TR.LEDGER_MUST_NOT_BE_ZERO, None
        if t.code == 0:
            return TR.CODE_MUST_NOT_BE_ZERO, None
        dr = self._accounts.get(t.debit_account_id)
        if dr is None:
            return TR.DEBIT_ACCOUNT_NOT_FOUND, None
        cr = self._accounts.get(t.credit_account_id)
        if cr is None:
            return TR.CREDIT_ACCOUNT_NOT_FOUND, None
        if dr.record.ledger != cr.record.ledger:
            return TR.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER, None
        if t.ledger != dr.record.ledger:
            return TR.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS, None
        if dr.flags & AF.CLOSED:
            return TR.DEBIT_ACCOUNT_ALREADY_CLOSED, None
        if cr.flags & AF.CLOSED:
            return TR.CREDIT_ACCOUNT_ALREADY_CLOSED, None
        amount = t.amount
        if flags & TF.BALANCING_DEBIT:
            amount = min(amount, max(0, dr.credits_posted - dr.debits_posted - dr.debits_pending))
            if amount == 0:
                return TR.EXCEEDS_CREDITS, None
        if flags & TF.BALANCING_CREDIT:
            amount = min(amount, max(0, cr.debits_posted - cr.credits_posted - cr.credits_pending))
            if amount == 0:
                return TR.EXCEEDS_DEBITS, None
        if pending:
            if dr.debits_pending + amount > AMOUNT_MAX:
                return TR.OVERFLOWS_DEBITS_PENDING, None
            if cr.credits_pending + amount > AMOUNT_MAX:
                return TR.OVERFLOWS_CREDITS_PENDING, None
        else:
            if dr.debits_posted + amount > AMOUNT_MAX:
                return TR.OVERFLOWS_DEBITS_POSTED, None
            if cr.credits_posted + amount > AMOUNT_MAX:
                return TR.OVERFLOWS_CREDITS_POSTED, None
        if dr.debits_pending + dr.debits_posted + amount > AMOUNT_MAX:
            return TR.OVERFLOWS_DEBITS, None
        if cr.credits_pending + cr.credits_posted + amount > AMOUNT_MAX:
            return TR.OVERFLOWS_CREDITS, None
        if pending and timestamp + t.timeout * NANOSECONDS_PER_SECOND > TIMESTAMP_MAX:
            return TR.OVERFLOWS_TIMEOUT, None
        if (
            dr.flags & AF.DEBITS_MUST_NOT_EXCEED_CREDITS
            and dr.debits_pending + dr.debits_posted + amount > dr.credits_posted
        ):
            return TR.EXCEEDS_CREDITS, None
        if (
            cr.flags & AF.CREDITS_MUST_NOT_EXCEED_DEBITS
            and cr.credits_pending + cr.credits_posted + amount > cr.debits_posted
        ):
            return TR.EXCEEDS_DEBITS, None
        if len(self._transfers) >= self._config.transfers_max:
            return TR.TRANSFERS_FULL, None
        if pending and self._pending_count >= self._config.pending_transfers_max:
            return TR.PENDING_TRANSFERS_FULL, None
        stored = _stored(t, t.debit_account_id, t.credit_account_id, t.ledger, t.code, amount, timestamp)
        self._apply_created(stored, dr, cr)
        return TR.OK, stored

    def _apply_created(self, stored: Transfer, dr: _Balances, cr: _Balances) -> None:
        """Book a plain or pending transfer that has passed every check (or is replayed)."""
        self._touch(dr)
        self._touch(cr)
        amount = stored.amount
        if stored.flags & TF.PENDING:
            dr.debits_pending += amount
            cr.credits_pending += amount
            if stored.flags & TF.CLOSING_DEBIT:
                dr.flags |= AF.CLOSED
            if stored.flags & TF.CLOSING_CREDIT:
                cr.flags |= AF.CLOSED
        else:
            dr.debits_posted += amount
            cr.credits_posted += amount
        self._note_balances(stored.timestamp, dr, cr)
        self._remember(stored)
        if stored.flags & TF.PENDING:
            self._status[stored.id] = TransferStatus.PENDING
            self._pending_count += 1
            if stored.timeout:
                entry = (stored.timestamp + stored.timeout * NANOSECONDS_PER_SECOND, stored.timestamp, stored.id)
                if self._chain is not None:
                    self._chain.expiries.append(entry)
                else:
                    heapq.heappush(self._expiry_heap, entry)

    def _remember(self, stored: Transfer) -> None:
        self._transfers[stored.id] = stored
        if self._chain is not None:
            self._chain.transfers.append(stored.id)

    def _post_or_void(self, t: Transfer, timestamp: int) -> tuple[TR, Transfer | None]:
        if t.pending_id == 0:
            return TR.PENDING_ID_MUST_NOT_BE_ZERO, None
        if t.pending_id == ID_INT_MAX:
            return TR.PENDING_ID_MUST_NOT_BE_INT_MAX, None
        if t.pending_id == t.id:
            return TR.PENDING_ID_MUST_BE_DIFFERENT, None
        if t.timeout != 0:
            return TR.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER, None
        if t.amount > AMOUNT_MAX:
            return TR.AMOUNT_EXCEEDS_MAX, None
        hold = self._transfers.get(t.pending_id)
        if hold is None:
            return TR.PENDING_TRANSFER_NOT_FOUND, None
        if not hold.flags & TF.PENDING:
            return TR.PENDING_TRANSFER_NOT_PENDING, None
        if t.debit_account_id != 0 and t.debit_account_id != hold.debit_account_id:
            return TR.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID, None
        if t.credit_account_id != 0 and t.credit_account_id != hold.credit_account_id:
            return TR.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID, None
        if t.ledger != 0 and t.ledger != hold.ledger:
            return TR.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER, None
        if t.code != 0 and t.code != hold.code:
            return TR.PENDING_TRANSFER_HAS_DIFFERENT_CODE, None
        post = bool(t.flags & TF.POST_PENDING_TRANSFER)
        if post:
            amount = t.amount or hold.amount
            if amount > hold.amount:
                return TR.EXCEEDS_PENDING_TRANSFER_AMOUNT, None
        else:
            if t.amount != 0 and t.amount != hold.amount:
                return TR.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT, None
            amount = hold.amount
        status = self._status[hold.id]
        if status == TransferStatus.POSTED:
            return TR.PENDING_TRANSFER_ALREADY_POSTED, None
        if status == TransferStatus.VOIDED:
            return TR.PENDING_TRANSFER_ALREADY_VOIDED, None
        if status == TransferStatus.EXPIRED:
            return TR.PENDING_TRANSFER_EXPIRED, None
        dr = self._accounts[hold.debit_account_id]
        cr = self._accounts[hold.credit_account_id]
        if post:
            if dr.flags & AF.CLOSED and not hold.flags & TF.CLOSING_DEBIT:
                return TR.DEBIT_ACCOUNT_ALREADY_CLOSED, None
            if cr.flags & AF.CLOSED and not hold.flags & TF.CLOSING_CREDIT:
                return TR.CREDIT_ACCOUNT_ALREADY_CLOSED, None
            if dr.debits_posted + amount > AMOUNT_MAX:
                return TR.OVERFLOWS_DEBITS_POSTED, None
            if cr.credits_posted + amount > AMOUNT_MAX:
                return TR.OVERFLOWS_CREDITS_POSTED, None
        if len(self._transfers) >= self._config.transfers_max:
            return TR.TRANSFERS_FULL, None
        stored = _stored(t, hold.debit_account_id, hold.credit_account_id, hold.ledger, hold.code, amount, timestamp)
        self._apply_resolution(stored, hold)
        return TR.OK, stored

    def _apply_resolution(self, stored: Transfer, hold: Transfer) -> None:
        """Book a post or void that has passed every check (or is replayed)."""
        post = bool(stored.flags & TF.POST_PENDING_TRANSFER)
        self._release_hold(hold, TransferStatus.POSTED if post else TransferStatus.VOIDED)
        dr = self._accounts[hold.debit_account_id]
        cr = self._accounts[hold.credit_account_id]
        if post:
            dr.debits_posted += stored.amount
            cr.credits_posted += stored.amount
        self._note_balances(stored.timestamp, dr, cr)
        self._remember(stored)

    def _take_history(self) -> bytes:
        history, self._history = b"".join(self._history), []
        return history

    def _note_balances(self, timestamp: int, dr: _Balances, cr: _Balances) -> None:
        for account in (dr, cr):
            if account.flags & AF.HISTORY:
                self._history.append(
                    ACCOUNT_BALANCE_STRUCT.pack(
                        account.record.id & _U64_MASK,
                        account.record.id >> 64,
                        timestamp,
                        account.debits_pending,
                        account.debits_posted,
                        account.credits_pending,
                        account.credits_posted,
                        0,
                    )
                )

    # -- reads ---------------------------------------------------------------

    def lookup_accounts(self, ids: Buffer) -> bytes:
        check_batch(ids, ID_SIZE, "ids")
        found = (self._accounts.get(i) for i in unpack_ids(ids))
        return b"".join(b.to_record().pack() for b in found if b is not None)

    def lookup_transfers(self, ids: Buffer) -> bytes:
        check_batch(ids, ID_SIZE, "ids")
        found = (self._transfers.get(i) for i in unpack_ids(ids))
        return b"".join(t.pack() for t in found if t is not None)

    def transfer_status(self, transfer_id: int) -> int:
        return int(self._status.get(transfer_id, TransferStatus.NONE))

    def stats(self) -> EngineStats:
        return EngineStats(
            accounts_count=len(self._accounts),
            transfers_count=len(self._transfers),
            pending_transfers_count=self._pending_count,
            timestamp_last=self._timestamp_last,
        )

    # -- checkpoints and replay ---------------------------------------------

    def export_state(self) -> EngineState:
        accounts = sorted((b.to_record() for b in self._accounts.values()), key=lambda a: a.timestamp)
        transfers = list(self._transfers.values())
        return EngineState(
            accounts=b"".join(a.pack() for a in accounts),
            transfers=b"".join(t.pack() for t in transfers),
            transfer_status=bytes(self._status.get(t.id, TransferStatus.NONE) for t in transfers),
            timestamp_last=self._timestamp_last,
        )

    def export_snapshot(self) -> EngineSnapshot:
        accounts = sorted((b.to_record() for b in self._accounts.values()), key=lambda a: a.timestamp)
        return EngineSnapshot(
            accounts=b"".join(a.pack() for a in accounts),
            transfer_status=bytes(self._status.get(i, TransferStatus.NONE) for i in self._transfers),
            timestamp_last=self._timestamp_last,
        )

    def import_state(self, state: EngineState) -> None:
        if self._accounts or self._transfers:
            raise StateMismatch("import_state needs an empty engine")
        if len(state.accounts) % ACCOUNT_SIZE:
            raise StateMismatch("state holds a partial record")
        accounts = unpack_accounts(state.accounts)
        if len(accounts) > self._config.accounts_max:
            raise StateMismatch("state exceeds the configured capacity")
        for a in accounts:
            self._accounts[a.id] = _Balances(a)
        self._timestamp_last = state.timestamp_last
        self.restore_transfers(state.transfers, state.transfer_status)

    def restore_transfers(self, entries: Buffer, transfer_status: Buffer) -> None:
        if len(entries) % TRANSFER_SIZE:
            raise StateMismatch("state holds a partial record")
        transfers = unpack_transfers(entries)
        if len(transfer_status) != len(transfers):
            raise StateMismatch("transfer_status must hold one byte per transfer")
        for t, status in zip(transfers, bytes(transfer_status), strict=True):
            # One by one up to the one refused, as replay does: recovery names that one's commit.
            if len(self._transfers) >= self._config.transfers_max:
                raise StateMismatch("state exceeds the configured capacity")
            if t.id in self._transfers:
                raise StateMismatch(f"transfer {t.id} appears twice")
            open_hold = bool(t.flags & TF.PENDING) and status == TransferStatus.PENDING
            if open_hold and self._pending_count >= self._config.pending_transfers_max:
                limit = self._config.pending_transfers_max
                raise StateMismatch(f"state holds more than pending_transfers_max={limit} open holds")
            self._transfers[t.id] = t
            if t.flags & TF.PENDING:
                self._status[t.id] = TransferStatus(status)
                if open_hold:
                    self._pending_count += 1
                    if t.timeout:
                        heapq.heappush(
                            self._expiry_heap, (t.timestamp + t.timeout * NANOSECONDS_PER_SECOND, t.timestamp, t.id)
                        )

    def verify(self) -> None:
        self._verify()

    def replay_accounts(self, entries: Buffer, timestamp_last: int) -> None:
        check_batch(entries, ACCOUNT_SIZE, "account entries")
        for a in unpack_accounts(entries):
            if a.id in self._accounts or len(self._accounts) >= self._config.accounts_max:
                raise StateMismatch(f"account {a.id} cannot be replayed: it exists or the table is full")
            self._accounts[a.id] = _Balances(a)
        self._timestamp_last = max(self._timestamp_last, timestamp_last)

    def replay_transfers(self, expired: Buffer, entries: Buffer, timestamp_first: int, timestamp_last: int) -> None:
        check_batch(entries, TRANSFER_SIZE, "transfer entries")
        self._history = []
        for hold_id in unpack_ids(expired):
            if self._status.get(hold_id) != TransferStatus.PENDING:
                raise StateMismatch(f"expired transfer {hold_id} is not a pending hold")
            self._release_hold(self._transfers[hold_id], TransferStatus.EXPIRED)
        for t in unpack_transfers(entries):
            if t.id in self._transfers or len(self._transfers) >= self._config.transfers_max:
                raise StateMismatch(f"transfer {t.id} cannot be replayed: it exists or the table is full")
            if t.flags & _POST_OR_VOID:
                hold = self._transfers.get(t.pending_id)
                if hold is None or self._status.get(hold.id) != TransferStatus.PENDING:
                    raise StateMismatch(f"transfer {t.id} resolves {t.pending_id}, which is not a pending hold")
                self._apply_resolution(t, hold)
            else:
                dr = self._accounts.get(t.debit_account_id)
                cr = self._accounts.get(t.credit_account_id)
                if t.flags & TF.PENDING and self._pending_count >= self._config.pending_transfers_max:
                    limit = self._config.pending_transfers_max
                    raise StateMismatch(f"replayed holds exceed pending_transfers_max={limit}")
                if dr is None or cr is None:
                    raise StateMismatch(f"transfer {t.id} names an account that does not exist")
                self._apply_created(t, dr, cr)
        self._timestamp_last = max(self._timestamp_last, timestamp_last)
        self._history = []
        self._verify()

    # -- invariants ------------------------------------------------------------

    def _verify(self) -> None:
        if not self._config.verify:
            return
        debits_pending = debits_posted = credits_pending = credits_posted = 0
        for b in self._accounts.values():
            debits_pending += b.debits_pending
            debits_posted += b.debits_posted
            credits_pending += b.credits_pending
            credits_posted += b.credits_posted
            assert b.debits_pending + b.debits_posted <= AMOUNT_MAX
            assert b.credits_pending + b.credits_posted <= AMOUNT_MAX
            if b.flags & AF.DEBITS_MUST_NOT_EXCEED_CREDITS:
                assert b.debits_pending + b.debits_posted <= b.credits_posted, b.record.id
            if b.flags & AF.CREDITS_MUST_NOT_EXCEED_DEBITS:
                assert b.credits_pending + b.credits_posted <= b.debits_posted, b.record.id
        assert debits_pending == credits_pending
        assert debits_posted == credits_posted
        held = sum(self._transfers[i].amount for i, s in self._status.items() if s == TransferStatus.PENDING)
        assert held == debits_pending
        assert self._pending_count == sum(1 for s in self._status.values() if s == TransferStatus.PENDING)

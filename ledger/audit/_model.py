"""The auditor's own model of the money rules, rebuilt from the journal's records alone.

It is deliberately not the ledger's engine (neither the Cython one nor the
Python reference): it restates the rules the README gives for what a stored
transfer means, and checks each record against the balances before it. A
stored record is an outcome, so the model asks of each one whether it is an
outcome the rules allow, in the place the journal puts it:

- a plain transfer moves its amount from posted debits to posted credits; a
  hold (PENDING) reserves it in the pending balances; a post releases the
  hold and moves the stored amount (at most the hold's); a void releases it;
  an expiry recorded in the journal releases it at its place, no earlier
  than the hold's timeout allowed;
- a balancing transfer's stored amount is what moved, so it must be at most
  what the account had available before it;
- a closing hold closes its account; voiding or expiring it reopens it;
  nothing new may touch a closed account;
- no balance past 2^63 - 1, no account with `debits_must_not_exceed_credits`
  whose debits (pending and posted) pass its posted credits (and likewise
  the other way), debits equal credits in every ledger, the holds left open
  add up to the pending balances.

Its limits and flag bits are written out here from the README on purpose, so
that a wrong constant in the ledger shows up as a disagreement instead of
being shared; tests/unit/test_audit_model.py checks they say the same.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final, NamedTuple

AMOUNT_MAX: Final = 2**63 - 1
TIMESTAMP_MAX: Final = 2**63 - 1
ID_MAX: Final = 2**128 - 1
NANOSECONDS_PER_SECOND: Final = 1_000_000_000


class AF:
    """Account flags (README, "The journal's byte format")."""

    LINKED: Final = 1 << 0
    DEBITS_MUST_NOT_EXCEED_CREDITS: Final = 1 << 1
    CREDITS_MUST_NOT_EXCEED_DEBITS: Final = 1 << 2
    HISTORY: Final = 1 << 3
    CLOSED: Final = 1 << 4
    KNOWN: Final = (1 << 5) - 1


class TF:
    """Transfer flags."""

    LINKED: Final = 1 << 0
    PENDING: Final = 1 << 1
    POST_PENDING_TRANSFER: Final = 1 << 2
    VOID_PENDING_TRANSFER: Final = 1 << 3
    BALANCING_DEBIT: Final = 1 << 4
    BALANCING_CREDIT: Final = 1 << 5
    CLOSING_DEBIT: Final = 1 << 6
    CLOSING_CREDIT: Final = 1 << 7
    KNOWN: Final = (1 << 8) - 1


class Status:
    """A transfer's status byte in a checkpoint: 0 for every transfer that is not a hold."""

    NONE: Final = 0
    PENDING: Final = 1
    POSTED: Final = 2
    VOIDED: Final = 3
    EXPIRED: Final = 4


STATUS_NAMES: Final = {Status.PENDING: "pending", Status.POSTED: "posted", Status.VOIDED: "voided",
                       Status.EXPIRED: "expired"}  # fmt: skip

# Records, little-endian; a 128-bit value is its low then its high 64 bits.
ACCOUNT_RECORD: Final = struct.Struct("<QQQQQQIHHQQQQII32s")
TRANSFER_RECORD: Final = struct.Struct("<QQQQQQQQQQQQIIIHHQQ")
BALANCE_RECORD: Final = struct.Struct("<QQQQQQQQ")
EXPIRED_RECORD: Final = struct.Struct("<QQQ")
_RESERVED_32: Final = bytes(32)
BALANCE_FIELDS: Final = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")


class Violation(Exception):
    """A record the rules do not allow where the journal puts it; the message says which rule."""


@dataclass(slots=True)
class AccountState:
    id: int
    ledger: int
    code: int
    flags: int
    timestamp: int
    user_data_128: int
    user_data_64: int
    user_data_32: int
    ordinal: int
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    def balances(self) -> tuple[int, int, int, int]:
        return (self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted)

    def record(self) -> bytes:
        """The account as a checkpoint stores it: the record as created, with today's balances and flags."""
        return ACCOUNT_RECORD.pack(
            self.id & 0xFFFF_FFFF_FFFF_FFFF, self.id >> 64,
            self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted,
            self.ledger, self.code, self.flags, self.timestamp,
            self.user_data_128 & 0xFFFF_FFFF_FFFF_FFFF, self.user_data_128 >> 64,
            self.user_data_64, self.user_data_32, 0, _RESERVED_32,
        )  # fmt: skip


@dataclass(slots=True)
class Hold:
    id: int
    debit: AccountState
    credit: AccountState
    amount: int
    ledger: int
    code: int
    flags: int
    timestamp: int
    timeout: int
    ordinal: int
    status: int = Status.PENDING

    @property
    def expires_at(self) -> int | None:
        return self.timestamp + self.timeout * NANOSECONDS_PER_SECOND if self.timeout else None


class TransferRecord(NamedTuple):
    """A stored transfer (a tuple: made once per transfer read, so it costs little)."""

    id: int
    debit_account_id: int
    credit_account_id: int
    amount: int
    pending_id: int
    user_data_128: int
    user_data_64: int
    user_data_32: int
    timeout: int
    ledger: int
    code: int
    flags: int
    timestamp: int
    reserved: int

    @classmethod
    def unpack(cls, record: tuple[int, ...]) -> TransferRecord:
        (id_lo, id_hi, dr_lo, dr_hi, cr_lo, cr_hi, amount, p_lo, p_hi, u128_lo, u128_hi, u64, u32,
         timeout, ledger, code, flags, timestamp, reserved) = record  # fmt: skip
        return cls(
            id_lo | id_hi << 64, dr_lo | dr_hi << 64, cr_lo | cr_hi << 64, amount, p_lo | p_hi << 64,
            u128_lo | u128_hi << 64, u64, u32, timeout, ledger, code, flags, timestamp, reserved,
        )  # fmt: skip


def transfer_records(blob: bytes) -> Iterator[TransferRecord]:
    """The transfer records of a commit's raw `transfers` blob, in order."""
    return map(TransferRecord.unpack, TRANSFER_RECORD.iter_unpack(blob))


@dataclass
class Tally:
    """What the journal holds, counted as the model goes."""

    accounts: int = 0
    transfers: int = 0
    holds: int = 0
    resolved: Counter[str] = field(default_factory=Counter)
    balancing: int = 0
    linked: int = 0
    closing: int = 0
    balance_entries: int = 0
    domain_commits: int = 0
    """Commits that carry domain records (opaque to the audit: counted, covered by the checksum, not read)."""
    domain_bytes: int = 0


class Books:
    """Every account's balances and every hold, as the records so far make them."""

    def __init__(self) -> None:
        self.accounts: dict[int, AccountState] = {}
        self.account_order: list[AccountState] = []
        self.holds: dict[int, Hold] = {}
        self.transfer_ids: set[int] = set()
        self.status = bytearray()
        """One byte per transfer in journal order, as a checkpoint holds them."""
        self.account_timestamp_last = 0
        self.transfer_timestamp_last = 0
        self.tally = Tally()

    # -- accounts ------------------------------------------------------------------------------

    def create_account(self, record: tuple[int, ...], reserved_tail: bytes) -> AccountState:
        (id_lo, id_hi, dp, dpo, cp, cpo, ledger, code, flags, timestamp, u128_lo, u128_hi, u64, u32,
         reserved) = record  # fmt: skip
        account_id = id_lo | id_hi << 64
        if account_id in (0, ID_MAX):
            raise Violation(f"account id {account_id} is reserved")
        if account_id in self.accounts:
            raise Violation(f"account {account_id} was created before (ordinal {self.accounts[account_id].ordinal})")
        if reserved or reserved_tail != _RESERVED_32:
            raise Violation("reserved bytes are not zero")
        if flags & ~AF.KNOWN:
            raise Violation(f"unknown account flags {flags & ~AF.KNOWN:#x}")
        if flags & AF.DEBITS_MUST_NOT_EXCEED_CREDITS and flags & AF.CREDITS_MUST_NOT_EXCEED_DEBITS:
            raise Violation("both debits_must_not_exceed_credits and credits_must_not_exceed_debits")
        if (dp, dpo, cp, cpo) != (0, 0, 0, 0):
            raise Violation(f"created with balances {dp}, {dpo}, {cp}, {cpo} (accounts are created with zero)")
        if ledger == 0 or code == 0:
            raise Violation("ledger and code must not be 0")
        if timestamp <= self.account_timestamp_last:
            previous = self.account_timestamp_last
            raise Violation(f"timestamp {timestamp} is not after the previous account's ({previous})")
        self.account_timestamp_last = timestamp
        account = AccountState(
            account_id, ledger, code, flags, timestamp, u128_lo | u128_hi << 64, u64, u32, len(self.account_order)
        )
        self.accounts[account_id] = account
        self.account_order.append(account)
        self.tally.accounts += 1
        return account

    # -- transfers -----------------------------------------------------------------------------

    def expire(self, hold_id: int, not_before: int, ordinal: int) -> Hold:
        """Release a hold the journal says expired before transfer `ordinal`, in a call no earlier than `not_before`."""
        hold = self.holds.get(hold_id)
        if hold is None:
            raise Violation(f"hold {hold_id} expires, but no such hold was journaled before transfer {ordinal}")
        if hold.status != Status.PENDING:
            raise Violation(f"hold {hold_id} expires, but it is already {STATUS_NAMES[hold.status]}")
        expires_at = hold.expires_at
        if expires_at is None:
            raise Violation(f"hold {hold_id} has no timeout and cannot expire")
        if expires_at > not_before:
            raise Violation(f"hold {hold_id} expires at {expires_at}, but is released by a call at {not_before}")
        self._release(hold, Status.EXPIRED)
        return hold

    def _release(self, hold: Hold, status: int) -> None:
        hold.debit.debits_pending -= hold.amount
        hold.credit.credits_pending -= hold.amount
        if status != Status.POSTED:
            if hold.flags & TF.CLOSING_DEBIT:
                hold.debit.flags &= ~AF.CLOSED
            if hold.flags & TF.CLOSING_CREDIT:
                hold.credit.flags &= ~AF.CLOSED
        hold.status = status
        self.status[hold.ordinal] = status
        self.tally.resolved[STATUS_NAMES[status]] += 1

    def apply_transfer(self, t: TransferRecord, ordinal: int) -> tuple[AccountState, AccountState]:
        """Check one stored transfer against the books and book it; the two accounts it touched."""
        if t.id in (0, ID_MAX):
            raise Violation(f"transfer id {t.id} is reserved")
        if t.id in self.transfer_ids:
            raise Violation(f"transfer id {t.id} was journaled before")
        if t.reserved:
            raise Violation("reserved bytes are not zero")
        if t.flags & ~TF.KNOWN:
            raise Violation(f"unknown transfer flags {t.flags & ~TF.KNOWN:#x}")
        if t.timestamp <= self.transfer_timestamp_last:
            raise Violation(
                f"timestamp {t.timestamp} is not after the previous transfer's ({self.transfer_timestamp_last})"
            )
        resolves = t.flags & (TF.POST_PENDING_TRANSFER | TF.VOID_PENDING_TRANSFER)
        if (
            (t.flags & TF.PENDING and resolves)
            or resolves == TF.POST_PENDING_TRANSFER | TF.VOID_PENDING_TRANSFER
            or (
                resolves and t.flags & (TF.BALANCING_DEBIT | TF.BALANCING_CREDIT | TF.CLOSING_DEBIT | TF.CLOSING_CREDIT)
            )
        ):
            raise Violation(f"flags {t.flags:#x} are mutually exclusive")
        if t.amount == 0 or t.amount > AMOUNT_MAX:
            raise Violation(f"amount {t.amount} is outside 1..{AMOUNT_MAX} (stored amounts are what moved)")
        if t.ledger == 0 or t.code == 0:
            raise Violation("ledger and code must not be 0")
        debit, credit = self._resolve(t) if resolves else self._create(t, ordinal)
        for account in (debit, credit):
            _check_limits(account)
        self.transfer_ids.add(t.id)
        self.status.append(Status.PENDING if t.flags & TF.PENDING else Status.NONE)
        self.transfer_timestamp_last = t.timestamp
        self.tally.transfers += 1
        self.tally.balancing += bool(t.flags & (TF.BALANCING_DEBIT | TF.BALANCING_CREDIT))
        self.tally.linked += bool(t.flags & TF.LINKED)
        self.tally.closing += bool(t.flags & (TF.CLOSING_DEBIT | TF.CLOSING_CREDIT))
        return debit, credit

    def _create(self, t: TransferRecord, ordinal: int) -> tuple[AccountState, AccountState]:
        debit = self._account(t.debit_account_id, "debit", t.timestamp)
        credit = self._account(t.credit_account_id, "credit", t.timestamp)
        if debit is credit:
            raise Violation("debit and credit accounts are the same")
        if t.pending_id != 0:
            raise Violation(f"pending_id {t.pending_id} on a transfer that neither posts nor voids")
        if not debit.ledger == credit.ledger == t.ledger:
            raise Violation(f"ledger {t.ledger}, accounts in ledgers {debit.ledger} and {credit.ledger}")
        pending = bool(t.flags & TF.PENDING)
        if not pending and (t.timeout or t.flags & (TF.CLOSING_DEBIT | TF.CLOSING_CREDIT)):
            raise Violation("a timeout or closing flag on a transfer that is not a hold")
        for account, side in ((debit, "debit"), (credit, "credit")):
            if account.flags & AF.CLOSED:
                raise Violation(f"{side} account {account.id} is closed")
        if t.flags & TF.BALANCING_DEBIT:
            available = max(0, debit.credits_posted - debit.debits_posted - debit.debits_pending)
            if t.amount > available:
                raise Violation(f"balancing debit moved {t.amount}, debit account {debit.id} had {available}")
        if t.flags & TF.BALANCING_CREDIT:
            available = max(0, credit.debits_posted - credit.credits_posted - credit.credits_pending)
            if t.amount > available:
                raise Violation(f"balancing credit moved {t.amount}, credit account {credit.id} had {available}")
        if pending:
            if t.timestamp + t.timeout * NANOSECONDS_PER_SECOND > TIMESTAMP_MAX:
                raise Violation(f"timeout {t.timeout} s overflows the timestamp")
            debit.debits_pending += t.amount
            credit.credits_pending += t.amount
            if t.flags & TF.CLOSING_DEBIT:
                debit.flags |= AF.CLOSED
            if t.flags & TF.CLOSING_CREDIT:
                credit.flags |= AF.CLOSED
            self.holds[t.id] = Hold(
                t.id, debit, credit, t.amount, t.ledger, t.code, t.flags, t.timestamp, t.timeout, ordinal
            )
            self.tally.holds += 1
        else:
            debit.debits_posted += t.amount
            credit.credits_posted += t.amount
        return debit, credit

    def _account(self, account_id: int, side: str, timestamp: int) -> AccountState:
        account = self.accounts.get(account_id)
        if account is None or account.timestamp >= timestamp:
            raise Violation(f"{side} account {account_id} does not exist at {timestamp}")
        return account

    def _resolve(self, t: TransferRecord) -> tuple[AccountState, AccountState]:
        post = bool(t.flags & TF.POST_PENDING_TRANSFER)
        what = "post" if post else "void"
        hold = self.holds.get(t.pending_id)
        if hold is None:
            raise Violation(f"{what} of {t.pending_id}, which is not a hold journaled before it")
        if hold.status != Status.PENDING:
            raise Violation(f"{what} of hold {hold.id}, which is already {STATUS_NAMES[hold.status]}")
        if t.timeout:
            raise Violation(f"a timeout on a {what}")
        stored_as_hold = (hold.debit.id, hold.credit.id, hold.ledger, hold.code)
        if (t.debit_account_id, t.credit_account_id, t.ledger, t.code) != stored_as_hold:
            raise Violation(f"the {what} names other accounts, ledger or code than hold {hold.id}")
        if post:
            if t.amount > hold.amount:
                raise Violation(f"posts {t.amount}, more than hold {hold.id} reserved ({hold.amount})")
            for account, side, closing in ((hold.debit, "debit", TF.CLOSING_DEBIT),
                                           (hold.credit, "credit", TF.CLOSING_CREDIT)):  # fmt: skip
                if account.flags & AF.CLOSED and not hold.flags & closing:
                    raise Violation(f"{side} account {account.id} is closed")
        elif t.amount != hold.amount:
            raise Violation(f"voids {t.amount}, hold {hold.id} reserved {hold.amount}")
        self._release(hold, Status.POSTED if post else Status.VOIDED)
        if post:
            hold.debit.debits_posted += t.amount
            hold.credit.credits_posted += t.amount
        return hold.debit, hold.credit

    # -- the whole -----------------------------------------------------------------------------

    def ledgers(self) -> dict[int, LedgerTotals]:
        """Per ledger: the four balances summed, and the holds left open."""
        totals: dict[int, LedgerTotals] = {}
        for account in self.account_order:
            entry = totals.setdefault(account.ledger, LedgerTotals())
            entry.accounts += 1
            entry.debits_pending += account.debits_pending
            entry.debits_posted += account.debits_posted
            entry.credits_pending += account.credits_pending
            entry.credits_posted += account.credits_posted
        for hold in self.holds.values():
            if hold.status == Status.PENDING:
                totals[hold.ledger].holds_open += hold.amount
        return totals

    def check_invariants(self) -> None:
        """Debits equal credits in every ledger, and the open holds are exactly the pending balances."""
        for ledger, t in sorted(self.ledgers().items()):
            if t.debits_posted != t.credits_posted:
                raise Violation(
                    f"ledger {ledger}: posted debits {t.debits_posted} != posted credits {t.credits_posted}"
                )
            if not t.debits_pending == t.credits_pending == t.holds_open:
                raise Violation(
                    f"ledger {ledger}: pending debits {t.debits_pending}, pending credits {t.credits_pending}, "
                    f"open holds {t.holds_open}"
                )
        for account in self.account_order:
            _check_limits(account)


@dataclass
class LedgerTotals:
    accounts: int = 0
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0
    holds_open: int = 0


def _check_limits(account: AccountState) -> None:
    debits = account.debits_pending + account.debits_posted
    credits = account.credits_pending + account.credits_posted
    # Posted balances only ever grow, so these bound all four balances (the usual case: one comparison each).
    if account.debits_pending < 0 or account.credits_pending < 0 or debits > AMOUNT_MAX or credits > AMOUNT_MAX:
        for name, value in zip(BALANCE_FIELDS, account.balances(), strict=True):
            if not 0 <= value <= AMOUNT_MAX:
                raise Violation(f"account {account.id}: {name} {value} is outside 0..{AMOUNT_MAX}")
        raise Violation(f"account {account.id}: pending and posted together pass {AMOUNT_MAX}")
    if account.flags & AF.DEBITS_MUST_NOT_EXCEED_CREDITS and debits > account.credits_posted:
        raise Violation(
            f"account {account.id} (debits_must_not_exceed_credits): debits {debits} pass its posted credits "
            f"{account.credits_posted}"
        )
    if account.flags & AF.CREDITS_MUST_NOT_EXCEED_DEBITS and credits > account.debits_posted:
        raise Violation(
            f"account {account.id} (credits_must_not_exceed_debits): credits {credits} pass its posted debits "
            f"{account.debits_posted}"
        )

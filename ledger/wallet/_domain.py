"""The wallet domain: every operation a ladder of checks, then one atomic chain of core transfers.

Each operation runs synchronously inside one `Operation` of the core ledger (the engine's single writer):
it checks the request in a fixed order (the first rule broken gives the result code), builds its chain of
transfers, applies it to the engine, and on success applies its facts to the domain state and records them
(ledger.wallet._state) in the same journal commit as the transfers. Nothing awaits in between, so no other
operation interleaves. The caller then waits for the commit to be durable before it answers.

Idempotency: every write carries the caller's key. The chain's transfer ids are derived from it
(ledger.wallet._ids), and the first transfer of the chain carries the request's fingerprint, so a retry
finds the chain in the engine and its reply is rebuilt from it (payments and top-ups keep nothing else in
memory); operations whose reply the chain cannot rebuild (those that moved nothing, refunds, captures,
voids) keep it in the domain state. The same key with another request is IDEMPOTENCY_KEY_REUSED.

Spending order: credit that expires soonest goes first, then credit that never expires. Expired credit is
never spendable: what a wallet may spend leaves out every grant past its expiry, even before the sweep
has moved it to breakage. A hold reserves credit in the same order; credit a hold reserves stays reserved
past its expiry (the authorisation was given while it was valid), so a capture may spend it; what a void
or the hold's own expiry releases goes back to its grant and, if that has expired, to breakage at the
next sweep, never to be spent meanwhile.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import logging
import os
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol, TypeVar

from ledger.records.codes import AccountFlags, CreateAccountResult, CreateTransferResult, TransferFlags
from ledger.records.layout import (
    ACCOUNT_CREDITS_POSTED_OFFSET,
    ACCOUNT_DEBITS_PENDING_OFFSET,
    ACCOUNT_DEBITS_POSTED_OFFSET,
    ACCOUNT_LEDGER_OFFSET,
    ACCOUNT_STRUCT,
    RESULT_CODE_OFFSET,
    RESULT_TIMESTAMP_OFFSET,
    TRANSFER_AMOUNT_OFFSET,
    TRANSFER_CODE_OFFSET,
    TRANSFER_CREDIT_ACCOUNT_ID_OFFSET,
    TRANSFER_DEBIT_ACCOUNT_ID_OFFSET,
    TRANSFER_FLAGS_OFFSET,
    TRANSFER_LEDGER_OFFSET,
    TRANSFER_RESULT_STRUCT,
    TRANSFER_STRUCT,
    TRANSFER_TIMESTAMP_OFFSET,
    TRANSFER_USER_DATA_64_OFFSET,
    TRANSFER_USER_DATA_128_OFFSET,
    Buffer,
)
from ledger.records.limits import (
    ACCOUNT_SIZE,
    AMOUNT_MAX,
    BATCH_EVENTS_MAX,
    NANOSECONDS_PER_SECOND,
    TIMESTAMP_MAX,
    TRANSFER_RESULT_SIZE,
    TRANSFER_SIZE,
)

from . import _paycodes as paycodes
from ._codes import SYSTEM_ACCOUNTS, TOPUP_CODES, AccountCode, TopUpSource, TransferCode, WalletResult
from ._currencies import currency
from ._ids import (
    code_payment_fingerprint,
    derived_id,
    fingerprint,
    operation_id,
    payment_fingerprint,
    step_id,
    system_account_id,
    wallet_id,
)
from ._links import challenge_digest, contact_problem, link_token, masked_contact
from ._payments import payments
from ._payments_py import payment_chain
from ._state import (
    REFUSALS_SECONDS,
    Booking,
    Device,
    Fact,
    Hold,
    PayLink,
    PaymentRequest,
    Record,
    Voucher,
    WalletState,
    encode_code_payment_record,
    encode_payment_record,
    encode_record,
    expiry_entry,
    expiry_parts,
    tenant_json,
)
from ._tenants import Tenant, TenantSettings, check_tenant_id
from ._vouchers import normalized, voucher_code, voucher_id

logger = logging.getLogger(__name__)

KEY_LENGTH_MAX: Final = 255
CUSTOMER_LENGTH_MAX: Final = 255
"""Bytes of a customer reference in UTF-8 (a bulk grant of 10,000 fits one message)."""
GRANT_RUN_ITEMS_MAX: Final = 10_000
"""Most grants in one run request; a larger run is sent as several (each item keyed by run and customer)."""
REFERENCE_LENGTH_MAX: Final = 255
HOLD_SECONDS_MAX: Final = 31 * 86_400
"""Longest a hold may stay authorised."""
HOLD_SECONDS_DEFAULT: Final = 7 * 86_400
REQUEST_SECONDS_MAX: Final = 600
"""Longest a terminal's payment request stays open (a customer at the counter confirms within moments)."""
REQUEST_SECONDS_DEFAULT: Final = 120
LINK_SECONDS_MIN: Final = 60
LINK_SECONDS_MAX: Final = 30 * 86_400
"""Longest a pay link stays open."""
LINK_SECONDS_DEFAULT: Final = 7 * 86_400
DESCRIPTION_LENGTH_MAX: Final = 1_000
CHALLENGE_SECONDS: Final = 300
"""How long a pay link's one-time code may be answered."""
CHALLENGE_TRIES: Final = 5
"""Wrong answers a one-time code takes before it is dead (a new one needs the PIN again)."""
LINK_CHALLENGES_FREE: Final = 10
"""One-time codes a pay link may have sent beyond CHALLENGES_PER_PAYMENT for each of its payments: what
bounds the messages anyone who knows a wallet's PIN can send to the link's contact."""
CHALLENGES_PER_PAYMENT: Final = 3
LINK_PIN_FAILURES_MAX: Final = 20
"""Wrong PINs given on one pay link's page before it takes no more (each costs an Argon2id check)."""
CANCEL_SECONDS: Final = 600
"""How long after a payment by code its terminal may cancel it (then it is refunded in full)."""
WALLET_IDS_CACHED: Final = 65_536
"""Most wallet ids the payment path keeps derived (a few MiB)."""
SWEEP_TRANSFERS_MAX: Final = BATCH_EVENTS_MAX
"""Most expiries one sweep moves; the next sweep takes the rest."""

_OK: Final = int(CreateTransferResult.OK)
_U64: Final = struct.Struct("<Q")
_U32: Final = struct.Struct("<I")
_U16: Final = struct.Struct("<H")
_ID: Final = struct.Struct("<QQ")
_ACCOUNT_SPENDABLE: Final = struct.Struct("<QQQQQQI76x")
"""An account record's id (lo, hi), debits pending and posted, credits pending and posted, and ledger."""
assert _ACCOUNT_SPENDABLE.size == ACCOUNT_SIZE and (
    ACCOUNT_DEBITS_PENDING_OFFSET,
    ACCOUNT_DEBITS_POSTED_OFFSET,
    ACCOUNT_CREDITS_POSTED_OFFSET,
    ACCOUNT_LEDGER_OFFSET,
) == (16, 24, 40, 48)
_MASK_64: Final = 2**64 - 1
_TOPUP_KINDS: Final = frozenset(int(code) for code, _ in TOPUP_CODES.values())
_PAYMENT_KINDS: Final = frozenset({int(TransferCode.PAYMENT)})
WALLET_FLAGS: Final = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS | AccountFlags.HISTORY)
"""A wallet never goes below zero, and keeps its balance after every transfer (for statements)."""
SYSTEM_FLAGS: Final = int(AccountFlags.HISTORY)
"""A tenant's system accounts keep their balance after every transfer, so that a settlement reads what the
wallets owed at any moment from them (ledger.wallet._statements)."""


class Operation(Protocol):
    """One synchronous step in the core ledger's single writer (ledger.core.Ledger.operation): what it
    applies and records lands in one journal commit."""

    def create_accounts(self, events: Buffer) -> bytes: ...

    def create_transfers(self, events: Buffer) -> bytes: ...

    def lookup_accounts(self, ids: Buffer) -> bytes: ...

    def lookup_transfers(self, ids: Buffer) -> bytes: ...

    def now(self) -> int: ...

    def record(self, domain: bytes) -> None: ...


class _AtMoment:
    """An operation whose clock stands still: a batch's requests decided one after the other, all at the
    moment the batch began (the engine's clock moves on with every engine call in between)."""

    __slots__ = ("_now", "_op")

    def __init__(self, op: Operation, now: int) -> None:
        self._op, self._now = op, now

    def create_accounts(self, events: Buffer) -> bytes:
        return self._op.create_accounts(events)

    def create_transfers(self, events: Buffer) -> bytes:
        return self._op.create_transfers(events)

    def lookup_accounts(self, ids: Buffer) -> bytes:
        return self._op.lookup_accounts(ids)

    def lookup_transfers(self, ids: Buffer) -> bytes:
        return self._op.lookup_transfers(ids)

    def now(self) -> int:
        return self._now

    def record(self, domain: bytes) -> None:
        self._op.record(domain)


# -- replies -----------------------------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class Reply:
    """What an operation answers. Replies (and Payment) are not frozen: building a frozen dataclass costs
    twice as much, which a batch of payments pays per payment; nothing changes one once it is made."""

    result: WalletResult = WalletResult.OK
    message: str = ""
    """Empty on OK; otherwise what was wrong, naming the field."""
    replayed: bool = False
    """The original answer, given again to a retry with the same key and request: nothing was done now.
    Never remembered: the answer remembered is the original's."""

    @property
    def ok(self) -> bool:
        return self.result is WalletResult.OK

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["result"] = int(self.result)
        del data["replayed"]
        return data

    @classmethod
    def from_json(cls: type[R], data: dict[str, Any]) -> R:
        return cls(**{**data, "result": WalletResult(data["result"])})


R = TypeVar("R", bound=Reply)


@dataclass(slots=True, kw_only=True)
class TenantReply(Reply):
    tenant: str = ""
    currency: str = ""
    ledger: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    accounts: dict[str, int] = field(default_factory=dict)
    """System account ids by kind name (funding, revenue, …)."""


@dataclass(slots=True, kw_only=True)
class Balance(Reply):
    wallet_id: int = 0
    currency: str = ""
    status: str = ""
    """active, frozen or closed."""
    available: int = 0
    """What the wallet may spend now: posted credit less holds and less credit past its expiry."""
    held: int = 0
    """Reserved by open holds."""
    posted: int = 0
    """Credits less debits posted (includes expired credit not yet swept)."""
    expiring: list[list[int]] = field(default_factory=list)
    """[expires_at, amount] of the spendable credit that expires, soonest first (nanoseconds since the
    Unix epoch); the rest of `available` never expires."""


@dataclass(slots=True, kw_only=True)
class TopUpReply(Reply):
    operation_id: int = 0
    wallet_id: int = 0
    amount: int = 0
    expires_at: int = 0
    """When this credit expires (0: never)."""
    balance: int = 0
    """The wallet's spendable balance right after the top-up."""
    timestamp: int = 0


@dataclass(slots=True, kw_only=True)
class PaymentReply(Reply):
    payment_id: int = 0
    wallet_id: int = 0
    requested: int = 0
    paid: int = 0
    """Paid from the wallet (the whole request unless partial)."""
    remainder: int = 0
    """Left to collect another way: requested - paid."""
    fee: int = 0
    """Charged from the wallet beside `paid`."""
    balance: int = 0
    """The wallet's spendable balance right after the payment."""
    timestamp: int = 0


@dataclass(slots=True, kw_only=True)
class DeviceReply(Reply):
    device_id: int = 0
    wallet_id: int = 0
    customer: str = ""
    name: str = ""
    number: int = 0
    enrolled_at: int = 0
    revoked_at: int = 0
    seed: bytes = b""
    """The device's key, in the answer to its enrolment only (a retry of it gets it again)."""
    code_key: bytes = b""
    """The tenant's code key, likewise."""


@dataclass(slots=True, kw_only=True)
class CodePaymentStatus(Reply):
    status: str = ""
    """paid, declined, cancelled or unknown."""
    payment: PaymentReply | None = None
    """The payment (paid, or cancelled after it paid) or the decline."""
    refund_id: int = 0
    """A cancelled payment's refund into the wallet."""


@dataclass(slots=True, kw_only=True)
class RequestReply(Reply):
    request_id: int = 0
    terminal: str = ""
    amount: int = 0
    reference: str = ""
    status: str = ""
    """open, paid, cancelled or expired."""
    expires_at: int = 0
    created_at: int = 0
    payment_id: int = 0
    wallet_id: int = 0


@dataclass(slots=True, kw_only=True)
class LinkReply(Reply):
    link_id: int = 0
    tenant: str = ""
    token: str = ""
    amount: int = 0
    currency: str = ""
    reference: str = ""
    description: str = ""
    contact: str = ""
    """Empty when read by token (the pay page's view)."""
    customer: str = ""
    reusable: bool = False
    partial: bool = False
    status: str = ""
    """open, paid, partially_paid, expired or cancelled."""
    expires_at: int = 0
    created_at: int = 0
    paid: int = 0
    payments: int = 0
    payment_id: int = 0


@dataclass(slots=True, kw_only=True)
class ChallengeReply(Reply):
    challenge_id: int = 0
    sent_to: str = ""
    """The contact, masked."""
    expires_at: int = 0
    contact: str = ""
    """Where the caller sends the code (never returned to whoever asked for it)."""
    link: LinkReply | None = None
    """The link the code is for (what the message says it pays)."""


@dataclass(slots=True, kw_only=True)
class PinReply(Reply):
    wallet_id: int = 0
    pin_set: bool = False
    failures: int = 0
    """Wrong PINs in a row so far."""
    locked_until: int = 0
    """0: not locked."""


@dataclass(slots=True, kw_only=True)
class RefundReply(Reply):
    refund_id: int = 0
    payment_id: int = 0
    wallet_id: int = 0
    amount: int = 0
    to_credit: bool = False
    """The refund was of the part paid another way, given as store credit."""
    refundable: int = 0
    """What may still be refunded of this payment the same way after this refund."""
    balance: int = 0
    timestamp: int = 0


@dataclass(slots=True, kw_only=True)
class HoldReply(Reply):
    hold_id: int = 0
    wallet_id: int = 0
    amount: int = 0
    """Authorised (for a capture: captured; for a void: released)."""
    expires_at: int = 0
    balance: int = 0
    timestamp: int = 0
    status: str = ""
    """pending, captured, voided or expired."""


@dataclass(slots=True, kw_only=True)
class BookingReply(Reply):
    booking_id: int = 0
    wallet_id: int = 0
    direction: str = ""
    """credit or debit, from the wallet's side."""
    amount: int = 0
    reverses: int = 0
    """For a reversal: the booking it reverses."""
    balance: int = 0
    timestamp: int = 0


@dataclass(slots=True, kw_only=True)
class VoucherReply(Reply):
    code: str = ""
    """The voucher's code, grouped for print (on issue only; afterwards it is asked for, never shown)."""
    voucher_id: int = 0
    amount: int = 0
    """Issued: its value; redeemed, spent or deactivated: what this operation took from it."""
    remaining: int = 0
    expires_at: int = 0
    status: str = ""
    wallet_id: int = 0
    """Redeemed into this wallet."""
    balance: int = 0
    """Redeemed: the wallet's spendable balance right after."""
    requested: int = 0
    """Spent: the amount asked for; `amount` is what the voucher paid of it."""
    timestamp: int = 0


@dataclass(slots=True, kw_only=True)
class StatusReply(Reply):
    wallet_id: int = 0
    status: str = ""


# -- requests ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TopUp:
    tenant: str
    customer: str
    amount: int
    key: str
    source: TopUpSource
    currency: str = ""
    """If set, must be the tenant's."""
    reference: str = ""
    """External payment reference (purchase), order reference (return), reason (operator), note otherwise."""
    operator: str = ""
    expires_at: int = 0
    """Nanoseconds; 0: the tenant's default credit expiry."""
    never_expires: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantItem:
    """One grant of a bulk run: its customer, amount and expiry (0: the tenant's default)."""

    customer: str
    amount: int
    expires_at: int = 0
    never_expires: bool = False


@dataclass(slots=True, kw_only=True)
class Payment:
    tenant: str
    customer: str
    amount: int
    key: str
    order_reference: str
    partial: bool = False
    """Pay what the wallet can and leave the rest (only where the tenant allows partial payment)."""
    currency: str = ""


@dataclass(slots=True, kw_only=True)
class CodePayment:
    """A payment by the code a customer's phone shows, as a terminal sends it."""

    tenant: str
    code: str
    amount: int
    terminal: str
    """The terminal's id (1 to 255 printable characters)."""
    transaction: str
    """The terminal's own id of this payment (1 to 255 printable characters): with `terminal`, its idempotency
    key; the terminal asks for its outcome by it."""
    order_reference: str = ""
    """Empty: the transaction id."""
    partial: bool = False
    currency: str = ""
    pin_ok: bool | None = None
    """The PIN the customer gave, checked by the caller against `pin_hash_for_code` in a worker thread (the
    writer never runs Argon2): None if none was given."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Refund:
    tenant: str
    payment_id: int
    amount: int
    key: str
    to_credit: bool = False
    """Refund the part paid another way, as store credit in the wallet."""
    reason: str = ""


# -- reading packed records --------------------------------------------------------------------------


def _u64(buffer: Buffer, offset: int) -> int:
    return int(_U64.unpack_from(buffer, offset)[0])


def _id_at(buffer: Buffer, offset: int) -> int:
    low, high = _ID.unpack_from(buffer, offset)
    return int(low | high << 64)


def _pack_id(value: int) -> bytes:
    return _ID.pack(value & _MASK_64, value >> 64)


def _transfer(
    transfer_id: int,
    debit: int,
    credit: int,
    amount: int,
    ledger: int,
    code: int,
    *,
    flags: int = 0,
    pending_id: int = 0,
    user_data_128: int = 0,
    user_data_64: int = 0,
    user_data_32: int = 0,
) -> bytes:
    return TRANSFER_STRUCT.pack(
        transfer_id & _MASK_64, transfer_id >> 64,
        debit & _MASK_64, debit >> 64,
        credit & _MASK_64, credit >> 64,
        amount,
        pending_id & _MASK_64, pending_id >> 64,
        user_data_128 & _MASK_64, user_data_128 >> 64,
        user_data_64, user_data_32,
        0, ledger, code, flags, 0, 0,
    )  # fmt: skip


def _chain(*transfers: bytes) -> bytes:
    """Link the transfers: all of them happen or none."""
    linked = bytearray(b"".join(transfers))
    for index in range(len(transfers) - 1):
        at = index * TRANSFER_SIZE + TRANSFER_FLAGS_OFFSET
        flags = _U16.unpack_from(linked, at)[0] | TransferFlags.LINKED
        _U16.pack_into(linked, at, flags)
    return bytes(linked)


def _results_ok(results: bytes) -> CreateTransferResult | None:
    """None if every transfer was created, else the first result that is not OK."""
    for offset in range(0, len(results), TRANSFER_RESULT_SIZE):
        code = _U32.unpack_from(results, offset + RESULT_CODE_OFFSET)[0]
        if code != _OK:
            return CreateTransferResult(code)
    return None


def _payment_chain(
    tenant: Tenant, request: Payment, key_id: int, fp: int, wallet: int, paid: int, fee: int, balance: int
) -> bytes:
    """The payment's chain (ledger.wallet._payments_py.payment_chain) to the tenant's revenue and fees."""
    return payment_chain(
        key_id, step_id(key_id, 1), wallet, tenant.accounts[AccountCode.REVENUE], tenant.accounts[AccountCode.FEES],
        tenant.ledger, paid, fee, fp, balance, request.amount, request.partial,
    )  # fmt: skip


def _first_failure(results: bytes) -> CreateTransferResult:
    """The result that made a chain fail (not the LINKED_EVENT_FAILED of its companions)."""
    found = CreateTransferResult.LINKED_EVENT_FAILED
    for offset in range(0, len(results), TRANSFER_RESULT_SIZE):
        code = CreateTransferResult(_U32.unpack_from(results, offset + RESULT_CODE_OFFSET)[0])
        if code not in (CreateTransferResult.OK, CreateTransferResult.LINKED_EVENT_FAILED):
            return code
    return found


def _wallet_account(wallet: int, ledger: int) -> bytes:
    """A wallet's account record to create: it never goes below zero and keeps its balance history."""
    return ACCOUNT_STRUCT.pack(
        wallet & _MASK_64,
        wallet >> 64,
        0,
        0,
        0,
        0,
        ledger,
        AccountCode.WALLET,
        WALLET_FLAGS,
        0,
        0,
        0,
        0,
        0,
        0,
        bytes(32),
    )


def _grant_key(run_id: str, customer: str) -> str:
    """The idempotency key of a run's grant to a customer: the same run pays each customer once."""
    return "grant:" + hashlib.blake2b(f"{run_id}\x00{customer}".encode(), digest_size=16).hexdigest()


def _no_tenant(tenant_id: str) -> str:
    return f"tenant: no tenant {tenant_id[:80]!r}"


_CODE_REFUSALS: Final = {
    WalletResult.CODE_INVALID: "code: not a payment code of this tenant valid now (codes turn every 30 seconds)",
    WalletResult.CODE_USED: "code: it paid already; the customer's phone shows the next one shortly",
}


def _terminal_problem(terminal: str, transaction: str) -> str | None:
    """None if the terminal and its transaction id may key a payment by code, else what is wrong."""
    for name, value in (("terminal", terminal), ("transaction", transaction)):
        if not value or len(value) > KEY_LENGTH_MAX or not value.isprintable():
            return f"{name}: 1 to {KEY_LENGTH_MAX} printable characters are required"
    return None


def _code_operation(tenant: str, terminal: str, transaction: str, kind: str = "code") -> int:
    """The operation id of a terminal's transaction, or (kind "code-cancel") of the refund that cancels it; a NUL
    keeps them apart from every caller's own key."""
    return operation_id(tenant, f"{kind}\x00{terminal}\x00{transaction}")


def _locked(until: int) -> str:
    moment = datetime.fromtimestamp(until / NANOSECONDS_PER_SECOND, UTC).isoformat(timespec="seconds")
    return f"pin: too many wrong PINs; the wallet's code payments are locked until {moment}"


_ALERTS: Final = {
    "pin_locked": "wallet_locked", "terminal_flagged": "terminal_flagged", "link_failed": "pay_link_locked",
}  # fmt: skip
"""The facts that raise an alert (Wallets.on_alert), by the alert's kind."""
_KEY_REUSED: Final = "key: this idempotency key was used before for a different request"


@dataclass(slots=True)
class _WalletView:
    """A wallet as read from the engine and the domain state at one moment."""

    wallet_id: int
    ledger: int
    credits_posted: int
    debits_posted: int
    debits_pending: int
    grants: list[list[int]]
    now: int

    @property
    def posted(self) -> int:
        return self.credits_posted - self.debits_posted

    @property
    def expired(self) -> int:
        """Expiring credit past its expiry and not yet swept: never spendable."""
        return sum(grant[1] for grant in self.grants if grant[0] <= self.now)

    @property
    def available(self) -> int:
        return self.posted - self.debits_pending - self.expired

    def allocate(self, amount: int) -> list[list[int]]:
        """[grant_id, amount, expires_at] parts covering `amount`: soonest-expiring credit first, then
        credit that never expires (grant 0). The caller checked `amount <= available`."""
        parts: list[list[int]] = []
        left = amount
        for expires_at, remaining, grant_id in self.grants:
            if left == 0:
                break
            if expires_at <= self.now:
                continue
            take = min(left, remaining)
            parts.append([grant_id, take, expires_at])
            left -= take
        if left:
            parts.append([0, left, 0])
        return parts


@dataclass(slots=True)
class _PaymentBatch:
    """Payments decided together: their chains and compact records packed one after another
    (ledger.wallet._payments), and per payment (index, request, id, wallet, paid, fee, balance, transfers)."""

    chains: bytearray = field(default_factory=bytearray)
    records: bytearray = field(default_factory=bytearray)
    entries: list[tuple[int, Payment, int, int, int, int, int, int]] = field(default_factory=list)


@dataclass(slots=True)
class _CodeBatch:
    """Payments by code decided together: their chains packed one after another (ledger.wallet._payments), per
    payment (index, request, id, device, window, paid, fee, balance, transfers), and what they take that the
    state does not hold until they are applied: credit by wallet, codes as (device, window), and the sums the
    tenant's risk limits count as [amount, count] by (owner, period)."""

    chains: bytearray = field(default_factory=bytearray)
    compact: bytearray = field(default_factory=bytearray)
    """The compact records pack_payment writes beside each chain: a payment by code keeps a full record (its
    code's facts) instead, so these are dropped."""
    entries: list[tuple[int, CodePayment, int, Device, int, int, int, int, int]] = field(default_factory=list)
    spent: dict[int, int] = field(default_factory=dict)
    used: set[tuple[int, int]] = field(default_factory=set)
    pending: dict[tuple[str, int], list[int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Paying:
    """A payment decided: what the wallet pays and the fee."""

    view: _WalletView
    paid: int
    fee: int


# -- the domain --------------------------------------------------------------------------------------


class Wallets:
    """The wallet domain over one core ledger. Its methods run inside an Operation (or, for reads, with the
    engine's lookups), on the ledger's event loop thread.

    It is the ledger's DomainState: `restore`, `replay` and `snapshot` rebuild and save what is not a
    balance, from the journal's domain records.
    """

    def __init__(self) -> None:
        self.state = WalletState()
        self.on_alert: Callable[[str, str], None] | None = None
        """Called with (kind, tenant) as a record that locks a wallet by wrong PINs (wallet_locked), flags a
        terminal (terminal_flagged) or closes a pay link to wrong PINs (pay_link_locked) is made: what the
        server counts as a metric. Not called at recovery."""
        self._wallet_ids: dict[tuple[str, str], int] = {}
        """Wallet ids of (tenant, customer) that paid lately: a customer pays again and again, and deriving
        the id (a SHA-1) is a tenth of a payment's work. A tenant's currency never changes, so neither do
        they; the cache is emptied when it is full."""

    # -- DomainState -----------------------------------------------------------------------------------

    def restore(self, snapshot: bytes) -> None:
        self.state = WalletState.restore(snapshot)

    def replay(self, records: bytes, seq: int) -> None:
        self.state.apply_records(records)

    def snapshot(self) -> bytes:
        return self.state.snapshot()

    # -- helpers ---------------------------------------------------------------------------------------

    def _commit(self, op: Operation, record: Record) -> None:
        """Apply the record's facts here and write it to the journal with the operation's transfers."""
        self.state.apply_record(record)
        op.record(encode_record(record))
        if self.on_alert is not None:
            for fact in record.get("facts", ()):
                kind = _ALERTS.get(fact[0])
                if kind is None:
                    continue
                if kind == "pay_link_locked" and self.state.links[fact[1]].failures != LINK_PIN_FAILURES_MAX:
                    continue
                self.on_alert(kind, str(record.get("tenant", "")))

    def _remember(
        self, op: Operation, kind: str, tenant: str, key_id: int, fp: int, reply: R, facts: list[Fact] | None = None,
        **details: Any,
    ) -> R:  # fmt: skip
        """Journal a reply the engine cannot rebuild, so a retry replays it; `details` (whose operation it
        was: customer, amount, order) go into its record and event, `facts` into its record."""
        record: Record = {
            "op": kind,
            "tenant": tenant,
            "at": op.now(),
            "id": key_id,
            **details,
            "result": reply.result.name,
            "message": reply.message,
            "facts": [["reply", key_id, fp, reply.to_json()], *(facts or [])],
        }
        self._commit(op, record)
        return reply

    def _replayed(self, key_id: int, fp: int, reply_type: type[R]) -> R | None:
        """The remembered reply of this operation id, IDEMPOTENCY_KEY_REUSED, or None if it is new."""
        remembered = self.state.replies.get(key_id)
        if remembered is None:
            return None
        stored_fp, reply = remembered
        if stored_fp != fp:
            return reply_type(
                result=WalletResult.IDEMPOTENCY_KEY_REUSED,
                message=_KEY_REUSED,
            )
        again = reply_type.from_json(reply)
        again.replayed = True
        return again

    def tenant(self, tenant_id: str) -> Tenant | None:
        return self.state.tenants.get(tenant_id)

    def _wallet(self, op: Operation, tenant: Tenant, wallet: int) -> _WalletView | None:
        found = op.lookup_accounts(_pack_id(wallet))
        if len(found) < ACCOUNT_SIZE:
            return None
        fields = ACCOUNT_STRUCT.unpack_from(found, 0)
        if fields[6] != tenant.ledger:
            return None
        return _WalletView(
            wallet_id=wallet,
            ledger=fields[6],
            credits_posted=_u64(found, ACCOUNT_CREDITS_POSTED_OFFSET),
            debits_posted=_u64(found, ACCOUNT_DEBITS_POSTED_OFFSET),
            debits_pending=_u64(found, ACCOUNT_DEBITS_PENDING_OFFSET),
            grants=self.state.grants_of(wallet),
            now=op.now(),
        )

    def _status(self, wallet: int) -> str:
        if wallet in self.state.closed:
            return "closed"
        if wallet in self.state.frozen:
            return "frozen"
        return "active"

    def _crossing(self, tenant: Tenant, wallet: int, balance: int) -> list[list[Any]]:
        """The low-balance fact if this balance crosses the tenant's threshold (once per crossing)."""
        threshold = tenant.settings.low_balance_threshold
        below = bool(threshold) and balance < threshold
        if below == (wallet in self.state.below):
            return []
        return [["below", wallet, below]]

    @staticmethod
    def _check_key(key: str) -> str | None:
        if not key or len(key) > KEY_LENGTH_MAX or not key.isprintable():
            return f"key: an idempotency key of 1 to {KEY_LENGTH_MAX} printable characters is required"
        return None

    @staticmethod
    def _check_customer(customer: str) -> str | None:
        if not customer or len(customer.encode()) > CUSTOMER_LENGTH_MAX or not customer.isprintable():
            return f"customer: a reference of 1 to {CUSTOMER_LENGTH_MAX} bytes of printable text is required"
        return None

    @staticmethod
    def _check_amount(amount: int, name: str = "amount") -> str | None:
        if not 1 <= amount <= AMOUNT_MAX:
            return f"{name} must be between 1 and {AMOUNT_MAX} minor units, got {amount}"
        return None

    @staticmethod
    def _check_currency(tenant: Tenant, code: str) -> str | None:
        if code and code != tenant.currency.code:
            return f"currency: tenant {tenant.tenant_id} keeps {tenant.currency.code}, not {code[:8]}"
        return None

    # -- tenants ---------------------------------------------------------------------------------------

    def create_tenant(
        self, op: Operation, tenant_id: str, currency_code: str, settings: TenantSettings, *, actor: str
    ) -> TenantReply:
        """Create a tenant with its ledger for `currency_code` and its system accounts. Creating it again
        with the same currency and settings answers OK with the tenant (idempotent by tenant id)."""
        if (problem := check_tenant_id(tenant_id)) is not None:
            return TenantReply(result=WalletResult.TENANT_INVALID, message=problem)
        try:
            money = currency(currency_code)
        except ValueError as exc:
            return TenantReply(result=WalletResult.TENANT_INVALID, message=str(exc))
        if (problem := settings.check()) is not None:
            return TenantReply(result=WalletResult.TENANT_INVALID, message=f"settings.{problem}")
        existing = self.state.tenants.get(tenant_id)
        if existing is not None:
            if existing.currency is money and existing.settings == settings:
                return self._tenant_reply(existing)
            return TenantReply(
                result=WalletResult.TENANT_EXISTS,
                message=f"tenant: {tenant_id} exists with other settings; change them with ConfigureTenant",
            )
        ledger = self.state.ledger_next
        accounts = {int(kind): system_account_id(tenant_id, money.code, kind) for kind in SYSTEM_ACCOUNTS}
        events = b"".join(
            ACCOUNT_STRUCT.pack(
                account & _MASK_64, account >> 64, 0, 0, 0, 0, ledger, kind, SYSTEM_FLAGS, 0, 0, 0, 0, 0, 0, bytes(32)
            )
            for kind, account in accounts.items()
        )
        results = op.create_accounts(events)
        for offset in range(0, len(results), 16):
            code = CreateAccountResult(_U32.unpack_from(results, offset)[0])
            if code not in (CreateAccountResult.OK, CreateAccountResult.EXISTS):
                return TenantReply(
                    result=WalletResult.LEDGER_REFUSED,
                    message=f"the ledger refused the tenant's accounts: {code.name}",
                )
        tenant = Tenant(
            tenant_id=tenant_id,
            currency=money,
            ledger=ledger,
            settings=settings,
            accounts=accounts,
            created_at=op.now(),
            secret=os.urandom(32),
        )
        self._commit(
            op,
            {"op": "tenant_created", "tenant": tenant_id, "at": op.now(), "by": actor,
             "facts": [["tenant", tenant_json(tenant)]]},
        )  # fmt: skip
        return self._tenant_reply(self.state.tenants[tenant_id])

    def configure_tenant(self, op: Operation, tenant_id: str, settings: TenantSettings, *, actor: str) -> TenantReply:
        """Replace a tenant's settings; journaled with who made the change."""
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None:
            return TenantReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
        if (problem := settings.check()) is not None:
            return TenantReply(result=WalletResult.TENANT_INVALID, message=f"settings.{problem}")
        if settings != tenant.settings:
            self._commit(
                op,
                {"op": "tenant_configured", "tenant": tenant_id, "at": op.now(), "by": actor,
                 "before": tenant.settings.to_json(), "facts": [["settings", tenant_id, settings.to_json()]]},
            )  # fmt: skip
        return self._tenant_reply(tenant)

    def get_tenant(self, tenant_id: str) -> TenantReply:
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None:
            return TenantReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
        return self._tenant_reply(tenant)

    @staticmethod
    def _tenant_reply(tenant: Tenant) -> TenantReply:
        return TenantReply(
            tenant=tenant.tenant_id,
            currency=tenant.currency.code,
            ledger=tenant.ledger,
            settings=tenant.settings.to_json(),
            accounts={AccountCode(kind).name.lower(): account for kind, account in tenant.accounts.items()},
        )

    # -- wallets ---------------------------------------------------------------------------------------

    def open_wallet(self, op: Operation, tenant_id: str, customer: str) -> Balance:
        """Open the customer's wallet (idempotent: its id is derived, opening it again answers its balance)."""
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None:
            return Balance(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
        if (problem := self._check_customer(customer)) is not None:
            return Balance(result=WalletResult.CUSTOMER_INVALID, message=problem)
        wallet = wallet_id(tenant_id, customer, tenant.currency.code)
        event = _wallet_account(wallet, tenant.ledger)
        results = op.create_accounts(event)
        code = CreateAccountResult(_U32.unpack_from(results, 0)[0])
        if code is CreateAccountResult.OK:
            facts = self._crossing(tenant, wallet, 0)
            self._commit(
                op,
                {"op": "wallet_opened", "tenant": tenant_id, "at": op.now(), "wallet": wallet, "customer": customer,
                 "facts": facts},
            )  # fmt: skip
        elif code is not CreateAccountResult.EXISTS:
            return Balance(result=WalletResult.LEDGER_REFUSED, message=f"the ledger refused the wallet: {code.name}")
        return self.balance(op, tenant_id, customer)

    def balance(self, op: Operation, tenant_id: str, customer: str) -> Balance:
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None:
            return Balance(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
        if (problem := self._check_customer(customer)) is not None:
            return Balance(result=WalletResult.CUSTOMER_INVALID, message=problem)
        wallet = wallet_id(tenant_id, customer, tenant.currency.code)
        view = self._wallet(op, tenant, wallet)
        if view is None:
            return Balance(result=WalletResult.WALLET_NOT_FOUND, message="customer: this customer has no wallet")
        return self._balance(tenant, view)

    def _balance(self, tenant: Tenant, view: _WalletView) -> Balance:
        expiring = [[expires_at, amount] for expires_at, amount, _ in view.grants if expires_at > view.now]
        return Balance(
            wallet_id=view.wallet_id,
            currency=tenant.currency.code,
            status=self._status(view.wallet_id),
            available=view.available,
            held=view.debits_pending,
            posted=view.posted,
            expiring=expiring,
        )

    def set_status(
        self, op: Operation, tenant_id: str, customer: str, status: str, *, actor: str, reason: str
    ) -> StatusReply:
        """Freeze, unfreeze (status active) or close a wallet. A wallet closes at zero only."""
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None:
            return StatusReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
        if (problem := self._check_customer(customer)) is not None:
            return StatusReply(result=WalletResult.CUSTOMER_INVALID, message=problem)
        if not reason or len(reason) > REFERENCE_LENGTH_MAX:
            return StatusReply(
                result=WalletResult.REFERENCE_REQUIRED,
                message=f"reason: 1 to {REFERENCE_LENGTH_MAX} characters are required",
            )
        wallet = wallet_id(tenant_id, customer, tenant.currency.code)
        view = self._wallet(op, tenant, wallet)
        if view is None:
            return StatusReply(result=WalletResult.WALLET_NOT_FOUND, message="customer: this customer has no wallet")
        current = self._status(wallet)
        if current == "closed":
            return StatusReply(result=WalletResult.WALLET_CLOSED, message="the wallet is closed", wallet_id=wallet)
        if status == "closed" and (view.posted or view.debits_pending):
            return StatusReply(
                result=WalletResult.WALLET_NOT_EMPTY,
                message=f"the wallet holds {tenant.currency.format(view.posted)}; pay it out or write it off first",
                wallet_id=wallet,
            )
        if status != current:
            self._commit(
                op,
                {"op": f"wallet_{'unfrozen' if status == 'active' else status}", "tenant": tenant_id, "at": op.now(),
                 "wallet": wallet, "by": actor, "reason": reason, "facts": [["status", wallet, status]]},
            )  # fmt: skip
        return StatusReply(wallet_id=wallet, status=status)

    # -- top-ups ---------------------------------------------------------------------------------------

    def top_up(self, op: Operation, request: TopUp) -> TopUpReply:
        tenant = self.state.tenants.get(request.tenant)
        if tenant is None:
            return TopUpReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(request.tenant))
        if (problem := self._check_key(request.key)) is not None:
            return TopUpReply(result=WalletResult.IDEMPOTENCY_KEY_INVALID, message=problem)
        key_id = operation_id(request.tenant, request.key)
        fp = fingerprint(
            "topup", request.customer, request.amount, int(request.source), request.currency, request.reference,
            request.operator, request.expires_at, request.never_expires,
        )  # fmt: skip
        replayed = self._chain_replay(op, tenant, key_id, fp, _TOPUP_KINDS, self._topup_reply, TopUpReply)
        if replayed is None:
            replayed = self._replayed(key_id, fp, TopUpReply)
        if replayed is not None:
            return replayed
        refusal = self._topup_refusal(op, tenant, request)
        if refusal is not None:
            result, message = refusal
            return self._remember(
                op, "topup_refused", request.tenant, key_id, fp, TopUpReply(result=result, message=message),
                customer=request.customer, amount=request.amount, source=request.source.name.lower(),
            )  # fmt: skip
        wallet = wallet_id(request.tenant, request.customer, tenant.currency.code)
        view = self._wallet(op, tenant, wallet)
        assert view is not None  # checked by _topup_refusal
        now = view.now
        expires_at = self._expiry(tenant, request, now)
        code, source = TOPUP_CODES[request.source]
        balance = view.available + request.amount
        t0 = _transfer(
            key_id, tenant.accounts[source], wallet, request.amount, tenant.ledger, code,
            user_data_128=fp | balance << 64, user_data_64=expires_at, user_data_32=int(request.source),
        )  # fmt: skip
        results = op.create_transfers(t0)
        if (failed := _results_ok(results)) is not None:
            return TopUpReply(
                result=WalletResult.LEDGER_REFUSED, message=f"the ledger refused the top-up: {failed.name}"
            )
        facts: list[list[Any]] = [["grant", wallet, key_id, request.amount, expires_at]] if expires_at else []
        facts += self._crossing(tenant, wallet, balance)
        self._commit(
            op,
            {"op": "topped_up", "tenant": request.tenant, "at": now, "wallet": wallet, "id": key_id,
             "source": request.source.name.lower(), "amount": request.amount, "reference": request.reference,
             "operator": request.operator, "expires_at": expires_at, "facts": facts},
        )  # fmt: skip
        timestamp = _u64(op.lookup_transfers(_pack_id(key_id)), TRANSFER_TIMESTAMP_OFFSET)
        return TopUpReply(
            operation_id=key_id, wallet_id=wallet, amount=request.amount, expires_at=expires_at,
            balance=balance, timestamp=timestamp,
        )  # fmt: skip

    def _topup_refusal(self, op: Operation, tenant: Tenant, request: TopUp) -> tuple[WalletResult, str] | None:
        settings = tenant.settings
        if (problem := self._check_customer(request.customer)) is not None:
            return WalletResult.CUSTOMER_INVALID, problem
        if (problem := self._check_currency(tenant, request.currency)) is not None:
            return WalletResult.CURRENCY_MISMATCH, problem
        if (problem := self._check_amount(request.amount)) is not None:
            return WalletResult.AMOUNT_INVALID, problem
        if request.source not in TOPUP_CODES:
            return WalletResult.REFERENCE_REQUIRED, "source: name where the credit comes from"
        if len(request.reference) > REFERENCE_LENGTH_MAX or len(request.operator) > REFERENCE_LENGTH_MAX:
            return WalletResult.REFERENCE_REQUIRED, f"reference and operator: at most {REFERENCE_LENGTH_MAX} characters"
        if request.source is TopUpSource.PURCHASE and not request.reference:
            return WalletResult.REFERENCE_REQUIRED, "reference: a purchase needs the external payment reference"
        if request.source is TopUpSource.RETURN and not request.reference:
            return WalletResult.REFERENCE_REQUIRED, "reference: store credit for a return needs the order reference"
        if request.source is TopUpSource.OPERATOR and not (request.operator and request.reference):
            return (
                WalletResult.REFERENCE_REQUIRED,
                "operator and reference: operator credit needs the operator and a reason",
            )
        now = op.now()
        if not request.never_expires and request.expires_at and not now < request.expires_at <= TIMESTAMP_MAX:
            return WalletResult.EXPIRY_INVALID, "expires_at must be in the future"
        if request.source is TopUpSource.PURCHASE:
            if not settings.self_topup:
                return WalletResult.SELF_TOPUP_DISABLED, f"tenant {tenant.tenant_id} does not sell credit to customers"
            if (problem := settings.topup_refusal(request.amount, tenant.currency)) is not None:
                return WalletResult.AMOUNT_NOT_ALLOWED, problem
        wallet = wallet_id(request.tenant, request.customer, tenant.currency.code)
        view = self._wallet(op, tenant, wallet)
        if view is None:
            return WalletResult.WALLET_NOT_FOUND, "customer: this customer has no wallet; open it first"
        if wallet in self.state.closed:
            return WalletResult.WALLET_CLOSED, "the wallet is closed"
        if wallet in self.state.frozen and request.source is not TopUpSource.RETURN:
            return WalletResult.WALLET_FROZEN, "the wallet is frozen: it may receive refunds only"
        if settings.max_balance and view.posted + request.amount > settings.max_balance:
            return WalletResult.MAX_BALANCE_EXCEEDED, (
                f"amount: the balance would be {tenant.currency.format(view.posted + request.amount)}, above the "
                f"maximum of {tenant.currency.format(settings.max_balance)}"
            )
        if view.posted + request.amount > AMOUNT_MAX:
            return WalletResult.MAX_BALANCE_EXCEEDED, "amount: the balance would overflow"
        return None

    @staticmethod
    def _expiry(tenant: Tenant, request: TopUp, now: int) -> int:
        if request.never_expires:
            return 0
        if request.expires_at:
            return request.expires_at
        seconds = tenant.settings.credit_expiry_seconds
        return min(now + seconds * NANOSECONDS_PER_SECOND, TIMESTAMP_MAX) if seconds else 0

    @staticmethod
    def _topup_reply(chain: list[bytes]) -> TopUpReply:
        t0 = chain[0]
        return TopUpReply(
            operation_id=_id_at(t0, 0),
            wallet_id=_id_at(t0, TRANSFER_CREDIT_ACCOUNT_ID_OFFSET),
            amount=_u64(t0, TRANSFER_AMOUNT_OFFSET),
            expires_at=_u64(t0, TRANSFER_USER_DATA_64_OFFSET),
            balance=_u64(t0, TRANSFER_USER_DATA_128_OFFSET + 8),
            timestamp=_u64(t0, TRANSFER_TIMESTAMP_OFFSET),
        )

    def _chain_replay(
        self,
        op: Operation,
        tenant: Tenant,
        key_id: int,
        fp: int,
        kinds: frozenset[int],
        rebuild: Callable[[list[bytes]], R],
        reply_type: type[R],
        steps: int = 1,
    ) -> R | None:
        """If a chain with this operation id exists: its reply rebuilt from its transfers, or
        IDEMPOTENCY_KEY_REUSED if it was made for another request; None if there is none."""
        found = op.lookup_transfers(b"".join(_pack_id(step_id(key_id, index)) for index in range(steps)))
        if not found or _id_at(found, 0) != key_id:
            return None  # step 0 begins every chain: without it the key is new
        t0 = found[:TRANSFER_SIZE]
        if (
            _u64(t0, TRANSFER_USER_DATA_128_OFFSET) != fp
            or _U16.unpack_from(t0, TRANSFER_CODE_OFFSET)[0] not in kinds
            or _U32.unpack_from(t0, TRANSFER_LEDGER_OFFSET)[0] != tenant.ledger
        ):
            return reply_type(
                result=WalletResult.IDEMPOTENCY_KEY_REUSED,
                message=_KEY_REUSED,
            )
        again = rebuild(
            [bytes(found[offset : offset + TRANSFER_SIZE]) for offset in range(0, len(found), TRANSFER_SIZE)]
        )
        again.replayed = True
        return again

    # -- payments --------------------------------------------------------------------------------------

    def pay(self, op: Operation, request: Payment) -> PaymentReply:
        """Pay an order from the wallet: in full, or (partial, where the tenant allows it) what the wallet
        covers, with the fee on what it pays; one chain of the payment and its fee."""
        tenant = self.state.tenants.get(request.tenant)
        if tenant is None:
            return PaymentReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(request.tenant))
        if (problem := self._check_key(request.key)) is not None:
            return PaymentReply(result=WalletResult.IDEMPOTENCY_KEY_INVALID, message=problem)
        key_id = operation_id(request.tenant, request.key)
        fp = fingerprint(
            "pay", request.customer, request.amount, request.order_reference, request.partial, request.currency
        )
        replayed = self._chain_replay(
            op, tenant, key_id, fp, _PAYMENT_KINDS, self._payment_reply, PaymentReply, steps=2
        )
        if replayed is None:
            replayed = self._replayed(key_id, fp, PaymentReply)
        if replayed is not None:
            return replayed
        return self._make_payment(op, tenant, request, key_id, fp)

    def _make_payment(
        self, op: Operation, tenant: Tenant, request: Payment, key_id: int, fp: int,
        facts: list[Fact] | None = None, *, keep_decline: bool = True, **details: Any,
    ) -> PaymentReply:  # fmt: skip
        """Decide and make a payment whose key is new: a decline is remembered for its retries (unless not
        `keep_decline`: then its key stays free); a payment's record carries `facts` and `details` too (its
        compact form has room for neither)."""
        decided = self._decide_payment(op, tenant, request)
        if not isinstance(decided, _Paying):
            result, message = decided
            reply = PaymentReply(result=result, message=message, requested=request.amount)
            if not keep_decline:
                return reply
            return self._remember(
                op, "payment_declined", request.tenant, key_id, fp, reply, customer=request.customer,
                requested=request.amount, order=request.order_reference, **details,
            )  # fmt: skip
        view, paid, fee = decided.view, decided.paid, decided.fee
        wallet = view.wallet_id
        parts = view.allocate(paid + fee)
        balance = view.available - paid - fee
        chain = _payment_chain(tenant, request, key_id, fp, wallet, paid, fee, balance)
        results = op.create_transfers(chain)
        if _results_ok(results) is not None:
            failed = _first_failure(results)
            logger.error("a wallet payment chain was refused by the engine after its checks passed: %s", failed.name)
            return PaymentReply(
                result=WalletResult.LEDGER_REFUSED, message=f"the ledger refused the payment: {failed.name}"
            )
        spent = [[grant_id, amount] for grant_id, amount, _ in parts if grant_id]
        crossing = self._crossing(tenant, wallet, balance)
        if crossing or facts or details:
            self._commit(
                op,
                {"op": "payment_succeeded", "tenant": request.tenant, "at": view.now, "wallet": wallet,
                 "id": key_id, "order": request.order_reference, "requested": request.amount, "paid": paid,
                 "fee": fee, **details,
                 "facts": ([["spend", wallet, spent]] if spent else []) + crossing + (facts or [])},
            )  # fmt: skip
        else:  # the common record, compact: at most its spend fact
            if spent:
                self.state.apply(["spend", wallet, spent])
            op.record(
                encode_payment_record(
                    request.tenant, view.now, wallet, key_id, request.order_reference, request.amount, paid, fee, spent
                )
            )
        timestamp = TRANSFER_RESULT_STRUCT.unpack_from(results, 0)[2]
        return PaymentReply(
            payment_id=key_id, wallet_id=wallet, requested=request.amount, paid=paid,
            remainder=request.amount - paid, fee=fee, balance=balance, timestamp=timestamp,
        )  # fmt: skip

    def _decide_payment(self, op: Operation, tenant: Tenant, request: Payment) -> _Paying | tuple[WalletResult, str]:
        """(the wallet, paid, fee), or (result, message) of the first rule the request breaks."""
        settings = tenant.settings
        if (problem := self._check_customer(request.customer)) is not None:
            return WalletResult.CUSTOMER_INVALID, problem
        if (problem := self._check_currency(tenant, request.currency)) is not None:
            return WalletResult.CURRENCY_MISMATCH, problem
        if (problem := self._check_amount(request.amount)) is not None:
            return WalletResult.AMOUNT_INVALID, problem
        if not request.order_reference or len(request.order_reference) > REFERENCE_LENGTH_MAX:
            return (
                WalletResult.REFERENCE_REQUIRED,
                f"order_reference: 1 to {REFERENCE_LENGTH_MAX} characters are required",
            )
        if request.partial and not settings.partial_payment:
            return WalletResult.PARTIAL_PAYMENT_DISABLED, f"partial: tenant {tenant.tenant_id} takes full payments only"
        wallet = wallet_id(request.tenant, request.customer, tenant.currency.code)
        view = self._wallet(op, tenant, wallet)
        if view is None:
            return WalletResult.WALLET_NOT_FOUND, "customer: this customer has no wallet"
        if wallet in self.state.closed:
            return WalletResult.WALLET_CLOSED, "the wallet is closed"
        if wallet in self.state.frozen:
            return WalletResult.WALLET_FROZEN, "the wallet is frozen: it may receive refunds only"
        available = view.available
        fee = settings.fee(request.amount)
        if request.amount + fee <= available:
            return _Paying(view, request.amount, fee)
        if request.partial:
            paid = settings.most_payable(request.amount, available)
            if paid:
                return _Paying(view, paid, settings.fee(paid))
        money = tenant.currency
        return WalletResult.INSUFFICIENT_FUNDS, (
            f"amount: the wallet has {money.format(max(available, 0))} to spend, the payment needs "
            f"{money.format(request.amount)} and a fee of {money.format(fee)}"
        )

    @staticmethod
    def _payment_reply(chain: list[bytes]) -> PaymentReply:
        t0 = chain[0]
        paid = _u64(t0, TRANSFER_AMOUNT_OFFSET)
        requested = _u64(t0, TRANSFER_USER_DATA_64_OFFSET)
        fee = 0
        if len(chain) > 1 and _U16.unpack_from(chain[1], TRANSFER_CODE_OFFSET)[0] == TransferCode.PAYMENT_FEE:
            fee = _u64(chain[1], TRANSFER_AMOUNT_OFFSET)
        return PaymentReply(
            payment_id=_id_at(t0, 0),
            wallet_id=_id_at(t0, TRANSFER_DEBIT_ACCOUNT_ID_OFFSET),
            requested=requested,
            paid=paid,
            remainder=requested - paid,
            fee=fee,
            balance=_u64(t0, TRANSFER_USER_DATA_128_OFFSET + 8),
            timestamp=_u64(t0, TRANSFER_TIMESTAMP_OFFSET),
        )

    # -- the counter: devices and the payment codes they show ------------------------------------------

    def enroll_device(self, op: Operation, tenant_id: str, customer: str, name: str, key: str) -> DeviceReply:
        """Enrol a customer's phone to show payment codes for their wallet: its seed and the tenant's code key
        (ledger.wallet._paycodes) are in the answer, which a retry with the same key gets again."""
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None:
            return DeviceReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
        if (problem := self._check_key(key)) is not None:
            return DeviceReply(result=WalletResult.IDEMPOTENCY_KEY_INVALID, message=problem)
        if (problem := self._check_customer(customer)) is not None:
            return DeviceReply(result=WalletResult.CUSTOMER_INVALID, message=problem)
        if len(name) > REFERENCE_LENGTH_MAX or not name.isprintable():
            return DeviceReply(result=WalletResult.REFERENCE_REQUIRED,
                               message=f"name: at most {REFERENCE_LENGTH_MAX} printable characters")  # fmt: skip
        device_id = operation_id(tenant_id, f"device\x00{key}")
        fp = fingerprint("device", customer, name)
        known = self.state.devices.get(device_id)
        if known is not None:
            if known.fingerprint != fp:
                return DeviceReply(result=WalletResult.IDEMPOTENCY_KEY_REUSED, message=_KEY_REUSED)
            again = self._device_reply(tenant, known, keys=True)
            again.replayed = True
            return again
        wallet = wallet_id(tenant_id, customer, tenant.currency.code)
        if self._wallet(op, tenant, wallet) is None:
            return DeviceReply(result=WalletResult.WALLET_NOT_FOUND, message="customer: this customer has no wallet")
        if wallet in self.state.closed:
            return DeviceReply(result=WalletResult.WALLET_CLOSED, message="the wallet is closed")
        number = 1 + int.from_bytes(os.urandom(8), "little") % (paycodes.NUMBER_MODULUS - 1)
        while (tenant_id, number) in self.state.device_numbers:
            number = 1 + int.from_bytes(os.urandom(8), "little") % (paycodes.NUMBER_MODULUS - 1)
        now = op.now()
        fact = ["device", device_id, tenant_id, wallet, customer, number, name, fp, now]
        self._commit(op, {"op": "device_enrolled", "tenant": tenant_id, "at": now, "wallet": wallet, "id": device_id,
                          "customer": customer, "name": name, "facts": [fact]})  # fmt: skip
        return self._device_reply(tenant, self.state.devices[device_id], keys=True)

    def revoke_device(self, op: Operation, tenant_id: str, device_id: int) -> DeviceReply:
        """Take a device out of use: its codes are refused from now on (revoking it again changes nothing)."""
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None:
            return DeviceReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
        device = self.state.devices.get(device_id)
        if device is None or device.tenant != tenant_id:
            return DeviceReply(result=WalletResult.DEVICE_NOT_FOUND, message="device_id: no such device")
        if not device.revoked_at:
            now = op.now()
            self._commit(op, {"op": "device_revoked", "tenant": tenant_id, "at": now, "wallet": device.wallet,
                              "id": device_id, "facts": [["device_revoked", device_id, now]]})  # fmt: skip
        return self._device_reply(tenant, device)

    def devices(self, tenant_id: str, customer: str) -> list[DeviceReply] | DeviceReply:
        """The devices enrolled for the customer's wallet, revoked ones too, in the order enrolled."""
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None:
            return DeviceReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
        wallet = wallet_id(tenant_id, customer, tenant.currency.code)
        return [self._device_reply(tenant, d) for d in self.state.devices.values() if d.wallet == wallet]

    @staticmethod
    def _device_reply(tenant: Tenant, device: Device, *, keys: bool = False) -> DeviceReply:
        reply = DeviceReply(
            device_id=device.device_id, wallet_id=device.wallet, customer=device.customer, name=device.name,
            number=device.number, enrolled_at=device.enrolled_at, revoked_at=device.revoked_at,
        )  # fmt: skip
        if keys:
            reply.seed = paycodes.device_seed(tenant.secret, device.device_id)
            reply.code_key = paycodes.code_key(tenant.secret)
        return reply

    def pay_by_code(self, op: Operation, request: CodePayment) -> PaymentReply:
        """Pay from the wallet whose device shows `request.code`: the code must be of the current window or the
        grace one, of a device in use, and not have paid before; then as `pay` decides. The terminal and its
        transaction id are the idempotency key: a retry replays the outcome even once the code has turned."""
        tenant = self.state.tenants.get(request.tenant)
        if tenant is None:
            return PaymentReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(request.tenant))
        if (problem := _terminal_problem(request.terminal, request.transaction)) is not None:
            return PaymentReply(result=WalletResult.IDEMPOTENCY_KEY_INVALID, message=problem)
        key_id = _code_operation(request.tenant, request.terminal, request.transaction)
        if key_id in self.state.cancelled:
            return PaymentReply(result=WalletResult.PAYMENT_CANCELLED, requested=request.amount,
                                message="transaction: the terminal cancelled it; it can no longer be paid")  # fmt: skip
        order = request.order_reference or request.transaction
        fp = fingerprint("pay-code", request.code, request.amount, order, request.partial, request.currency)
        replayed = self._chain_replay(
            op, tenant, key_id, fp, _PAYMENT_KINDS, self._payment_reply, PaymentReply, steps=2
        ) or self._replayed(key_id, fp, PaymentReply)
        if replayed is not None:
            return replayed
        found = self._device_of(tenant, request.code, op.now())
        terminal = f"{request.tenant}\x00{request.terminal}"
        if not isinstance(found, tuple):
            reply = PaymentReply(result=found, message=_CODE_REFUSALS[found], requested=request.amount)
            return self._remember(op, "payment_declined", request.tenant, key_id, fp, reply,
                                  self._refused_at(tenant, terminal, op.now()), requested=request.amount,
                                  order=order, terminal=request.terminal, transaction=request.transaction)  # fmt: skip
        device, step = found
        pin_rule = self._pin_rule(tenant, device.wallet, request, op.now())
        if isinstance(pin_rule, tuple):
            result, message, facts = pin_rule
            reply = PaymentReply(result=result, message=message, requested=request.amount)
            return self._remember(op, "payment_declined", request.tenant, key_id, fp, reply, facts,
                                  customer=device.customer, wallet=device.wallet, requested=request.amount,
                                  order=order, terminal=request.terminal, transaction=request.transaction)  # fmt: skip
        limit = self._limit_refusal(tenant, device.wallet, terminal, request.amount, op.now())
        if limit is not None:
            reply = PaymentReply(result=WalletResult.LIMIT_EXCEEDED, message=limit, requested=request.amount)
            return self._remember(op, "payment_declined", request.tenant, key_id, fp, reply, customer=device.customer,
                                  wallet=device.wallet, requested=request.amount, order=order,
                                  terminal=request.terminal, transaction=request.transaction)  # fmt: skip
        payment = Payment(tenant=request.tenant, customer=device.customer, amount=request.amount,
                          key=request.transaction, order_reference=order, partial=request.partial,
                          currency=request.currency)  # fmt: skip
        facts = [["code_used", device.device_id, step, key_id], *pin_rule,
                 ["spent_by_code", device.wallet, terminal, request.amount, op.now()]]  # fmt: skip
        return self._make_payment(op, tenant, payment, key_id, fp, facts, device=f"{device.device_id:032x}",
                                  terminal=request.terminal, transaction=request.transaction)  # fmt: skip

    def hold_by_code(self, op: Operation, request: CodePayment, seconds: int) -> HoldReply:
        """Authorise a hold on the wallet whose device shows `request.code`, for `request.amount`, to capture
        later (a bill before the tip, a pump before the fill): the code's rules are a payment's (its window, once,
        the PIN above pin_above, the risk limits on the amount held); the hold's are AuthorizeHold's. The
        terminal and its transaction id are the idempotency key; capture and void take the hold's id."""
        tenant = self.state.tenants.get(request.tenant)
        if tenant is None:
            return HoldReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(request.tenant))
        if (problem := _terminal_problem(request.terminal, request.transaction)) is not None:
            return HoldReply(result=WalletResult.IDEMPOTENCY_KEY_INVALID, message=problem)
        key_id = _code_operation(request.tenant, request.terminal, request.transaction, "code-hold")
        reference = request.order_reference or request.transaction
        fp = fingerprint("hold-code", request.code, request.amount, seconds, reference, request.currency)
        replayed = self._replayed(key_id, fp, HoldReply)
        if replayed is not None:
            return replayed
        if (problem := self._check_currency(tenant, request.currency)) is not None:
            return HoldReply(result=WalletResult.CURRENCY_MISMATCH, message=problem)
        now = op.now()
        terminal = f"{request.tenant}\x00{request.terminal}"
        found = self._device_of(tenant, request.code, now)
        if not isinstance(found, tuple):
            reply = HoldReply(result=found, message=_CODE_REFUSALS[found])
            return self._remember(op, "hold_refused", request.tenant, key_id, fp, reply,
                                  self._refused_at(tenant, terminal, now), terminal=request.terminal,
                                  transaction=request.transaction)  # fmt: skip
        device, step = found
        pin_rule = self._pin_rule(tenant, device.wallet, request, now)
        if isinstance(pin_rule, tuple):
            result, message, facts = pin_rule
            return self._remember(op, "hold_refused", request.tenant, key_id, fp,
                                  HoldReply(result=result, message=message), facts, customer=device.customer,
                                  wallet=device.wallet, terminal=request.terminal,
                                  transaction=request.transaction)  # fmt: skip
        limit = self._limit_refusal(tenant, device.wallet, terminal, request.amount, now)
        if limit is not None:
            return self._remember(op, "hold_refused", request.tenant, key_id, fp,
                                  HoldReply(result=WalletResult.LIMIT_EXCEEDED, message=limit),
                                  customer=device.customer, wallet=device.wallet, terminal=request.terminal,
                                  transaction=request.transaction)  # fmt: skip
        facts = [["code_used", device.device_id, step, key_id], *pin_rule,
                 ["spent_by_code", device.wallet, terminal, request.amount, now]]  # fmt: skip
        return self._authorize(op, tenant, device.customer, request.amount, key_id, fp, seconds=seconds,
                               reference=reference, facts=facts, device=f"{device.device_id:032x}",
                               terminal=request.terminal, transaction=request.transaction)  # fmt: skip

    def code_payment(self, op: Operation, tenant_id: str, terminal: str, transaction: str) -> CodePaymentStatus:
        """What became of a terminal's transaction: paid (its payment), declined (why), cancelled, or unknown
        (PAYMENT_NOT_FOUND: nothing arrived, and a PayByCode with it may still come)."""
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None:
            return CodePaymentStatus(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
        key_id = _code_operation(tenant_id, terminal, transaction)
        payment = self._code_chain(op, tenant, key_id)
        refund_id = _code_operation(tenant_id, terminal, transaction, "code-cancel")
        if key_id in self.state.cancelled:
            return CodePaymentStatus(status="cancelled", payment=payment,
                                     refund_id=refund_id if refund_id in self.state.replies else 0)  # fmt: skip
        if payment is not None:
            return CodePaymentStatus(status="paid", payment=payment)
        remembered = self.state.replies.get(key_id)
        if remembered is not None:
            return CodePaymentStatus(status="declined", payment=PaymentReply.from_json(remembered[1]))
        return CodePaymentStatus(result=WalletResult.PAYMENT_NOT_FOUND, status="unknown",
                                 message="transaction: no payment by code came with it")  # fmt: skip

    def cancel_code_payment(
        self, op: Operation, tenant_id: str, terminal: str, transaction: str, reason: str
    ) -> CodePaymentStatus:
        """The terminal no longer wants this transaction: if it paid (within CANCEL_SECONDS), what the wallet
        paid is refunded into it (the fee is not, as with any refund); paid or not, it can no longer be paid.
        Cancelling again answers as the first time."""
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None:
            return CodePaymentStatus(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
        if (problem := _terminal_problem(terminal, transaction)) is not None:
            return CodePaymentStatus(result=WalletResult.IDEMPOTENCY_KEY_INVALID, message=problem)
        key_id = _code_operation(tenant_id, terminal, transaction)
        if key_id in self.state.cancelled:
            return self.code_payment(op, tenant_id, terminal, transaction)
        payment = self._code_chain(op, tenant, key_id)
        now = op.now()
        refund_id = 0
        if payment is not None:
            if now - payment.timestamp > CANCEL_SECONDS * NANOSECONDS_PER_SECOND:
                return CodePaymentStatus(
                    result=WalletResult.CANCEL_TOO_LATE, status="paid", payment=payment,
                    message=f"transaction: paid more than {CANCEL_SECONDS // 60} minutes ago; refund it instead",
                )  # fmt: skip
            refunded = self.state.refunds.get(key_id, [0, 0])[0]
            if payment.paid > refunded:
                refund_id = _code_operation(tenant_id, terminal, transaction, "code-cancel")
                reply = self.refund(op, Refund(tenant=tenant_id, payment_id=key_id, amount=payment.paid - refunded,
                                               key="", reason=reason or "cancelled at the terminal"),
                                    own_key=refund_id)  # fmt: skip
                if not reply.ok:
                    return CodePaymentStatus(result=reply.result, message=reply.message, status="paid", payment=payment)
        self._commit(op, {"op": "payment_cancelled", "tenant": tenant_id, "at": now, "id": key_id,
                          "wallet": payment.wallet_id if payment else 0, "terminal": terminal,
                          "transaction": transaction, "reason": reason[:REFERENCE_LENGTH_MAX],
                          "refund": refund_id, "facts": [["cancelled", key_id, now]]})  # fmt: skip
        return CodePaymentStatus(status="cancelled", payment=payment, refund_id=refund_id)

    def _code_chain(self, op: Operation, tenant: Tenant, key_id: int) -> PaymentReply | None:
        found = op.lookup_transfers(b"".join(_pack_id(step_id(key_id, index)) for index in range(2)))
        if (
            not found
            or _id_at(found, 0) != key_id
            or _U32.unpack_from(found, TRANSFER_LEDGER_OFFSET)[0] != tenant.ledger
        ):
            return None
        return self._payment_reply([bytes(found[o : o + TRANSFER_SIZE]) for o in range(0, len(found), TRANSFER_SIZE)])

    def _limit_refusal(
        self, tenant: Tenant, wallet: int, terminal: str, amount: int, now: int,
        pending: dict[tuple[str, int], list[int]] | None = None,
    ) -> str | None:  # fmt: skip
        """The first of the tenant's risk limits this payment by code would pass, named, or None. They count the
        amounts asked (a partial payment counts all it asked), and `pending`: [amount, count] by (owner, period)
        of payments decided before this one whose facts the state does not hold yet."""
        settings, money = tenant.settings, tenant.currency
        if settings.code_payment_max and amount > settings.code_payment_max:
            return f"code_payment_max: a payment by code may be at most {money.format(settings.code_payment_max)}"
        if not settings.limits_periods:
            return None
        spent = self.state.spent_in
        checks = (
            ("wallet_hour", f"{wallet:032x}", 3_600, settings.wallet_hour_amount, settings.wallet_hour_count, "hour"),
            ("wallet_day", f"{wallet:032x}", 86_400, settings.wallet_day_amount, settings.wallet_day_count, "day"),
            ("terminal_hour", terminal, 3_600, settings.terminal_hour_amount, 0, "hour"),
            ("terminal_day", terminal, 86_400, settings.terminal_day_amount, 0, "day"),
        )
        for name, owner, period, amount_max, count_max, span in checks:
            paid, count = spent(owner, period, now)
            if pending and (decided := pending.get((owner, period))) is not None:
                paid, count = paid + decided[0], count + decided[1]
            if amount_max and paid + amount > amount_max:
                return (f"{name}_amount: {money.format(amount_max)} a {span} may be paid by code here; "
                        f"{money.format(paid)} was already this {span}")  # fmt: skip
            if count_max and count + 1 > count_max:
                return f"{name}_count: {count_max} payments by code a {span}; {count} were already this {span}"
        return None

    def _refused_at(self, tenant: Tenant, terminal: str, now: int) -> list[Fact]:
        """The facts of a code refused at a terminal: counted, and flagging it once the tenant's threshold is
        reached within 10 minutes (once per 10 minutes)."""
        facts: list[Fact] = [["code_refused", terminal, now]]
        threshold = tenant.settings.terminal_declines_flag
        if threshold:
            window = REFUSALS_SECONDS * NANOSECONDS_PER_SECOND
            recent = sum(1 for moment in self.state.refusals.get(terminal, ()) if moment > now - window) + 1
            if recent >= threshold and self.state.flagged.get(terminal, 0) <= now - window:
                facts.append(["terminal_flagged", terminal, now])
        return facts

    # -- the counter: payment requests a terminal shows -------------------------------------------------------

    def create_payment_request(
        self, op: Operation, tenant_id: str, terminal: str, amount: int, reference: str, seconds: int, key: str
    ) -> RequestReply:
        """A terminal asks for `amount`; its QR code names the request, which a customer's phone confirms
        (`confirm_payment_request`) until it expires (`seconds`, at most REQUEST_SECONDS_MAX). Idempotent by
        key."""
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None:
            return RequestReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
        if (problem := self._check_key(key)) is not None:
            return RequestReply(result=WalletResult.IDEMPOTENCY_KEY_INVALID, message=problem)
        request_id = operation_id(tenant_id, f"request\x00{key}")
        fp = fingerprint("request", terminal, amount, reference, seconds)
        known = self.state.requests.get(request_id)
        if known is not None:
            if known.fingerprint != fp:
                return RequestReply(result=WalletResult.IDEMPOTENCY_KEY_REUSED, message=_KEY_REUSED)
            again = self._request_reply(known, op.now())
            again.replayed = True
            return again
        if (problem := _terminal_problem(terminal, "-")) is not None:
            return RequestReply(result=WalletResult.IDEMPOTENCY_KEY_INVALID, message=problem)
        if (problem := self._check_amount(amount)) is not None:
            return RequestReply(result=WalletResult.AMOUNT_INVALID, message=problem)
        if not reference or len(reference) > REFERENCE_LENGTH_MAX or not reference.isprintable():
            return RequestReply(result=WalletResult.REFERENCE_REQUIRED,
                                message=f"reference: 1 to {REFERENCE_LENGTH_MAX} printable characters")  # fmt: skip
        if not 0 <= seconds <= REQUEST_SECONDS_MAX:
            problem = f"seconds: 1 to {REQUEST_SECONDS_MAX} (0: {REQUEST_SECONDS_DEFAULT})"
            return RequestReply(result=WalletResult.EXPIRY_INVALID, message=problem)
        now = op.now()
        expires_at = now + (seconds or REQUEST_SECONDS_DEFAULT) * NANOSECONDS_PER_SECOND
        fact = ["request", request_id, tenant_id, terminal, amount, reference, expires_at, now, fp]
        self._commit(op, {"op": "payment_request_created", "tenant": tenant_id, "at": now, "id": request_id,
                          "terminal": terminal, "amount": amount, "reference": reference, "expires_at": expires_at,
                          "facts": [fact]})  # fmt: skip
        return self._request_reply(self.state.requests[request_id], now)

    def payment_request(self, op: Operation, tenant_id: str, request_id: int) -> RequestReply:
        found = self._request_of(tenant_id, request_id)
        return found if isinstance(found, RequestReply) else self._request_reply(found, op.now())

    def confirm_payment_request(
        self, op: Operation, tenant_id: str, request_id: int, customer: str, *, pin_ok: bool | None = None
    ) -> PaymentReply:
        """A customer pays a terminal's request from their wallet: once, before it expires, under the same PIN
        rule and risk limits as a payment by code. The payment's id is the request's; the same customer
        confirming again gets the payment again."""
        found = self._request_of(tenant_id, request_id)
        if isinstance(found, RequestReply):
            return PaymentReply(result=found.result, message=found.message)
        tenant = self.state.tenants[tenant_id]
        fp = fingerprint("request-pay", request_id, customer)
        replayed = self._chain_replay(op, tenant, request_id, fp, _PAYMENT_KINDS, self._payment_reply, PaymentReply,
                                      steps=2)  # fmt: skip
        if replayed is not None and replayed.result is not WalletResult.IDEMPOTENCY_KEY_REUSED:
            return replayed  # this customer's payment of it, again
        now = op.now()
        if found.status != "open":
            return PaymentReply(result=WalletResult.REQUEST_NOT_OPEN, requested=found.amount,
                                message=f"request: it was {found.status}")  # fmt: skip
        if now >= found.expires_at:
            return PaymentReply(result=WalletResult.REQUEST_EXPIRED, requested=found.amount,
                                message="request: its time ran out; the terminal makes a new one")  # fmt: skip
        if (problem := self._check_customer(customer)) is not None:
            return PaymentReply(result=WalletResult.CUSTOMER_INVALID, message=problem)
        wallet = wallet_id(tenant_id, customer, tenant.currency.code)
        terminal = f"{tenant_id}\x00{found.terminal}"
        asked = CodePayment(tenant=tenant_id, code="", amount=found.amount, terminal=found.terminal,
                            transaction=found.reference, pin_ok=pin_ok)  # fmt: skip
        pin_rule = self._pin_rule(tenant, wallet, asked, now)
        if isinstance(pin_rule, tuple):  # a refusal here is not kept: the customer may try again
            result, message, facts = pin_rule
            if facts:
                self._commit(op, {"op": "payment_declined", "tenant": tenant_id, "at": now, "wallet": wallet,
                                  "id": request_id, "customer": customer, "requested": found.amount,
                                  "result": result.name, "message": message, "facts": facts})  # fmt: skip
            return PaymentReply(result=result, message=message, requested=found.amount)
        limit = self._limit_refusal(tenant, wallet, terminal, found.amount, now)
        if limit is not None:
            return PaymentReply(result=WalletResult.LIMIT_EXCEEDED, message=limit, requested=found.amount)
        payment = Payment(tenant=tenant_id, customer=customer, amount=found.amount, key=found.reference,
                          order_reference=found.reference)  # fmt: skip
        facts = [*pin_rule, ["spent_by_code", wallet, terminal, found.amount, now],
                 ["request_status", request_id, "paid", request_id, wallet]]  # fmt: skip
        # A decline is not kept: the request stays open for this customer (topped up) or another.
        return self._make_payment(op, tenant, payment, request_id, fp, facts, keep_decline=False,
                                  terminal=found.terminal, payment_request=f"{request_id:032x}")  # fmt: skip

    def cancel_payment_request(self, op: Operation, tenant_id: str, request_id: int) -> RequestReply:
        """The terminal withdraws an open request: no customer can pay it from now on (cancelling again, or an
        expired one, changes nothing; a paid one is refunded as a payment is)."""
        found = self._request_of(tenant_id, request_id)
        if isinstance(found, RequestReply):
            return found
        now = op.now()
        if found.status == "paid":
            return RequestReply(result=WalletResult.REQUEST_NOT_OPEN, message="request: it was paid; refund it")
        if found.status == "open" and now < found.expires_at:
            self._commit(op, {"op": "payment_request_cancelled", "tenant": tenant_id, "at": now, "id": request_id,
                              "terminal": found.terminal, "amount": found.amount,
                              "facts": [["request_status", request_id, "cancelled", 0, 0]]})  # fmt: skip
        return self._request_reply(found, now)

    def _request_of(self, tenant_id: str, request_id: int) -> PaymentRequest | RequestReply:
        if tenant_id not in self.state.tenants:
            return RequestReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
        found = self.state.requests.get(request_id)
        if found is None or found.tenant != tenant_id:
            return RequestReply(result=WalletResult.REQUEST_NOT_FOUND, message="request: no such payment request")
        return found

    @staticmethod
    def _request_reply(request: PaymentRequest, now: int) -> RequestReply:
        status = "expired" if request.status == "open" and now >= request.expires_at else request.status
        return RequestReply(
            request_id=request.request_id, terminal=request.terminal, amount=request.amount,
            reference=request.reference, status=status, expires_at=request.expires_at,
            created_at=request.created_at, payment_id=request.payment_id, wallet_id=request.wallet,
        )  # fmt: skip

    # -- pay links: payment requests sent to a customer's phone or e-mail --------------------------------

    def create_pay_link(
        self, op: Operation, tenant_id: str, amount: int, reference: str, description: str, contact: str,
        customer: str, seconds: int, key: str, *, reusable: bool = False, partial: bool = False,
    ) -> LinkReply:  # fmt: skip
        """A link a shop sends to `contact` asking for `amount`: open until it expires (`seconds`, 0: a week)
        or is cancelled; paid once (or, `reusable`, again and again) from a wallet whose owner proves it with
        the wallet's PIN and a one-time code sent to the contact. Idempotent by key."""
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None:
            return LinkReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
        if (problem := self._check_key(key)) is not None:
            return LinkReply(result=WalletResult.IDEMPOTENCY_KEY_INVALID, message=problem)
        link_id = operation_id(tenant_id, f"link\x00{key}")
        fp = fingerprint("link", amount, reference, description, contact, customer, seconds, reusable, partial)
        known = self.state.links.get(link_id)
        if known is not None:
            if known.fingerprint != fp:
                return LinkReply(result=WalletResult.IDEMPOTENCY_KEY_REUSED, message=_KEY_REUSED)
            again = self._link_reply(known, op.now())
            again.replayed = True
            return again
        if (problem := self._check_amount(amount)) is not None:
            return LinkReply(result=WalletResult.AMOUNT_INVALID, message=problem)
        if not reference or len(reference) > REFERENCE_LENGTH_MAX or not reference.isprintable():
            return LinkReply(result=WalletResult.REFERENCE_REQUIRED,
                             message=f"reference: 1 to {REFERENCE_LENGTH_MAX} printable characters")  # fmt: skip
        if len(description) > DESCRIPTION_LENGTH_MAX or not description.replace("\n", " ").isprintable():
            return LinkReply(result=WalletResult.REFERENCE_REQUIRED,
                             message=f"description: up to {DESCRIPTION_LENGTH_MAX} printable characters")  # fmt: skip
        if (problem := contact_problem(contact)) is not None:
            return LinkReply(result=WalletResult.CONTACT_INVALID, message=problem)
        if customer and (problem := self._check_customer(customer)) is not None:
            return LinkReply(result=WalletResult.CUSTOMER_INVALID, message=problem)
        if seconds and not LINK_SECONDS_MIN <= seconds <= LINK_SECONDS_MAX:
            problem = f"seconds: {LINK_SECONDS_MIN} to {LINK_SECONDS_MAX} (0: {LINK_SECONDS_DEFAULT})"
            return LinkReply(result=WalletResult.EXPIRY_INVALID, message=problem)
        if partial and reusable:
            return LinkReply(result=WalletResult.PARTIAL_PAYMENT_DISABLED,
                             message="partial: a reusable link takes whole payments only")  # fmt: skip
        if partial and not tenant.settings.partial_payment:
            return LinkReply(result=WalletResult.PARTIAL_PAYMENT_DISABLED,
                             message=f"partial: tenant {tenant_id} takes full payments only")  # fmt: skip
        now = op.now()
        expires_at = now + (seconds or LINK_SECONDS_DEFAULT) * NANOSECONDS_PER_SECOND
        token = link_token(tenant.secret, link_id)
        if token in self.state.link_tokens:  # 128 bits of HMAC: never, but never two links behind one URL
            return LinkReply(result=WalletResult.IDEMPOTENCY_KEY_INVALID, message="key: choose another key")
        fact = [link_id, tenant_id, token, amount, reference, description, contact, customer, expires_at, now,
                reusable, partial, fp]  # fmt: skip
        self._commit(op, {"op": "pay_link_created", "tenant": tenant_id, "at": now, "id": link_id,
                          "amount": amount, "reference": reference, "customer": customer, "reusable": reusable,
                          "partial": partial, "expires_at": expires_at, "facts": [["link", *fact]]})  # fmt: skip
        return self._link_reply(self.state.links[link_id], now)

    def pay_link(self, op: Operation, tenant_id: str, link_id: int, token: str = "") -> LinkReply:
        """A link by tenant and id, or by its URL's `token` alone (then without its contact)."""
        found = self._link_of(tenant_id, link_id, token)
        if isinstance(found, LinkReply):
            return found
        reply = self._link_reply(found, op.now())
        if token:
            reply.contact = ""
        return reply

    def cancel_pay_link(self, op: Operation, tenant_id: str, link_id: int) -> LinkReply:
        """No one can pay the link from now on (cancelling again, or a link no longer open, changes nothing;
        its payments stay, to be refunded as any payment is)."""
        found = self._link_of(tenant_id, link_id, "")
        if isinstance(found, LinkReply):
            return found
        now = op.now()
        if found.status == "open" and now < found.expires_at:
            self._commit(op, {"op": "pay_link_cancelled", "tenant": tenant_id, "at": now, "id": link_id,
                              "amount": found.amount, "facts": [["link_status", link_id, "cancelled"]]})  # fmt: skip
        return self._link_reply(found, now)

    def pay_link_tenant(self, token: str) -> str | None:
        """The tenant of the link behind `token` (None: no such link). Reads only."""
        link = self.state.links.get(self.state.link_tokens.get(token, 0))
        return link.tenant if link is not None else None

    def link_pin_hash(self, token: str, customer: str) -> str | None:
        """The PIN hash of the wallet a customer names on a link's page (None: no such link, wallet or PIN):
        what the caller checks the PIN against before start_pay_link_payment. Reads only."""
        link = self.state.links.get(self.state.link_tokens.get(token, 0))
        return self.pin_hash_of(link.tenant, customer) if link is not None else None

    def start_pay_link_payment(
        self, op: Operation, token: str, customer: str, pin_ok: bool | None, challenge_id: int, code: str
    ) -> ChallengeReply:
        """A customer on a link's page names their wallet; with its right PIN (`pin_ok`, checked by the
        caller), `code` becomes the one-time code of challenge `challenge_id` (both drawn at random by the
        caller), which the caller sends to the link's contact. A wrong PIN counts towards the wallet's lock
        and the link's; whether the wallet exists is not told."""
        found = self._link_of("", 0, token)
        if isinstance(found, LinkReply):
            return ChallengeReply(result=found.result, message=found.message)
        tenant = self.state.tenants[found.tenant]
        now = op.now()
        refused = self._link_refusal(found, now)
        if refused is not None:
            return ChallengeReply(result=refused[0], message=refused[1])
        if found.customer and customer != found.customer:
            pin_ok = False  # the link is for another customer: as a wrong PIN, telling nothing more
        if not customer or self._check_customer(customer) is not None:
            pin_ok = False
        if pin_ok is None:
            return ChallengeReply(result=WalletResult.PIN_REQUIRED, message="pin: the wallet's PIN is required")
        wallet = wallet_id(found.tenant, customer, tenant.currency.code) if customer else 0
        exists = pin_ok is True or self._wallet_exists(op, tenant, wallet)  # a PIN is only ever set on a wallet
        if pin_ok is False or not exists:
            facts: list[Fact] = [["link_failed", found.link_id]]
            result, message = WalletResult.PIN_INVALID, "customer and pin: no wallet of this shop has that PIN"
            if exists and (locked_until := self.state.pin_locks.get(wallet, 0)) > now:
                result, message = WalletResult.PIN_LOCKED, _locked(locked_until)
            elif exists:
                wrong = CodePayment(tenant=found.tenant, code="", amount=0, terminal="", transaction="", pin_ok=False)
                ruled = self._pin_rule(tenant, wallet, wrong, now)
                assert isinstance(ruled, tuple)
                if ruled[0] is WalletResult.PIN_LOCKED:
                    result, message = ruled[0], ruled[1]
                facts += ruled[2]
            self._commit(op, {"op": "pay_link_pin_refused", "tenant": found.tenant, "at": now, "id": found.link_id,
                              "wallet": wallet if exists else 0, "result": result.name, "facts": facts})  # fmt: skip
            return ChallengeReply(result=result, message=message)
        if (locked_until := self.state.pin_locks.get(wallet, 0)) > now:
            return ChallengeReply(result=WalletResult.PIN_LOCKED, message=_locked(locked_until))
        if found.challenges >= LINK_CHALLENGES_FREE + CHALLENGES_PER_PAYMENT * found.payments:
            return ChallengeReply(result=WalletResult.LIMIT_EXCEEDED,
                                  message="challenges: this link sent all the one-time codes it may; the shop "
                                          "sends a new link")  # fmt: skip
        if challenge_id in self.state.challenges or not code.isascii() or not code.isdigit():
            return ChallengeReply(result=WalletResult.IDEMPOTENCY_KEY_INVALID, message="challenge: draw another")
        expires_at = min(now + CHALLENGE_SECONDS * NANOSECONDS_PER_SECOND, found.expires_at)
        digest = challenge_digest(tenant.secret, challenge_id, code)
        facts = [["challenge", challenge_id, found.link_id, customer, digest, expires_at, CHALLENGE_TRIES]]
        if wallet in self.state.pin_failures:
            facts.append(["pin_reset", wallet])
        self._commit(op, {"op": "pay_link_code_sent", "tenant": found.tenant, "at": now, "id": found.link_id,
                          "wallet": wallet, "facts": facts})  # fmt: skip
        return ChallengeReply(challenge_id=challenge_id, sent_to=masked_contact(found.contact), expires_at=expires_at,
                              contact=found.contact, link=self._link_reply(found, now))  # fmt: skip

    def pay_pay_link(self, op: Operation, token: str, challenge_id: int, code: str) -> PaymentReply:
        """Answer a link's challenge with its one-time code and pay the link from the challenged wallet: the
        link's amount (a partial link: what the wallet covers, the rest to be paid another way). The same
        challenge and code again get the same payment."""
        found = self._link_of("", 0, token)
        if isinstance(found, LinkReply):
            return PaymentReply(result=found.result, message=found.message)
        tenant = self.state.tenants[found.tenant]
        now = op.now()
        challenge = self.state.challenges.get(challenge_id)
        if challenge is None or challenge.link_id != found.link_id:
            return PaymentReply(result=WalletResult.CHALLENGE_INVALID, message="challenge: no such challenge")
        right = hmac.compare_digest(challenge.digest, challenge_digest(tenant.secret, challenge_id, code))
        fp = fingerprint("link-pay", found.link_id, challenge_id)
        if challenge.payment_id:
            if not right:
                return PaymentReply(result=WalletResult.CHALLENGE_INVALID, message="code: wrong one-time code")
            replayed = self._chain_replay(op, tenant, challenge.payment_id, fp, _PAYMENT_KINDS, self._payment_reply,
                                          PaymentReply, steps=2)  # fmt: skip
            if replayed is not None:
                return replayed
        refused = self._link_refusal(found, now)
        if refused is not None:
            return PaymentReply(result=refused[0], message=refused[1], requested=found.amount)
        if challenge.tries_left <= 0 or now >= challenge.expires_at:
            return PaymentReply(result=WalletResult.CHALLENGE_INVALID,
                                message="code: this one-time code is used up or expired; ask again")  # fmt: skip
        if not right:
            left = challenge.tries_left - 1
            self._commit(op, {"op": "pay_link_code_refused", "tenant": found.tenant, "at": now, "id": found.link_id,
                              "facts": [["challenge_failed", challenge_id]]})  # fmt: skip
            return PaymentReply(result=WalletResult.CHALLENGE_INVALID,
                                message=f"code: wrong one-time code; {left} more tries")  # fmt: skip
        wallet = wallet_id(found.tenant, challenge.customer, tenant.currency.code)
        if (locked_until := self.state.pin_locks.get(wallet, 0)) > now:
            return PaymentReply(result=WalletResult.PIN_LOCKED, message=_locked(locked_until))
        payment_id = operation_id(found.tenant, f"paylink\x00{found.link_id:032x}\x00{found.payments}")
        payment = Payment(tenant=found.tenant, customer=challenge.customer, amount=found.amount,
                          key=f"paylink-{found.payments}", order_reference=found.reference,
                          partial=found.partial)  # fmt: skip
        decided = self._decide_payment(op, tenant, payment)
        paid = decided.paid if isinstance(decided, _Paying) else 0
        status = "open" if found.reusable else "paid" if paid == found.amount else "partially_paid"
        facts: list[Fact] = [["challenge_used", challenge_id, payment_id],
                             ["link_paid", found.link_id, payment_id, paid, status]]  # fmt: skip
        # A decline is not kept: the link stays open for this customer (topped up) or another way.
        return self._make_payment(op, tenant, payment, payment_id, fp, facts, keep_decline=False,
                                  pay_link=f"{found.link_id:032x}")  # fmt: skip

    def _link_of(self, tenant_id: str, link_id: int, token: str) -> PayLink | LinkReply:
        if token:
            found = self.state.links.get(self.state.link_tokens.get(token, 0))
        else:
            if tenant_id not in self.state.tenants:
                return LinkReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
            found = self.state.links.get(link_id)
            if found is not None and found.tenant != tenant_id:
                found = None
        if found is None:
            return LinkReply(result=WalletResult.REQUEST_NOT_FOUND, message="link: no such pay link")
        return found

    @staticmethod
    def _link_refusal(link: PayLink, now: int) -> tuple[WalletResult, str] | None:
        """Why a link takes no payment now, if it does not."""
        if link.status != "open":
            return WalletResult.REQUEST_NOT_OPEN, f"link: it was {link.status.replace('_', ' ')}"
        if now >= link.expires_at:
            return WalletResult.REQUEST_EXPIRED, "link: its time ran out; the shop sends a new one"
        if link.failures >= LINK_PIN_FAILURES_MAX:
            return WalletResult.PIN_LOCKED, "link: too many wrong PINs were given on it; the shop sends a new one"
        return None

    def _wallet_exists(self, op: Operation, tenant: Tenant, wallet: int) -> bool:
        return bool(wallet) and self._wallet(op, tenant, wallet) is not None

    def _link_reply(self, link: PayLink, now: int) -> LinkReply:
        status = "expired" if link.status == "open" and now >= link.expires_at else link.status
        return LinkReply(
            link_id=link.link_id, tenant=link.tenant, token=link.token, amount=link.amount,
            currency=self.state.tenants[link.tenant].currency.code, reference=link.reference,
            description=link.description, contact=link.contact, customer=link.customer, reusable=link.reusable,
            partial=link.partial, status=status, expires_at=link.expires_at, created_at=link.created_at,
            paid=link.paid, payments=link.payments, payment_id=link.payment_id,
        )  # fmt: skip

    def _expire_links(self, op: Operation, now: int) -> int:
        """Mark the open links past their expiry expired (one record, an event each)."""
        expiries = self.state.link_expiries
        due: list[PayLink] = []
        while expiries and expiries[0][0] <= now and len(due) < SWEEP_TRANSFERS_MAX:
            _, link_id = heapq.heappop(expiries)
            link = self.state.links.get(link_id)
            if link is not None and link.status == "open" and link.expires_at <= now:
                due.append(link)
        if due:
            self._commit(op, {"op": "pay_links_expired", "at": now,
                              "links": [[link.link_id, link.amount, link.tenant] for link in due],
                              "facts": [["link_status", link.link_id, "expired"] for link in due]})  # fmt: skip
        return len(due)

    def _pin_rule(
        self, tenant: Tenant, wallet: int, request: CodePayment, now: int
    ) -> tuple[WalletResult, str, list[Fact]] | list[Fact]:
        """The PIN's say on a code payment: (result, message, facts) if it refuses it (a wrong PIN counts, the
        last allowed locks), else the facts that go with the payment (a right PIN clears the count)."""
        settings = tenant.settings
        locked_until = self.state.pin_locks.get(wallet, 0)
        if locked_until > now:
            return WalletResult.PIN_LOCKED, _locked(locked_until), []
        if request.pin_ok is False:
            failures = self.state.pin_failures.get(wallet, 0) + 1
            if failures >= settings.attempts_allowed:
                until = now + settings.lock_seconds * NANOSECONDS_PER_SECOND
                return WalletResult.PIN_LOCKED, _locked(until), [["pin_failed", wallet], ["pin_locked", wallet, until]]
            left = settings.attempts_allowed - failures
            return (
                WalletResult.PIN_INVALID,
                f"pin: wrong; {left} more wrong would lock code payments",
                [["pin_failed", wallet]],
            )
        if settings.pin_above and request.amount > settings.pin_above and request.pin_ok is not True:
            missing = "the customer has set no payment PIN" if wallet not in self.state.pins else "none was given"
            money = tenant.currency
            return (
                WalletResult.PIN_REQUIRED,
                f"pin: a payment above {money.format(settings.pin_above)} needs the customer's PIN, and {missing}",
                [],
            )
        return [["pin_reset", wallet]] if request.pin_ok and wallet in self.state.pin_failures else []

    def pin_hash_for_code(self, tenant_id: str, code: str, now: int) -> str | None:
        """The PIN hash of the wallet whose device shows `code` (None: no such device, or no PIN): what the
        caller checks a PIN against before PayByCode. Reads only; a stale answer is checked again by the rule."""
        tenant = self.state.tenants.get(tenant_id)
        found = self._code_device(tenant, code, now) if tenant is not None else None
        return self.state.pins.get(found[0].wallet) if found is not None else None

    def pin_hash_of(self, tenant_id: str, customer: str) -> str | None:
        """The PIN hash of a customer's wallet (None: no tenant, wallet or PIN): what the caller checks a PIN
        against before confirming a payment request. Reads only."""
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None or self._check_customer(customer) is not None:
            return None
        return self.state.pins.get(wallet_id(tenant_id, customer, tenant.currency.code))

    def set_pin(self, op: Operation, tenant_id: str, customer: str, hashed: str) -> PinReply:
        """Set or change the wallet's payment PIN (`hashed`: its Argon2id hash, made by the caller after
        ledger.wallet._pins.pin_problem passed it); any lock and count of wrong PINs end."""
        found = self._pin_wallet(op, tenant_id, customer)
        if isinstance(found, PinReply):
            return found
        if not hashed.startswith("$argon2id$"):
            return PinReply(result=WalletResult.PIN_INVALID, message="pin: not an Argon2id hash")
        self._commit(op, {"op": "pin_set", "tenant": tenant_id, "at": op.now(), "wallet": found,
                          "facts": [["pin", found, hashed]]})  # fmt: skip
        return self._pin_reply(found)

    def unlock_pin(self, op: Operation, tenant_id: str, customer: str, *, actor: str, reason: str) -> PinReply:
        """An operator lifts the lock wrong PINs put on the wallet's code payments (and clears the count)."""
        found = self._pin_wallet(op, tenant_id, customer)
        if isinstance(found, PinReply):
            return found
        if found in self.state.pin_locks or found in self.state.pin_failures:
            self._commit(op, {"op": "wallet_unlocked", "tenant": tenant_id, "at": op.now(), "wallet": found,
                              "actor": actor, "reason": reason[:REFERENCE_LENGTH_MAX],
                              "facts": [["pin_reset", found]]})  # fmt: skip
        return self._pin_reply(found)

    def pin_status(self, op: Operation, tenant_id: str, customer: str) -> PinReply:
        found = self._pin_wallet(op, tenant_id, customer)
        return found if isinstance(found, PinReply) else self._pin_reply(found)

    def _pin_wallet(self, op: Operation, tenant_id: str, customer: str) -> int | PinReply:
        """The customer's wallet, which must exist: a PIN belongs to a wallet, not to a name."""
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None:
            return PinReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
        if (problem := self._check_customer(customer)) is not None:
            return PinReply(result=WalletResult.CUSTOMER_INVALID, message=problem)
        wallet = wallet_id(tenant_id, customer, tenant.currency.code)
        if self._wallet(op, tenant, wallet) is None:
            return PinReply(result=WalletResult.WALLET_NOT_FOUND, message="customer: this customer has no wallet")
        return wallet

    def _pin_reply(self, wallet: int) -> PinReply:
        return PinReply(wallet_id=wallet, pin_set=wallet in self.state.pins,
                        failures=self.state.pin_failures.get(wallet, 0),
                        locked_until=self.state.pin_locks.get(wallet, 0))  # fmt: skip

    def _device_of(self, tenant: Tenant, code: str, now: int) -> tuple[Device, int] | WalletResult:
        """The device that showed `code` and its window, or CODE_INVALID (whatever the reason) or CODE_USED."""
        found = self._code_device(tenant, code, now)
        if found is None or found[0].revoked_at:
            return WalletResult.CODE_INVALID
        if self.state.code_used(found[0].device_id, found[1]):
            return WalletResult.CODE_USED
        return found

    def _code_device(self, tenant: Tenant, code: str, now: int) -> tuple[Device, int] | None:
        """The device whose one-time password `code` carries, in the current or the grace window, and which."""
        parsed = paycodes.parse_code(code)
        if parsed is None:
            return None
        masked, password = parsed
        for step, number in paycodes.candidates(paycodes.code_key(tenant.secret), masked, now):
            device_id = self.state.device_numbers.get((tenant.tenant_id, number))
            if device_id is None:
                continue
            device = self.state.devices[device_id]
            if not device.seed:
                device.seed = paycodes.device_seed(tenant.secret, device_id)
            if paycodes.password_matches(device.seed, step, password):
                return device, step
        return None

    # -- refunds ---------------------------------------------------------------------------------------

    def refund(self, op: Operation, request: Refund, *, own_key: int = 0) -> RefundReply:
        """Refund (part of) a payment into the wallet: never more than the wallet paid for it, summed over
        every refund; with `to_credit`, the part paid another way, as store credit, bounded by that part.
        The fee is not refunded. Refunded credit is a grant with the tenant's default credit expiry.
        (`own_key`: the operation id of a refund the wallet makes itself, in place of the request's key.)"""
        tenant = self.state.tenants.get(request.tenant)
        if tenant is None:
            return RefundReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(request.tenant))
        if not own_key and (problem := self._check_key(request.key)) is not None:
            return RefundReply(result=WalletResult.IDEMPOTENCY_KEY_INVALID, message=problem)
        key_id = own_key or operation_id(request.tenant, request.key)
        fp = fingerprint("refund", request.payment_id, request.amount, request.to_credit, request.reason)
        replayed = self._replayed(key_id, fp, RefundReply)
        if replayed is not None:
            return replayed
        if op.lookup_transfers(_pack_id(key_id)):
            return RefundReply(
                result=WalletResult.IDEMPOTENCY_KEY_REUSED,
                message=_KEY_REUSED,
            )
        refusal, payment = self._refund_refusal(op, tenant, request)
        if refusal is not None:
            result, message = refusal
            reply = RefundReply(result=result, message=message, payment_id=request.payment_id)
            return self._remember(op, "refund_refused", request.tenant, key_id, fp, reply)
        assert payment is not None
        wallet, refundable, counted_as = payment
        view = self._wallet(op, tenant, wallet)
        assert view is not None
        code = TransferCode.REFUND_TO_CREDIT if request.to_credit else TransferCode.REFUND
        t0 = _transfer(
            key_id, tenant.accounts[AccountCode.REFUNDS], wallet, request.amount, tenant.ledger, code,
            user_data_128=request.payment_id, user_data_64=fp,
        )  # fmt: skip
        results = op.create_transfers(t0)
        if (failed := _results_ok(results)) is not None:
            return RefundReply(
                result=WalletResult.LEDGER_REFUSED, message=f"the ledger refused the refund: {failed.name}"
            )
        now = view.now
        seconds = tenant.settings.credit_expiry_seconds
        expires_at = min(now + seconds * NANOSECONDS_PER_SECOND, TIMESTAMP_MAX) if seconds else 0
        balance = view.available + request.amount
        reply = RefundReply(
            refund_id=key_id, payment_id=request.payment_id, wallet_id=wallet, amount=request.amount,
            to_credit=request.to_credit, refundable=refundable - request.amount, balance=balance,
            timestamp=TRANSFER_RESULT_STRUCT.unpack_from(results, 0)[2],
        )  # fmt: skip
        facts: list[list[Any]] = [
            ["refund", counted_as, 0 if request.to_credit else request.amount,
             request.amount if request.to_credit else 0],
            ["reply", key_id, fp, reply.to_json()],
        ]  # fmt: skip
        if expires_at:
            facts.append(["grant", wallet, key_id, request.amount, expires_at])
        facts += self._crossing(tenant, wallet, balance)
        self._commit(
            op,
            {"op": "refunded", "tenant": request.tenant, "at": now, "wallet": wallet, "id": key_id,
             "payment": request.payment_id, "amount": request.amount, "to_credit": request.to_credit,
             "reason": request.reason, "facts": facts},
        )  # fmt: skip
        return reply

    def _refund_refusal(
        self, op: Operation, tenant: Tenant, request: Refund
    ) -> tuple[tuple[WalletResult, str] | None, tuple[int, int, int] | None]:
        """(refusal, None) or (None, (wallet, what may be refunded this way before this refund, the id the
        refunds of the payment are counted under: a captured hold's are its capture's))."""
        if (problem := self._check_amount(request.amount)) is not None:
            return (WalletResult.AMOUNT_INVALID, problem), None
        if len(request.reason) > REFERENCE_LENGTH_MAX:
            return (WalletResult.REFERENCE_REQUIRED, f"reason: at most {REFERENCE_LENGTH_MAX} characters"), None
        payment_id = self.state.captures.get(request.payment_id, request.payment_id)  # a hold: its capture
        payment = op.lookup_transfers(_pack_id(payment_id)) if 0 < payment_id < 2**128 else b""
        code = _U16.unpack_from(payment, TRANSFER_CODE_OFFSET)[0] if payment else 0
        flags = _U16.unpack_from(payment, TRANSFER_FLAGS_OFFSET)[0] if payment else 0
        captured = code == TransferCode.HOLD and flags & TransferFlags.POST_PENDING_TRANSFER
        if (
            not payment
            or not (code == TransferCode.PAYMENT or captured)
            or _U32.unpack_from(payment, TRANSFER_LEDGER_OFFSET)[0] != tenant.ledger
        ):
            return (WalletResult.PAYMENT_NOT_FOUND, "payment_id: no payment of this tenant has this id"), None
        wallet = _id_at(payment, TRANSFER_DEBIT_ACCOUNT_ID_OFFSET)
        paid = _u64(payment, TRANSFER_AMOUNT_OFFSET)
        refunded_wallet, refunded_credit = self.state.refunds.get(payment_id, (0, 0))
        if request.to_credit:
            if not tenant.settings.refund_to_credit:
                return (
                    WalletResult.REFUND_TO_CREDIT_DISABLED,
                    f"to_credit: tenant {tenant.tenant_id} does not refund other tenders as store credit",
                ), None
            other = _u64(payment, TRANSFER_USER_DATA_64_OFFSET) - paid if code == TransferCode.PAYMENT else 0
            refundable = other - refunded_credit
        else:
            refundable = paid - refunded_wallet
        if request.amount > refundable:
            money = tenant.currency
            return (
                WalletResult.REFUND_EXCEEDS_PAYMENT,
                f"amount: {money.format(request.amount)} is more than the {money.format(max(refundable, 0))} "
                "left to refund of this payment",
            ), None
        if wallet in self.state.closed:
            return (WalletResult.WALLET_CLOSED, "the wallet is closed"), None
        return None, (wallet, refundable, payment_id)

    # -- expiry ----------------------------------------------------------------------------------------

    def sweep(self, op: Operation) -> int:
        """Move the credit of every grant past its expiry to breakage (one transfer per grant), and void the
        holds past theirs. Returns how many it moved; run it every second or so."""
        now = op.now()
        moved = self._expire_holds(op, now) + self._expire_vouchers(op, now) + self._expire_links(op, now)
        due: list[tuple[int, int, int]] = []  # (wallet, grant_id, remaining)
        # A grant may have two entries in the heap: one from when it was granted, stale while a hold
        # reserved all of it, and one from when the hold gave it back. It expires once.
        seen: set[tuple[int, int]] = set()
        expiries = self.state.expiries
        while expiries and expiry_parts(expiries[0])[0] <= now and len(due) < SWEEP_TRANSFERS_MAX:
            _, wallet, grant_id = expiry_parts(heapq.heappop(expiries))
            if (wallet, grant_id) in seen:
                continue
            seen.add((wallet, grant_id))
            for expires_at, remaining, held_id in self.state.grants_of(wallet):
                if held_id == grant_id and expires_at <= now and remaining:
                    due.append((wallet, grant_id, remaining))
                    break
        if not due:
            return moved
        sweep = self.state.sweeps
        events = []
        for wallet, grant_id, remaining in due:
            tenant = self._tenant_of_wallet(op, wallet)
            events.append(
                _transfer(
                    derived_id("expiry", grant_id, sweep),
                    wallet,
                    tenant.accounts[AccountCode.BREAKAGE],
                    remaining,
                    tenant.ledger,
                    TransferCode.EXPIRY,
                    user_data_128=grant_id,
                )
            )
        results = op.create_transfers(b"".join(events))
        record_facts: list[list[Any]] = [["sweep"]]
        expired: list[list[Any]] = []
        for index, (wallet, grant_id, remaining) in enumerate(due):
            code = CreateTransferResult(_U32.unpack_from(results, index * TRANSFER_RESULT_SIZE)[0])
            if code is not CreateTransferResult.OK:
                logger.error("the expiry of a grant was refused by the engine: %s", code.name)
                heapq.heappush(expiries, expiry_entry(now, wallet, grant_id))
                continue
            record_facts.append(["expired", wallet, grant_id])
            expired.append([wallet, grant_id, remaining, self._tenant_of_wallet(op, wallet).tenant_id])
            moved += 1
        self._commit(op, {"op": "credit_expired", "at": now, "grants": expired, "facts": record_facts})
        return moved

    def _tenant_of_wallet(self, op: Operation, wallet: int) -> Tenant:
        found = op.lookup_accounts(_pack_id(wallet))
        ledger = _U32.unpack_from(found, ACCOUNT_LEDGER_OFFSET)[0]
        return self.state.tenants[self.state.ledgers[ledger]]

    def _expire_holds(self, op: Operation, now: int) -> int:
        moved = 0
        hold_expiries = self.state.hold_expiries
        while hold_expiries and hold_expiries[0][0] <= now and moved < SWEEP_TRANSFERS_MAX:
            _, hold_id = heapq.heappop(hold_expiries)
            hold = self.state.holds.get(hold_id)
            if hold is None or hold.expires_at > now:
                continue
            tenant = self.state.tenants[hold.tenant]
            if self._end_hold(op, tenant, hold, derived_id("hold-expiry", hold_id), 0, "expired") is not None:
                moved += 1
        return moved

    # -- holds -----------------------------------------------------------------------------------------

    def authorize(
        self, op: Operation, tenant_id: str, customer: str, amount: int, key: str, *, seconds: int, reference: str
    ) -> HoldReply:
        """Reserve `amount` of the wallet's spendable credit for up to `seconds` (0: the default week)."""
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None:
            return HoldReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
        if (problem := self._check_key(key)) is not None:
            return HoldReply(result=WalletResult.IDEMPOTENCY_KEY_INVALID, message=problem)
        key_id = operation_id(tenant_id, key)
        fp = fingerprint("hold", customer, amount, seconds, reference)
        replayed = self._replayed(key_id, fp, HoldReply)
        if replayed is not None:
            return replayed
        return self._authorize(op, tenant, customer, amount, key_id, fp, seconds=seconds, reference=reference)

    def _authorize(
        self, op: Operation, tenant: Tenant, customer: str, amount: int, key_id: int, fp: int, *, seconds: int,
        reference: str, facts: list[Fact] | None = None, **details: Any,
    ) -> HoldReply:  # fmt: skip
        """Authorise a hold whose operation is new (its replay checked by the caller); its record carries
        `facts` and `details` too."""
        tenant_id = tenant.tenant_id
        if op.lookup_transfers(_pack_id(key_id)):
            return HoldReply(
                result=WalletResult.IDEMPOTENCY_KEY_REUSED,
                message=_KEY_REUSED,
            )
        refusal: tuple[WalletResult, str] | None = None
        view = None
        if (problem := self._check_customer(customer)) is not None:
            refusal = WalletResult.CUSTOMER_INVALID, problem
        elif (problem := self._check_amount(amount)) is not None:
            refusal = WalletResult.AMOUNT_INVALID, problem
        elif not 0 <= seconds <= HOLD_SECONDS_MAX:
            refusal = WalletResult.EXPIRY_INVALID, f"seconds: a hold lasts 1 to {HOLD_SECONDS_MAX} seconds (0: a week)"
        elif not reference or len(reference) > REFERENCE_LENGTH_MAX:
            refusal = WalletResult.REFERENCE_REQUIRED, f"reference: 1 to {REFERENCE_LENGTH_MAX} characters are required"
        else:
            wallet = wallet_id(tenant_id, customer, tenant.currency.code)
            view = self._wallet(op, tenant, wallet)
            if view is None:
                refusal = WalletResult.WALLET_NOT_FOUND, "customer: this customer has no wallet"
            elif wallet in self.state.closed:
                refusal = WalletResult.WALLET_CLOSED, "the wallet is closed"
            elif wallet in self.state.frozen:
                refusal = WalletResult.WALLET_FROZEN, "the wallet is frozen: it may receive refunds only"
            elif amount > view.available:
                refusal = (
                    WalletResult.INSUFFICIENT_FUNDS,
                    (f"amount: the wallet has {tenant.currency.format(max(view.available, 0))} to spend"),
                )
        if refusal is not None or view is None:
            assert refusal is not None
            reply = HoldReply(result=refusal[0], message=refusal[1])
            return self._remember(op, "hold_refused", tenant_id, key_id, fp, reply)
        wallet = view.wallet_id
        parts = view.allocate(amount)
        expires_at = view.now + (seconds or HOLD_SECONDS_DEFAULT) * NANOSECONDS_PER_SECOND
        t0 = _transfer(
            key_id, wallet, tenant.accounts[AccountCode.REVENUE], amount, tenant.ledger, TransferCode.HOLD,
            flags=TransferFlags.PENDING, user_data_64=fp,
        )  # fmt: skip
        results = op.create_transfers(t0)
        if (failed := _results_ok(results)) is not None:
            return HoldReply(result=WalletResult.LEDGER_REFUSED, message=f"the ledger refused the hold: {failed.name}")
        balance = view.available - amount
        reply = HoldReply(
            hold_id=key_id, wallet_id=wallet, amount=amount, expires_at=expires_at, balance=balance,
            timestamp=TRANSFER_RESULT_STRUCT.unpack_from(results, 0)[2], status="pending",
        )  # fmt: skip
        made: list[Fact] = [
            ["hold", key_id, wallet, tenant_id, amount, expires_at, parts],
            ["reply", key_id, fp, reply.to_json()],
            *(facts or []),
        ]
        made += self._crossing(tenant, wallet, balance)
        self._commit(
            op,
            {"op": "hold_authorized", "tenant": tenant_id, "at": view.now, "wallet": wallet, "id": key_id,
             "amount": amount, "reference": reference, "expires_at": expires_at, **details, "facts": made},
        )  # fmt: skip
        return reply

    def capture(self, op: Operation, tenant_id: str, hold_id: int, amount: int, key: str) -> HoldReply:
        """Capture up to the held amount (0: all of it); the rest is released. The capture is a payment,
        refunded by the hold's id or the capture's, under one bound."""
        return self._finish_hold(op, tenant_id, hold_id, amount, key, capture=True)

    def void(self, op: Operation, tenant_id: str, hold_id: int, key: str) -> HoldReply:
        return self._finish_hold(op, tenant_id, hold_id, 0, key, capture=False)

    def _finish_hold(
        self, op: Operation, tenant_id: str, hold_id: int, amount: int, key: str, *, capture: bool
    ) -> HoldReply:
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None:
            return HoldReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
        if (problem := self._check_key(key)) is not None:
            return HoldReply(result=WalletResult.IDEMPOTENCY_KEY_INVALID, message=problem)
        key_id = operation_id(tenant_id, key)
        fp = fingerprint("capture" if capture else "void", hold_id, amount)
        replayed = self._replayed(key_id, fp, HoldReply)
        if replayed is not None:
            return replayed
        if op.lookup_transfers(_pack_id(key_id)):
            return HoldReply(
                result=WalletResult.IDEMPOTENCY_KEY_REUSED,
                message=_KEY_REUSED,
            )
        hold = self.state.holds.get(hold_id)
        refusal: tuple[WalletResult, str] | None = None
        if hold is None or hold.tenant != tenant_id:
            pending = op.lookup_transfers(_pack_id(hold_id)) if 0 < hold_id < 2**128 else b""
            is_hold = (
                pending
                and _U16.unpack_from(pending, TRANSFER_CODE_OFFSET)[0] == TransferCode.HOLD
                and _U32.unpack_from(pending, TRANSFER_LEDGER_OFFSET)[0] == tenant.ledger
            )
            refusal = (
                (WalletResult.HOLD_NOT_PENDING, "hold_id: the hold was captured, voided or expired already")
                if is_hold
                else (WalletResult.HOLD_NOT_FOUND, "hold_id: no hold of this tenant has this id")
            )
        elif hold.expires_at <= op.now():
            # Expired, whether or not the sweep has voided it yet: the sweep releases what it reserves.
            refusal = WalletResult.HOLD_NOT_PENDING, "hold_id: the hold expired"
        elif not 0 <= amount <= AMOUNT_MAX:
            refusal = WalletResult.AMOUNT_INVALID, f"amount must be between 0 (all) and {AMOUNT_MAX}"
        elif capture and amount > hold.amount:
            refusal = (
                WalletResult.CAPTURE_EXCEEDS_HOLD,
                f"amount: {tenant.currency.format(amount)} is more than the {tenant.currency.format(hold.amount)} held",
            )
        if refusal is not None or hold is None:
            assert refusal is not None
            return self._remember(
                op, "hold_refused", tenant_id, key_id, fp, HoldReply(result=refusal[0], message=refusal[1])
            )
        captured = (amount or hold.amount) if capture else 0
        reply = self._end_hold(op, tenant, hold, key_id, captured, "captured" if capture else "voided", fp=fp)
        assert reply is not None
        return reply

    def _end_hold(
        self, op: Operation, tenant: Tenant, hold: Hold, transfer_id: int, captured: int, status: str, *, fp: int = 0
    ) -> HoldReply | None:
        """Post `captured` of the hold (0: void it) and release the rest to the credit it came from."""
        flags = TransferFlags.POST_PENDING_TRANSFER if captured else TransferFlags.VOID_PENDING_TRANSFER
        t0 = _transfer(
            transfer_id, hold.wallet, tenant.accounts[AccountCode.REVENUE], captured, tenant.ledger, TransferCode.HOLD,
            flags=flags, pending_id=hold.hold_id, user_data_64=fp,
        )  # fmt: skip
        results = op.create_transfers(t0)
        if (failed := _results_ok(results)) is not None:
            logger.error("ending a wallet hold was refused by the engine: %s", failed.name)
            return None
        spent_left = captured
        released: list[list[int]] = []
        for grant_id, part, expires_at in hold.parts:
            take = min(spent_left, part)
            spent_left -= take
            if part - take:
                released.append([grant_id, part - take, expires_at])
        ended: list[Any] = ["hold_end", hold.hold_id, released]
        self.state.apply(ended)
        view = self._wallet(op, tenant, hold.wallet)
        assert view is not None
        reply = HoldReply(
            hold_id=hold.hold_id, wallet_id=hold.wallet, amount=captured or hold.amount, expires_at=hold.expires_at,
            balance=view.available, timestamp=TRANSFER_RESULT_STRUCT.unpack_from(results, 0)[2], status=status,
        )  # fmt: skip
        facts: list[list[Any]] = [["reply", transfer_id, fp, reply.to_json()]] if fp else []
        if captured:
            facts.append(["captured", hold.hold_id, transfer_id])
        facts += self._crossing(tenant, hold.wallet, view.available)
        for fact in facts:
            self.state.apply(fact)
        record = {
            "op": f"hold_{status}", "tenant": tenant.tenant_id, "at": view.now, "wallet": hold.wallet,
            "id": transfer_id, "hold": hold.hold_id, "amount": captured, "facts": [ended, *facts],
        }  # fmt: skip
        op.record(encode_record(record))
        return reply

    # -- operator bookings -------------------------------------------------------------------------------

    def book(
        self,
        op: Operation,
        tenant_id: str,
        customer: str,
        amount: int,
        key: str,
        *,
        direction: str,
        operator: str,
        reason: str,
        actor: str = "",
    ) -> BookingReply:
        """An operator credits or debits a wallet (against the tenant's funding account), with the operator's
        id and a reason. A booking is never edited or deleted: a correction is a reversal. A credit never
        expires; a debit takes credit in spending order and never more than the wallet may spend. A frozen
        wallet may be booked (it is the operator's correction); a closed one may not."""
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None:
            return BookingReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
        if (problem := self._check_key(key)) is not None:
            return BookingReply(result=WalletResult.IDEMPOTENCY_KEY_INVALID, message=problem)
        key_id = operation_id(tenant_id, key)
        fp = fingerprint("book", customer, amount, direction, operator, reason)
        replayed = self._replayed(key_id, fp, BookingReply)
        if replayed is not None:
            return replayed
        if op.lookup_transfers(_pack_id(key_id)):
            return BookingReply(result=WalletResult.IDEMPOTENCY_KEY_REUSED, message=_KEY_REUSED)
        refusal: tuple[WalletResult, str] | None = None
        view = None
        if (problem := self._check_customer(customer)) is not None:
            refusal = WalletResult.CUSTOMER_INVALID, problem
        elif (problem := self._check_amount(amount)) is not None:
            refusal = WalletResult.AMOUNT_INVALID, problem
        elif direction not in ("credit", "debit"):
            refusal = WalletResult.REFERENCE_REQUIRED, "direction must be credit or debit"
        elif not (operator and reason) or max(len(operator), len(reason)) > REFERENCE_LENGTH_MAX:
            refusal = (
                WalletResult.REFERENCE_REQUIRED,
                (f"operator and reason: a booking needs both, 1 to {REFERENCE_LENGTH_MAX} characters each"),
            )
        else:
            wallet = wallet_id(tenant_id, customer, tenant.currency.code)
            view = self._wallet(op, tenant, wallet)
            if view is None:
                refusal = WalletResult.WALLET_NOT_FOUND, "customer: this customer has no wallet"
            elif wallet in self.state.closed:
                refusal = WalletResult.WALLET_CLOSED, "the wallet is closed"
            elif direction == "debit" and amount > view.available:
                refusal = (
                    WalletResult.INSUFFICIENT_FUNDS,
                    (f"amount: the wallet has {tenant.currency.format(max(view.available, 0))} to spend"),
                )
            elif direction == "credit" and view.posted + amount > AMOUNT_MAX:
                refusal = WalletResult.MAX_BALANCE_EXCEEDED, "amount: the balance would overflow"
        if refusal is not None or view is None:
            assert refusal is not None
            return self._remember(
                op, "booking_refused", tenant_id, key_id, fp, BookingReply(result=refusal[0], message=refusal[1])
            )
        return self._apply_booking(op, tenant, view, key_id, fp, direction, amount, operator, reason, 0, actor)

    def reverse(
        self, op: Operation, tenant_id: str, booking_id: int, key: str, *, operator: str, reason: str, actor: str = ""
    ) -> BookingReply:
        """Reverse a booking, at most once: the same amount the other way, referencing it. Reversing a
        credit needs the wallet to still have it to spend."""
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None:
            return BookingReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
        if (problem := self._check_key(key)) is not None:
            return BookingReply(result=WalletResult.IDEMPOTENCY_KEY_INVALID, message=problem)
        key_id = operation_id(tenant_id, key)
        fp = fingerprint("reverse", booking_id, operator, reason)
        replayed = self._replayed(key_id, fp, BookingReply)
        if replayed is not None:
            return replayed
        if op.lookup_transfers(_pack_id(key_id)):
            return BookingReply(result=WalletResult.IDEMPOTENCY_KEY_REUSED, message=_KEY_REUSED)
        booking = self.state.bookings.get(booking_id)
        refusal: tuple[WalletResult, str] | None = None
        view = None
        if booking is None or booking.tenant != tenant_id or booking.reverses:
            refusal = WalletResult.BOOKING_NOT_FOUND, "booking_id: no booking of this tenant has this id"
        elif booking_id in self.state.reversals:
            refusal = (
                WalletResult.BOOKING_ALREADY_REVERSED,
                (f"booking_id: reversed already by {self.state.reversals[booking_id]:032x}"),
            )
        elif not (operator and reason) or max(len(operator), len(reason)) > REFERENCE_LENGTH_MAX:
            refusal = (
                WalletResult.REFERENCE_REQUIRED,
                (f"operator and reason: a reversal needs both, 1 to {REFERENCE_LENGTH_MAX} characters each"),
            )
        else:
            view = self._wallet(op, tenant, booking.wallet)
            assert view is not None
            if booking.wallet in self.state.closed:
                refusal = WalletResult.WALLET_CLOSED, "the wallet is closed"
            elif booking.direction == "credit" and booking.amount > view.available:
                refusal = (
                    WalletResult.INSUFFICIENT_FUNDS,
                    (
                        f"the wallet has {tenant.currency.format(max(view.available, 0))} to spend, the booking "
                        f"credited {tenant.currency.format(booking.amount)}"
                    ),
                )
        if refusal is not None or view is None or booking is None:
            assert refusal is not None
            return self._remember(
                op, "reversal_refused", tenant_id, key_id, fp, BookingReply(result=refusal[0], message=refusal[1])
            )
        direction = "debit" if booking.direction == "credit" else "credit"
        return self._apply_booking(
            op, tenant, view, key_id, fp, direction, booking.amount, operator, reason, booking_id, actor
        )

    def _apply_booking(
        self,
        op: Operation,
        tenant: Tenant,
        view: _WalletView,
        key_id: int,
        fp: int,
        direction: str,
        amount: int,
        operator: str,
        reason: str,
        reverses: int,
        actor: str,
    ) -> BookingReply:
        wallet, funding = view.wallet_id, tenant.accounts[AccountCode.FUNDING]
        code = TransferCode.REVERSAL if reverses else (
            TransferCode.BOOKING_CREDIT if direction == "credit" else TransferCode.BOOKING_DEBIT
        )  # fmt: skip
        debit, credit = (funding, wallet) if direction == "credit" else (wallet, funding)
        t0 = _transfer(key_id, debit, credit, amount, tenant.ledger, code, user_data_128=reverses, user_data_64=fp)
        results = op.create_transfers(t0)
        if (failed := _results_ok(results)) is not None:
            return BookingReply(
                result=WalletResult.LEDGER_REFUSED, message=f"the ledger refused the booking: {failed.name}"
            )
        balance = view.available + (amount if direction == "credit" else -amount)
        timestamp = TRANSFER_RESULT_STRUCT.unpack_from(results, 0)[2]
        reply = BookingReply(
            booking_id=key_id, wallet_id=wallet, direction=direction, amount=amount, reverses=reverses,
            balance=balance, timestamp=timestamp,
        )  # fmt: skip
        booking = Booking(key_id, tenant.tenant_id, wallet, direction, amount, operator, reason, view.now, reverses)
        facts: list[list[Any]] = []
        if direction == "debit":
            parts = view.allocate(amount)
            if any(part[0] for part in parts):
                facts.append(["spend", wallet, [[grant_id, part] for grant_id, part, _ in parts if grant_id]])
        facts += [["booking", booking.to_json()], ["reply", key_id, fp, reply.to_json()]]
        facts += self._crossing(tenant, wallet, balance)
        self._commit(
            op,
            {"op": "booking_reversed" if reverses else f"booked_{direction}", "tenant": tenant.tenant_id,
             "at": view.now, "wallet": wallet, "id": key_id, "amount": amount, "operator": operator,
             "reason": reason, "reverses": reverses, "by": actor, "facts": facts},
        )  # fmt: skip
        return reply

    def bookings(
        self,
        tenant_id: str,
        *,
        wallet: int = 0,
        operator: str = "",
        since: int = 0,
        until: int = 0,
        after: int = 0,
        limit: int = 100,
    ) -> list[Booking]:
        """The audit trail: the tenant's bookings and reversals in the order made, filtered by wallet,
        operator and time (nanoseconds, `until` exclusive, 0: no bound), from just after booking `after`."""
        found: list[Booking] = []
        started = after == 0
        for booking in self.state.bookings.values():
            if not started:
                started = booking.booking_id == after
                continue
            if booking.tenant != tenant_id or (wallet and booking.wallet != wallet):
                continue
            if (operator and booking.operator != operator) or booking.at < since or (until and booking.at >= until):
                continue
            found.append(booking)
            if len(found) == limit:
                break
        return found

    # -- vouchers and gift cards -------------------------------------------------------------------------

    def issue_voucher(
        self, op: Operation, tenant_id: str, amount: int, key: str, *, expires_at: int = 0, never_expires: bool = False
    ) -> VoucherReply:
        """Issue a voucher of `amount`: its value moves from the tenant's funding account to its vouchers
        account, and its code is returned (derived from the tenant's secret and this operation, so a retry
        returns the same code). Without an expiry the tenant's default credit expiry applies."""
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None:
            return VoucherReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
        if (problem := self._check_key(key)) is not None:
            return VoucherReply(result=WalletResult.IDEMPOTENCY_KEY_INVALID, message=problem)
        key_id = operation_id(tenant_id, key)
        fp = fingerprint("voucher", amount, expires_at, never_expires)
        code = voucher_code(tenant.secret, key_id)
        issued_id = voucher_id(tenant_id, code.replace("-", ""))
        found = op.lookup_transfers(_pack_id(key_id))
        if found:
            voucher = self.state.vouchers.get(issued_id)
            if voucher is None or _u64(found, TRANSFER_USER_DATA_128_OFFSET) != fp:
                return VoucherReply(result=WalletResult.IDEMPOTENCY_KEY_REUSED, message=_KEY_REUSED)
            return VoucherReply(
                code=code, voucher_id=issued_id, amount=voucher.amount, remaining=voucher.amount,
                expires_at=voucher.expires_at, status="active", timestamp=_u64(found, TRANSFER_TIMESTAMP_OFFSET),
            )  # fmt: skip
        replayed = self._replayed(key_id, fp, VoucherReply)
        if replayed is not None:
            return replayed
        now = op.now()
        refusal: tuple[WalletResult, str] | None = None
        if (problem := self._check_amount(amount)) is not None:
            refusal = WalletResult.AMOUNT_INVALID, problem
        elif not never_expires and expires_at and not now < expires_at <= TIMESTAMP_MAX:
            refusal = WalletResult.EXPIRY_INVALID, "expires_at must be in the future"
        if refusal is not None:
            reply = VoucherReply(result=refusal[0], message=refusal[1])
            return self._remember(op, "voucher_refused", tenant_id, key_id, fp, reply)
        seconds = tenant.settings.credit_expiry_seconds
        if never_expires:
            expires_at = 0
        elif not expires_at and seconds:
            expires_at = min(now + seconds * NANOSECONDS_PER_SECOND, TIMESTAMP_MAX)
        t0 = _transfer(
            key_id, tenant.accounts[AccountCode.FUNDING], tenant.accounts[AccountCode.VOUCHERS], amount,
            tenant.ledger, TransferCode.VOUCHER_ISSUE, user_data_128=fp, user_data_64=expires_at,
        )  # fmt: skip
        results = op.create_transfers(t0)
        if (failed := _results_ok(results)) is not None:
            return VoucherReply(
                result=WalletResult.LEDGER_REFUSED, message=f"the ledger refused the voucher: {failed.name}"
            )
        voucher = Voucher(issued_id, tenant_id, amount, amount, expires_at, now, key_id)
        self._commit(
            op,
            {"op": "voucher_issued", "tenant": tenant_id, "at": now, "id": key_id, "voucher": issued_id,
             "amount": amount, "expires_at": expires_at, "facts": [["voucher", voucher.to_json()]]},
        )  # fmt: skip
        return VoucherReply(
            code=code, voucher_id=issued_id, amount=amount, remaining=amount, expires_at=expires_at, status="active",
            timestamp=TRANSFER_RESULT_STRUCT.unpack_from(results, 0)[2],
        )  # fmt: skip

    def _voucher_of(self, tenant_id: str, code: str, now: int) -> Voucher | tuple[WalletResult, str]:
        """The usable voucher with this code, or why not."""
        text = normalized(code)
        if text is None:
            return WalletResult.VOUCHER_NOT_FOUND, "code: not a voucher code (mistyped? its check character differs)"
        voucher = self.state.vouchers.get(voucher_id(tenant_id, text))
        if voucher is None or voucher.tenant != tenant_id:
            return WalletResult.VOUCHER_NOT_FOUND, "code: no voucher of this tenant has this code"
        if voucher.status == "deactivated":
            return WalletResult.VOUCHER_DEACTIVATED, "code: the voucher was deactivated"
        if voucher.status == "expired" or (voucher.expires_at and voucher.expires_at <= now):
            return WalletResult.VOUCHER_EXPIRED, "code: the voucher has expired"
        if not voucher.remaining:
            return WalletResult.VOUCHER_EMPTY, "code: nothing is left on the voucher"
        return voucher

    def voucher_balance(self, op: Operation, tenant_id: str, code: str) -> VoucherReply:
        """What is left on a voucher, by its code (a used-up, expired or deactivated one says so)."""
        if tenant_id not in self.state.tenants:
            return VoucherReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
        found = self._voucher_of(tenant_id, code, op.now())
        if isinstance(found, Voucher):
            return self._voucher_reply(found)
        text = normalized(code)
        voucher = self.state.vouchers.get(voucher_id(tenant_id, text)) if text else None
        if voucher is None or voucher.tenant != tenant_id:
            return VoucherReply(result=found[0], message=found[1])
        return self._voucher_reply(voucher, result=found[0], message=found[1])

    @staticmethod
    def _voucher_reply(voucher: Voucher, **fields: Any) -> VoucherReply:
        return VoucherReply(
            voucher_id=voucher.voucher_id, amount=voucher.amount, remaining=voucher.remaining,
            expires_at=voucher.expires_at, status=voucher.status, timestamp=voucher.issued_at, **fields,
        )  # fmt: skip

    def redeem_voucher(self, op: Operation, tenant_id: str, code: str, customer: str, key: str) -> VoucherReply:
        """Move all that is left on a voucher into a wallet, as credit expiring when the voucher would."""
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None:
            return VoucherReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
        if (problem := self._check_key(key)) is not None:
            return VoucherReply(result=WalletResult.IDEMPOTENCY_KEY_INVALID, message=problem)
        key_id = operation_id(tenant_id, key)
        fp = fingerprint("redeem", normalized(code) or code, customer)
        replayed = self._replayed(key_id, fp, VoucherReply)
        if replayed is not None:
            return replayed
        if op.lookup_transfers(_pack_id(key_id)):
            return VoucherReply(result=WalletResult.IDEMPOTENCY_KEY_REUSED, message=_KEY_REUSED)
        now = op.now()
        found = self._voucher_of(tenant_id, code, now)
        view = None
        refusal: tuple[WalletResult, str] | None = None
        if not isinstance(found, Voucher):
            refusal = found
        elif (problem := self._check_customer(customer)) is not None:
            refusal = WalletResult.CUSTOMER_INVALID, problem
        else:
            wallet = wallet_id(tenant_id, customer, tenant.currency.code)
            view = self._wallet(op, tenant, wallet)
            if view is None:
                refusal = WalletResult.WALLET_NOT_FOUND, "customer: this customer has no wallet; open it first"
            elif wallet in self.state.closed:
                refusal = WalletResult.WALLET_CLOSED, "the wallet is closed"
            elif wallet in self.state.frozen:
                refusal = WalletResult.WALLET_FROZEN, "the wallet is frozen: it may receive refunds only"
            elif tenant.settings.max_balance and view.posted + found.remaining > tenant.settings.max_balance:
                refusal = (
                    WalletResult.MAX_BALANCE_EXCEEDED,
                    (
                        f"the voucher's {tenant.currency.format(found.remaining)} would take the balance above the "
                        f"maximum of {tenant.currency.format(tenant.settings.max_balance)}"
                    ),
                )
        if refusal is not None or view is None or not isinstance(found, Voucher):
            assert refusal is not None
            reply = VoucherReply(result=refusal[0], message=refusal[1])
            return self._remember(op, "voucher_refused", tenant_id, key_id, fp, reply)
        amount = found.remaining
        t0 = _transfer(
            key_id, tenant.accounts[AccountCode.VOUCHERS], view.wallet_id, amount, tenant.ledger,
            TransferCode.VOUCHER_REDEEM, user_data_128=found.voucher_id, user_data_64=found.expires_at,
        )  # fmt: skip
        results = op.create_transfers(t0)
        if (failed := _results_ok(results)) is not None:
            return VoucherReply(
                result=WalletResult.LEDGER_REFUSED, message=f"the ledger refused the redemption: {failed.name}"
            )
        balance = view.available + amount
        reply = VoucherReply(
            voucher_id=found.voucher_id, amount=amount, remaining=0, expires_at=found.expires_at, status=found.status,
            wallet_id=view.wallet_id, balance=balance, timestamp=TRANSFER_RESULT_STRUCT.unpack_from(results, 0)[2],
        )  # fmt: skip
        facts: list[list[Any]] = [["voucher_used", found.voucher_id, amount]]
        if found.expires_at:
            facts.append(["grant", view.wallet_id, key_id, amount, found.expires_at])
        facts += [["reply", key_id, fp, reply.to_json()], *self._crossing(tenant, view.wallet_id, balance)]
        self._commit(
            op,
            {"op": "voucher_redeemed", "tenant": tenant_id, "at": now, "id": key_id, "voucher": found.voucher_id,
             "wallet": view.wallet_id, "amount": amount, "facts": facts},
        )  # fmt: skip
        return reply

    def spend_voucher(
        self, op: Operation, tenant_id: str, code: str, amount: int, key: str, *, order_reference: str
    ) -> VoucherReply:
        """Pay an order from a voucher directly: what is left on it, up to `amount` (partial use: the reply
        says what it paid and what remains on the voucher; the rest of the order is paid another way)."""
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None:
            return VoucherReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
        if (problem := self._check_key(key)) is not None:
            return VoucherReply(result=WalletResult.IDEMPOTENCY_KEY_INVALID, message=problem)
        key_id = operation_id(tenant_id, key)
        fp = fingerprint("spend", normalized(code) or code, amount, order_reference)
        replayed = self._replayed(key_id, fp, VoucherReply)
        if replayed is not None:
            return replayed
        if op.lookup_transfers(_pack_id(key_id)):
            return VoucherReply(result=WalletResult.IDEMPOTENCY_KEY_REUSED, message=_KEY_REUSED)
        now = op.now()
        found = self._voucher_of(tenant_id, code, now)
        refusal: tuple[WalletResult, str] | None = None
        if (problem := self._check_amount(amount)) is not None:
            refusal = WalletResult.AMOUNT_INVALID, problem
        elif not order_reference or len(order_reference) > REFERENCE_LENGTH_MAX:
            refusal = (
                WalletResult.REFERENCE_REQUIRED,
                f"order_reference: 1 to {REFERENCE_LENGTH_MAX} characters are required",
            )
        elif not isinstance(found, Voucher):
            refusal = found
        if refusal is not None or not isinstance(found, Voucher):
            assert refusal is not None
            reply = VoucherReply(result=refusal[0], message=refusal[1], requested=amount)
            return self._remember(op, "voucher_refused", tenant_id, key_id, fp, reply)
        paid = min(amount, found.remaining)
        t0 = _transfer(
            key_id, tenant.accounts[AccountCode.VOUCHERS], tenant.accounts[AccountCode.REVENUE], paid, tenant.ledger,
            TransferCode.VOUCHER_SPEND, user_data_128=found.voucher_id, user_data_64=amount,
        )  # fmt: skip
        results = op.create_transfers(t0)
        if (failed := _results_ok(results)) is not None:
            return VoucherReply(
                result=WalletResult.LEDGER_REFUSED, message=f"the ledger refused the payment: {failed.name}"
            )
        reply = VoucherReply(
            voucher_id=found.voucher_id, amount=paid, remaining=found.remaining - paid, expires_at=found.expires_at,
            status=found.status, requested=amount, timestamp=TRANSFER_RESULT_STRUCT.unpack_from(results, 0)[2],
        )  # fmt: skip
        self._commit(
            op,
            {"op": "voucher_spent", "tenant": tenant_id, "at": now, "id": key_id, "voucher": found.voucher_id,
             "order": order_reference, "requested": amount, "amount": paid,
             "facts": [["voucher_used", found.voucher_id, paid], ["reply", key_id, fp, reply.to_json()]]},
        )  # fmt: skip
        return reply

    def deactivate_voucher(
        self, op: Operation, tenant_id: str, code: str, key: str, *, reason: str, actor: str = ""
    ) -> VoucherReply:
        """Take a voucher out of use: what is left on it goes back to the funding account it came from."""
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None:
            return VoucherReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
        if (problem := self._check_key(key)) is not None:
            return VoucherReply(result=WalletResult.IDEMPOTENCY_KEY_INVALID, message=problem)
        key_id = operation_id(tenant_id, key)
        fp = fingerprint("deactivate", normalized(code) or code, reason)
        replayed = self._replayed(key_id, fp, VoucherReply)
        if replayed is not None:
            return replayed
        if op.lookup_transfers(_pack_id(key_id)):
            return VoucherReply(result=WalletResult.IDEMPOTENCY_KEY_REUSED, message=_KEY_REUSED)
        now = op.now()
        found = self._voucher_of(tenant_id, code, now)
        if isinstance(found, tuple) and found[0] is WalletResult.VOUCHER_EMPTY:
            text = normalized(code)
            found = self.state.vouchers[voucher_id(tenant_id, text or "")]  # used up: deactivating moves nothing
        refusal: tuple[WalletResult, str] | None = None
        if not reason or len(reason) > REFERENCE_LENGTH_MAX:
            refusal = WalletResult.REFERENCE_REQUIRED, f"reason: 1 to {REFERENCE_LENGTH_MAX} characters are required"
        elif not isinstance(found, Voucher):
            refusal = found
        if refusal is not None or not isinstance(found, Voucher):
            assert refusal is not None
            reply = VoucherReply(result=refusal[0], message=refusal[1])
            return self._remember(op, "voucher_refused", tenant_id, key_id, fp, reply)
        left = found.remaining
        timestamp = 0
        if left:
            t0 = _transfer(
                key_id, tenant.accounts[AccountCode.VOUCHERS], tenant.accounts[AccountCode.FUNDING], left,
                tenant.ledger, TransferCode.VOUCHER_DEACTIVATE, user_data_128=found.voucher_id, user_data_64=fp,
            )  # fmt: skip
            results = op.create_transfers(t0)
            if (failed := _results_ok(results)) is not None:
                return VoucherReply(result=WalletResult.LEDGER_REFUSED, message=f"the ledger refused it: {failed.name}")
            timestamp = TRANSFER_RESULT_STRUCT.unpack_from(results, 0)[2]
        reply = VoucherReply(
            voucher_id=found.voucher_id, amount=left, remaining=0, expires_at=found.expires_at, status="deactivated",
            timestamp=timestamp or now,
        )  # fmt: skip
        facts: list[list[Any]] = [["voucher_used", found.voucher_id, left]] if left else []
        facts += [["voucher_status", found.voucher_id, "deactivated"], ["reply", key_id, fp, reply.to_json()]]
        self._commit(
            op,
            {"op": "voucher_deactivated", "tenant": tenant_id, "at": now, "id": key_id, "voucher": found.voucher_id,
             "amount": left, "reason": reason, "by": actor, "facts": facts},
        )  # fmt: skip
        return reply

    def _expire_vouchers(self, op: Operation, now: int) -> int:
        """Move what is left on vouchers past their expiry to breakage, one transfer each."""
        due: list[Voucher] = []
        expiries = self.state.voucher_expiries
        while expiries and expiries[0][0] <= now and len(due) < SWEEP_TRANSFERS_MAX:
            _, expiring = heapq.heappop(expiries)
            voucher = self.state.vouchers.get(expiring)
            if voucher is not None and voucher.status == "active" and voucher.expires_at <= now:
                due.append(voucher)
        if not due:
            return 0
        moved = 0
        facts: list[list[Any]] = []
        expired: list[list[Any]] = []
        for voucher in due:
            tenant = self.state.tenants[voucher.tenant]
            if voucher.remaining:
                t0 = _transfer(
                    derived_id("voucher-expiry", voucher.voucher_id), tenant.accounts[AccountCode.VOUCHERS],
                    tenant.accounts[AccountCode.BREAKAGE], voucher.remaining, tenant.ledger,
                    TransferCode.VOUCHER_EXPIRY, user_data_128=voucher.voucher_id,
                )  # fmt: skip
                code = _results_ok(op.create_transfers(t0))
                if code is not None:
                    logger.error("the expiry of a voucher was refused by the engine: %s", code.name)
                    continue
                facts.append(["voucher_used", voucher.voucher_id, voucher.remaining])
            facts.append(["voucher_status", voucher.voucher_id, "expired"])
            expired.append([voucher.voucher_id, voucher.remaining, voucher.tenant])
            moved += 1
        self._commit(op, {"op": "vouchers_expired", "at": now, "vouchers": expired, "facts": facts})
        return moved

    # -- bulk grants -------------------------------------------------------------------------------------

    def grant_run(
        self,
        op: Operation,
        tenant_id: str,
        run_id: str,
        items: list[GrantItem],
        *,
        all_or_nothing: bool,
        open_wallets: bool = False,
        source: TopUpSource = TopUpSource.BENEFIT,
    ) -> list[TopUpReply]:
        """Credit many wallets in one run (every employee's monthly benefit): a top-up per item from the
        source's account, keyed by (run id, customer), so running the same run again pays each customer once
        (the replies replay). With `all_or_nothing`, every item is checked before any is applied and one
        refusal refuses the run (the other items answer GRANT_RUN_REFUSED, nothing moves, nothing is
        remembered: fix the run and send it again); otherwise each item stands alone. `open_wallets` opens
        the wallets that do not exist yet."""
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None:
            return [TopUpReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))] * len(items)
        if (problem := self._check_key(run_id)) is not None:
            problem = problem.replace("key:", "run_id:", 1)
            return [TopUpReply(result=WalletResult.IDEMPOTENCY_KEY_INVALID, message=problem)] * len(items)
        requests = [
            TopUp(
                tenant=tenant_id,
                customer=item.customer,
                amount=item.amount,
                key=_grant_key(run_id, item.customer),
                source=source,
                reference=run_id,
                expires_at=item.expires_at,
                never_expires=item.never_expires,
            )
            for item in items
        ]
        unopened = self._open_many(op, tenant, [item.customer for item in items]) if open_wallets else {}
        if all_or_nothing:
            refusals = self._run_refusals(op, tenant, requests)
            for index, item in enumerate(items):
                refusal = unopened.get(item.customer)
                if refusal is not None and refusals[index] is not None:
                    refusals[index] = (WalletResult.LEDGER_REFUSED, refusal)
            if any(refusal is not None for refusal in refusals):
                return [
                    TopUpReply(result=refusal[0], message=refusal[1])
                    if refusal is not None
                    else TopUpReply(
                        result=WalletResult.GRANT_RUN_REFUSED, message="another grant of this run was refused"
                    )
                    for refusal in refusals
                ]
        replies = [self.top_up(op, request) for request in requests]
        for index, item in enumerate(items):
            refusal = unopened.get(item.customer)
            if refusal is not None and not replies[index].ok:
                replies[index] = TopUpReply(result=WalletResult.LEDGER_REFUSED, message=refusal)
        return replies

    def _run_refusals(
        self, op: Operation, tenant: Tenant, requests: list[TopUp]
    ) -> list[tuple[WalletResult, str] | None]:
        """Each grant's refusal (None: it would be applied, or replayed) without applying any."""
        refusals: list[tuple[WalletResult, str] | None] = []
        seen: dict[int, int] = {}
        for request in requests:
            key_id = operation_id(request.tenant, request.key)
            fp = fingerprint(
                "topup", request.customer, request.amount, int(request.source), request.currency, request.reference,
                request.operator, request.expires_at, request.never_expires,
            )  # fmt: skip
            replayed = self._chain_replay(op, tenant, key_id, fp, _TOPUP_KINDS, self._topup_reply, TopUpReply)
            if replayed is None:
                replayed = self._replayed(key_id, fp, TopUpReply)
            if replayed is not None:
                refusals.append(None if replayed.ok else (replayed.result, replayed.message))
            elif key_id in seen and seen[key_id] != fp:
                refusals.append((WalletResult.IDEMPOTENCY_KEY_REUSED, "customer: named twice in this run"))
            else:
                refusals.append(self._topup_refusal(op, tenant, request))
            seen[key_id] = fp
        return refusals

    def _open_many(self, op: Operation, tenant: Tenant, customers: list[str]) -> dict[str, str]:
        """Open the wallets of these customers that do not exist yet (malformed references are left to the
        grants to refuse); why the ledger refused to open some, by customer."""
        refused: dict[str, str] = {}
        wanted: dict[int, str] = {}
        for customer in customers:
            if self._check_customer(customer) is None:
                wanted.setdefault(wallet_id(tenant.tenant_id, customer, tenant.currency.code), customer)
        ids = list(wanted)
        for start in range(0, len(ids), BATCH_EVENTS_MAX):
            chunk = ids[start : start + BATCH_EVENTS_MAX]
            events = b"".join(_wallet_account(wallet, tenant.ledger) for wallet in chunk)
            results = op.create_accounts(events)
            now = op.now()
            for index, wallet in enumerate(chunk):
                code = CreateAccountResult(_U32.unpack_from(results, index * 16)[0])
                if code is CreateAccountResult.OK:
                    self._commit(
                        op,
                        {"op": "wallet_opened", "tenant": tenant.tenant_id, "at": now, "wallet": wallet,
                         "customer": wanted[wallet], "facts": self._crossing(tenant, wallet, 0)},
                    )  # fmt: skip
                elif code is not CreateAccountResult.EXISTS:
                    refused[wanted[wallet]] = f"the ledger refused to open the wallet: {code.name}"
        return refused

    # -- emptying a wallet before it closes -------------------------------------------------------------

    def empty_wallet(
        self,
        op: Operation,
        tenant_id: str,
        customer: str,
        key: str,
        *,
        destination: str,
        operator: str,
        reason: str,
        actor: str = "",
    ) -> BookingReply:
        """Move everything a wallet holds out of it, so that it may close: `payout` (paid out to the customer
        in money: to the payouts account) or `breakage` (written off). Includes expired credit the sweep has
        not moved yet; a wallet with open holds must have them captured or voided first."""
        tenant = self.state.tenants.get(tenant_id)
        if tenant is None:
            return BookingReply(result=WalletResult.TENANT_NOT_FOUND, message=_no_tenant(tenant_id))
        if (problem := self._check_key(key)) is not None:
            return BookingReply(result=WalletResult.IDEMPOTENCY_KEY_INVALID, message=problem)
        key_id = operation_id(tenant_id, key)
        fp = fingerprint("empty", customer, destination, operator, reason)
        replayed = self._replayed(key_id, fp, BookingReply)
        if replayed is not None:
            return replayed
        if op.lookup_transfers(_pack_id(key_id)):
            return BookingReply(result=WalletResult.IDEMPOTENCY_KEY_REUSED, message=_KEY_REUSED)
        refusal: tuple[WalletResult, str] | None = None
        view = None
        if (problem := self._check_customer(customer)) is not None:
            refusal = WalletResult.CUSTOMER_INVALID, problem
        elif destination not in ("payout", "breakage"):
            refusal = WalletResult.REFERENCE_REQUIRED, "destination must be payout or breakage"
        elif not (operator and reason) or max(len(operator), len(reason)) > REFERENCE_LENGTH_MAX:
            refusal = (
                WalletResult.REFERENCE_REQUIRED,
                (f"operator and reason: both are needed, 1 to {REFERENCE_LENGTH_MAX} characters each"),
            )
        else:
            wallet = wallet_id(tenant_id, customer, tenant.currency.code)
            view = self._wallet(op, tenant, wallet)
            if view is None:
                refusal = WalletResult.WALLET_NOT_FOUND, "customer: this customer has no wallet"
            elif wallet in self.state.closed:
                refusal = WalletResult.WALLET_CLOSED, "the wallet is closed"
            elif view.debits_pending:
                refusal = (
                    WalletResult.WALLET_NOT_EMPTY,
                    (f"the wallet has {tenant.currency.format(view.debits_pending)} held: capture or void it first"),
                )
            elif view.posted <= 0:
                refusal = WalletResult.AMOUNT_INVALID, "the wallet holds nothing to move"
        if refusal is not None or view is None:
            assert refusal is not None
            reply = BookingReply(result=refusal[0], message=refusal[1])
            return self._remember(op, "empty_refused", tenant_id, key_id, fp, reply)
        amount = view.posted
        kind = AccountCode.PAYOUTS if destination == "payout" else AccountCode.BREAKAGE
        code = TransferCode.PAYOUT if destination == "payout" else TransferCode.WRITE_OFF
        t0 = _transfer(key_id, view.wallet_id, tenant.accounts[kind], amount, tenant.ledger, code, user_data_64=fp)
        results = op.create_transfers(t0)
        if (failed := _results_ok(results)) is not None:
            return BookingReply(result=WalletResult.LEDGER_REFUSED, message=f"the ledger refused it: {failed.name}")
        reply = BookingReply(
            booking_id=key_id, wallet_id=view.wallet_id, direction="debit", amount=amount, balance=0,
            timestamp=TRANSFER_RESULT_STRUCT.unpack_from(results, 0)[2],
        )  # fmt: skip
        facts: list[list[Any]] = [["expired", view.wallet_id, grant_id] for _, _, grant_id in view.grants]
        facts += [["reply", key_id, fp, reply.to_json()], *self._crossing(tenant, view.wallet_id, 0)]
        self._commit(
            op,
            {"op": f"wallet_{'paid_out' if destination == 'payout' else 'written_off'}", "tenant": tenant_id,
             "at": view.now, "wallet": view.wallet_id, "id": key_id, "amount": amount, "operator": operator,
             "reason": reason, "by": actor, "facts": facts},
        )  # fmt: skip
        return reply

    # -- payments in bulk ----------------------------------------------------------------------------------

    def pay_many(self, op: Operation, requests: list[Payment]) -> list[PaymentReply]:
        """Pay each request in order, as `pay` would one after the other, with the same replies, transfers
        and records; the common case (a new key, an active wallet without expiring credit or a low-balance
        threshold, enough credit) is decided for the whole list at once against one read of the wallets and
        applied in one engine call, and every other request (a retry, a decline, a wallet with grants) goes
        through `pay` after what was decided before it is applied, at the same moment (what expires is read
        against it)."""
        replies: list[PaymentReply | None] = [None] * len(requests)
        prepared = [self._prepared(request) for request in requests]
        known = {
            _id_at(found, offset)
            for found in [
                op.lookup_transfers(b"".join(_pack_id(p[1]) for p in prepared[a : a + BATCH_EVENTS_MAX] if p))
                for a in range(0, len(prepared), BATCH_EVENTS_MAX)
            ]
            for offset in range(0, len(found), TRANSFER_SIZE)
        }
        wallets = self._wallet_balances(op, {p[2] for p in prepared if p})
        batch = _PaymentBatch()
        spent: dict[int, int] = {}
        keys: set[int] = set()
        now = op.now()
        for index, request in enumerate(requests):
            fast = prepared[index]
            decided = None
            if fast and fast[1] not in known and fast[1] not in keys and fast[1] not in self.state.replies:
                tenant, key_id, wallet, fp = fast
                decided = self._decide_fast(
                    tenant, wallet, request.amount, request.order_reference, request.partial, request.currency,
                    wallets.get(wallet), spent.get(wallet, 0),
                )  # fmt: skip
            if decided is None:  # the general path, after what was decided before it is applied
                if batch.entries:
                    self._apply_payments(op, batch, replies, now)
                    batch, spent = _PaymentBatch(), {}
                    wallets = self._wallet_balances(op, {p[2] for p in prepared[index + 1 :] if p})
                replies[index] = self.pay(_AtMoment(op, now), request)
                if fast:
                    keys.add(fast[1])  # the same key later in this list is a retry of it: the general path too
                    wallets.pop(fast[2], None)
                    wallets.update(self._wallet_balances(op, {fast[2]}))
                continue
            assert fast is not None
            tenant, key_id, wallet, fp = fast
            paid, fee, balance = decided
            spent[wallet] = spent.get(wallet, 0) + paid + fee
            keys.add(key_id)
            count = payments.pack_payment(
                batch.chains, batch.records, key_id, step_id(key_id, 1) if fee else 0, wallet,
                tenant.accounts[AccountCode.REVENUE], tenant.accounts[AccountCode.FEES], tenant.ledger, paid, fee,
                fp, balance, request.amount, request.partial, request.tenant, request.order_reference, now,
            )  # fmt: skip
            batch.entries.append((index, request, key_id, wallet, paid, fee, balance, count))
        if batch.entries:
            self._apply_payments(op, batch, replies, now)
        assert all(reply is not None for reply in replies)
        return replies  # type: ignore[return-value]

    def _prepared(self, request: Payment) -> tuple[Tenant, int, int, int] | None:
        """(tenant, operation id, wallet id, fingerprint) of a request the common case may take, else None."""
        tenant = self.state.tenants.get(request.tenant)
        if tenant is None or self._check_key(request.key) is not None:
            return None
        if self._check_customer(request.customer) is not None:
            return None
        key_id = operation_id(request.tenant, request.key)
        fp = payment_fingerprint(
            request.customer, request.amount, request.order_reference, request.partial, request.currency
        )
        name = (request.tenant, request.customer)
        wallet = self._wallet_ids.get(name)
        if wallet is None:
            if len(self._wallet_ids) >= WALLET_IDS_CACHED:
                self._wallet_ids.clear()
            wallet = self._wallet_ids[name] = wallet_id(request.tenant, request.customer, tenant.currency.code)
        return tenant, key_id, wallet, fp

    def _wallet_balances(self, op: Operation, wallets: set[int]) -> dict[int, tuple[int, int]]:
        """(ledger, what the engine says the wallet may spend: posted less held) of the wallets that exist."""
        ids = list(wallets)
        balances: dict[int, tuple[int, int]] = {}
        for start in range(0, len(ids), BATCH_EVENTS_MAX):
            found = op.lookup_accounts(b"".join(_pack_id(wallet) for wallet in ids[start : start + BATCH_EVENTS_MAX]))
            for lo, hi, debits_pending, debits_posted, _, credits_posted, ledger in _ACCOUNT_SPENDABLE.iter_unpack(
                found
            ):
                balances[lo | hi << 64] = (ledger, credits_posted - debits_posted - debits_pending)
        return balances

    def _decide_fast(
        self, tenant: Tenant, wallet: int, amount: int, order: str, partial: bool, currency: str,
        account: tuple[int, int] | None, spent: int,
    ) -> tuple[int, int, int] | None:  # fmt: skip
        """(paid, fee, balance after) if the common case takes this payment (of `amount` for `order`, from
        `wallet`, which `spent` of this batch's payments already took from) and it succeeds, else None (the
        general path decides it: a refusal, a wallet with expiring credit, frozen or below a threshold)."""
        settings = tenant.settings
        if (
            account is None
            or account[0] != tenant.ledger
            or (currency and currency != tenant.currency.code)
            or not 1 <= amount <= AMOUNT_MAX
            or not order
            or len(order) > REFERENCE_LENGTH_MAX
            or (partial and not settings.partial_payment)
            or settings.low_balance_threshold
        ):
            return None
        state = self.state
        if wallet in state.grants or wallet in state.frozen or wallet in state.closed or wallet in state.below:
            return None
        available = account[1] - spent
        fee = settings.fee(amount)
        if amount + fee <= available:
            return amount, fee, available - amount - fee
        if partial:
            paid = settings.most_payable(amount, available)
            if paid:
                fee = settings.fee(paid)
                return paid, fee, available - paid - fee
        return None

    def _apply_payments(
        self, op: Operation, batch: _PaymentBatch, replies: list[PaymentReply | None], now: int
    ) -> None:
        """Apply the decided payments' chains in one engine call and answer each; a chain the engine refuses
        (its checks passed, so a bound such as TRANSFERS_FULL) moved nothing and answers LEDGER_REFUSED, and
        its record is left out."""
        results = op.create_transfers(batch.chains)
        codes = memoryview(results).cast("I")[RESULT_CODE_OFFSET // 4 :: TRANSFER_RESULT_SIZE // 4]
        every_chain_ok = codes.tolist().count(_OK) == len(codes)
        records = batch.records if every_chain_ok else bytearray()
        offset = 0
        for index, request, key_id, wallet, paid, fee, balance, count in batch.entries:
            start = offset
            offset += count * TRANSFER_RESULT_SIZE
            if not every_chain_ok:
                if _results_ok(results[start:offset]) is not None:
                    failed = _first_failure(results[start:offset])
                    logger.error(
                        "a wallet payment chain was refused by the engine after its checks passed: %s", failed.name
                    )
                    replies[index] = PaymentReply(
                        result=WalletResult.LEDGER_REFUSED, message=f"the ledger refused the payment: {failed.name}"
                    )
                    continue
                records += encode_payment_record(
                    request.tenant, now, wallet, key_id, request.order_reference, request.amount, paid, fee
                )
            replies[index] = PaymentReply(
                payment_id=key_id, wallet_id=wallet, requested=request.amount, paid=paid,
                remainder=request.amount - paid, fee=fee, balance=balance,
                timestamp=_U64.unpack_from(results, start + RESULT_TIMESTAMP_OFFSET)[0],
            )  # fmt: skip
        if records:
            op.record(bytes(records))

    # -- payments by code in bulk ----------------------------------------------------------------------------

    def pay_by_code_many(self, op: Operation, requests: list[CodePayment]) -> list[PaymentReply]:
        """Pay each request in order, as `pay_by_code` would one after the other, with the same replies,
        transfers and records (a code pays once, in this list too); the common case (a new transaction, a code of
        the current or the grace window not used yet, no PIN given nor needed, within the tenant's limits, an
        active wallet without expiring credit or a low-balance threshold, enough credit) is decided for the whole
        list at once against one read of the wallets and one moment, and applied in one engine call; every other
        request (a retry, a decline, a PIN) goes through `pay_by_code` after what was decided before it is
        applied, at the same moment (a PIN lock counts from it)."""
        now = op.now()
        replies: list[PaymentReply | None] = [None] * len(requests)
        prepared = [self._code_prepared(request, now) for request in requests]
        known = {
            _id_at(found, offset)
            for found in [
                op.lookup_transfers(b"".join(_pack_id(p[1]) for p in prepared[a : a + BATCH_EVENTS_MAX] if p))
                for a in range(0, len(prepared), BATCH_EVENTS_MAX)
            ]
            for offset in range(0, len(found), TRANSFER_SIZE)
        }
        wallets = self._wallet_balances(op, {p[3].wallet for p in prepared if p and p[3]})
        batch = _CodeBatch()
        seen: set[int] = set()
        for index, request in enumerate(requests):
            fast = prepared[index]
            device = fast[3] if fast else None
            decided = None
            if fast and device and fast[1] not in known and fast[1] not in seen:
                decided = self._decide_code_fast(fast[0], request, fast[1], device, fast[4], wallets, batch, now)
            if fast:
                seen.add(fast[1])  # the same transaction again in this list: pay_by_code replays or refuses it
            if decided is None:  # the general path, after what was decided before it is applied
                if batch.entries:
                    self._apply_code_payments(op, batch, replies, now)
                    batch = _CodeBatch()
                    wallets = self._wallet_balances(op, {p[3].wallet for p in prepared[index + 1 :] if p and p[3]})
                replies[index] = self.pay_by_code(_AtMoment(op, now), request)
                if device:
                    wallets.pop(device.wallet, None)
                    wallets.update(self._wallet_balances(op, {device.wallet}))
                continue
            assert fast is not None and device is not None
            tenant, key_id, fp, _, step = fast
            paid, fee, balance = decided
            wallet = device.wallet
            batch.spent[wallet] = batch.spent.get(wallet, 0) + paid + fee
            batch.used.add((device.device_id, step))
            if tenant.settings.limits_periods:
                terminal = f"{request.tenant}\x00{request.terminal}"
                for owner in (f"{wallet:032x}", terminal):
                    for period in (3_600, 86_400):
                        counted = batch.pending.setdefault((owner, period), [0, 0])
                        counted[0] += request.amount
                        counted[1] += 1
            count = payments.pack_payment(
                batch.chains, batch.compact, key_id, step_id(key_id, 1) if fee else 0, wallet,
                tenant.accounts[AccountCode.REVENUE], tenant.accounts[AccountCode.FEES], tenant.ledger, paid, fee,
                fp, balance, request.amount, request.partial, request.tenant,
                request.order_reference or request.transaction, now,
            )  # fmt: skip
            batch.entries.append((index, request, key_id, device, step, paid, fee, balance, count))
        if batch.entries:
            self._apply_code_payments(op, batch, replies, now)
        assert all(reply is not None for reply in replies)
        return replies  # type: ignore[return-value]

    def _code_prepared(self, request: CodePayment, now: int) -> tuple[Tenant, int, int, Device | None, int] | None:
        """(tenant, operation id, fingerprint, the device that showed the code and its window, or None and 0) of
        a request whose tenant exists and whose terminal and transaction may key it, else None."""
        tenant = self.state.tenants.get(request.tenant)
        if tenant is None or _terminal_problem(request.terminal, request.transaction) is not None:
            return None
        key_id = _code_operation(request.tenant, request.terminal, request.transaction)
        order = request.order_reference or request.transaction
        fp = code_payment_fingerprint(request.code, request.amount, order, request.partial, request.currency)
        found = self._code_device(tenant, request.code, now)
        if found is None:
            return tenant, key_id, fp, None, 0
        return tenant, key_id, fp, found[0], found[1]

    def _decide_code_fast(
        self, tenant: Tenant, request: CodePayment, key_id: int, device: Device, step: int,
        wallets: dict[int, tuple[int, int]], batch: _CodeBatch, now: int,
    ) -> tuple[int, int, int] | None:  # fmt: skip
        """(paid, fee, balance after) if the common case takes this payment by code and it succeeds, else None
        (`pay_by_code` decides it: a retry, a cancelled transaction, a used or revoked code, a PIN given or
        needed, a limit passed, or what the common case of a payment leaves to the general path)."""
        state = self.state
        wallet = device.wallet
        if (
            key_id in state.replies
            or key_id in state.cancelled
            or device.revoked_at
            or state.code_used(device.device_id, step)
            or (device.device_id, step) in batch.used
            or request.pin_ok is not None
            or state.pin_locks.get(wallet, 0) > now
            or (tenant.settings.pin_above and request.amount > tenant.settings.pin_above)
        ):
            return None
        terminal = f"{request.tenant}\x00{request.terminal}"
        if self._limit_refusal(tenant, wallet, terminal, request.amount, now, batch.pending) is not None:
            return None
        return self._decide_fast(
            tenant, wallet, request.amount, request.order_reference or request.transaction, request.partial,
            request.currency, wallets.get(wallet), batch.spent.get(wallet, 0),
        )  # fmt: skip

    def _apply_code_payments(
        self, op: Operation, batch: _CodeBatch, replies: list[PaymentReply | None], now: int
    ) -> None:
        """Apply the decided payments' chains in one engine call; answer each and keep the record `pay_by_code`
        keeps (in its compact form), whose facts take its code and count it against the limits. A chain the engine
        refuses (its checks passed, so a bound such as TRANSFERS_FULL) moved nothing and answers LEDGER_REFUSED,
        with no record."""
        results = op.create_transfers(batch.chains)
        codes = memoryview(results).cast("I")[RESULT_CODE_OFFSET // 4 :: TRANSFER_RESULT_SIZE // 4]
        every_chain_ok = codes.tolist().count(_OK) == len(codes)
        records = bytearray()
        offset = 0
        for index, request, key_id, device, step, paid, fee, balance, count in batch.entries:
            start = offset
            offset += count * TRANSFER_RESULT_SIZE
            if not every_chain_ok and _results_ok(results[start:offset]) is not None:
                failed = _first_failure(results[start:offset])
                logger.error("a code payment's chain was refused by the engine after its checks passed: %s",
                             failed.name)  # fmt: skip
                replies[index] = PaymentReply(
                    result=WalletResult.LEDGER_REFUSED, message=f"the ledger refused the payment: {failed.name}"
                )
                continue
            wallet = device.wallet
            self.state.apply_code_payment(wallet, key_id, device.device_id, step,
                                          f"{request.tenant}\x00{request.terminal}", request.amount, now)  # fmt: skip
            records += encode_code_payment_record(
                request.tenant, now, wallet, key_id, request.order_reference or request.transaction, request.amount,
                paid, fee, device.device_id, step, request.terminal, request.transaction,
            )  # fmt: skip
            replies[index] = PaymentReply(
                payment_id=key_id, wallet_id=wallet, requested=request.amount, paid=paid,
                remainder=request.amount - paid, fee=fee, balance=balance,
                timestamp=_U64.unpack_from(results, start + RESULT_TIMESTAMP_OFFSET)[0],
            )  # fmt: skip
        if records:
            op.record(bytes(records))

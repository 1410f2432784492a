"""The wallet domain's state that is not a balance, and the facts that change it.

Balances live in the core engine; what lives here is what the engine cannot hold: tenants and their
settings, which credit expires when (grants), wallet status, open holds and which credit they reserve,
what was refunded of each payment, the replies of operations that moved nothing, and which wallets sit
below their tenant's low-balance threshold.

State changes only by facts. An operation decides, applies its chain of transfers to the engine, and then
applies its facts here and writes them to the journal in the same commit as the transfers (a record, see
`encode_record`). Recovery applies the same facts in the same order, so the state after a restart is the
state before it; decisions are never taken twice. A snapshot is the whole state as one record, taken at
the same moment as the engine's checkpoint.

Credit that never expires is not a grant: a wallet's spendable credit without an expiry is what the engine
says is available minus what its grants hold, so a wallet with no expiring credit costs nothing here.
"""

from __future__ import annotations

import bisect
import heapq
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from ._currencies import currency
from ._tenants import WALLET_LEDGER_FIRST, Tenant, TenantSettings

RECORD_HEADER: Final = struct.Struct("<I")
"""A record's header: its size in bytes; the top bit set marks a payment record in its compact form, the bit
below it a payment by code in its compact form (a record is far below 1 GiB: a commit is at most 512 MiB)."""
PAYMENT_RECORD_FLAG: Final = 1 << 31
CODE_PAYMENT_RECORD_FLAG: Final = 1 << 30
_RECORD_SIZE_MASK: Final = CODE_PAYMENT_RECORD_FLAG - 1
PAYMENT_RECORD: Final = struct.Struct("<QQQQQqqqHH")
"""A payment in its compact form, which most payments are: at, wallet (lo, hi), id (lo, hi), requested, paid,
fee, and the sizes of the tenant and the order reference, whose UTF-8 follows; then the expiring credit it
spent, a SPEND_PART per grant (none: it spent credit that never expires)."""
SPEND_PART: Final = struct.Struct("<QQq")
"""A compact payment record's part of one grant spent: grant_id (lo, hi), amount."""
CODE_PAYMENT_RECORD: Final = struct.Struct("<QQQQQqqqQQQHHHH")
"""A payment by code in its compact form, which most are (those from a wallet with no expiring credit and no
low-balance threshold, without a PIN): at, wallet (lo, hi), id (lo, hi), requested, paid, fee, device (lo, hi),
the window of its code, and the sizes of the tenant, the order reference, the terminal and the transaction,
whose UTF-8 follows in that order. It stands for the `payment_succeeded` record that names the device, the
terminal and the transaction, with its two facts: the code used, and the payment counted for the limits."""
SNAPSHOT_VERSION: Final = 2
SNAPSHOT_HEAD: Final = struct.Struct("<4sQ")
"""A snapshot's head: b"LWS2" and the size of its JSON part; the wallets' packed grants follow it."""
SNAPSHOT_GRANTS: Final = struct.Struct("<QQI")
"""Before each wallet's packed grants in a snapshot: wallet (lo, hi), their size in bytes."""
_U64_MASK: Final = 2**64 - 1
_ID_MASK: Final = 2**128 - 1

Fact = list[Any]
Record = dict[str, Any]


_JSON: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""json.dumps(record, separators=(",", ":"), ensure_ascii=False) without building an encoder per record."""


def encode_record(record: Record) -> bytes:
    """One domain record as journal bytes: a u32 length, then the record as compact JSON (UTF-8)."""
    body = _JSON.encode(record).encode()
    return RECORD_HEADER.pack(len(body)) + body


_GRANT: Final = struct.Struct("<QQQQ")
"""A packed grant: expires_at, remaining, grant_id (lo, hi)."""


def pack_grants(grants: list[list[int]]) -> bytes:
    """[expires_at, remaining, grant_id] grants, in their order, packed 32 bytes each."""
    return b"".join(_GRANT.pack(e, r, g & _U64_MASK, g >> 64) for e, r, g in grants)


def unpack_grants(packed: bytes) -> list[list[int]]:
    return [[e, r, lo | hi << 64] for e, r, lo, hi in _GRANT.iter_unpack(packed)]


def _grant_offset(packed: bytes | bytearray, grant_id: int) -> int:
    """Where the grant starts in packed grants, -1 if they do not hold it."""
    needle = grant_id.to_bytes(16, "little")
    at = packed.find(needle, 16)
    while at >= 0 and at % _GRANT.size != 16:  # the id's bytes inside another field: look on
        at = packed.find(needle, at + 1)
    return at - 16 if at >= 0 else -1


def expiry_entry(expires_at: int, wallet: int, grant_id: int) -> int:
    """(expires_at, wallet, grant_id) as one integer that sorts as the triple does (ids are 128-bit)."""
    return expires_at << 256 | wallet << 128 | grant_id


def expiry_parts(entry: int) -> tuple[int, int, int]:
    """The (expires_at, wallet, grant_id) of an expiry_entry."""
    return entry >> 256, entry >> 128 & _ID_MASK, entry & _ID_MASK


def encode_payment_record(
    tenant: str,
    at: int,
    wallet: int,
    payment_id: int,
    order: str,
    requested: int,
    paid: int,
    fee: int,
    spent: list[list[int]] | None = None,
) -> bytes:
    """A `payment_succeeded` record whose one fact, if any, is the expiring credit it spent (`spent`:
    [grant_id, amount] per grant, as its `spend` fact holds them), in its compact form: a third of its JSON's
    size, read back without a JSON parser. decode_records gives the record encode_record would have written."""
    tenant_bytes, order_bytes = tenant.encode(), order.encode()
    head = PAYMENT_RECORD.pack(
        at, wallet & _U64_MASK, wallet >> 64, payment_id & _U64_MASK, payment_id >> 64, requested, paid, fee,
        len(tenant_bytes), len(order_bytes),
    )  # fmt: skip
    parts = b"".join(SPEND_PART.pack(g & _U64_MASK, g >> 64, amount) for g, amount in spent) if spent else b""
    size = len(head) + len(tenant_bytes) + len(order_bytes) + len(parts)
    return RECORD_HEADER.pack(PAYMENT_RECORD_FLAG | size) + head + tenant_bytes + order_bytes + parts


def encode_code_payment_record(
    tenant: str, at: int, wallet: int, payment_id: int, order: str, requested: int, paid: int, fee: int,
    device: int, step: int, terminal: str, transaction: str,
) -> bytes:  # fmt: skip
    """A payment by code's `payment_succeeded` record in its compact form (CODE_PAYMENT_RECORD): decode_records
    gives the record encode_record would have written, facts and all."""
    tenant_bytes, order_bytes, terminal_bytes, transaction_bytes = (
        tenant.encode(), order.encode(), terminal.encode(), transaction.encode()
    )  # fmt: skip
    texts = tenant_bytes + order_bytes + terminal_bytes + transaction_bytes
    head = CODE_PAYMENT_RECORD.pack(
        at, wallet & _U64_MASK, wallet >> 64, payment_id & _U64_MASK, payment_id >> 64, requested, paid, fee,
        device & _U64_MASK, device >> 64, step, len(tenant_bytes), len(order_bytes), len(terminal_bytes),
        len(transaction_bytes),
    )  # fmt: skip
    return RECORD_HEADER.pack(CODE_PAYMENT_RECORD_FLAG | (len(head) + len(texts))) + head + texts


def _code_payment_parts(view: memoryview, offset: int, size: int) -> tuple[Any, ...]:
    """The fields of the compact record of a payment by code at `offset`, its four texts decoded."""
    fields = CODE_PAYMENT_RECORD.unpack_from(view, offset)
    sizes = fields[-4:]
    if CODE_PAYMENT_RECORD.size + sum(sizes) != size:
        raise ValueError(f"compact record of a payment by code at byte {offset}: its sizes do not add up")
    texts = []
    start = offset + CODE_PAYMENT_RECORD.size
    for text_size in sizes:
        texts.append(str(view[start : start + text_size], "utf-8"))
        start += text_size
    return *fields[:-4], *texts


def _code_payment_record(view: memoryview, offset: int, size: int) -> Record:
    at, wallet_lo, wallet_hi, id_lo, id_hi, requested, paid, fee, device_lo, device_hi, step, tenant, order, \
        terminal, transaction = _code_payment_parts(view, offset, size)  # fmt: skip
    wallet, payment_id, device = wallet_lo | wallet_hi << 64, id_lo | id_hi << 64, device_lo | device_hi << 64
    return {
        "op": "payment_succeeded", "tenant": tenant, "at": at, "wallet": wallet, "id": payment_id, "order": order,
        "requested": requested, "paid": paid, "fee": fee, "device": f"{device:032x}", "terminal": terminal,
        "transaction": transaction,
        "facts": [["code_used", device, step, payment_id], ["spent_by_code", wallet, f"{tenant}\x00{terminal}",
                                                             requested, at]],
    }  # fmt: skip


def _payment_record(view: memoryview, offset: int, size: int) -> Record:
    at, wallet_lo, wallet_hi, id_lo, id_hi, requested, paid, fee, tenant_size, order_size = PAYMENT_RECORD.unpack_from(
        view, offset
    )
    start = offset + PAYMENT_RECORD.size
    spent = _spent(view, offset, size, tenant_size + order_size)
    wallet = wallet_lo | wallet_hi << 64
    return {
        "op": "payment_succeeded", "tenant": str(view[start : start + tenant_size], "utf-8"), "at": at,
        "wallet": wallet, "id": id_lo | id_hi << 64,
        "order": str(view[start + tenant_size : start + tenant_size + order_size], "utf-8"),
        "requested": requested, "paid": paid, "fee": fee, "facts": [["spend", wallet, spent]] if spent else [],
    }  # fmt: skip


def _spent(view: memoryview, offset: int, size: int, texts_size: int) -> list[list[int]]:
    """The [grant_id, amount] spend parts of the compact payment record at `offset` (after its texts)."""
    parts_at = offset + PAYMENT_RECORD.size + texts_size
    if parts_at > offset + size or (offset + size - parts_at) % SPEND_PART.size:
        raise ValueError(f"compact payment record at byte {offset}: its sizes do not add up")
    return [[lo | hi << 64, amount] for lo, hi, amount in SPEND_PART.iter_unpack(view[parts_at : offset + size])]


_SIZE_MIN: Final = {0: 0, PAYMENT_RECORD_FLAG: PAYMENT_RECORD.size, CODE_PAYMENT_RECORD_FLAG: CODE_PAYMENT_RECORD.size}
"""The fewest bytes of a record by its form: JSON (0) or a compact one (its flag)."""


def _frames(view: memoryview) -> Iterator[tuple[int, int, int]]:
    """(offset, size, form) of each record of one commit's domain bytes, its form 0 (JSON), PAYMENT_RECORD_FLAG
    or CODE_PAYMENT_RECORD_FLAG; ValueError if one is cut short or its header names no form."""
    offset = 0
    while offset < len(view):
        if offset + RECORD_HEADER.size > len(view):
            raise ValueError(f"domain record header cut short at byte {offset}")
        (header,) = RECORD_HEADER.unpack_from(view, offset)
        offset += RECORD_HEADER.size
        form, size = header & ~_RECORD_SIZE_MASK, header & _RECORD_SIZE_MASK
        size_min = _SIZE_MIN.get(form)
        if size_min is None:
            raise ValueError(f"domain record header {header:#010x} at byte {offset - RECORD_HEADER.size} names no form")
        if offset + size > len(view) or size < size_min:
            raise ValueError(f"domain record of {size} bytes cut short at byte {offset}")
        yield offset, size, form
        offset += size


def _json_record(view: memoryview, offset: int, size: int) -> Record:
    record = json.loads(bytes(view[offset : offset + size]))
    if not isinstance(record, dict):
        raise ValueError(f"domain record at byte {offset} is not an object")
    return record


def decode_records(data: bytes | bytearray | memoryview) -> Iterator[Record]:
    """The records of one commit's domain bytes, in order; ValueError if they are cut short."""
    view = memoryview(data)
    for offset, size, form in _frames(view):
        if form == PAYMENT_RECORD_FLAG:
            yield _payment_record(view, offset, size)
        elif form == CODE_PAYMENT_RECORD_FLAG:
            yield _code_payment_record(view, offset, size)
        else:
            yield _json_record(view, offset, size)


@dataclass(slots=True)
class Hold:
    """An authorised amount reserved in a wallet, and which credit it reserves."""

    hold_id: int
    wallet: int
    tenant: str
    amount: int
    expires_at: int
    """Nanoseconds; the wallet voids the hold then."""
    parts: list[list[int]]
    """[grant_id, amount, expires_at] of the credit reserved, soonest-expiring first; grant_id 0 is credit
    that never expires (expires_at 0)."""


@dataclass(slots=True)
class Booking:
    """An operator's booking (or the reversal of one), as the audit trail shows it; never edited."""

    booking_id: int
    tenant: str
    wallet: int
    direction: str
    """credit or debit, from the wallet's side."""
    amount: int
    operator: str
    reason: str
    at: int
    """Nanoseconds since the Unix epoch."""
    reverses: int = 0
    """For a reversal: the booking it reverses."""

    def to_json(self) -> list[Any]:
        return [self.booking_id, self.tenant, self.wallet, self.direction, self.amount, self.operator, self.reason,
                self.at, self.reverses]  # fmt: skip


@dataclass(slots=True)
class Voucher:
    """A voucher or gift card: its value is held in the tenant's vouchers account until redeemed, spent,
    deactivated or expired."""

    voucher_id: int
    tenant: str
    amount: int
    remaining: int
    expires_at: int
    """Nanoseconds; 0: never."""
    issued_at: int
    issued_by: int
    """The issuing operation's id (the code derives from it)."""
    status: str = "active"
    """active, deactivated or expired (a voucher spent to zero stays active with nothing remaining)."""

    def to_json(self) -> list[Any]:
        return [self.voucher_id, self.tenant, self.amount, self.remaining, self.expires_at, self.issued_at,
                self.issued_by, self.status]  # fmt: skip


@dataclass(slots=True)
class Device:
    """A customer's phone enrolled to show payment codes for one wallet (ledger.wallet._paycodes); its keys
    derive from the tenant's secret and its id, so none is kept."""

    device_id: int
    tenant: str
    wallet: int
    customer: str
    number: int
    """Its number in the tenant's codes (masked in each code)."""
    name: str
    fingerprint: int
    """Of the enrolment request: its retry answers the same device, another request under its key is refused."""
    enrolled_at: int
    revoked_at: int = 0
    """0: in use."""
    seed: bytes = field(default=b"", repr=False, compare=False)
    """Its seed once a code of it was checked (paycodes.device_seed, derived again after a restart rather than
    kept: it is an HMAC of the tenant's secret, which the state holds anyway), so that each later code costs one
    HMAC rather than two."""

    def to_json(self) -> list[Any]:
        return [self.device_id, self.tenant, self.wallet, self.customer, self.number, self.name, self.fingerprint,
                self.enrolled_at, self.revoked_at]  # fmt: skip


REFUSALS_SECONDS: Final = 600
"""Refused codes at a terminal count towards flagging it for this long."""
REFUSING_TERMINALS_KEPT: Final = 1_024
"""Past this many terminals with refusals, those with none in the last REFUSALS_SECONDS are forgotten."""


@dataclass(slots=True)
class PaymentRequest:
    """What a terminal asks a customer to pay, shown as a QR code for their phone to confirm."""

    request_id: int
    tenant: str
    terminal: str
    amount: int
    reference: str
    expires_at: int
    created_at: int
    fingerprint: int
    status: str = "open"
    """open, paid or cancelled (an open one past expires_at is expired)."""
    payment_id: int = 0
    wallet: int = 0

    def to_json(self) -> list[Any]:
        return [self.request_id, self.tenant, self.terminal, self.amount, self.reference, self.expires_at,
                self.created_at, self.fingerprint, self.status, self.payment_id, self.wallet]  # fmt: skip


@dataclass(slots=True)
class PayLink:
    """What a shop asks a customer at a distance to pay, through a link sent to their phone or e-mail."""

    link_id: int
    tenant: str
    token: str
    amount: int
    reference: str
    description: str
    contact: str
    customer: str
    """Empty: any wallet of the tenant whose owner holds the contact."""
    expires_at: int
    created_at: int
    reusable: bool
    partial: bool
    fingerprint: int
    status: str = "open"
    """open, paid, partially_paid, expired or cancelled (an open one past expires_at reads expired until the
    sweep marks it so)."""
    paid: int = 0
    payments: int = 0
    payment_id: int = 0
    """The last payment's."""
    challenges: int = 0
    """One-time codes sent for it so far (bounded by its payments)."""
    failures: int = 0
    """Wrong PINs given on its page (bounded: then it takes no more)."""

    def to_json(self) -> list[Any]:
        return [self.link_id, self.tenant, self.token, self.amount, self.reference, self.description, self.contact,
                self.customer, self.expires_at, self.created_at, self.reusable, self.partial, self.fingerprint,
                self.status, self.paid, self.payments, self.payment_id, self.challenges, self.failures]  # fmt: skip


@dataclass(slots=True)
class Challenge:
    """A one-time code sent to a pay link's contact for one customer who gave their wallet's right PIN."""

    challenge_id: int
    link_id: int
    customer: str
    digest: str
    """HMAC-SHA256 of the code under the tenant's secret, hex: the code itself is kept nowhere."""
    expires_at: int
    tries_left: int
    payment_id: int = 0
    """Its payment once answered right (a retry gets that payment again)."""

    def to_json(self) -> list[Any]:
        return [self.challenge_id, self.link_id, self.customer, self.digest, self.expires_at, self.tries_left,
                self.payment_id]  # fmt: skip


CHALLENGES_KEPT_SECONDS: Final = 86_400
"""A challenge is forgotten a day after it expired (a retry of its payment then reads the link instead)."""


CODES_KEPT_STEPS: Final = 4
"""Windows a used code stays remembered: past the grace window no code of it is taken anyway."""


@dataclass(slots=True)
class WalletState:
    tenants: dict[str, Tenant] = field(default_factory=dict)
    ledgers: dict[int, str] = field(default_factory=dict)
    """Tenant by ledger number."""
    ledger_next: int = WALLET_LEDGER_FIRST
    grants: dict[int, bytes] = field(default_factory=dict)
    """Per wallet with expiring credit: its unspent, unreserved grants packed (`grants_of` reads them as
    [expires_at, remaining, grant_id], soonest first). Packed, a wallet's grant costs 32 bytes instead of
    two lists and three integers: a million wallets with credit that expires is a common tenant."""
    expiries: list[int] = field(default_factory=list)
    """A heap of `expiry_entry(expires_at, wallet, grant_id)` of grants that may still hold credit (stale
    entries are skipped when they come up): one integer, ordered as the triple is, instead of a tuple."""
    frozen: set[int] = field(default_factory=set)
    closed: set[int] = field(default_factory=set)
    holds: dict[int, Hold] = field(default_factory=dict)
    hold_expiries: list[tuple[int, int]] = field(default_factory=list)
    """A heap of (expires_at, hold_id)."""
    captures: dict[int, int] = field(default_factory=dict)
    """Hold id -> the id of its capture: a captured hold is refunded by either id, under one bound."""
    refunds: dict[int, list[int]] = field(default_factory=dict)
    """Per payment id: [refunded into the wallet, refunded of the part paid another way]."""
    replies: dict[int, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    """Per operation id: (request fingerprint, reply) of operations whose reply the engine cannot rebuild
    (those that moved nothing, refunds, holds' captures and voids, bookings)."""
    reversals: dict[int, int] = field(default_factory=dict)
    """Booking id -> the reversal's id."""
    vouchers: dict[int, Voucher] = field(default_factory=dict)
    voucher_expiries: list[tuple[int, int]] = field(default_factory=list)
    """A heap of (expires_at, voucher_id) of vouchers that expire."""
    bookings: dict[int, Booking] = field(default_factory=dict)
    """Operator bookings and their reversals by id, in the order made: the audit trail."""
    below: set[int] = field(default_factory=set)
    """Wallets below their tenant's low-balance threshold (an event marked each crossing)."""
    sweeps: int = 0
    """Expiry sweeps run: part of the ids of the transfers they make."""
    devices: dict[int, Device] = field(default_factory=dict)
    """Enrolled payment-code devices by id (revoked ones too: their codes are refused)."""
    device_numbers: dict[tuple[str, int], int] = field(default_factory=dict)
    """(tenant, device number) -> device id."""
    pins: dict[int, str] = field(default_factory=dict)
    """Wallet -> its payment PIN's Argon2id hash."""
    pin_failures: dict[int, int] = field(default_factory=dict)
    """Wallet -> wrong PINs in a row (none once a right one or an unlock came)."""
    pin_locks: dict[int, int] = field(default_factory=dict)
    """Wallet -> until when (ns) wrong PINs locked its code payments."""
    spending: dict[tuple[str, int, int], tuple[int, int]] = field(default_factory=dict)
    """(wallet id as hex or "tenant\\x00terminal", period seconds, period number) -> (amount, count) paid by
    code in that clock hour or UTC day: what the tenant's risk limits count. Periods before yesterday go. A
    pair of integers, replaced on each payment, so that the cycle collector need not walk the millions a
    busy day holds (it stops tracking a tuple of integers; it never stops tracking a list)."""
    refusals: dict[str, list[int]] = field(default_factory=dict)
    """"tenant\\x00terminal" -> when codes were refused there in the last REFUSALS_SECONDS."""
    flagged: dict[str, int] = field(default_factory=dict)
    """"tenant\\x00terminal" -> when refused codes last flagged it."""
    requests: dict[int, PaymentRequest] = field(default_factory=dict)
    """Payment requests terminals showed, by id."""
    links: dict[int, PayLink] = field(default_factory=dict)
    """Pay links by id."""
    link_tokens: dict[str, int] = field(default_factory=dict)
    """A pay link's URL token -> its id."""
    link_expiries: list[tuple[int, int]] = field(default_factory=list)
    """A heap of (expires_at, link id) of links that were open when made (the sweep marks them expired)."""
    challenges: dict[int, Challenge] = field(default_factory=dict)
    """Pay links' one-time code challenges by id, until CHALLENGES_KEPT_SECONDS after they expire."""
    cancelled: dict[int, int] = field(default_factory=dict)
    """Code payments' operation ids cancelled at their terminal -> when: never to be paid (again)."""
    codes_used: dict[int, dict[int, int]] = field(default_factory=dict)
    """Window -> device id -> the payment its code of that window made: a code pays once. Windows older than
    CODES_KEPT_STEPS before the newest one used are forgotten (no code of them is taken any more), each at
    once: at a busy counter a window holds hundreds of thousands, which no payment waits to be sifted."""

    # -- facts ---------------------------------------------------------------------------------------

    def apply(self, fact: Fact) -> None:
        """Apply one fact; the same code runs live and at recovery."""
        name = fact[0]
        handler = _HANDLERS.get(name)
        if handler is None:
            raise ValueError(f"unknown wallet fact {name!r}")
        handler(self, *fact[1:])

    def apply_record(self, record: Record) -> None:
        for fact in record.get("facts", ()):
            self.apply(fact)

    def apply_records(self, data: bytes | bytearray | memoryview) -> None:
        """Apply the facts of one commit's domain records, as `apply_record` of each of decode_records would:
        a compact record's facts are read without building its record (recovery reads millions)."""
        view = memoryview(data)
        for offset, size, form in _frames(view):
            if form == PAYMENT_RECORD_FLAG:
                _, wallet_lo, wallet_hi, *_, tenant_size, order_size = PAYMENT_RECORD.unpack_from(view, offset)
                spent = _spent(view, offset, size, tenant_size + order_size)
                if spent:
                    self._spend(wallet_lo | wallet_hi << 64, spent)
            elif form == CODE_PAYMENT_RECORD_FLAG:
                at, wallet_lo, wallet_hi, id_lo, id_hi, requested, _, _, device_lo, device_hi, step, tenant, _, \
                    terminal, _ = _code_payment_parts(view, offset, size)  # fmt: skip
                self.apply_code_payment(wallet_lo | wallet_hi << 64, id_lo | id_hi << 64, device_lo | device_hi << 64,
                                        step, f"{tenant}\x00{terminal}", requested, at)  # fmt: skip
            else:
                self.apply_record(_json_record(view, offset, size))

    def apply_code_payment(
        self, wallet: int, payment_id: int, device: int, step: int, terminal: str, requested: int, at: int
    ) -> None:
        """The facts of a payment by code's compact record: its code used (`code_used`), and what it asked
        counted for the risk limits at its wallet and its terminal ("tenant\\x00terminal": `spent_by_code`)."""
        self._code_used(device, step, payment_id)
        self._spent_by_code(wallet, terminal, requested, at)

    def _tenant(self, data: dict[str, Any]) -> None:
        tenant = Tenant(
            tenant_id=data["tenant"],
            currency=currency(data["currency"]),
            ledger=data["ledger"],
            settings=TenantSettings.from_json(data["settings"]),
            accounts={int(kind): account for kind, account in data["accounts"].items()},
            created_at=data["created_at"],
            secret=bytes.fromhex(data["secret"]),
        )
        self.tenants[tenant.tenant_id] = tenant
        self.ledgers[tenant.ledger] = tenant.tenant_id
        self.ledger_next = max(self.ledger_next, tenant.ledger + 1)

    def _settings(self, tenant_id: str, settings: dict[str, Any]) -> None:
        self.tenants[tenant_id].settings = TenantSettings.from_json(settings)

    def grants_of(self, wallet: int) -> list[list[int]]:
        """The wallet's expiring grants as [expires_at, remaining, grant_id], soonest first (a new list)."""
        packed = self.grants.get(wallet)
        return unpack_grants(packed) if packed is not None else []

    def _keep_grants(self, wallet: int, grants: list[list[int]]) -> None:
        if grants:
            self.grants[wallet] = pack_grants(grants)
        else:
            self.grants.pop(wallet, None)

    def _grant(self, wallet: int, grant_id: int, amount: int, expires_at: int) -> None:
        grants = self.grants_of(wallet)
        for grant in grants:
            if grant[2] == grant_id:
                grant[1] += amount
                self._keep_grants(wallet, grants)
                return
        bisect.insort(grants, [expires_at, amount, grant_id])
        self._keep_grants(wallet, grants)
        heapq.heappush(self.expiries, expiry_entry(expires_at, wallet, grant_id))

    def _spend(self, wallet: int, parts: list[list[int]]) -> None:
        """Take `amount` from each expiring grant named (grant 0, credit that never expires, is not kept);
        in the packed grants, where a grant spent to nothing is cut out and the others keep their order."""
        if all(grant_id == 0 for grant_id, _ in parts):
            return
        packed = self.grants.get(wallet)
        assert packed is not None, "spending a grant of a wallet with none"
        grants = bytearray(packed)
        for grant_id, amount in parts:
            if grant_id == 0:
                continue
            offset = _grant_offset(grants, grant_id)
            if offset < 0:
                raise AssertionError(f"spending grant {grant_id:#x} that wallet {wallet:#x} does not hold")
            expires_at, remaining, lo, hi = _GRANT.unpack_from(grants, offset)
            assert remaining >= amount, "spending more of a grant than it holds"
            if remaining == amount:
                del grants[offset : offset + _GRANT.size]
            else:
                _GRANT.pack_into(grants, offset, expires_at, remaining - amount, lo, hi)
        if grants:
            self.grants[wallet] = bytes(grants)
        else:
            del self.grants[wallet]

    def _expired(self, wallet: int, grant_id: int) -> None:
        self._keep_grants(wallet, [grant for grant in self.grants_of(wallet) if grant[2] != grant_id])

    def _status(self, wallet: int, status: str) -> None:
        self.frozen.discard(wallet)
        self.closed.discard(wallet)
        if status == "frozen":
            self.frozen.add(wallet)
        elif status == "closed":
            self.closed.add(wallet)

    def _hold(
        self, hold_id: int, wallet: int, tenant: str, amount: int, expires_at: int, parts: list[list[int]]
    ) -> None:
        self._spend(wallet, [[grant_id, part] for grant_id, part, _ in parts])
        self.holds[hold_id] = Hold(hold_id, wallet, tenant, amount, expires_at, parts)
        heapq.heappush(self.hold_expiries, (expires_at, hold_id))

    def _hold_end(self, hold_id: int, released: list[list[int]]) -> None:
        """The hold is captured, voided or expired; `released` credit goes back to its grants."""
        hold = self.holds.pop(hold_id)
        for grant_id, amount, expires_at in released:
            if grant_id and amount:
                self._grant(hold.wallet, grant_id, amount, expires_at)

    def _captured(self, hold_id: int, capture_id: int) -> None:
        self.captures[hold_id] = capture_id

    def _refund(self, payment_id: int, to_wallet: int, to_credit: int) -> None:
        refunded = self.refunds.setdefault(payment_id, [0, 0])
        refunded[0] += to_wallet
        refunded[1] += to_credit

    def _reply(self, operation_id: int, fingerprint: int, reply: dict[str, Any]) -> None:
        self.replies[operation_id] = (fingerprint, reply)

    def _voucher(self, data: list[Any]) -> None:
        voucher = Voucher(*data)
        self.vouchers[voucher.voucher_id] = voucher
        if voucher.expires_at and voucher.status == "active":
            heapq.heappush(self.voucher_expiries, (voucher.expires_at, voucher.voucher_id))

    def _voucher_used(self, voucher_id: int, amount: int) -> None:
        voucher = self.vouchers[voucher_id]
        assert voucher.remaining >= amount, "using more of a voucher than it holds"
        voucher.remaining -= amount

    def _voucher_status(self, voucher_id: int, status: str) -> None:
        self.vouchers[voucher_id].status = status

    def _booking(self, data: list[Any]) -> None:
        booking = Booking(*data)
        self.bookings[booking.booking_id] = booking
        if booking.reverses:
            self.reversals[booking.reverses] = booking.booking_id

    def _below(self, wallet: int, below: bool) -> None:
        if below:
            self.below.add(wallet)
        else:
            self.below.discard(wallet)

    def _sweep(self) -> None:
        self.sweeps += 1

    def _device(
        self, device_id: int, tenant: str, wallet: int, customer: str, number: int, name: str, fingerprint: int,
        enrolled_at: int, revoked_at: int = 0,
    ) -> None:  # fmt: skip
        self.devices[device_id] = Device(device_id, tenant, wallet, customer, number, name, fingerprint, enrolled_at,
                                         revoked_at)  # fmt: skip
        self.device_numbers[(tenant, number)] = device_id

    def _device_revoked(self, device_id: int, at: int) -> None:
        self.devices[device_id].revoked_at = at

    def _spent_by_code(self, wallet: int, terminal: str, amount: int, at: int) -> None:
        """Count a payment by code in its wallet's and its terminal's hour and day, where its tenant has a limit
        that counts them (a limit set later counts from then on)."""
        tenant = self.tenants.get(terminal.partition("\x00")[0])
        if tenant is None or not tenant.settings.limits_periods:
            return
        seconds = at // 1_000_000_000
        hour, day = seconds // 3_600, seconds // 86_400
        spending = self.spending
        for owner in (f"{wallet:032x}", terminal):
            for key in ((owner, 3_600, hour), (owner, 86_400, day)):
                counted = spending.get(key)
                spending[key] = (amount, 1) if counted is None else (counted[0] + amount, counted[1] + 1)
        oldest = next(iter(self.spending))
        if oldest[2] * oldest[1] < seconds - 2 * 86_400:  # forget what no limit counts any more
            self.spending = {key: value for key, value in self.spending.items()
                             if key[2] * key[1] >= seconds - 2 * 86_400}  # fmt: skip

    def spent_in(self, owner: str, period: int, at: int) -> tuple[int, int]:
        """(amount, count) paid by code by a wallet (hex id) or at a terminal in the period holding `at`."""
        return self.spending.get((owner, period, at // 1_000_000_000 // period), (0, 0))

    def _code_refused(self, terminal: str, at: int) -> None:
        since = at - REFUSALS_SECONDS * 10**9
        recent = [moment for moment in self.refusals.get(terminal, ()) if moment > since]
        self.refusals[terminal] = [*recent, at]
        if len(self.refusals) > REFUSING_TERMINALS_KEPT:  # forget terminals with no refusal in the window
            self.refusals = {name: moments for name, moments in self.refusals.items() if moments[-1] > since}

    def _terminal_flagged(self, terminal: str, at: int) -> None:
        self.flagged[terminal] = at

    def _request(
        self, request_id: int, tenant: str, terminal: str, amount: int, reference: str, expires_at: int,
        created_at: int, fingerprint: int, status: str = "open", payment_id: int = 0, wallet: int = 0,
    ) -> None:  # fmt: skip
        self.requests[request_id] = PaymentRequest(request_id, tenant, terminal, amount, reference, expires_at,
                                                   created_at, fingerprint, status, payment_id, wallet)  # fmt: skip

    def _request_status(self, request_id: int, status: str, payment_id: int, wallet: int) -> None:
        request = self.requests[request_id]
        request.status, request.payment_id, request.wallet = status, payment_id, wallet

    def _link(self, *fields: Any) -> None:
        link = PayLink(*fields)
        self.links[link.link_id] = link
        self.link_tokens[link.token] = link.link_id
        if link.status == "open":
            heapq.heappush(self.link_expiries, (link.expires_at, link.link_id))

    def _link_status(self, link_id: int, status: str) -> None:
        self.links[link_id].status = status

    def _link_failed(self, link_id: int) -> None:
        self.links[link_id].failures += 1

    def _link_paid(self, link_id: int, payment_id: int, paid: int, status: str) -> None:
        link = self.links[link_id]
        link.paid += paid
        link.payments += 1
        link.payment_id = payment_id
        link.status = status

    def _challenge(self, challenge_id: int, link_id: int, customer: str, digest: str, expires_at: int,
                   tries_left: int, payment_id: int = 0) -> None:  # fmt: skip
        self.challenges[challenge_id] = Challenge(challenge_id, link_id, customer, digest, expires_at, tries_left,
                                                  payment_id)  # fmt: skip
        link = self.links.get(link_id)
        if link is not None and not payment_id:
            link.challenges += 1
        # Challenges long past their time go as new ones come: they are bounded by the links' tries.
        oldest = next(iter(self.challenges.values()))
        if oldest.expires_at < expires_at - CHALLENGES_KEPT_SECONDS * 1_000_000_000:
            since = expires_at - CHALLENGES_KEPT_SECONDS * 1_000_000_000
            self.challenges = {key: kept for key, kept in self.challenges.items() if kept.expires_at >= since}

    def _challenge_failed(self, challenge_id: int) -> None:
        self.challenges[challenge_id].tries_left -= 1

    def _challenge_used(self, challenge_id: int, payment_id: int) -> None:
        self.challenges[challenge_id].payment_id = payment_id

    def _cancelled(self, operation: int, at: int) -> None:
        self.cancelled[operation] = at

    def _pin(self, wallet: int, hashed: str) -> None:
        self.pins[wallet] = hashed
        self._pin_reset(wallet)

    def _pin_failed(self, wallet: int) -> None:
        self.pin_failures[wallet] = self.pin_failures.get(wallet, 0) + 1

    def _pin_locked(self, wallet: int, until: int) -> None:
        self.pin_locks[wallet] = until
        self.pin_failures.pop(wallet, None)

    def _pin_reset(self, wallet: int) -> None:
        self.pin_failures.pop(wallet, None)
        self.pin_locks.pop(wallet, None)

    def _code_used(self, device_id: int, step: int, payment_id: int) -> None:
        used = self.codes_used.get(step)
        if used is None:
            for old in [window for window in self.codes_used if window < step - CODES_KEPT_STEPS]:
                del self.codes_used[old]
            used = self.codes_used[step] = {}
        used[device_id] = payment_id

    def code_used(self, device_id: int, step: int) -> bool:
        """Whether the device's code of window `step` paid already."""
        used = self.codes_used.get(step)
        return used is not None and device_id in used

    # -- snapshots -----------------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The whole state: a head, the state as JSON but for the grants, then each wallet's packed grants as
        they are kept (a million wallets with expiring credit is a common tenant, and read back without a
        JSON parser they restore three times as fast)."""
        data = {
            "version": SNAPSHOT_VERSION,
            "tenants": [tenant_json(tenant) for tenant in self.tenants.values()],
            "ledger_next": self.ledger_next,
            "frozen": sorted(self.frozen),
            "closed": sorted(self.closed),
            "holds": [[h.hold_id, h.wallet, h.tenant, h.amount, h.expires_at, h.parts] for h in self.holds.values()],
            "refunds": [[payment, refunded] for payment, refunded in self.refunds.items()],
            "captures": [[hold, capture] for hold, capture in self.captures.items()],
            "replies": [[operation, fp, reply] for operation, (fp, reply) in self.replies.items()],
            "reversals": [[booking, reversal] for booking, reversal in self.reversals.items()],
            "bookings": [booking.to_json() for booking in self.bookings.values()],
            "vouchers": [voucher.to_json() for voucher in self.vouchers.values()],
            "below": sorted(self.below),
            "sweeps": self.sweeps,
            "devices": [device.to_json() for device in self.devices.values()],
            "codes_used": [
                [device, step, payment] for step, used in self.codes_used.items() for device, payment in used.items()
            ],
            "pins": [[wallet, hashed] for wallet, hashed in self.pins.items()],
            "cancelled": [[operation, at] for operation, at in self.cancelled.items()],
            "requests": [request.to_json() for request in self.requests.values()],
            "links": [link.to_json() for link in self.links.values()],
            "challenges": [challenge.to_json() for challenge in self.challenges.values()],
            "spending": [[*key, *value] for key, value in self.spending.items()],
            "refusals": [[terminal, moments] for terminal, moments in self.refusals.items()],
            "flagged": [[terminal, at] for terminal, at in self.flagged.items()],
            "pin_failures": [[wallet, count] for wallet, count in self.pin_failures.items()],
            "pin_locks": [[wallet, until] for wallet, until in self.pin_locks.items()],
        }
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        grants = b"".join(
            SNAPSHOT_GRANTS.pack(wallet & _U64_MASK, wallet >> 64, len(packed)) + packed
            for wallet, packed in self.grants.items()
        )
        return SNAPSHOT_HEAD.pack(b"LWS2", len(body)) + body + grants

    @classmethod
    def restore(cls, snapshot: bytes) -> WalletState:
        """The state of a snapshot (and of the JSON snapshots of version 1 before it); ValueError if it is
        damaged."""
        state = cls()
        if not snapshot:
            return state
        if snapshot[:1] == b"{":
            data = json.loads(snapshot)
            if data.get("version") != 1:
                raise ValueError(f"wallet snapshot version {data.get('version')!r} is not 1 or {SNAPSHOT_VERSION}")
            for wallet, grants in data["grants"]:
                state.grants[wallet] = pack_grants(grants)
                for expires_at, _, grant_id in grants:
                    state.expiries.append(expiry_entry(expires_at, wallet, grant_id))
        else:
            if len(snapshot) < SNAPSHOT_HEAD.size:
                raise ValueError("wallet snapshot cut short in its head")
            magic, size = SNAPSHOT_HEAD.unpack_from(snapshot)
            if magic != b"LWS2" or SNAPSHOT_HEAD.size + size > len(snapshot):
                raise ValueError(f"wallet snapshot head {magic!r} of {size} bytes is not a version 2 snapshot's")
            data = json.loads(snapshot[SNAPSHOT_HEAD.size : SNAPSHOT_HEAD.size + size])
            if data.get("version") != SNAPSHOT_VERSION:
                raise ValueError(f"wallet snapshot version {data.get('version')!r} is not {SNAPSHOT_VERSION}")
            state._restore_grants(memoryview(snapshot)[SNAPSHOT_HEAD.size + size :])
        heapq.heapify(state.expiries)
        for tenant in data["tenants"]:
            state._tenant(tenant)
        state.ledger_next = data["ledger_next"]
        state.frozen = set(data["frozen"])
        state.closed = set(data["closed"])
        for hold_id, wallet, tenant, amount, expires_at, parts in data["holds"]:
            state.holds[hold_id] = Hold(hold_id, wallet, tenant, amount, expires_at, parts)
            state.hold_expiries.append((expires_at, hold_id))
        heapq.heapify(state.hold_expiries)
        state.refunds = {payment: refunded for payment, refunded in data["refunds"]}
        state.captures = {hold: capture for hold, capture in data.get("captures", ())}  # none before they were kept
        state.replies = {operation: (fp, reply) for operation, fp, reply in data["replies"]}
        state.reversals = {booking: reversal for booking, reversal in data["reversals"]}
        for booking in data["bookings"]:
            state._booking(booking)
        for voucher in data["vouchers"]:
            state._voucher(voucher)
        state.below = set(data["below"])
        state.sweeps = data["sweeps"]
        for device in data.get("devices", ()):  # none in snapshots taken before devices were kept
            state._device(*device)
        for device, step, payment in data.get("codes_used", ()):
            state.codes_used.setdefault(step, {})[device] = payment
        state.pins = {wallet: hashed for wallet, hashed in data.get("pins", ())}
        state.cancelled = {operation: at for operation, at in data.get("cancelled", ())}
        for request in data.get("requests", ()):
            state._request(*request)
        for link in data.get("links", ()):  # none in snapshots taken before pay links were kept
            state._link(*link)
        state.challenges = {fields[0]: Challenge(*fields) for fields in data.get("challenges", ())}
        state.spending = {(owner, period, number): (amount, count)
                          for owner, period, number, amount, count in data.get("spending", ())}  # fmt: skip
        state.refusals = {terminal: moments for terminal, moments in data.get("refusals", ())}
        state.flagged = {terminal: at for terminal, at in data.get("flagged", ())}
        state.pin_failures = {wallet: count for wallet, count in data.get("pin_failures", ())}
        state.pin_locks = {wallet: until for wallet, until in data.get("pin_locks", ())}
        return state

    def _restore_grants(self, view: memoryview) -> None:
        """Each wallet's packed grants of a snapshot, and their entries in the expiry heap (not yet a heap)."""
        grants, expiries = self.grants, self.expiries
        unpack_head, head_size, end = SNAPSHOT_GRANTS.unpack_from, SNAPSHOT_GRANTS.size, len(view)
        offset = 0
        while offset < end:
            if offset + head_size > end:
                raise ValueError(f"wallet snapshot: grants cut short at byte {offset}")
            lo, hi, size = unpack_head(view, offset)
            offset += head_size
            if size % _GRANT.size or not size or offset + size > end:
                raise ValueError(f"wallet snapshot: {size} bytes of grants at byte {offset} are not whole grants")
            wallet = lo | hi << 64
            packed = grants[wallet] = bytes(view[offset : offset + size])
            offset += size
            for expires_at, _, grant_lo, grant_hi in _GRANT.iter_unpack(packed):
                expiries.append(expiry_entry(expires_at, wallet, grant_lo | grant_hi << 64))


def tenant_json(tenant: Tenant) -> dict[str, Any]:
    return {
        "tenant": tenant.tenant_id,
        "currency": tenant.currency.code,
        "ledger": tenant.ledger,
        "settings": tenant.settings.to_json(),
        "accounts": {str(kind): account for kind, account in tenant.accounts.items()},
        "created_at": tenant.created_at,
        "secret": tenant.secret.hex(),
    }


_HANDLERS: Final[dict[str, Any]] = {
    "device": WalletState._device,
    "device_revoked": WalletState._device_revoked,
    "code_used": WalletState._code_used,
    "pin": WalletState._pin,
    "cancelled": WalletState._cancelled,
    "request": WalletState._request,
    "request_status": WalletState._request_status,
    "link": WalletState._link,
    "link_status": WalletState._link_status,
    "link_paid": WalletState._link_paid,
    "link_failed": WalletState._link_failed,
    "challenge": WalletState._challenge,
    "challenge_failed": WalletState._challenge_failed,
    "challenge_used": WalletState._challenge_used,
    "spent_by_code": WalletState._spent_by_code,
    "code_refused": WalletState._code_refused,
    "terminal_flagged": WalletState._terminal_flagged,
    "pin_failed": WalletState._pin_failed,
    "pin_locked": WalletState._pin_locked,
    "pin_reset": WalletState._pin_reset,
    "tenant": WalletState._tenant,
    "settings": WalletState._settings,
    "grant": WalletState._grant,
    "spend": WalletState._spend,
    "expired": WalletState._expired,
    "status": WalletState._status,
    "hold": WalletState._hold,
    "hold_end": WalletState._hold_end,
    "refund": WalletState._refund,
    "captured": WalletState._captured,
    "reply": WalletState._reply,
    "booking": WalletState._booking,
    "voucher": WalletState._voucher,
    "voucher_used": WalletState._voucher_used,
    "voucher_status": WalletState._voucher_status,
    "below": WalletState._below,
    "sweep": WalletState._sweep,
}

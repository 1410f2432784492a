"""Statements of a wallet and settlement reports of a tenant, read from the core's history of each account.

Pure: nothing here reads or waits. Each report is a generator of steps, written the way the core's history
queries are: it yields the `HistoryRead` it needs next (an account's transfers or balances over a time
range, a page at a time), receives the `HistoryPage` read, and returns the report. The Wallet servicer
performs the reads against the ledger, which shows only what is durable; a test can perform them against
records it keeps (`run_reads`).

A statement has one row per movement, not per transfer. The transfers of one operation are one chain:
step i of it has the id `base | i`, with the low four bits of `base` zero, and one engine call gives them
consecutive timestamps, so in a wallet's history they are neighbours sharing `id & ~0xF`. A payment and
its fee are therefore one row (what was paid, the fee, and the whole debit), and a row's balance is the
wallet's posted balance after the last of its transfers, from the wallet's balance history. A row belongs
to a time range by the timestamp of its first transfer; reads look CHAIN_SPAN_NS either side of a range so
that a row is never cut in two at a boundary. A chain lands in one journal commit, so the durable history
never holds half of one either.

Pagination is by cursor: a cursor is the timestamp of the last transfer of the last row a page covered, and
the next page begins after it. Timestamps strictly increase, and what becomes durable later has later ones,
so a row is never shown twice nor skipped while new movements arrive, and a page never ends inside an
operation.

A settlement report covers a time range of one tenant. What the tenant's wallets owe their customers (the
liability) is the sum of their posted balances; since every ledger sums to zero and a tenant's ledger holds
its wallets and its system accounts only, that is also the sum of (debits - credits) posted of the system
accounts, which are few and keep balance history. So the opening and closing liability are read from the
system accounts' balances at the range's ends, and the movements in between from their transfers, grouped
by what they were (top-ups by source, payments, refunds, fees, breakage, ...). Every transfer that changes
the liability moves money between a wallet and a system account, so each is counted once, by the system
account's side; a transfer between two system accounts changes no wallet. The check line is closing -
(opening + movements), which is 0 exactly, in integers, unless the history disagrees with itself.
"""

from __future__ import annotations

import base64
import calendar
import csv
import datetime
import io
import re
import struct
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Final, TypeVar

from ledger.records.codes import TransferFlags
from ledger.records.layout import TRANSFER_STRUCT, AccountBalance, Buffer
from ledger.records.limits import BATCH_EVENTS_MAX, NANOSECONDS_PER_SECOND, TIMESTAMP_MAX, TRANSFER_SIZE

from ._codes import AccountCode, TransferCode
from ._currencies import Currency
from ._ids import CHAIN_STEPS_MAX, derived_id

STATEMENT_LIMIT_MAX: Final = 1000
"""Most rows of one statement page."""
STATEMENT_LIMIT_DEFAULT: Final = 100
STATEMENT_SCAN_TRANSFERS_MAX: Final = 4 * BATCH_EVENTS_MAX
"""Most transfers one statement page looks at: a kinds filter that matches few rows ends a page early (with
has_more and a cursor past what it looked at) instead of reading the whole history in one call."""
CHAIN_SPAN_NS: Final = CHAIN_STEPS_MAX - 1
"""How far apart in time the first and last transfer of one operation can be: its chain of at most
CHAIN_STEPS_MAX transfers gets consecutive timestamps."""
DAY_NS: Final = 86_400 * NANOSECONDS_PER_SECOND
BALANCE_SEARCH_GROWTH: Final = 16
"""A balance at a moment is looked for in the day before it, then in windows this many times longer, so that
an account idle for long costs a few small reads and a busy one a single read."""

_OPERATION_MASK: Final = ~(CHAIN_STEPS_MAX - 1)
_CURSOR: Final = struct.Struct("<BQ")
_CURSOR_VERSION: Final = 1
_DAY: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

Result = TypeVar("Result")


# -- reads -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryRead:
    """One read of an account's history: its transfers (packed records) or its balances after each transfer,
    with timestamps from timestamp_min to timestamp_max (both inclusive, nanoseconds), in time order or
    newest first, at most `limit` of them."""

    account_id: int
    timestamp_min: int
    timestamp_max: int
    balances: bool = False
    newest_first: bool = False
    limit: int = BATCH_EVENTS_MAX


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """What a read found, and the read that goes on from where it stopped (None: nothing more)."""

    transfers: bytes = b""
    balances: Sequence[AccountBalance] = ()
    following: HistoryRead | None = None


Steps = Generator[HistoryRead, HistoryPage, Result]


def run_reads(steps: Steps[Result], read: Callable[[HistoryRead], HistoryPage]) -> Result:
    """Run a report's steps with `read` performing each read; the report."""
    try:
        request = next(steps)
        while True:
            request = steps.send(read(request))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def _balance_at(account_id: int, timestamp: int) -> Steps[AccountBalance | None]:
    """The account's balances after its last transfer at or before `timestamp` (None: it had none by then)."""
    if timestamp <= 0:
        return None
    span = DAY_NS
    while True:
        low = max(0, timestamp - span)
        page = yield HistoryRead(account_id, low, timestamp, balances=True, newest_first=True, limit=1)
        if page.balances:
            return page.balances[0]
        if low == 0:
            return None
        span *= BALANCE_SEARCH_GROWTH


def _transfers(buffer: Buffer) -> Iterable[tuple[int, ...]]:
    return TRANSFER_STRUCT.iter_unpack(buffer)


# Fields of TRANSFER_STRUCT.unpack: (id lo, id hi, debit lo, debit hi, credit lo, credit hi, amount,
# pending lo, pending hi, user_data_128 lo, hi, user_data_64, user_data_32, timeout, ledger, code, flags,
# timestamp, reserved).
def _id(fields: tuple[int, ...], at: int) -> int:
    return fields[at] | fields[at + 1] << 64


_ID, _DEBIT, _CREDIT, _AMOUNT, _PENDING, _USER_DATA_128 = 0, 2, 4, 6, 7, 9
_USER_DATA_64, _USER_DATA_32, _CODE, _FLAGS, _TIMESTAMP = 11, 12, 15, 16, 17


def _posted(fields: tuple[int, ...]) -> int:
    """What the transfer moved in posted balances: nothing for a hold or the void of one."""
    if fields[_FLAGS] & (TransferFlags.PENDING | TransferFlags.VOID_PENDING_TRANSFER):
        return 0
    return int(fields[_AMOUNT])


# -- statements --------------------------------------------------------------------------------------


class StatementKind(IntEnum):
    """What a statement row is. The proto's StatementKind repeats these name for name and number for number."""

    UNSPECIFIED = 0
    TOP_UP = 1
    """Credit bought, given by an operator, gifted, a benefit, or store credit for a return (see `source`)."""
    PAYMENT = 2
    """An order paid from the wallet, with its fee."""
    REFUND = 3
    """A payment refunded into the wallet, or (to_credit) its part paid another way given as store credit."""
    HOLD = 4
    """Credit reserved; the posted balance is unchanged, `held` grows."""
    CAPTURE = 5
    """A hold captured: the captured amount leaves the wallet and the whole hold ends."""
    VOID = 6
    """A hold released by request."""
    HOLD_EXPIRED = 7
    """A hold released because it expired."""
    EXPIRY = 8
    """Expired credit moved to breakage."""
    BOOKING = 9
    """An operator's booking (credit or debit)."""
    REVERSAL = 10
    """An operator's booking reversed."""
    PAYOUT = 11
    """Credit paid out to the customer in money."""
    WRITE_OFF = 12
    """Credit written off (at closing)."""
    OTHER = 13
    """A movement of a kind this server does not name (its transfer `code` says what it is)."""


_KINDS: Final[dict[int, StatementKind]] = {
    TransferCode.TOPUP_PURCHASE: StatementKind.TOP_UP,
    TransferCode.TOPUP_OPERATOR: StatementKind.TOP_UP,
    TransferCode.TOPUP_GIFT: StatementKind.TOP_UP,
    TransferCode.TOPUP_RETURN: StatementKind.TOP_UP,
    TransferCode.TOPUP_BENEFIT: StatementKind.TOP_UP,
    TransferCode.PAYMENT: StatementKind.PAYMENT,
    TransferCode.PAYMENT_FEE: StatementKind.PAYMENT,
    TransferCode.REFUND: StatementKind.REFUND,
    TransferCode.REFUND_TO_CREDIT: StatementKind.REFUND,
    TransferCode.BOOKING_CREDIT: StatementKind.BOOKING,
    TransferCode.BOOKING_DEBIT: StatementKind.BOOKING,
    TransferCode.REVERSAL: StatementKind.REVERSAL,
    TransferCode.EXPIRY: StatementKind.EXPIRY,
    TransferCode.PAYOUT: StatementKind.PAYOUT,
    TransferCode.WRITE_OFF: StatementKind.WRITE_OFF,
    TransferCode.VOUCHER_REDEEM: StatementKind.TOP_UP,
}
"""The kind of a movement by the code of its first transfer (HOLD is told apart by its flags)."""
WALLETLESS_CODES: Final = frozenset(
    {
        TransferCode.VOUCHER_ISSUE,
        TransferCode.VOUCHER_SPEND,
        TransferCode.VOUCHER_EXPIRY,
        TransferCode.VOUCHER_DEACTIVATE,
    }
)
"""Codes of transfers between two system accounts (a voucher's life before or instead of a wallet): they
never touch a wallet, so they are on no statement and change no line of the wallets' liability."""
_TOPUP_CODES: Final = frozenset(code for code, kind in _KINDS.items() if kind is StatementKind.TOP_UP)


@dataclass(frozen=True, slots=True, kw_only=True)
class Movement:
    """One statement row: an operation's transfers that touched the wallet. Amounts in minor units."""

    operation_id: int
    """The id of its first transfer: the payment, top-up, refund, hold, capture or void id the API answered."""
    kind: StatementKind
    code: int
    """The core transfer code of its first transfer."""
    timestamp: int
    """Of its first transfer (nanoseconds since the Unix epoch)."""
    timestamp_last: int
    """Of its last transfer: the row's place in the history (a cursor after it begins after the row)."""
    amount: int
    """Signed change of the wallet's posted balance without the fee: credit in +, credit out -, 0 for holds
    and voids."""
    fee: int = 0
    """The fee charged beside a payment (never negative)."""
    requested: int = 0
    """A payment's order amount (paid from the wallet: -amount; the rest was paid another way)."""
    source: int = 0
    """A top-up's TopUpSource."""
    to_credit: bool = False
    """A refund of the part paid another way, as store credit."""
    related_id: int = 0
    """The payment a refund is of, the hold a capture or void ends, the grant an expiry closes."""
    transfers: int = 1
    balance: int = 0
    """The wallet's posted balance right after the movement."""
    held: int = 0
    """Reserved by open holds right after the movement."""
    held_change: int = 0
    """Signed change of `held`: + for a hold, - for its capture, void or expiry."""

    @property
    def total(self) -> int:
        """Signed change of the posted balance, fee included: amount - fee."""
        return self.amount - self.fee


def movement(wallet_id: int, group: Sequence[tuple[int, ...]]) -> Movement:
    """The statement row of one operation's transfers touching the wallet (unpacked records, in time order),
    before its balances are known."""
    first = group[0]
    code, flags = int(first[_CODE]), int(first[_FLAGS])
    kind = _KINDS.get(code, StatementKind.OTHER)
    related_id = 0
    if code == TransferCode.HOLD:
        related_id = _id(first, _PENDING)
        if flags & TransferFlags.POST_PENDING_TRANSFER:
            kind = StatementKind.CAPTURE
        elif flags & TransferFlags.VOID_PENDING_TRANSFER:
            expired = _id(first, _ID) == derived_id("hold-expiry", related_id)
            kind = StatementKind.HOLD_EXPIRED if expired else StatementKind.VOID
        else:
            kind, related_id = StatementKind.HOLD, 0
    elif code in (TransferCode.REFUND, TransferCode.REFUND_TO_CREDIT, TransferCode.EXPIRY):
        related_id = _id(first, _USER_DATA_128)
    amount = fee = 0
    for fields in group:
        moved = _posted(fields)
        if fields[_CODE] == TransferCode.PAYMENT_FEE:
            fee += moved
        else:
            amount += moved if _id(fields, _CREDIT) == wallet_id else -moved
    return Movement(
        operation_id=_id(first, _ID),
        kind=kind,
        code=code,
        timestamp=int(first[_TIMESTAMP]),
        timestamp_last=int(group[-1][_TIMESTAMP]),
        amount=amount,
        fee=fee,
        requested=int(first[_USER_DATA_64]) if code == TransferCode.PAYMENT else 0,
        source=int(first[_USER_DATA_32]) if code in _TOPUP_CODES else 0,
        to_credit=code == TransferCode.REFUND_TO_CREDIT,
        related_id=related_id,
        transfers=len(group),
    )


class Grouper:
    """Groups a wallet's transfers, fed in time order, into movements: neighbours sharing `id & ~0xF` are one
    operation. Keeps the movements whose first transfer lies in [start, end] and whose kind is wanted."""

    def __init__(self, wallet_id: int, start: int, end: int, kinds: frozenset[StatementKind] = frozenset()) -> None:
        self.wallet_id = wallet_id
        self.start = start
        self.end = end
        self.kinds = kinds
        self.kept: list[Movement] = []
        self.covered_last = 0
        """timestamp_last of the last movement in the range, kept or not (0: none yet)."""
        self.ended = False
        """A movement beginning after `end` was seen: the range holds no more."""
        self._open: list[tuple[int, ...]] = []

    def feed(self, records: Buffer) -> None:
        for fields in _transfers(records):
            if self.ended:
                return
            if self._open and _id(fields, _ID) & _OPERATION_MASK != _id(self._open[0], _ID) & _OPERATION_MASK:
                self._close()
            if not self._open and fields[_TIMESTAMP] > self.end:
                self.ended = True
                return
            self._open.append(fields)

    def finish(self) -> None:
        """The history has no more transfers: the open group is a whole operation (a chain is never split
        across journal commits), so it closes."""
        if self._open:
            self._close()

    def _close(self) -> None:
        group, self._open = self._open, []
        if group[0][_TIMESTAMP] < self.start:
            return  # begun before the range (or at or before the cursor): not this page's
        found = movement(self.wallet_id, group)
        self.covered_last = found.timestamp_last
        if not self.kinds or found.kind in self.kinds:
            self.kept.append(found)


@dataclass(frozen=True, slots=True)
class StatementPage:
    rows: list[Movement]
    has_more: bool
    """More rows may follow in the range now: read on with `cursor`."""
    cursor: int
    """The timestamp the next page begins after (the request's own when this page covered nothing)."""


def statement(
    wallet_id: int,
    *,
    since: int = 0,
    until: int = 0,
    after: int = 0,
    kinds: frozenset[StatementKind] = frozenset(),
    limit: int = STATEMENT_LIMIT_DEFAULT,
) -> Steps[StatementPage]:
    """A page of the wallet's statement: its movements with their first transfer in [since, until) (until 0:
    no end) and after the cursor `after` (0: none), of the `kinds` (empty: all), oldest first, at most
    `limit`, each with the wallet's balances after it."""
    assert 1 <= limit <= STATEMENT_LIMIT_MAX
    start = max(since, after + 1)
    end = min(until - 1, TIMESTAMP_MAX) if until else TIMESTAMP_MAX
    if start > end:
        return StatementPage([], False, after)
    grouper = Grouper(wallet_id, start, end, kinds)
    read: HistoryRead | None = HistoryRead(
        wallet_id, max(start - CHAIN_SPAN_NS, 0), min(end, TIMESTAMP_MAX - CHAIN_SPAN_NS) + CHAIN_SPAN_NS
    )
    scanned = 0
    while read is not None:
        page = yield read
        grouper.feed(page.transfers)
        scanned += len(page.transfers) // TRANSFER_SIZE
        read = page.following
        if grouper.ended or read is None:
            grouper.finish()
            read = None
        elif len(grouper.kept) > limit or scanned >= STATEMENT_SCAN_TRANSFERS_MAX:
            break
    if len(grouper.kept) > limit:
        rows = grouper.kept[:limit]
        cursor, has_more = rows[-1].timestamp_last, True
    else:
        rows = grouper.kept
        cursor, has_more = grouper.covered_last or after, read is not None
    return StatementPage((yield from _with_balances(wallet_id, rows)), has_more, cursor)


def _with_balances(wallet_id: int, rows: list[Movement]) -> Steps[list[Movement]]:
    """The rows with the wallet's balances after each, and the change of what it holds, from its balance
    history (one entry per transfer that touched it)."""
    if not rows:
        return rows
    before = yield from _balance_at(wallet_id, rows[0].timestamp - 1)
    timestamps: list[int] = []
    balances: list[AccountBalance] = []
    read: HistoryRead | None = HistoryRead(wallet_id, rows[0].timestamp, rows[-1].timestamp_last, balances=True)
    while read is not None:
        page = yield read
        for entry in page.balances:
            timestamps.append(entry.timestamp)
            balances.append(entry)
        read = page.following
    position = {timestamp: index for index, timestamp in enumerate(timestamps)}
    result = []
    for row in rows:
        first, last = position.get(row.timestamp), position.get(row.timestamp_last)
        if first is None or last is None:
            raise RuntimeError(
                f"wallet {wallet_id:032x} has no balance history at {row.timestamp}..{row.timestamp_last}: "
                "a wallet account without the HISTORY flag, or a history index that lost entries"
            )
        prior = balances[first - 1] if first else before
        after = balances[last]
        posted_before = prior.credits_posted - prior.debits_posted if prior is not None else 0
        held_before = prior.debits_pending if prior is not None else 0
        posted = after.credits_posted - after.debits_posted
        # The transfers and the balance history are two records of the same movements.
        assert posted - posted_before == row.total, (row, posted_before, posted)
        result.append(
            replace(row, balance=posted, held=after.debits_pending, held_change=after.debits_pending - held_before)
        )
    return result


def encode_cursor(timestamp: int) -> str:
    """The opaque cursor of a page that ends after `timestamp` ('' for 0: from the beginning)."""
    if not timestamp:
        return ""
    return base64.urlsafe_b64encode(_CURSOR.pack(_CURSOR_VERSION, timestamp)).rstrip(b"=").decode()


def decode_cursor(text: str) -> int:
    """The timestamp a cursor from encode_cursor names (0 for ''); ValueError naming starting_after otherwise."""
    if not text:
        return 0
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        version, timestamp = _CURSOR.unpack(raw)
    except (ValueError, struct.error):
        raise ValueError("starting_after: not a cursor this service gave (pass next_cursor as it is)") from None
    if version != _CURSOR_VERSION or not 0 < timestamp <= TIMESTAMP_MAX or encode_cursor(timestamp) != text:
        raise ValueError("starting_after: not a cursor this service gave (pass next_cursor as it is)")
    return int(timestamp)


# -- settlement --------------------------------------------------------------------------------------


SECTIONS: Final = ("top_up", "payment", "refund", "fee", "breakage", "payout", "booking", "other")
"""The sections of a settlement's movements, in the order reports list them."""

_LINES: Final[dict[int, tuple[str, str]]] = {
    TransferCode.TOPUP_PURCHASE: ("top_up", "purchase"),
    TransferCode.TOPUP_OPERATOR: ("top_up", "operator"),
    TransferCode.TOPUP_GIFT: ("top_up", "gift"),
    TransferCode.TOPUP_BENEFIT: ("top_up", "benefit"),
    TransferCode.VOUCHER_REDEEM: ("top_up", "voucher"),
    TransferCode.PAYMENT: ("payment", "payment"),
    TransferCode.HOLD: ("payment", "capture"),  # only its posts move posted money
    TransferCode.REFUND: ("refund", "to_wallet"),
    TransferCode.REFUND_TO_CREDIT: ("refund", "to_credit"),
    TransferCode.TOPUP_RETURN: ("refund", "return"),
    TransferCode.PAYMENT_FEE: ("fee", "fee"),
    TransferCode.EXPIRY: ("breakage", "expiry"),
    TransferCode.WRITE_OFF: ("breakage", "write_off"),
    TransferCode.PAYOUT: ("payout", "payout"),
    TransferCode.BOOKING_CREDIT: ("booking", "credit"),
    TransferCode.BOOKING_DEBIT: ("booking", "debit"),
    TransferCode.REVERSAL: ("booking", "reversal"),
}
"""The line of a transfer that moved posted money between a wallet and a system account, by its code; any
other code gets a line of its own in `other` (code_<n>), so that the report adds up whatever it meets."""


@dataclass(slots=True)
class SettlementLine:
    section: str
    line: str
    amount: int = 0
    """Signed change of the wallets' liability: + credit given, - credit spent, expired or paid out."""
    transfers: int = 0


@dataclass(slots=True, kw_only=True)
class Settlement:
    """A tenant's settlement over [since, until): the moments are nanoseconds since the Unix epoch."""

    since: int
    until: int
    opening: int = 0
    """What the wallets owed their customers at `since` (the sum of their posted balances)."""
    closing: int = 0
    """… at `until`."""
    vouchers_opening: int = 0
    """The vouchers account's posted balance at `since`: value of vouchers outstanding, owed apart from the
    wallets."""
    vouchers_closing: int = 0
    lines: list[SettlementLine] = field(default_factory=list)

    @property
    def movements(self) -> int:
        return sum(line.amount for line in self.lines)

    @property
    def difference(self) -> int:
        """closing - (opening + movements): 0 unless the history disagrees with itself."""
        return self.closing - self.opening - self.movements


def _settlement_lines() -> dict[tuple[str, str], SettlementLine]:
    return {key: SettlementLine(*key) for key in _LINES.values()}


def settlement(
    accounts: Mapping[int, int], *, since: int, until: int, without_history: frozenset[int] = frozenset()
) -> Steps[Settlement]:
    """The settlement of the tenant whose system accounts are `accounts` (account id by AccountCode) over
    [since, until), from their balance history and their transfers; `until` must not be past what is durable
    (the caller caps it), so that every read sees the same moment. The balances of accounts in
    `without_history` (made before system accounts kept balance history) are summed from all their transfers
    instead: exact too, at the cost of reading them."""
    assert 0 <= since <= until <= TIMESTAMP_MAX
    system = frozenset(accounts.values())
    report = Settlement(since=since, until=until)
    for kind, account in accounts.items():
        opening = yield from _posted_at(account, since - 1, account not in without_history)
        closing = yield from _posted_at(account, until - 1, account not in without_history)
        if kind == AccountCode.VOUCHERS:
            report.vouchers_opening = _net_credit(opening)
            report.vouchers_closing = _net_credit(closing)
        report.opening -= _net_credit(opening)
        report.closing -= _net_credit(closing)
    lines = _settlement_lines()
    if max(since, 1) < until:  # (no transfer has timestamp 0, and a read's timestamp_max of 0 means no bound)
        for account in accounts.values():
            read: HistoryRead | None = HistoryRead(account, since, until - 1)
            while read is not None:
                page = yield read
                _count(page.transfers, system, lines)
                read = page.following
    # The lines of _LINES first, in its order (which is SECTIONS'), then those of codes it does not name.
    others = sorted((key for key in lines if key[0] == "other"), key=lambda key: int(key[1].removeprefix("code_")))
    report.lines = [lines[key] for key in (*_LINES.values(), *others)]
    return report


def _posted_at(account_id: int, timestamp: int, history: bool) -> Steps[tuple[int, int]]:
    """(debits_posted, credits_posted) of the account after its last transfer at or before `timestamp`."""
    if history:
        found = yield from _balance_at(account_id, timestamp)
        return (found.debits_posted, found.credits_posted) if found is not None else (0, 0)
    debits = credits = 0
    read = HistoryRead(account_id, 0, timestamp) if timestamp > 0 else None
    while read is not None:
        page = yield read
        for fields in _transfers(page.transfers):
            if _id(fields, _DEBIT) == account_id:
                debits += _posted(fields)
            else:
                credits += _posted(fields)
        read = page.following
    return debits, credits


def _net_credit(posted: tuple[int, int]) -> int:
    debits, credits = posted
    return credits - debits


def _count(records: Buffer, system: frozenset[int], lines: dict[tuple[str, str], SettlementLine]) -> None:
    """Add the system account's transfers that moved posted money to or from a wallet to their lines."""
    for fields in _transfers(records):
        moved = _posted(fields)
        debit, credit = _id(fields, _DEBIT), _id(fields, _CREDIT)
        if not moved or (debit in system) == (credit in system):
            continue  # a hold or its void, or money between two system accounts: no wallet changed
        code = int(fields[_CODE])
        key = _LINES.get(code) or ("other", f"code_{code}")
        line = lines.get(key)
        if line is None:
            line = lines[key] = SettlementLine(*key)
        line.amount += moved if credit not in system else -moved
        line.transfers += 1


def day_range(day: str) -> tuple[int, int]:
    """[start, end) of a UTC day written YYYY-MM-DD, in nanoseconds; ValueError naming `day` otherwise."""
    problem = f"day must be a date in UTC written YYYY-MM-DD, from 1970-01-01 on, got {day[:40]!r}"
    if _DAY.fullmatch(day) is None:
        raise ValueError(problem)
    try:
        date = datetime.date.fromisoformat(day)
    except ValueError:
        raise ValueError(problem) from None
    start = calendar.timegm(date.timetuple()) * NANOSECONDS_PER_SECOND
    if start < 0 or start + DAY_NS > TIMESTAMP_MAX:
        raise ValueError(problem)
    return start, start + DAY_NS


def format_time(nanoseconds: int) -> str:
    """RFC 3339 in UTC, e.g. 2024-05-01T00:00:00Z (with the fraction of a second only where there is one)."""
    seconds, fraction = divmod(nanoseconds, NANOSECONDS_PER_SECOND)
    text = datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += f".{fraction:09d}".rstrip("0")
    return text + "Z"


def _decimal(amount: int, money: Currency) -> str:
    return money.format(amount).removesuffix(f" {money.code}")


CSV_COLUMNS: Final = ("tenant", "currency", "since", "until", "section", "line", "transfers", "amount_minor", "amount")
"""The settlement CSV's header: every row names its tenant and period, so that files concatenate; amounts in
minor units (integers) and in major units (decimal text with the currency's scale)."""


def settlement_csv(report: Settlement, *, tenant: str, money: Currency) -> str:
    """The report as CSV text (RFC 4180, a header row first): opening, each movement line, the movements'
    total, closing, the check line (0), and the vouchers outstanding at both ends."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    period = (tenant, money.code, format_time(report.since), format_time(report.until))

    def row(section: str, line: str, transfers: int | str, amount: int) -> None:
        writer.writerow((*period, section, line, transfers, amount, _decimal(amount, money)))

    row("opening", "liability", "", report.opening)
    for line in report.lines:
        row(line.section, line.line, line.transfers, line.amount)
    row("movements", "total", sum(line.transfers for line in report.lines), report.movements)
    row("closing", "liability", "", report.closing)
    row("check", "difference", "", report.difference)
    row("vouchers", "opening", "", report.vouchers_opening)
    row("vouchers", "closing", "", report.vouchers_closing)
    return out.getvalue()

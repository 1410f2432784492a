"""Statements and settlement reports of the wallet domain (ledger.wallet._statements) over a bare engine whose
transfers and balances are kept as the history index keeps them, read in pages as small as one record: rows
are whole operations, pages never split one nor repeat or skip a row while movements keep arriving, and a
settlement adds up to the engine's balances exactly."""

from __future__ import annotations

import csv
import io
import itertools
import random
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from ledger.engine import unpack_accounts
from ledger.engine._api import Engine
from ledger.records.codes import AccountFlags
from ledger.records.layout import TRANSFER_STRUCT, AccountBalance, Buffer, pack_ids, unpack_account_balances
from ledger.records.limits import TRANSFER_SIZE
from ledger.wallet import (
    AccountCode,
    HistoryPage,
    HistoryRead,
    Movement,
    Payment,
    Refund,
    Settlement,
    StatementKind,
    TenantSettings,
    TopUp,
    TopUpSource,
    TransferCode,
    currency,
    day_range,
    decode_cursor,
    encode_cursor,
    format_time,
    run_reads,
    settlement,
    settlement_csv,
    statement,
    wallet_id,
)
from tests.wallets import SECOND_NS, EngineOperation, WalletBench

K = StatementKind


class History:
    """Each account's transfers and balances in time order, as the history index gives them; pages of at most
    `page_size` entries, so that every page boundary a real read could have is tried."""

    def __init__(self) -> None:
        self.transfers: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
        self.balances: dict[int, list[AccountBalance]] = defaultdict(list)
        self.page_size = 8190
        self.reads = 0

    def add(self, entries: Buffer, balances: bytes) -> None:
        for offset in range(0, len(entries), TRANSFER_SIZE):
            record = bytes(entries[offset : offset + TRANSFER_SIZE])
            fields = TRANSFER_STRUCT.unpack(record)
            for account in (fields[2] | fields[3] << 64, fields[4] | fields[5] << 64):
                self.transfers[account].append((fields[17], record))
        for balance in unpack_account_balances(balances):
            self.balances[balance.account_id].append(balance)

    def read(self, request: HistoryRead) -> HistoryPage:
        self.reads += 1
        entries: list[Any] = (
            [(b.timestamp, b) for b in self.balances[request.account_id]]
            if request.balances
            else self.transfers[request.account_id]
        )
        found = [item for ts, item in entries if request.timestamp_min <= ts <= request.timestamp_max]
        if request.newest_first:
            found.reverse()
        limit = min(request.limit, self.page_size)
        page, rest = found[:limit], found[limit:]
        following = None
        if rest:
            last = page[-1].timestamp if request.balances else TRANSFER_STRUCT.unpack(page[-1])[17]
            following = (
                replace(request, timestamp_max=last - 1)
                if request.newest_first
                else replace(request, timestamp_min=last + 1)
            )
        if request.balances:
            return HistoryPage(balances=page, following=following)
        return HistoryPage(transfers=b"".join(page), following=following)


@dataclass
class RecordingOperation(EngineOperation):
    history: History = field(default_factory=History)

    def create_transfers(self, events: Buffer) -> bytes:
        applied = self.engine.create_transfers(events)
        self.history.add(applied.entries, applied.balances)
        return applied.results


class Shop:
    """A tenant's wallets over a bare engine, with the history of everything they did."""

    def __init__(self, engine_class: type[Engine] | None = None, **settings: Any) -> None:
        self.bench = WalletBench(engine_class)
        self.history = History()
        self.keys = 0
        with self.op() as op:
            reply = self.bench.wallets.create_tenant(op, "shop-a", "EUR", TenantSettings(**settings), actor="test")
        assert reply.ok, reply.message
        self.accounts = {AccountCode[name.upper()]: account for name, account in reply.accounts.items()}

    def op(self) -> RecordingOperation:
        return RecordingOperation(self.bench.engine, self.bench.clock, self.bench.journal, history=self.history)

    def key(self) -> str:
        self.keys += 1
        return f"k{self.keys}"

    def open(self, customer: str = "anna") -> int:
        with self.op() as op:
            assert self.bench.wallets.open_wallet(op, "shop-a", customer).ok
        return wallet_id("shop-a", customer, "EUR")

    def top_up(self, amount: int, customer: str = "anna", source: TopUpSource = TopUpSource.GIFT, **kw: Any) -> Any:
        request = TopUp(tenant="shop-a", customer=customer, amount=amount, key=self.key(), source=source,
                        reference=kw.pop("reference", "ref"), **kw)  # fmt: skip
        with self.op() as op:
            reply = self.bench.wallets.top_up(op, request)
        assert reply.ok, reply.message
        return reply

    def pay(self, amount: int, customer: str = "anna", partial: bool = False) -> Any:
        request = Payment(tenant="shop-a", customer=customer, amount=amount, key=self.key(), order_reference="o",
                          partial=partial)  # fmt: skip
        with self.op() as op:
            return self.bench.wallets.pay(op, request)

    def refund(self, payment_id: int, amount: int, to_credit: bool = False) -> Any:
        request = Refund(tenant="shop-a", payment_id=payment_id, amount=amount, key=self.key(), to_credit=to_credit)
        with self.op() as op:
            reply = self.bench.wallets.refund(op, request)
        assert reply.ok, reply.message
        return reply

    def hold(self, amount: int, customer: str = "anna", seconds: int = 3600) -> Any:
        with self.op() as op:
            reply = self.bench.wallets.authorize(op, "shop-a", customer, amount, self.key(), seconds=seconds,
                                                 reference="table 4")  # fmt: skip
        assert reply.ok, reply.message
        return reply

    def capture(self, hold_id: int, amount: int = 0) -> Any:
        with self.op() as op:
            return self.bench.wallets.capture(op, "shop-a", hold_id, amount, self.key())

    def void(self, hold_id: int) -> Any:
        with self.op() as op:
            return self.bench.wallets.void(op, "shop-a", hold_id, self.key())

    def sweep(self, seconds: float) -> int:
        self.bench.clock.advance(seconds)
        with self.op() as op:
            return self.bench.wallets.sweep(op)

    def posted(self, account: int) -> int:
        record = unpack_accounts(self.bench.engine.lookup_accounts(pack_ids([account])))[0]
        return record.credits_posted - record.debits_posted

    def statement(self, wallet: int, **kw: Any) -> Any:
        return run_reads(statement(wallet, **kw), self.history.read)

    def all_rows(self, wallet: int, limit: int = 1000, **kw: Any) -> list[Movement]:
        rows: list[Movement] = []
        after = 0
        while True:
            page = self.statement(wallet, after=after, limit=limit, **kw)
            rows += page.rows
            after = page.cursor
            if not page.has_more:
                return rows

    def moment(self) -> int:
        """A moment after every transfer made so far and before any made later."""
        return self.bench.engine.stats().timestamp_last + 1

    def settlement(self, since: int = 0, until: int = 0, without_history: frozenset[int] = frozenset()) -> Settlement:
        until = until or self.moment()
        steps = settlement(self.accounts, since=since, until=until, without_history=without_history)
        return run_reads(steps, self.history.read)


def test_a_payment_and_its_fee_are_one_row_with_the_balance_after_it(engine_class: type[Engine]) -> None:
    shop = Shop(engine_class, fee_fixed=10, fee_per_mille=20)
    anna = shop.open()
    topped = shop.top_up(10_000, source=TopUpSource.PURCHASE, reference="psp-1")
    paid = shop.pay(3000)
    assert paid.ok and paid.fee == 70
    page = shop.statement(anna)
    assert not page.has_more and page.cursor == page.rows[-1].timestamp_last
    top_up, payment = page.rows
    assert (top_up.kind, top_up.operation_id, top_up.amount, top_up.fee, top_up.balance, top_up.source) == (
        K.TOP_UP, topped.operation_id, 10_000, 0, 10_000, TopUpSource.PURCHASE,
    )  # fmt: skip
    assert (payment.kind, payment.operation_id, payment.transfers) == (K.PAYMENT, paid.payment_id, 2)
    assert (payment.amount, payment.fee, payment.total, payment.requested) == (-3000, 70, -3070, 3000)
    assert payment.balance == 10_000 - 3070 == shop.posted(anna)
    assert payment.timestamp == paid.timestamp and payment.timestamp_last == paid.timestamp + 1


def test_every_kind_of_movement_has_its_row(engine_class: type[Engine]) -> None:
    shop = Shop(engine_class, fee_fixed=5, partial_payment=True, refund_to_credit=True)
    anna = shop.open()
    shop.top_up(1000, expires_at=shop.bench.clock.now_ns + 30 * SECOND_NS)  # expires
    shop.top_up(2000, source=TopUpSource.RETURN, reference="order 7")
    partial = shop.pay(5000, partial=True)
    assert partial.ok and partial.paid + partial.fee == 3000
    shop.refund(partial.payment_id, 400)
    shop.refund(partial.payment_id, 600, to_credit=True)
    captured = shop.hold(300)
    capture = shop.capture(captured.hold_id, 200)
    voided = shop.hold(100)
    void = shop.void(voided.hold_id)
    expiring = shop.hold(50, seconds=10)
    shop.top_up(1000, expires_at=shop.bench.clock.now_ns + 20 * SECOND_NS)
    assert shop.sweep(25) == 2  # the hold of 50, then (after 20 s) the 1000 of credit
    rows = shop.statement(anna).rows
    assert [row.kind for row in rows] == [
        K.TOP_UP, K.TOP_UP, K.PAYMENT, K.REFUND, K.REFUND, K.HOLD, K.CAPTURE, K.HOLD, K.VOID, K.HOLD, K.TOP_UP,
        K.HOLD_EXPIRED, K.EXPIRY,
    ]  # fmt: skip
    by_kind = {(row.kind, row.to_credit): row for row in rows}
    assert rows[1].source == TopUpSource.RETURN
    assert by_kind[K.REFUND, False].related_id == by_kind[K.REFUND, True].related_id == partial.payment_id
    assert (by_kind[K.REFUND, True].amount, by_kind[K.REFUND, False].amount) == (600, 400)
    hold, capture_row = rows[5], rows[6]
    assert (hold.amount, hold.held_change, hold.held, hold.operation_id) == (0, 300, 300, captured.hold_id)
    assert (capture_row.amount, capture_row.held_change, capture_row.held) == (-200, -300, 0)
    # A capture's row names the capture's own id, which is what a refund of it takes.
    assert capture_row.related_id == captured.hold_id != capture_row.operation_id and capture.amount == 200
    assert (rows[8].amount, rows[8].held_change, rows[8].related_id) == (0, -100, voided.hold_id)
    assert (rows[11].held_change, rows[11].related_id) == (-50, expiring.hold_id)
    assert rows[12].amount == -1000 and rows[12].related_id  # the grant it closed
    assert void.ok
    # The balances run: each row's balance is the one before it plus its total.
    balance = 0
    for row in rows:
        balance += row.total
        assert row.balance == balance
    assert balance == shop.posted(anna)
    assert shop.refund(capture_row.operation_id, 50).payment_id == capture_row.operation_id


def test_pages_of_every_size_hold_whole_operations_never_twice_never_skipped(engine_class: type[Engine]) -> None:
    shop = Shop(engine_class, fee_fixed=1, partial_payment=True)
    anna = shop.open()
    shop.top_up(100_000)
    for index in range(40):
        shop.pay(100 + index, partial=index % 3 == 0)
        if index % 7 == 0:
            shop.top_up(500)
    whole = shop.all_rows(anna)
    assert len(whole) == 1 + 40 + 6 and all(row.transfers == (2 if row.kind is K.PAYMENT else 1) for row in whole)
    for page_size in (1, 2, 3, 5, 8190):
        shop.history.page_size = page_size
        for limit in (1, 2, 3, 7, 1000):
            assert shop.all_rows(anna, limit=limit) == whole, (page_size, limit)


def test_a_statement_read_while_movements_arrive_shows_each_once(engine_class: type[Engine]) -> None:
    shop = Shop(engine_class, fee_fixed=3)
    anna, ben = shop.open(), shop.open("ben")
    shop.top_up(50_000)
    shop.top_up(50_000, customer="ben")
    shop.history.page_size = 3
    random_ = random.Random(7)
    seen: list[Movement] = []
    after = 0
    for _ in range(60):
        page = shop.statement(anna, after=after, limit=random_.choice((1, 2, 4)))
        seen += page.rows
        after = page.cursor
        for _ in range(random_.randrange(3)):
            shop.pay(random_.randrange(1, 50), customer=random_.choice(("anna", "ben")))
    while True:
        page = shop.statement(anna, after=after, limit=5)
        seen += page.rows
        after = page.cursor
        if not page.has_more:
            break
    assert seen == shop.all_rows(anna)
    assert len({row.operation_id for row in seen}) == len(seen)
    assert seen[-1].balance == shop.posted(anna)
    assert shop.all_rows(ben)[-1].balance == shop.posted(ben)


def test_kinds_and_time_range_select_rows_and_a_sparse_filter_ends_pages_early(
    engine_class: type[Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = Shop(engine_class)
    anna = shop.open()
    shop.top_up(100_000)
    for _ in range(30):
        shop.pay(10)
    shop.top_up(7)
    top_ups = shop.all_rows(anna, kinds=frozenset({K.TOP_UP}))
    assert [row.amount for row in top_ups] == [100_000, 7] and top_ups[-1].balance == shop.posted(anna)
    payments = shop.all_rows(anna, kinds=frozenset({K.PAYMENT}))
    assert len(payments) == 30 and payments[0].balance == 100_000 - 10
    middle = payments[10:20]
    ranged = shop.all_rows(anna, since=middle[0].timestamp, until=middle[-1].timestamp + 1, limit=3)
    assert ranged == middle
    # Past the scan bound a page ends with what it found, has_more, and a cursor past what it looked at.
    monkeypatch.setattr("ledger.wallet._statements.STATEMENT_SCAN_TRANSFERS_MAX", 4)
    shop.history.page_size = 2
    page = shop.statement(anna, kinds=frozenset({K.TOP_UP}), after=top_ups[0].timestamp_last)
    assert page.rows == [] and page.has_more and page.cursor > top_ups[0].timestamp_last
    assert shop.all_rows(anna, kinds=frozenset({K.TOP_UP})) == top_ups


def test_a_range_boundary_inside_a_chain_keeps_the_operation_whole(engine_class: type[Engine]) -> None:
    shop = Shop(engine_class, fee_fixed=2)
    anna = shop.open()
    shop.top_up(1000)
    paid = shop.pay(100)
    shop.pay(200)
    fee_at = paid.timestamp + 1  # the fee's transfer, a nanosecond after the payment's
    before = shop.all_rows(anna, until=fee_at)  # the payment began before `until`: it is in, whole
    after = shop.all_rows(anna, since=fee_at)  # ... and so not in the range that begins at its fee
    assert [(row.kind, row.fee) for row in before] == [(K.TOP_UP, 0), (K.PAYMENT, 2)]
    assert [(row.kind, row.amount) for row in after] == [(K.PAYMENT, -200)]
    assert before + after == shop.all_rows(anna)


def test_cursors_round_trip_and_others_are_refused() -> None:
    for timestamp in (1, 1_800_000_000 * SECOND_NS, 2**63 - 1):
        assert decode_cursor(encode_cursor(timestamp)) == timestamp
    assert encode_cursor(0) == "" and decode_cursor("") == 0
    for bad in ("x", "AAAAAAAAAAAA", encode_cursor(5) + "A", "////////////", "é"):
        with pytest.raises(ValueError, match="starting_after"):
            decode_cursor(bad)


def test_a_tenants_system_accounts_keep_balance_history(engine_class: type[Engine]) -> None:
    shop = Shop(engine_class)
    found = unpack_accounts(shop.bench.engine.lookup_accounts(pack_ids(list(shop.accounts.values()))))
    assert len(found) == len(shop.accounts) and all(account.flags == AccountFlags.HISTORY for account in found)


def test_a_settlement_adds_up_to_the_engine_exactly(engine_class: type[Engine]) -> None:
    shop = Shop(engine_class, fee_fixed=7, fee_per_mille=15, partial_payment=True, refund_to_credit=True)
    customers = [f"c{index}" for index in range(6)]
    wallets = [shop.open(customer) for customer in customers]
    random_ = random.Random(11)
    payments: list[int] = []
    moments = [shop.moment()]
    for _ in range(4):
        for _ in range(25):
            customer = random_.choice(customers)
            action = random_.randrange(6)
            if action == 0:
                source = random_.choice((TopUpSource.PURCHASE, TopUpSource.OPERATOR, TopUpSource.GIFT,
                                         TopUpSource.RETURN, TopUpSource.BENEFIT))  # fmt: skip
                shop.top_up(random_.randrange(1, 5000), customer=customer, source=source, operator="op",
                            expires_at=shop.bench.clock.now_ns + random_.randrange(1, 90) * SECOND_NS)  # fmt: skip
            elif action in (1, 2):
                paid = shop.pay(random_.randrange(1, 3000), customer=customer, partial=action == 2)
                if paid.ok:
                    payments.append(paid.payment_id)
            elif action == 3 and payments:
                payment_id = random_.choice(payments)
                with shop.op() as op:
                    request = Refund(tenant="shop-a", payment_id=payment_id, amount=random_.randrange(1, 100),
                                     key=shop.key(), to_credit=random_.random() < 0.3)  # fmt: skip
                    shop.bench.wallets.refund(op, request)
            elif action == 4:
                with shop.op() as op:
                    hold = shop.bench.wallets.authorize(op, "shop-a", customer, random_.randrange(1, 500), shop.key(),
                                                        seconds=random_.randrange(1, 60), reference="r")  # fmt: skip
                if hold.ok and random_.random() < 0.6:
                    shop.capture(hold.hold_id, random_.randrange(0, hold.amount + 1))
            else:
                shop.sweep(random_.randrange(1, 20))
        shop.sweep(30)
        moments.append(shop.moment())
    liability = sum(shop.posted(wallet) for wallet in wallets)
    assert liability == -sum(shop.posted(account) for account in shop.accounts.values())
    whole = shop.settlement(0, moments[-1])
    assert (whole.opening, whole.closing, whole.difference) == (0, liability, 0)
    # Each line is the sum of its kind of movement in the wallets' own statements.
    rows = [row for wallet in wallets for row in shop.all_rows(wallet)]
    lines = {(line.section, line.line): line for line in whole.lines}
    assert lines["fee", "fee"].amount == -sum(row.fee for row in rows)
    assert lines["payment", "payment"].amount == sum(row.amount for row in rows if row.kind is K.PAYMENT)
    assert lines["payment", "capture"].amount == sum(row.amount for row in rows if row.kind is K.CAPTURE)
    assert lines["breakage", "expiry"].amount == sum(row.amount for row in rows if row.kind is K.EXPIRY)
    refunds = sum(row.amount for row in rows if row.kind is K.REFUND)
    assert lines["refund", "to_wallet"].amount + lines["refund", "to_credit"].amount == refunds
    assert lines["refund", "return"].amount == sum(
        row.amount for row in rows if row.kind is K.TOP_UP and row.source == TopUpSource.RETURN
    )
    assert sum(lines["top_up", name].amount for name in ("purchase", "operator", "gift", "benefit")) == sum(
        row.amount for row in rows if row.kind is K.TOP_UP and row.source != TopUpSource.RETURN
    )
    assert lines["breakage", "expiry"].amount == -shop.posted(shop.accounts[AccountCode.BREAKAGE])
    # Consecutive periods chain: each closes where the next opens, and their movements add up.
    periods = [shop.settlement(a, b) for a, b in itertools.pairwise(moments)]
    assert all(report.difference == 0 for report in periods)
    assert [p.closing for p in periods[:-1]] == [p.opening for p in periods[1:]]
    assert periods[-1].closing == liability and sum(p.movements for p in periods) == liability - periods[0].opening
    # System accounts made before they kept balance history are summed from their transfers: the same report.
    legacy = frozenset(shop.accounts.values())
    assert [shop.settlement(a, b, legacy) for a, b in itertools.pairwise(moments)] == periods
    for index, line in enumerate(whole.lines):
        assert sum(p.lines[index].amount for p in periods) + shop.settlement(0, moments[0]).lines[index].amount == (
            line.amount
        )


def test_a_transfer_code_the_report_does_not_name_gets_its_own_line(engine_class: type[Engine]) -> None:
    shop = Shop(engine_class)
    anna = shop.open()
    shop.top_up(500)
    start = shop.moment()
    record = TRANSFER_STRUCT.pack(
        77, 0, anna & (2**64 - 1), anna >> 64, shop.accounts[AccountCode.VOUCHERS] & (2**64 - 1),
        shop.accounts[AccountCode.VOUCHERS] >> 64, 120, 0, 0, 0, 0, 0, 0, 0,
        shop.bench.wallets.tenant("shop-a").ledger, 999, 0, 0, 0,  # type: ignore[union-attr]
    )  # fmt: skip
    with shop.op() as op:
        op.create_transfers(record)
    report = shop.settlement(start)
    assert (report.opening, report.closing, report.difference) == (500, 380, 0)
    assert (report.lines[-1].section, report.lines[-1].line, report.lines[-1].amount) == ("other", "code_999", -120)
    assert (report.vouchers_opening, report.vouchers_closing) == (0, 120)
    assert shop.statement(anna).rows[-1].kind is K.OTHER and shop.statement(anna).rows[-1].code == 999


def test_the_settlement_csv_lists_every_line_and_the_check() -> None:
    report = Settlement(since=day_range("2024-05-01")[0], until=day_range("2024-05-01")[1], opening=1000,
                        closing=1234)  # fmt: skip
    from ledger.wallet import SettlementLine

    report.lines = [SettlementLine("top_up", "purchase", 500, 2), SettlementLine("payment", "payment", -266, 3)]
    text = settlement_csv(report, tenant="shop-a", money=currency("EUR"))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(row["section"], row["line"], row["amount_minor"], row["amount"]) for row in rows] == [
        ("opening", "liability", "1000", "10.00"), ("top_up", "purchase", "500", "5.00"),
        ("payment", "payment", "-266", "-2.66"), ("movements", "total", "234", "2.34"),
        ("closing", "liability", "1234", "12.34"), ("check", "difference", "0", "0.00"),
        ("vouchers", "opening", "0", "0.00"), ("vouchers", "closing", "0", "0.00"),
    ]  # fmt: skip
    assert {(row["tenant"], row["currency"], row["since"], row["until"]) for row in rows} == {
        ("shop-a", "EUR", "2024-05-01T00:00:00Z", "2024-05-02T00:00:00Z")
    }
    assert rows[3]["transfers"] == "5" and text.endswith("\r\n")


def test_days_are_utc_dates_and_nothing_else() -> None:
    start, end = day_range("2024-02-29")
    assert format_time(start) == "2024-02-29T00:00:00Z" and end - start == 86_400 * SECOND_NS
    assert format_time(start + 1_500_000) == "2024-02-29T00:00:00.0015Z"
    for bad in ("2023-02-29", "20240229", "2024-2-29", "1969-12-31", "2024-02-29T00:00", " 2024-02-29", ""):
        with pytest.raises(ValueError, match="day"):
            day_range(bad)


def test_transfer_codes_of_the_wallet_all_have_a_row_kind_and_a_settlement_line() -> None:
    from ledger.wallet._statements import _KINDS, _LINES, WALLETLESS_CODES

    assert set(_LINES) | WALLETLESS_CODES == set(TransferCode)
    assert set(_KINDS) | {TransferCode.HOLD} | WALLETLESS_CODES == set(TransferCode)


def test_the_proto_names_the_statement_kinds_as_the_domain_does() -> None:
    from ledger.v1 import wallet_pb2

    proto = {name.removeprefix("STATEMENT_KIND_"): number for name, number in wallet_pb2.StatementKind.items()}
    assert proto == {kind.name: kind.value for kind in StatementKind}

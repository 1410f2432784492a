"""Statements and settlement reports over gRPC on both stores, through both clients: a shop's day read back a
page at a time while payments keep arriving, a settlement that adds up to the accounts' balances in the
engine (as CSV too), both again after a restart, the permissions of each, and bad requests named."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import grpc
import pytest

from ledger.auth import Authenticator, open_key_store
from ledger.client import AsyncClient, Client, ClientConfig, LedgerInvalidArgument, LedgerPermissionDenied
from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.engine import unpack_accounts
from ledger.records.codes import AccountFlags
from ledger.records.layout import pack_ids
from ledger.server import LedgerMetrics, ledger_service, start_server
from ledger.server._wallet import parse_id, wallet_service
from ledger.v1 import wallet_pb2 as w
from ledger.wallet import Wallets, wallet_id

OK = w.WALLET_RESULT_OK
SETTINGS = w.TenantSettings(
    name="Shop A", self_topup=True, partial_payment=True, fee_fixed=10, fee_per_mille=20, refund_to_credit=True
)


@asynccontextmanager
async def serving(url: str, *, auth: bool = False) -> AsyncIterator[tuple[int, Ledger]]:
    config = LedgerConfig(
        store=url, accounts_max=1_000, transfers_max=10_000, pending_transfers_max=100,
        auth="required" if auth else "off",
    )  # fmt: skip
    wallets = Wallets()
    async with await Ledger.open(config, domain=wallets) as ledger:
        authenticator = await Authenticator.open(config) if auth else None
        services = [ledger_service(ledger), wallet_service(ledger, wallets)]
        server, port, _ = await start_server(ledger, metrics=LedgerMetrics(), auth=authenticator, services=services)
        try:
            yield port, ledger
        finally:
            await server.stop(None)
            if authenticator is not None:
                await authenticator.close()


def client(port: int, token: str = "") -> AsyncClient:
    return AsyncClient(ClientConfig(server=f"127.0.0.1:{port}", api_key=token, timeout_seconds=10))


async def statement(c: AsyncClient, customer: str, limit: int = 1000, **fields: object) -> list[w.StatementRow]:
    rows: list[w.StatementRow] = []
    cursor = ""
    while True:
        page = await c.get_statement(
            w.GetStatementRequest(tenant="shop-a", customer=customer, limit=limit, starting_after=cursor, **fields)
        )
        assert page.result == OK, page.message
        rows += page.rows
        cursor = page.next_cursor
        if not page.has_more:
            return rows


async def shops_day(c: AsyncClient) -> dict[str, str]:
    """A day of shop A: top-ups of every source, payments with fees, a partial one, refunds, holds; the ids."""
    created = await c.create_tenant(w.CreateTenantRequest(tenant="shop-a", currency="EUR", settings=SETTINGS))
    assert created.result == OK
    ids: dict[str, str] = {}
    for customer in ("anna", "ben"):
        await c.open_wallet(w.WalletRequest(tenant="shop-a", customer=customer))
    sources = (("t1", w.TOP_UP_SOURCE_PURCHASE, 5000), ("t2", w.TOP_UP_SOURCE_GIFT, 700),
               ("t3", w.TOP_UP_SOURCE_BENEFIT, 1000), ("t4", w.TOP_UP_SOURCE_RETURN, 300))  # fmt: skip
    for key, source, amount in sources:
        reply = await c.top_up(w.TopUpRequest(tenant="shop-a", customer="anna", amount=amount, key=key, source=source,
                                              reference="ref", operator="op"))  # fmt: skip
        assert reply.result == OK, reply.message
        ids[key] = reply.operation_id
    await c.top_up(w.TopUpRequest(tenant="shop-a", customer="ben", amount=2000, key="t5",
                                  source=w.TOP_UP_SOURCE_OPERATOR, reference="goodwill", operator="op"))  # fmt: skip
    paid = await c.pay(w.PayRequest(tenant="shop-a", customer="anna", amount=2500, key="p1", order_reference="4711"))
    assert paid.result == OK and paid.fee == 10 + 50
    ids["p1"] = paid.payment_id
    partial = await c.pay(w.PayRequest(tenant="shop-a", customer="ben", amount=9000, key="p2", order_reference="4712",
                                       partial=True))  # fmt: skip
    assert partial.result == OK and partial.balance == 0
    ids["p2"] = partial.payment_id
    refund = await c.refund(w.RefundRequest(tenant="shop-a", payment_id=paid.payment_id, amount=500, key="r1"))
    credit = await c.refund(w.RefundRequest(tenant="shop-a", payment_id=partial.payment_id, amount=1000, key="r2",
                                            to_credit=True))  # fmt: skip
    assert refund.result == credit.result == OK
    hold = await c.authorize_hold(w.AuthorizeHoldRequest(tenant="shop-a", customer="anna", amount=800, key="h1",
                                                         reference="table 4"))  # fmt: skip
    capture = await c.capture_hold(w.CaptureHoldRequest(tenant="shop-a", hold_id=hold.hold_id, amount=600, key="c1"))
    other = await c.authorize_hold(w.AuthorizeHoldRequest(tenant="shop-a", customer="anna", amount=100, key="h2",
                                                          reference="pump 2"))  # fmt: skip
    void = await c.void_hold(w.VoidHoldRequest(tenant="shop-a", hold_id=other.hold_id, key="v1"))
    assert hold.result == capture.result == other.result == void.result == OK
    ids["h1"], ids["h2"] = hold.hold_id, other.hold_id
    return ids


async def balances(ledger: Ledger, *account_ids: int) -> list[int]:
    found = unpack_accounts(await ledger.lookup_accounts(pack_ids(list(account_ids))))
    return [account.credits_posted - account.debits_posted for account in found]


def test_a_shops_statement_and_settlement_add_up_and_survive_a_restart(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (port, ledger), client(port) as c:
            ids = await shops_day(c)
            anna = await statement(c, "anna", limit=2)
            kinds = [row.kind for row in anna]
            assert kinds == [w.STATEMENT_KIND_TOP_UP] * 4 + [
                w.STATEMENT_KIND_PAYMENT, w.STATEMENT_KIND_REFUND, w.STATEMENT_KIND_HOLD, w.STATEMENT_KIND_CAPTURE,
                w.STATEMENT_KIND_HOLD, w.STATEMENT_KIND_VOID,
            ]  # fmt: skip
            assert [row.operation_id for row in anna[:6]] == [ids[key] for key in ("t1", "t2", "t3", "t4", "p1")] + [
                anna[5].operation_id
            ]
            payment = anna[4]
            assert (payment.amount, payment.fee, payment.total, payment.requested) == (-2500, 60, -2560, 2500)
            assert payment.balance == 7000 - 2560 and anna[5].related_id == ids["p1"]
            assert (anna[6].held_change, anna[7].amount, anna[7].held_change, anna[7].related_id) == (
                800, -600, -800, ids["h1"],
            )  # fmt: skip
            assert [row.source for row in anna[:4]] == [w.TOP_UP_SOURCE_PURCHASE, w.TOP_UP_SOURCE_GIFT,
                                                        w.TOP_UP_SOURCE_BENEFIT, w.TOP_UP_SOURCE_RETURN]  # fmt: skip
            balance = await c.get_balance(w.WalletRequest(tenant="shop-a", customer="anna"))
            assert anna[-1].balance == balance.posted == sum(row.total for row in anna)
            ben = await statement(c, "ben")
            assert [(row.kind, row.total, row.to_credit) for row in ben] == [
                (w.STATEMENT_KIND_TOP_UP, 2000, False), (w.STATEMENT_KIND_PAYMENT, -2000, False),
                (w.STATEMENT_KIND_REFUND, 1000, True),
            ]  # fmt: skip
            assert ben[1].requested == 9000 and ben[1].amount == -(2000 - ben[1].fee)

            tenant = await c.get_tenant(w.GetTenantRequest(tenant="shop-a"))
            wallets = [wallet_id("shop-a", customer, "EUR") for customer in ("anna", "ben")]
            systems = [parse_id(account) for account in tenant.accounts.values()]
            liability = sum(await balances(ledger, *wallets))
            assert liability == -sum(await balances(ledger, *systems)) == anna[-1].balance + ben[-1].balance
            first = datetime.fromtimestamp(anna[0].created_at.seconds, UTC)
            report = await c.get_settlement(w.GetSettlementRequest(tenant="shop-a", since=anna[0].created_at, csv=True))
            assert report.result == OK and report.currency == "EUR" and report.currency_scale == 2
            assert (report.opening_liability, report.closing_liability, report.difference) == (0, liability, 0)
            assert report.movements == liability and not report.HasField("until")
            lines = {(line.section, line.line): (line.amount, line.transfers) for line in report.lines}
            rows = anna + ben
            assert lines["top_up", "purchase"] == (5000, 1) and lines["top_up", "operator"] == (2000, 1)
            assert lines["top_up", "gift"] == (700, 1) and lines["top_up", "benefit"] == (1000, 1)
            assert lines["refund", "return"] == (300, 1) and lines["refund", "to_credit"] == (1000, 1)
            assert lines["refund", "to_wallet"] == (500, 1) and lines["payment", "capture"] == (-600, 1)
            assert lines["fee", "fee"] == (-sum(row.fee for row in rows), 2)
            assert lines["payment", "payment"] == (sum(r.amount for r in rows if r.kind == w.STATEMENT_KIND_PAYMENT), 2)
            table = list(csv.DictReader(io.StringIO(report.csv)))
            assert (table[0]["section"], table[0]["amount_minor"]) == ("opening", "0")
            checked = [row["amount_minor"] for row in table if row["section"] in ("closing", "check")]
            assert checked == [str(liability), "0"]
            # The day's report is the same report, by its date.
            day = await c.get_settlement(w.GetSettlementRequest(tenant="shop-a", day=first.strftime("%Y-%m-%d")))
            if datetime.now(UTC).date() == first.date():  # (not if the test ran across midnight)
                assert (day.opening_liability, day.closing_liability) == (0, liability)
                assert list(day.lines) == list(report.lines)
                assert day.until.ToNanoseconds() - day.since.ToNanoseconds() == 86_400 * 10**9
                assert day.as_of.ToNanoseconds() <= datetime.now(UTC).timestamp() * 10**9 + 1
            # The thread client reads the same statement.
            with Client(ClientConfig(server=f"127.0.0.1:{port}", timeout_seconds=10)) as sync:
                page = await asyncio.to_thread(
                    sync.get_statement, w.GetStatementRequest(tenant="shop-a", customer="anna", limit=1000)
                )
                settled = await asyncio.to_thread(
                    sync.get_settlement, w.GetSettlementRequest(tenant="shop-a", since=anna[0].created_at)
                )
            assert list(page.rows) == anna and settled.closing_liability == liability
        async with serving(store_url) as (port, ledger), client(port) as c:
            assert await statement(c, "anna", limit=3) == anna
            again = await c.get_settlement(w.GetSettlementRequest(tenant="shop-a", since=anna[0].created_at, csv=True))
            assert (again.closing_liability, list(again.lines), again.difference) == (liability, list(report.lines), 0)

    asyncio.run(go())


def test_pages_read_while_payments_arrive_show_each_movement_once(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (port, _), client(port) as c:
            await c.create_tenant(w.CreateTenantRequest(tenant="shop-a", currency="EUR", settings=SETTINGS))
            await c.open_wallet(w.WalletRequest(tenant="shop-a", customer="anna"))
            await c.top_up(w.TopUpRequest(tenant="shop-a", customer="anna", amount=100_000, key="t",
                                          source=w.TOP_UP_SOURCE_GIFT))  # fmt: skip
            keys = iter(range(10_000))

            async def payments(count: int) -> None:
                await asyncio.gather(*(
                    c.pay(w.PayRequest(tenant="shop-a", customer="anna", amount=100, key=f"p{next(keys)}",
                                       order_reference="o"))
                    for _ in range(count)
                ))  # fmt: skip

            await payments(10)
            seen: list[w.StatementRow] = []
            cursor = ""
            for round_ in range(12):
                # a page is read while a burst of payments is being made
                page, _ = await asyncio.gather(
                    c.get_statement(w.GetStatementRequest(tenant="shop-a", customer="anna", limit=3,
                                                          starting_after=cursor)),
                    payments(round_ % 4),
                )  # fmt: skip
                seen += page.rows
                cursor = page.next_cursor
            while True:
                page = await c.get_statement(w.GetStatementRequest(tenant="shop-a", customer="anna", limit=7,
                                                                   starting_after=cursor))  # fmt: skip
                seen += page.rows
                cursor = page.next_cursor
                if not page.has_more:
                    break
            assert seen == await statement(c, "anna")
            assert len({row.operation_id for row in seen}) == len(seen) == 1 + 10 + sum(r % 4 for r in range(12))
            balance = await c.get_balance(w.WalletRequest(tenant="shop-a", customer="anna"))
            assert seen[-1].balance == balance.posted
            payments_only = await statement(c, "anna", kinds=[w.STATEMENT_KIND_PAYMENT], limit=4)
            assert payments_only == seen[1:]

    asyncio.run(go())


def test_bad_requests_are_named(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (port, _), client(port) as c:
            await c.create_tenant(w.CreateTenantRequest(tenant="shop-a", currency="EUR"))
            await c.open_wallet(w.WalletRequest(tenant="shop-a", customer="anna"))
            bad = {
                "limit": w.GetStatementRequest(tenant="shop-a", customer="anna", limit=1001),
                "starting_after": w.GetStatementRequest(tenant="shop-a", customer="anna", starting_after="nope"),
                "kinds": w.GetStatementRequest(tenant="shop-a", customer="anna", kinds=[0]),
                "kinds:": w.GetStatementRequest(tenant="shop-a", customer="anna", kinds=[1] * 33),
                "until": w.GetStatementRequest(tenant="shop-a", customer="anna", since={"seconds": 5},
                                               until={"seconds": 5}),
                "since": w.GetStatementRequest(tenant="shop-a", customer="anna", since={"seconds": -1}),
            }  # fmt: skip
            for name, request in bad.items():
                with pytest.raises(LedgerInvalidArgument, match=f"GetStatement: {name}"):
                    await c.get_statement(request)
            bad_settlements = {
                "day": w.GetSettlementRequest(tenant="shop-a", day="2024-02-30"),
                "since": w.GetSettlementRequest(tenant="shop-a"),
                "until": w.GetSettlementRequest(tenant="shop-a", since={"seconds": 9}, until={"seconds": 1}),
            }
            bad_settlements["both"] = w.GetSettlementRequest(tenant="shop-a", day="2024-02-28", since={"seconds": 9})
            for name, request in bad_settlements.items():
                with pytest.raises(LedgerInvalidArgument, match=f"GetSettlement: {'day' if name == 'both' else name}"):
                    await c.get_settlement(request)
            missing = await c.get_statement(w.GetStatementRequest(tenant="shop-a", customer="ben"))
            nobody = await c.get_statement(w.GetStatementRequest(tenant="shop-b", customer="anna"))
            blank = await c.get_statement(w.GetStatementRequest(tenant="shop-a", customer=""))
            assert (missing.result, nobody.result, blank.result) == (
                w.WALLET_RESULT_WALLET_NOT_FOUND, w.WALLET_RESULT_TENANT_NOT_FOUND, w.WALLET_RESULT_CUSTOMER_INVALID,
            )  # fmt: skip
            no_tenant = await c.get_settlement(w.GetSettlementRequest(tenant="shop-b", day="2024-02-28"))
            assert no_tenant.result == w.WALLET_RESULT_TENANT_NOT_FOUND and "tenant" in no_tenant.message
            empty = await c.get_statement(w.GetStatementRequest(tenant="shop-a", customer="anna"))
            assert (empty.result, list(empty.rows), empty.has_more, empty.next_cursor) == (OK, [], False, "")
            old = await c.get_settlement(w.GetSettlementRequest(tenant="shop-a", day="2001-09-09"))
            assert (old.opening_liability, old.closing_liability, old.movements) == (0, 0, 0)
            assert old.as_of == old.until and len(old.lines) == 17

    asyncio.run(go())


def test_statements_need_wallet_read_and_settlements_wallet_tenant_for_the_keys_own_tenant(store_url: str) -> None:
    keys = open_key_store(store_url)
    try:
        tokens = {(tenant, role): keys.create_key(tenant=tenant, role=role)[1]
                  for tenant in ("shop-a", "shop-b") for role in ("pos", "shop", "operator", "readonly")}  # fmt: skip
        admin = keys.create_key(tenant="ops", role="admin")[1]
    finally:
        keys.close()

    async def go() -> None:
        async with serving(store_url, auth=True) as (port, _):
            async with client(port, admin) as c:
                for tenant in ("shop-a", "shop-b"):
                    await c.create_tenant(w.CreateTenantRequest(tenant=tenant, currency="EUR"))
                    await c.open_wallet(w.WalletRequest(tenant=tenant, customer="anna"))
                    await c.top_up(w.TopUpRequest(tenant=tenant, customer="anna", amount=500, key="t",
                                                  source=w.TOP_UP_SOURCE_GIFT))  # fmt: skip
            for (tenant, role), token in tokens.items():
                async with client(port, token) as c:
                    for owner in ("shop-a", "shop-b"):
                        may_read = owner == tenant
                        may_settle = may_read and role == "operator"
                        read = c.get_statement(w.GetStatementRequest(tenant=owner, customer="anna"))
                        settle = c.get_settlement(w.GetSettlementRequest(tenant=owner, day="2024-01-01"))
                        for call, allowed in ((read, may_read), (settle, may_settle)):
                            if allowed:
                                assert (await call).result == OK
                            else:
                                with pytest.raises(LedgerPermissionDenied) as refused:
                                    await call
                                # its own tenant's settlement: refused for the permission the key lacks
                                assert owner != tenant or "wallet.tenant" in str(refused.value)

    asyncio.run(go())


def test_a_request_too_long_for_its_bound_is_refused_unread(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (port, _), grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            rpc = channel.unary_unary("/wallet.v1.Wallet/GetStatement", request_serializer=None,
                                      response_deserializer=None)  # fmt: skip
            request = w.GetStatementRequest(tenant="shop-a", customer="anna", starting_after="x" * 5000)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await rpc(request.SerializeToString(), timeout=10)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "GetStatement" in (caught.value.details() or "")

    asyncio.run(go())


def test_a_tenant_whose_system_accounts_keep_no_balance_history_still_settles_exactly(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tenants made before system accounts had the HISTORY flag: their balances are summed from transfers."""
    monkeypatch.setattr("ledger.wallet._domain.SYSTEM_FLAGS", 0)

    async def go() -> None:
        async with serving(store_url) as (port, ledger), client(port) as c:
            await shops_day(c)
            anna = await statement(c, "anna")
            tenant = await c.get_tenant(w.GetTenantRequest(tenant="shop-a"))
            systems = [parse_id(account) for account in tenant.accounts.values()]
            found = unpack_accounts(await ledger.lookup_accounts(pack_ids(systems)))
            assert not any(account.flags & AccountFlags.HISTORY for account in found)
            liability = -sum(await balances(ledger, *systems))
            middle = anna[4].created_at  # the first payment
            before = await c.get_settlement(w.GetSettlementRequest(tenant="shop-a", since=anna[0].created_at,
                                                                   until=middle))  # fmt: skip
            after = await c.get_settlement(w.GetSettlementRequest(tenant="shop-a", since=middle))
            assert (before.opening_liability, before.difference, after.difference) == (0, 0, 0)
            assert before.closing_liability == after.opening_liability == 5000 + 700 + 1000 + 300 + 2000
            assert after.closing_liability == liability

    asyncio.run(go())

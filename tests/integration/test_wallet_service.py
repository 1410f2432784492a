"""The Wallet service end to end over gRPC on both stores: a shop's day through the clients, retries that
replay, recovery after a restart, and the tenant isolation matrix (shop A's keys never read or move shop
B's wallets, both in EUR)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest

from ledger.auth import Authenticator, open_key_store
from ledger.client import AsyncClient, ClientConfig, LedgerInvalidArgument, LedgerPermissionDenied
from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.server import LedgerMetrics, ledger_service, start_server
from ledger.server._notify import OutboxNotifier
from ledger.server._wallet import PERMISSIONS, wallet_service
from ledger.v1 import wallet_pb2 as w
from ledger.wallet import Wallets

OK = w.WALLET_RESULT_OK


@asynccontextmanager
async def serving(
    url: str, *, auth: bool = False, capacity: int = 1_000
) -> AsyncIterator[tuple[int, Wallets, LedgerMetrics]]:
    config = LedgerConfig(
        store=url, accounts_max=capacity, transfers_max=10 * capacity, pending_transfers_max=100,
        auth="required" if auth else "off",
    )  # fmt: skip
    wallets = Wallets()
    async with await Ledger.open(config, domain=wallets) as ledger:
        authenticator = await Authenticator.open(config) if auth else None
        metrics = LedgerMetrics()
        notifier = OutboxNotifier(url)  # customers' messages go to the store's outbox, as `ledger serve` sends them
        services = [ledger_service(ledger, metrics), wallet_service(ledger, wallets, metrics, notifier)]
        server, port, _ = await start_server(ledger, metrics=metrics, auth=authenticator, services=services)
        try:
            yield port, wallets, metrics
        finally:
            await server.stop(None)
            notifier.close()
            if authenticator is not None:
                await authenticator.close()


def client(port: int, token: str = "") -> AsyncClient:
    return AsyncClient(ClientConfig(server=f"127.0.0.1:{port}", api_key=token, timeout_seconds=10))


SETTINGS = w.TenantSettings(
    name="Shop A", self_topup=True, topup_amounts=[1000, 2000, 5000], partial_payment=True, fee_fixed=10,
    fee_per_mille=20, refund_to_credit=True,
)  # fmt: skip


async def shops_day(c: AsyncClient) -> str:
    tenant = await c.create_tenant(w.CreateTenantRequest(tenant="shop-a", currency="EUR", settings=SETTINGS))
    assert tenant.result == OK and tenant.currency_scale == 2 and tenant.ledger >= 2**31
    assert set(tenant.accounts) == {"funding", "revenue", "fees", "refunds", "breakage", "benefits", "vouchers",
                                    "payouts"}  # fmt: skip
    opened = await c.open_wallet(w.WalletRequest(tenant="shop-a", customer="anna"))
    assert opened.result == OK and opened.available == 0 and opened.status == w.WALLET_STATUS_ACTIVE
    bad = await c.top_up(w.TopUpRequest(tenant="shop-a", customer="anna", amount=1500, key="t0",
                                        source=w.TOP_UP_SOURCE_PURCHASE, reference="psp-0"))  # fmt: skip
    assert bad.result == w.WALLET_RESULT_AMOUNT_NOT_ALLOWED and "10.00 EUR, 20.00 EUR, 50.00 EUR" in bad.message
    topped = await c.top_up(w.TopUpRequest(tenant="shop-a", customer="anna", amount=2000, key="t1",
                                           source=w.TOP_UP_SOURCE_PURCHASE, reference="psp-1"))  # fmt: skip
    assert topped.result == OK and topped.balance == 2000
    # 4711 costs 30.00 EUR: the wallet pays what it can with the fee, the rest goes another way.
    paid = await c.pay(w.PayRequest(tenant="shop-a", customer="anna", amount=3000, key="p1",
                                    order_reference="4711", partial=True))  # fmt: skip
    assert paid.result == OK and paid.paid + paid.fee == 2000 and paid.remainder == 3000 - paid.paid
    assert paid.fee == 10 + (paid.paid * 20 + 500) // 1000 and paid.balance == 0
    again = await c.pay(w.PayRequest(tenant="shop-a", customer="anna", amount=3000, key="p1",
                                     order_reference="4711", partial=True))  # fmt: skip
    assert again.replayed and not paid.replayed
    again.replayed = False
    assert again == paid
    refund = await c.refund(w.RefundRequest(tenant="shop-a", payment_id=paid.payment_id, amount=500, key="r1"))
    assert refund.result == OK and refund.balance == 500 and refund.refundable == paid.paid - 500
    over = await c.refund(w.RefundRequest(tenant="shop-a", payment_id=paid.payment_id, amount=paid.paid, key="r2"))
    assert over.result == w.WALLET_RESULT_REFUND_EXCEEDS_PAYMENT
    balance = await c.get_balance(w.WalletRequest(tenant="shop-a", customer="anna"))
    assert balance.available == 500
    return paid.payment_id


def test_a_shops_day_and_a_restart(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (port, _, _), client(port) as c:
            payment_id = await shops_day(c)
        async with serving(store_url) as (port, wallets, _):
            assert "shop-a" in wallets.state.tenants
            async with client(port) as c:
                balance = await c.get_balance(w.WalletRequest(tenant="shop-a", customer="anna"))
                assert balance.available == 500
                # the refund bound survived the restart, and so did the replies of retries
                rest = await c.refund(w.RefundRequest(tenant="shop-a", payment_id=payment_id, amount=1, key="r3"))
                assert rest.result == OK and rest.refundable >= 0
                replay = await c.refund(w.RefundRequest(tenant="shop-a", payment_id=payment_id, amount=500, key="r1"))
                assert replay.result == OK and replay.balance == 500

    asyncio.run(go())


def test_many_concurrent_payments_are_batched_and_exact(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (port, _, metrics), client(port) as c:
            await c.create_tenant(w.CreateTenantRequest(tenant="fest", currency="EUR", settings=w.TenantSettings(
                self_topup=True)))  # fmt: skip
            for index in range(20):
                await c.open_wallet(w.WalletRequest(tenant="fest", customer=f"c{index}"))
                await c.top_up(w.TopUpRequest(tenant="fest", customer=f"c{index}", amount=1000, key=f"t{index}",
                                              source=w.TOP_UP_SOURCE_GIFT))  # fmt: skip
            replies = await asyncio.gather(*(
                c.pay(w.PayRequest(tenant="fest", customer=f"c{n % 20}", amount=30, key=f"p{n}",
                                   order_reference=f"o{n}"))
                for n in range(700)
            ))  # fmt: skip
            assert sum(reply.result == OK for reply in replies) == 20 * 33
            assert {reply.result for reply in replies} == {OK, w.WALLET_RESULT_INSUFFICIENT_FUNDS}
            for index in range(20):
                balance = await c.get_balance(w.WalletRequest(tenant="fest", customer=f"c{index}"))
                assert balance.available == 1000 - 33 * 30
            count = metrics.registry.get_sample_value
            labels = {"method": "PayBatch"}
            assert count("ledger_wallet_operations_total", {**labels, "result": "OK"}) == 660
            assert count("ledger_wallet_operations_total", {**labels, "result": "INSUFFICIENT_FUNDS"}) == 40

    asyncio.run(go())


def test_bad_requests_are_named_and_move_nothing(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (port, _, _):
            async with client(port) as c:
                await c.create_tenant(w.CreateTenantRequest(tenant="s", currency="EUR"))
                await c.open_wallet(w.WalletRequest(tenant="s", customer="anna"))
                cases: list[tuple[Any, int, str]] = [
                    (w.PayRequest(tenant="nope", customer="anna", amount=1, key="k", order_reference="o"),
                     w.WALLET_RESULT_TENANT_NOT_FOUND, "tenant"),
                    (w.PayRequest(tenant="s", customer="ben", amount=1, key="k1", order_reference="o"),
                     w.WALLET_RESULT_WALLET_NOT_FOUND, "customer"),
                    (w.PayRequest(tenant="s", customer="anna", amount=-5, key="k2", order_reference="o"),
                     w.WALLET_RESULT_AMOUNT_INVALID, "amount"),
                    (w.PayRequest(tenant="s", customer="anna", amount=0, key="k3", order_reference="o"),
                     w.WALLET_RESULT_AMOUNT_INVALID, "amount"),
                    (w.PayRequest(tenant="s", customer="anna", amount=1, key="k4", order_reference="o", currency="USD"),
                     w.WALLET_RESULT_CURRENCY_MISMATCH, "currency"),
                    (w.PayRequest(tenant="s", customer="anna", amount=1, key="", order_reference="o"),
                     w.WALLET_RESULT_IDEMPOTENCY_KEY_INVALID, "key"),
                    (w.PayRequest(tenant="s", customer="anna", amount=1, key="k5", order_reference=""),
                     w.WALLET_RESULT_REFERENCE_REQUIRED, "order_reference"),
                    (w.PayRequest(tenant="s", customer="anna", amount=1, key="k6", order_reference="o", partial=True),
                     w.WALLET_RESULT_PARTIAL_PAYMENT_DISABLED, "partial"),
                    (w.PayRequest(tenant="s", customer="anna", amount=1, key="k7", order_reference="o"),
                     w.WALLET_RESULT_INSUFFICIENT_FUNDS, "amount"),
                ]  # fmt: skip
                for request, result, field in cases:
                    reply = await c.pay(request)
                    assert (reply.result, reply.message.split(":")[0].split(" ")[0]) == (result, field), reply
                refund = await c.refund(w.RefundRequest(tenant="s", payment_id="zz", amount=1, key="r"))
                assert refund.result == w.WALLET_RESULT_PAYMENT_NOT_FOUND and "payment_id" in refund.message
                balance = await c.get_balance(w.WalletRequest(tenant="s", customer="anna"))
                assert balance.available == 0 and balance.posted == 0
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                rpc = channel.unary_unary("/wallet.v1.Wallet/Pay", request_serializer=None, response_deserializer=None)
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await rpc(b"\xff\xff\xff", timeout=10)
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert "Pay" in (caught.value.details() or "")

    asyncio.run(go())


def test_a_key_never_reaches_another_tenants_wallets(store_url: str) -> None:
    keys = open_key_store(store_url)
    try:
        tokens = {(tenant, role): keys.create_key(tenant=tenant, role=role)[1]
                  for tenant in ("shop-a", "shop-b") for role in ("pos", "shop", "operator")}  # fmt: skip
        admin = keys.create_key(tenant="ops", role="admin")[1]
    finally:
        keys.close()

    async def go() -> None:
        async with serving(store_url, auth=True) as (port, _, _):
            async with client(port, admin) as c:
                for tenant in ("shop-a", "shop-b"):
                    reply = await c.create_tenant(w.CreateTenantRequest(tenant=tenant, currency="EUR"))
                    assert reply.result == OK
                    await c.open_wallet(w.WalletRequest(tenant=tenant, customer="anna"))
                    await c.top_up(w.TopUpRequest(tenant=tenant, customer="anna", amount=500, key="t",
                                                  source=w.TOP_UP_SOURCE_GIFT))  # fmt: skip
                issued = await c.issue_voucher(w.IssueVoucherRequest(tenant="shop-b", amount=300, key="v"))
                b_voucher = issued.code
                b_link = (await c.create_pay_link(w.CreatePayLinkRequest(
                    tenant="shop-b", amount=100, reference="r", contact="+4915112345678", key="l"))).token  # fmt: skip
                assert b_link
                a = await c.get_tenant(w.GetTenantRequest(tenant="shop-a"))
                b = await c.get_tenant(w.GetTenantRequest(tenant="shop-b"))
                assert a.ledger != b.ledger and a.currency == b.currency == "EUR"
            requests = {
                "GetTenant": w.GetTenantRequest(tenant="shop-b"),
                "ConfigureTenant": w.ConfigureTenantRequest(tenant="shop-b"),
                "CreateTenant": w.CreateTenantRequest(tenant="shop-b", currency="EUR"),
                "OpenWallet": w.WalletRequest(tenant="shop-b", customer="eve"),
                "GetBalance": w.WalletRequest(tenant="shop-b", customer="anna"),
                "SetWalletStatus": w.SetWalletStatusRequest(tenant="shop-b", customer="anna",
                                                            status=w.WALLET_STATUS_FROZEN, reason="x"),
                "TopUp": w.TopUpRequest(tenant="shop-b", customer="anna", amount=1, key="x",
                                        source=w.TOP_UP_SOURCE_GIFT),
                "Pay": w.PayRequest(tenant="shop-b", customer="anna", amount=1, key="x", order_reference="o"),
                "PayBatch": w.PayBatchRequest(payments=[w.PayRequest(tenant="shop-b", customer="anna", amount=1,
                                                                     key="x", order_reference="o")]),
                "Refund": w.RefundRequest(tenant="shop-b", payment_id="0" * 31 + "1", amount=1, key="x"),
                "AuthorizeHold": w.AuthorizeHoldRequest(tenant="shop-b", customer="anna", amount=1, key="x",
                                                        reference="r"),
                "CaptureHold": w.CaptureHoldRequest(tenant="shop-b", hold_id="0" * 31 + "1", key="x"),
                "VoidHold": w.VoidHoldRequest(tenant="shop-b", hold_id="0" * 31 + "1", key="x"),
                "Book": w.BookRequest(tenant="shop-b", customer="anna", amount=1, key="x",
                                      direction=w.BOOKING_DIRECTION_CREDIT, operator="o", reason="r"),
                "ReverseBooking": w.ReverseBookingRequest(tenant="shop-b", booking_id="0" * 31 + "1", key="x",
                                                          operator="o", reason="r"),
                "ListBookings": w.ListBookingsRequest(tenant="shop-b"),
                "IssueVoucher": w.IssueVoucherRequest(tenant="shop-b", amount=1, key="x"),
                "GetVoucher": w.VoucherRequest(tenant="shop-b", code=b_voucher),
                "RedeemVoucher": w.RedeemVoucherRequest(tenant="shop-b", code=b_voucher, customer="anna", key="x"),
                "SpendVoucher": w.SpendVoucherRequest(tenant="shop-b", code=b_voucher, amount=1, key="x",
                                                      order_reference="o"),
                "DeactivateVoucher": w.DeactivateVoucherRequest(tenant="shop-b", code=b_voucher, key="x", reason="r"),
                "SubscribeEvents": w.SubscribeEventsRequest(tenant="shop-b"),
                "GetEventCursor": w.GetEventCursorRequest(tenant="shop-b"),
                "GetCaller": w.GetCallerRequest(tenant="shop-b"),
                "EnrollDevice": w.EnrollDeviceRequest(tenant="shop-b", customer="anna", name="x", key="x"),
                "ListDevices": w.ListDevicesRequest(tenant="shop-b", customer="anna"),
                "RevokeDevice": w.RevokeDeviceRequest(tenant="shop-b", device_id="0" * 31 + "1"),
                "PayByCode": w.PayByCodeRequest(tenant="shop-b", code="28" + "0" * 16, amount=1, terminal="t",
                                                transaction="x"),
                "PayByCodeBatch": w.PayByCodeBatchRequest(payments=[w.PayByCodeRequest(
                    tenant="shop-b", code="28" + "0" * 16, amount=1, terminal="t", transaction="x")]),
                "AuthorizeHoldByCode": w.AuthorizeHoldByCodeRequest(tenant="shop-b", code="28" + "0" * 16, amount=1,
                                                                    terminal="t", transaction="x"),
                "SetPin": w.SetPinRequest(tenant="shop-b", customer="anna", pin="4711"),
                "CreatePaymentRequest": w.CreatePaymentRequestRequest(tenant="shop-b", terminal="t", amount=1,
                                                                      reference="r", key="x"),
                "GetPaymentRequest": w.PaymentRequestRequest(tenant="shop-b", request_id="0" * 31 + "1"),
                "ConfirmPaymentRequest": w.ConfirmPaymentRequestRequest(tenant="shop-b", request_id="0" * 31 + "1",
                                                                        customer="anna"),
                "CancelPaymentRequest": w.PaymentRequestRequest(tenant="shop-b", request_id="0" * 31 + "1"),
                "GetCodePayment": w.CodePaymentRequest(tenant="shop-b", terminal="t", transaction="x"),
                "CancelCodePayment": w.CancelCodePaymentRequest(tenant="shop-b", terminal="t", transaction="x"),
                "GetPinStatus": w.WalletRequest(tenant="shop-b", customer="anna"),
                "CreatePayLink": w.CreatePayLinkRequest(tenant="shop-b", amount=1, reference="r",
                                                        contact="+4915112345678", key="x"),
                "GetPayLink": w.PayLinkRequest(token=b_link),
                "CancelPayLink": w.PayLinkRequest(tenant="shop-b", link_id="0" * 31 + "1"),
                "StartPayLinkPayment": w.StartPayLinkPaymentRequest(token=b_link, customer="anna", pin="4711"),
                "PayPayLink": w.PayPayLinkRequest(token=b_link, challenge_id="0" * 31 + "1", code="123456"),
                "UnlockPin": w.UnlockPinRequest(tenant="shop-b", customer="anna", operator="o", reason="r"),
                "EmptyWallet": w.EmptyWalletRequest(tenant="shop-b", customer="anna", key="x", operator="o",
                                                    reason="r", destination=w.EMPTY_DESTINATION_PAYOUT),
                "GrantRun": w.GrantRunRequest(tenant="shop-b", run_id="x", items=[w.GrantItem(customer="anna",
                                                                                             amount=1)]),
                "GetStatement": w.GetStatementRequest(tenant="shop-b", customer="anna"),
                "GetSettlement": w.GetSettlementRequest(tenant="shop-b", day="2024-01-01"),
            }  # fmt: skip
            assert requests.keys() == PERMISSIONS.keys()
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel, client(port, admin) as c:
                for owner in ("shop-a", "shop-b"):  # shop A's keys first: shop B is untouched by them
                    for (tenant, role), token in tokens.items():
                        if tenant != owner:
                            continue
                        for method, request in requests.items():
                            passed = await attempt(channel, method, request, token)
                            assert not passed or tenant == "shop-b", (tenant, role, method)
                            # a key of the tenant's own gets what its role grants: an operator key everything
                            assert passed or role != "operator" or tenant != "shop-b", method
                    if owner == "shop-a":
                        balance = await c.get_balance(w.WalletRequest(tenant="shop-b", customer="anna"))
                        assert (balance.available, balance.status) == (500, w.WALLET_STATUS_ACTIVE)
                        tenant_b = await c.get_tenant(w.GetTenantRequest(tenant="shop-b"))
                        assert tenant_b == b
                        voucher = await c.get_voucher(w.VoucherRequest(tenant="shop-b", code=b_voucher))
                        assert (voucher.result, voucher.remaining) == (OK, 300)
                        # and shop A cannot use shop B's code under its own tenant either
                        mine = await c.get_voucher(w.VoucherRequest(tenant="shop-a", code=b_voucher))
                        assert mine.result == w.WALLET_RESULT_VOUCHER_NOT_FOUND
            async with client(port, tokens["shop-a", "pos"]) as pos:
                with pytest.raises(LedgerPermissionDenied):
                    await pos.top_up(w.TopUpRequest(tenant="shop-a", customer="anna", amount=1, key="y",
                                                    source=w.TOP_UP_SOURCE_GIFT))  # fmt: skip
                paid = await pos.pay(w.PayRequest(tenant="shop-a", customer="anna", amount=100, key="z",
                                                  order_reference="o"))  # fmt: skip
                assert paid.result == OK

    asyncio.run(go())


async def attempt(channel: grpc.aio.Channel, method: str, request: Any, token: str) -> bool:
    """Whether the call got through; a refusal must be PERMISSION_DENIED and name nothing of the other tenant."""
    metadata = (("authorization", f"Bearer {token}"),)
    path = f"/wallet.v1.Wallet/{method}"
    try:
        if method == "SubscribeEvents":  # a feed: its first event is enough
            stream = channel.unary_stream(path, request_serializer=lambda m: m.SerializeToString())
            call = stream(request, metadata=metadata, timeout=10)
            await call.read()
            call.cancel()
        else:
            unary = channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString())
            await unary(request, metadata=metadata, timeout=10)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.PERMISSION_DENIED, (method, exc.details())
        return False
    return True


def test_operator_bookings_and_their_audit_trail(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (port, _, _), client(port) as c:
            await c.create_tenant(w.CreateTenantRequest(tenant="s", currency="EUR"))
            await c.open_wallet(w.WalletRequest(tenant="s", customer="anna"))
            credit = await c.book(w.BookRequest(tenant="s", customer="anna", amount=900, key="b1", operator="op-1",
                                                direction=w.BOOKING_DIRECTION_CREDIT, reason="goodwill"))  # fmt: skip
            assert credit.result == OK and credit.balance == 900
            debit = await c.book(w.BookRequest(tenant="s", customer="anna", amount=100, key="b2", operator="op-2",
                                               direction=w.BOOKING_DIRECTION_DEBIT, reason="typo"))  # fmt: skip
            undo = w.ReverseBookingRequest(tenant="s", booking_id=debit.booking_id, key="r1", operator="o", reason="u")
            reversal = await c.reverse_booking(undo)
            assert reversal.result == OK and reversal.reverses == debit.booking_id and reversal.balance == 900
            undo.key = "r2"
            twice = await c.reverse_booking(undo)
            assert twice.result == w.WALLET_RESULT_BOOKING_ALREADY_REVERSED
            page = await c.list_bookings(w.ListBookingsRequest(tenant="s", limit=2))
            assert [b.booking_id for b in page.bookings] == [credit.booking_id, debit.booking_id]
            assert page.bookings[1].reversed_by == reversal.booking_id and page.next_starting_after
            rest = await c.list_bookings(w.ListBookingsRequest(tenant="s", starting_after=page.next_starting_after))
            assert [b.reverses for b in rest.bookings] == [debit.booking_id] and not rest.next_starting_after
            mine = await c.list_bookings(w.ListBookingsRequest(tenant="s", operator="op-1"))
            assert [b.booking_id for b in mine.bookings] == [credit.booking_id]

    asyncio.run(go())


def test_vouchers_over_grpc(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (port, _, _), client(port) as c:
            await c.create_tenant(w.CreateTenantRequest(tenant="s", currency="EUR"))
            await c.open_wallet(w.WalletRequest(tenant="s", customer="anna"))
            issued = await c.issue_voucher(w.IssueVoucherRequest(tenant="s", amount=5000, key="v1"))
            assert issued.result == OK and len(issued.code) == 21 and issued.remaining == 5000
            assert await c.issue_voucher(w.IssueVoucherRequest(tenant="s", amount=5000, key="v1")) == issued
            spent = await c.spend_voucher(w.SpendVoucherRequest(tenant="s", code=issued.code.lower(), amount=1200,
                                                                key="s1", order_reference="4711"))  # fmt: skip
            assert (spent.result, spent.amount, spent.remaining) == (OK, 1200, 3800)
            redeemed = await c.redeem_voucher(w.RedeemVoucherRequest(tenant="s", code=issued.code, customer="anna",
                                                                     key="r1"))  # fmt: skip
            assert (redeemed.result, redeemed.amount, redeemed.balance) == (OK, 3800, 3800)
            empty = await c.get_voucher(w.VoucherRequest(tenant="s", code=issued.code))
            assert (empty.result, empty.remaining, empty.code) == (w.WALLET_RESULT_VOUCHER_EMPTY, 0, "")
            typo = await c.get_voucher(w.VoucherRequest(tenant="s", code="0000-0000-0000-0000-0"))
            assert typo.result == w.WALLET_RESULT_VOUCHER_NOT_FOUND and "code" in typo.message

    asyncio.run(go())


def test_a_grant_run_of_ten_thousand_wallets(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url, capacity=11_000) as (port, _, _), client(port) as c:
            await c.create_tenant(w.CreateTenantRequest(tenant="corp", currency="EUR"))
            few = w.GrantRunRequest(tenant="corp", run_id="r", open_wallets=True, all_or_nothing=True,
                                    items=[w.GrantItem(customer=f"x{n}", amount=1) for n in range(11_000)])  # fmt: skip
            too_many = await c.grant_run(few, timeout=60)
            assert too_many.result == w.WALLET_RESULT_AMOUNT_INVALID and "items" in too_many.message
            items = [w.GrantItem(customer=f"employee-{n:05d}", amount=4000 + n % 7) for n in range(10_000)]
            run = w.GrantRunRequest(tenant="corp", run_id="benefits-2027-03", items=items, all_or_nothing=True,
                                    open_wallets=True)  # fmt: skip
            reply = await c.grant_run(run, timeout=60)
            assert reply.result == OK and reply.granted == 10_000
            assert reply.granted_amount == sum(4000 + n % 7 for n in range(10_000))
            again = await c.grant_run(run, timeout=60)
            assert again.granted_amount == reply.granted_amount  # replayed: March is paid once
            tenant = await c.get_tenant(w.GetTenantRequest(tenant="corp"))
            balance = await c.get_balance(w.WalletRequest(tenant="corp", customer="employee-00006"))
            assert balance.available == 4006 and tenant.result == OK

    asyncio.run(go())


def test_the_event_feed_is_per_tenant_resumable_and_marks_each_low_balance_crossing_once(store_url: str) -> None:
    async def collect(c: AsyncClient, request: w.SubscribeEventsRequest, count: int) -> list[w.WalletEvent]:
        found: list[w.WalletEvent] = []
        async with asyncio.timeout(10):
            async for event in c.subscribe_events(request):
                found.append(event)
                if len(found) == count:
                    return found
        return found

    async def go() -> None:
        async with serving(store_url) as (port, _, _), client(port) as c:
            settings = w.TenantSettings(low_balance_threshold=500)
            await c.create_tenant(w.CreateTenantRequest(tenant="a", currency="EUR", settings=settings))
            await c.create_tenant(w.CreateTenantRequest(tenant="b", currency="EUR"))
            for tenant in ("a", "b"):
                await c.open_wallet(w.WalletRequest(tenant=tenant, customer="anna"))
                await c.top_up(w.TopUpRequest(tenant=tenant, customer="anna", amount=1000, key="t",
                                              source=w.TOP_UP_SOURCE_GIFT))  # fmt: skip
            for n in range(3):  # 1000 -> 700 -> 400 (crossing below 500) -> 100 (still below)
                await c.pay(w.PayRequest(tenant="a", customer="anna", amount=300, key=f"p{n}", order_reference="o"))
            await c.pay(w.PayRequest(tenant="a", customer="anna", amount=5000, key="big", order_reference="o"))
            events = await collect(c, w.SubscribeEventsRequest(tenant="a"), 9)
            types = [event.type for event in events]
            assert types == ["tenant.created", "wallet.opened", "wallet.balance_below", "wallet.topped_up",
                             "payment.succeeded", "payment.succeeded", "wallet.balance_below", "payment.succeeded",
                             "payment.declined"]  # fmt: skip
            assert all(event.tenant == "a" for event in events) and len({e.id for e in events}) == 9
            paid = events[4]
            assert paid.amount == 300 and json.loads(paid.data_json)["order"] == "o" and paid.operation_id
            declined = json.loads(events[-1].data_json)
            assert declined["result"] == "INSUFFICIENT_FUNDS" and "amount" in declined["message"]
            # resume after the fifth: the rest, none twice; a filter by type
            rest = await collect(c, w.SubscribeEventsRequest(tenant="a", after=events[4].cursor), 4)
            assert [event.id for event in rest] == [event.id for event in events[5:]]
            payments = await collect(c, w.SubscribeEventsRequest(tenant="a", types=["payment.succeeded"]), 3)
            assert len(payments) == 3
            # live: an event made after subscribing arrives
            live = asyncio.ensure_future(collect(c, w.SubscribeEventsRequest(tenant="a", from_now=True), 1))
            await asyncio.sleep(0.2)
            await c.refund(w.RefundRequest(tenant="a", payment_id=paid.operation_id, amount=100, key="r"))
            assert [event.type for event in await live] == ["refund.succeeded"]
            # a stored cursor of "now": after it exactly the events committed later, even read later
            now = await c.get_event_cursor(w.GetEventCursorRequest(tenant="a"))
            assert now.result == w.WALLET_RESULT_OK
            await c.pay(w.PayRequest(tenant="a", customer="anna", amount=10, key="after-now", order_reference="o"))
            [later] = await collect(c, w.SubscribeEventsRequest(tenant="a", after=now.cursor), 1)
            assert later.type == "payment.succeeded" and later.amount == 10
            missing = await c.get_event_cursor(w.GetEventCursorRequest(tenant="nobody"))
            assert missing.result == w.WALLET_RESULT_TENANT_NOT_FOUND and not missing.cursor
            with pytest.raises(LedgerInvalidArgument):
                await collect(c, w.SubscribeEventsRequest(tenant="a", after="nonsense"), 1)

    asyncio.run(go())

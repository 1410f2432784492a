"""The Wallet service end to end over gRPC on both stores: a shop's day through the clients, retries that
replay, recovery after a restart, and the tenant isolation matrix (shop A's keys never read or move shop
B's wallets, both in EUR)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest

from ledger.auth import Authenticator, open_key_store
from ledger.client import AsyncClient, ClientConfig, LedgerPermissionDenied
from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.server import LedgerMetrics, ledger_service, start_server
from ledger.server._wallet import PERMISSIONS, wallet_service
from ledger.v1 import wallet_pb2 as w
from ledger.wallet import Wallets

OK = w.WALLET_RESULT_OK


@asynccontextmanager
async def serving(url: str, *, auth: bool = False) -> AsyncIterator[tuple[int, Wallets]]:
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
            yield port, wallets
        finally:
            await server.stop(None)
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
        async with serving(store_url) as (port, _), client(port) as c:
            payment_id = await shops_day(c)
        async with serving(store_url) as (port, wallets):
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
        async with serving(store_url) as (port, _), client(port) as c:
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

    asyncio.run(go())


def test_bad_requests_are_named_and_move_nothing(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (port, _):
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
        async with serving(store_url, auth=True) as (port, _):
            async with client(port, admin) as c:
                for tenant in ("shop-a", "shop-b"):
                    reply = await c.create_tenant(w.CreateTenantRequest(tenant=tenant, currency="EUR"))
                    assert reply.result == OK
                    await c.open_wallet(w.WalletRequest(tenant=tenant, customer="anna"))
                    await c.top_up(w.TopUpRequest(tenant=tenant, customer="anna", amount=500, key="t",
                                                  source=w.TOP_UP_SOURCE_GIFT))  # fmt: skip
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
    rpc = channel.unary_unary(
        f"/wallet.v1.Wallet/{method}", request_serializer=lambda m: m.SerializeToString(), response_deserializer=None
    )
    try:
        await rpc(request, metadata=(("authorization", f"Bearer {token}"),), timeout=10)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.PERMISSION_DENIED, (method, exc.details())
        return False
    return True

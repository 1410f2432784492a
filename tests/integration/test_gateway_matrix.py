"""The tenant, permission and endpoint matrix over HTTP: every route, called with keys of every role of shop A,
with shop B's key, with none and with a garbled one. A key whose role grants the route's permission gets past
auth; every other gets 401 or 403 naming what is missing, and nothing of either shop changes."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from ledger.auth import ROLE_PERMISSIONS, Permission, Role, open_key_store
from ledger.server._wallet import PERMISSIONS
from tests.integration.test_gateway import SHOP, gateway
from tests.integration.test_wallet_service import serving

ROLES = ("pos", "shop", "operator", "readonly")


async def state(http: httpx.AsyncClient, admin: dict[str, str]) -> list[Any]:
    """What either shop holds, as its admin sees it: both wallets, their statements, the bookings."""
    seen: list[Any] = []
    for tenant in ("shop-a", "shop-b"):
        for path in (f"/v1/tenants/{tenant}/wallets/anna", f"/v1/tenants/{tenant}/wallets/anna/statement",
                     f"/v1/tenants/{tenant}/bookings", f"/v1/tenants/{tenant}",
                     f"/v1/tenants/{tenant}/webhooks/endpoints", f"/v1/tenants/{tenant}/wallets/anna/devices",
                     f"/v1/tenants/{tenant}/wallets/anna/pin"):  # fmt: skip
            answer = await http.get(path, headers=admin)
            assert answer.status_code == 200, answer.text
            seen.append(answer.json())
    return seen


def test_every_route_for_every_kind_of_key(store_url: str) -> None:
    tokens: dict[str, str] = {}
    store = open_key_store(store_url)
    try:
        for role in ROLES:
            tokens[f"a_{role}"] = store.create_key(tenant="shop-a", role=role, ledgers=[], name=f"a-{role}")[1]
        tokens["b_shop"] = store.create_key(tenant="shop-b", role="shop", ledgers=[], name="b-shop")[1]
        tokens["admin"] = store.create_key(tenant="ops", role="admin", ledgers=[], name="admin")[1]
    finally:
        store.close()

    def key(who: str) -> dict[str, str]:
        if who == "none":
            return {}
        if who == "garbled":
            return {"Authorization": "Bearer lk_garbled"}
        return {"Authorization": f"Bearer {tokens[who]}"}

    async def go() -> None:
        async with serving(store_url, auth=True) as (port, _, _), gateway(port) as http:
            admin = key("admin")
            for tenant in ("shop-a", "shop-b"):
                assert (await http.post("/v1/tenants", headers=admin, json={**SHOP, "id": tenant})).status_code == 201
                await http.post(f"/v1/tenants/{tenant}/wallets", headers=admin, json={"customer": "anna"})
                topped = await http.post(f"/v1/tenants/{tenant}/top_ups", headers={**admin, "Idempotency-Key": "t"},
                                         json={"customer": "anna", "amount": 5000, "currency": "EUR",
                                               "reference": "psp"})  # fmt: skip
                assert topped.status_code == 201, topped.text
            paid = (await http.post("/v1/tenants/shop-a/payments", headers={**admin, "Idempotency-Key": "p"},
                                    json={"customer": "anna", "amount": 100, "currency": "EUR",
                                          "order_reference": "o"})).json()  # fmt: skip
            hold = (
                await http.post(
                    "/v1/tenants/shop-a/holds",
                    headers={**admin, "Idempotency-Key": "h"},
                    json={"customer": "anna", "amount": 100, "currency": "EUR"},
                )
            ).json()
            booking = (
                await http.post(
                    "/v1/tenants/shop-a/bookings",
                    headers={**admin, "Idempotency-Key": "b"},
                    json={
                        "customer": "anna",
                        "amount": 10,
                        "currency": "EUR",
                        "direction": "credit",
                        "operator": "op",
                        "reason": "r",
                    },
                )
            ).json()
            voucher = (
                await http.post(
                    "/v1/tenants/shop-a/vouchers",
                    headers={**admin, "Idempotency-Key": "v"},
                    json={"amount": 100, "currency": "EUR"},
                )
            ).json()
            code = voucher["code"]
            hook = await http.post("/v1/tenants/shop-a/webhooks/endpoints", headers=admin,
                                   json={"url": "https://hooks.example.com/wallet"})  # fmt: skip
            assert hook.status_code == 201, hook.text
            endpoint = f"/v1/tenants/shop-a/webhooks/endpoints/{hook.json()['id']}"
            phone = await http.post("/v1/tenants/shop-a/devices", headers={**admin, "Idempotency-Key": "d"},
                                    json={"customer": "anna"})  # fmt: skip
            assert phone.status_code == 201, phone.text
            device = phone.json()["id"]
            ask = {"terminal": "t", "amount": 5, "currency": "EUR", "reference": "r"}
            asked = await http.post("/v1/tenants/shop-a/payment_requests", headers={**admin, "Idempotency-Key": "q"},
                                    json=ask)  # fmt: skip
            assert asked.status_code == 201, asked.text
            requests = f"/v1/tenants/shop-a/payment_requests/{asked.json()['id']}"
            linked = await http.post("/v1/tenants/shop-a/pay_links", headers={**admin, "Idempotency-Key": "l"},
                                     json={"amount": 5, "currency": "EUR", "reference": "r",
                                           "contact": "+4915112345678"})  # fmt: skip
            assert linked.status_code == 201, linked.text
            links = f"/v1/tenants/shop-a/pay_links/{linked.json()['id']}"
            # (method, path, body, the Wallet RPC it calls first, or the permission the gateway checks itself)
            routes: list[tuple[str, str, Any, str]] = [
                ("GET", "/v1/tenants/shop-a", None, "GetTenant"),
                ("POST", "/v1/tenants/shop-a/settings", {"partial_payment": False}, "ConfigureTenant"),
                ("POST", "/v1/tenants/shop-a/wallets", {"customer": "ben"}, "OpenWallet"),
                ("GET", "/v1/tenants/shop-a/wallets/anna", None, "GetBalance"),
                ("POST", "/v1/tenants/shop-a/wallets/anna/status", {"status": "frozen", "reason": "r"},
                 "SetWalletStatus"),
                ("POST", "/v1/tenants/shop-a/wallets/anna/empty", {"destination": "breakage", "operator": "o",
                                                                   "reason": "r"}, "EmptyWallet"),
                ("POST", "/v1/tenants/shop-a/top_ups", {"customer": "anna", "amount": 7, "currency": "EUR",
                                                        "reference": "x"}, "TopUp"),
                ("POST", "/v1/tenants/shop-a/payments", {"customer": "anna", "amount": 7, "currency": "EUR",
                                                         "order_reference": "x"}, "Pay"),
                ("POST", f"/v1/tenants/shop-a/payments/{paid['id']}/refunds", {"amount": 1}, "Refund"),
                ("POST", "/v1/tenants/shop-a/holds", {"customer": "anna", "amount": 7, "currency": "EUR"},
                 "AuthorizeHold"),
                ("POST", f"/v1/tenants/shop-a/holds/{hold['id']}/capture", {"amount": 1}, "CaptureHold"),
                ("POST", f"/v1/tenants/shop-a/holds/{hold['id']}/void", None, "VoidHold"),
                ("POST", "/v1/tenants/shop-a/bookings", {"customer": "anna", "amount": 7, "currency": "EUR",
                                                         "direction": "credit", "operator": "o", "reason": "r"},
                 "Book"),
                ("POST", f"/v1/tenants/shop-a/bookings/{booking['id']}/reversal", {"operator": "o", "reason": "r"},
                 "ReverseBooking"),
                ("GET", "/v1/tenants/shop-a/bookings", None, "ListBookings"),
                ("POST", "/v1/tenants/shop-a/vouchers", {"amount": 7, "currency": "EUR"}, "IssueVoucher"),
                ("POST", "/v1/tenants/shop-a/vouchers/lookup", {"code": code}, "GetVoucher"),
                ("POST", "/v1/tenants/shop-a/vouchers/redeem", {"code": code, "customer": "anna"}, "RedeemVoucher"),
                ("POST", "/v1/tenants/shop-a/vouchers/spend", {"code": code, "amount": 1, "currency": "EUR",
                                                               "order_reference": "x"}, "SpendVoucher"),
                ("POST", "/v1/tenants/shop-a/vouchers/deactivate", {"code": code, "reason": "r"},
                 "DeactivateVoucher"),
                ("POST", "/v1/tenants/shop-a/grant_runs", {"id": "r", "currency": "EUR",
                                                           "items": [{"customer": "anna", "amount": 1}]}, "GrantRun"),
                ("GET", "/v1/tenants/shop-a/wallets/anna/statement", None, "GetStatement"),
                ("GET", "/v1/tenants/shop-a/settlement?day=2026-01-01", None, "GetSettlement"),
                ("POST", "/v1/tenants/shop-a/grant_jobs", {"id": "j", "currency": "EUR",
                                                           "items": [{"customer": "anna", "amount": 1}]},
                 "wallet.grant"),
                ("POST", "/v1/tenants/shop-a/webhooks/endpoints", {"url": "https://hooks.example.com/x"},
                 "wallet.webhooks"),
                ("GET", "/v1/tenants/shop-a/webhooks/endpoints", None, "wallet.webhooks"),
                ("GET", endpoint, None, "wallet.webhooks"),
                ("PATCH", endpoint, {"enabled": False}, "wallet.webhooks"),
                ("GET", f"{endpoint}/secret", None, "wallet.webhooks"),
                ("POST", f"{endpoint}/secret/rotate", None, "wallet.webhooks"),
                ("GET", "/v1/tenants/shop-a/webhooks/deliveries", None, "wallet.webhooks"),
                ("DELETE", endpoint, None, "wallet.webhooks"),
                ("POST", "/v1/tenants/shop-a/devices", {"customer": "anna"}, "EnrollDevice"),
                ("GET", "/v1/tenants/shop-a/wallets/anna/devices", None, "ListDevices"),
                ("POST", "/v1/tenants/shop-a/code_payments", {"code": "28" + "0" * 16, "amount": 1, "currency": "EUR",
                                                              "terminal": "t", "transaction": "x"}, "PayByCode"),
                ("POST", "/v1/tenants/shop-a/code_payments/holds", {"code": "28" + "0" * 16, "amount": 1,
                                                                    "currency": "EUR", "terminal": "t",
                                                                    "transaction": "h"}, "AuthorizeHoldByCode"),
                ("POST", "/v1/tenants/shop-a/wallets/anna/pin", {"pin": "4711"}, "SetPin"),
                ("GET", "/v1/tenants/shop-a/wallets/anna/pin", None, "GetPinStatus"),
                ("POST", "/v1/tenants/shop-a/wallets/anna/pin/unlock", {"operator": "o", "reason": "r"}, "UnlockPin"),
                ("GET", "/v1/tenants/shop-a/code_payments/t/x", None, "GetCodePayment"),
                ("POST", "/v1/tenants/shop-a/code_payments/t/y/cancel", {"reason": "r"}, "CancelCodePayment"),
                ("POST", f"/v1/tenants/shop-a/devices/{device}/revoke", None, "RevokeDevice"),
                ("POST", "/v1/tenants/shop-a/payment_requests", {"terminal": "t", "amount": 5, "currency": "EUR",
                                                                 "reference": "r"}, "CreatePaymentRequest"),
                ("GET", requests, None, "GetPaymentRequest"),
                ("GET", f"{requests}/qr.svg", None, "GetPaymentRequest"),
                ("POST", f"{requests}/confirm", {"customer": "anna"}, "ConfirmPaymentRequest"),
                ("POST", f"{requests}/cancel", None, "CancelPaymentRequest"),
                ("POST", "/v1/tenants/shop-a/pay_links", {"amount": 5, "currency": "EUR", "reference": "r",
                                                          "contact": "+4915112345678"}, "CreatePayLink"),
                ("GET", links, None, "GetPayLink"),
                ("GET", f"{links}/qr.png", None, "GetPayLink"),
                ("POST", f"{links}/cancel", None, "CancelPayLink"),
            ]  # fmt: skip
            wrong: list[str] = []
            for who in ("none", "garbled", "b_shop", *(f"a_{role}" for role in ROLES)):
                for number, (method, path, body, rpc) in enumerate(routes):
                    role = who.removeprefix("a_")
                    needed = Permission(rpc) if "." in rpc else PERMISSIONS[rpc]
                    allowed = role in ROLES and needed in ROLE_PERMISSIONS[Role(role)]
                    before = None if allowed else await state(http, admin)  # what a refusal must leave as it is
                    headers = {**key(who), "Idempotency-Key": f"{who}-{number}"}
                    answer = await http.request(method, path, json=body, headers=headers)
                    refused = answer.status_code in (401, 403)
                    if allowed == refused:
                        wrong.append(f"{who} {method} {path}: {answer.status_code} {answer.text[:200]}")
                    if refused:
                        problem = answer.json()
                        assert problem["code"] == ("unauthenticated" if who in ("none", "garbled")
                                                   else "permission_denied"), problem  # fmt: skip
                        if who.startswith("a_"):  # shop A's own key: the permission it lacks is named
                            assert needed.value in problem["detail"], problem
                        assert "anna" not in problem["detail"] and "5000" not in problem["detail"]
                        if before is not None:
                            assert await state(http, admin) == before, f"{who} {method} {path} changed something"
            assert wrong == []

    asyncio.run(go())

"""The HTTP gateway end to end: real HTTP (uvicorn on a free port) to the gateway, real gRPC to a real core on
both stores. A shop's day, retries with an Idempotency-Key, hostile bodies answered with problems that name
the field and change nothing, and keys of one shop that neither read nor move another's wallets."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import given
from hypothesis import strategies as st

from gateway import WALLET_PROBLEMS, GatewayConfig, create_app
from ledger.auth import open_key_store
from ledger.v1 import wallet_pb2
from tests.integration.test_wallet_service import serving

PROBLEM = "application/problem+json"
SHOP = {"id": "shop-a", "currency": "EUR",
        "settings": {"name": "Shop A", "self_topup": True, "partial_payment": True, "fee_fixed": 10,
                     "fee_per_mille": 20, "refund_to_credit": True}}  # fmt: skip


@asynccontextmanager
async def gateway(ledger_port: int, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway over HTTP on a free port, for the ledger on `ledger_port`; an HTTP client for it. Its own
    store is a fresh SQLite file unless `store` names one."""
    if "store" not in settings:
        settings["store"] = f"sqlite:///{tempfile.mkdtemp(prefix='gateway-')}/gateway.sqlite3"
    config = GatewayConfig(ledger=f"127.0.0.1:{ledger_port}", port=0, **settings)
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the gateway did not start"
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            yield http
    finally:
        server.should_exit = True
        await task


def problem(answer: httpx.Response, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM), answer.headers
    body: dict[str, Any] = answer.json()
    assert body["code"] == code and body["status"] == status and body["detail"], body
    assert body["request_id"] == answer.headers["x-request-id"] and body["request_id"] != "-"
    if field is not None:
        assert body.get("field") == field, body
    return body


def test_a_shops_day_over_http(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (port, _, _), gateway(port) as http:
            created = await http.post("/v1/tenants", json=SHOP)
            assert created.status_code == 201, created.text
            tenant = created.json()
            assert tenant["currency"] == "EUR" and tenant["currency_scale"] == 2 and tenant["object"] == "tenant"
            assert (await http.post("/v1/tenants", json=SHOP)).json() == tenant  # idempotent by its id
            assert (await http.get("/v1/tenants/shop-a")).json() == tenant
            opened = await http.post("/v1/tenants/shop-a/wallets", json={"customer": "anna"})
            assert opened.status_code == 201 and opened.json()["available"] == 0
            topped = await http.post("/v1/tenants/shop-a/top_ups", headers={"Idempotency-Key": "t1"},
                                     json={"customer": "anna", "amount": 2000, "currency": "EUR",
                                           "reference": "psp-1"})  # fmt: skip
            assert topped.status_code == 201 and topped.json()["balance"] == 2000
            order = {"customer": "anna", "amount": 3000, "currency": "EUR", "order_reference": "4711",
                     "partial": True}  # fmt: skip
            paid = await http.post("/v1/tenants/shop-a/payments", headers={"Idempotency-Key": "p1"}, json=order)
            assert paid.status_code == 201, paid.text
            payment = paid.json()
            assert payment["amount_paid"] + payment["fee"] == 2000
            assert payment["amount_remaining"] == 3000 - payment["amount_paid"] and payment["balance"] == 0
            assert payment["created_at"].endswith("Z") and len(payment["id"]) == 32
            assert "idempotent-replayed" not in paid.headers
            again = await http.post("/v1/tenants/shop-a/payments", headers={"Idempotency-Key": "p1"}, json=order)
            assert (again.status_code, again.json(), again.headers["idempotent-replayed"]) == (201, payment, "true")
            other = await http.post("/v1/tenants/shop-a/payments", headers={"Idempotency-Key": "p1"},
                                    json={**order, "amount": 2999})  # fmt: skip
            problem(other, 422, "idempotency_key_reused", "Idempotency-Key")
            refunded = await http.post(f"/v1/tenants/shop-a/payments/{payment['id']}/refunds",
                                       headers={"Idempotency-Key": "r1"}, json={"amount": 500})  # fmt: skip
            assert refunded.status_code == 201, refunded.text
            assert refunded.json()["currency"] == "EUR" and refunded.json()["balance"] == 500
            over = await http.post(
                f"/v1/tenants/shop-a/payments/{payment['id']}/refunds",
                headers={"Idempotency-Key": "r2"},
                json={"amount": payment["amount_paid"]},
            )
            problem(over, 402, "refund_exceeds_payment", "amount")
            wallet = (await http.get("/v1/tenants/shop-a/wallets/anna")).json()
            assert wallet["available"] == 500 and wallet["currency"] == "EUR" and wallet["status"] == "active"
            frozen = await http.post("/v1/tenants/shop-a/wallets/anna/status",
                                     json={"status": "frozen", "reason": "lost card"})  # fmt: skip
            assert frozen.json()["status"] == "frozen"
            declined = await http.post("/v1/tenants/shop-a/payments", headers={"Idempotency-Key": "p2"},
                                       json={**order, "partial": False, "amount": 100})  # fmt: skip
            problem(declined, 402, "wallet_frozen")
            declined_again = await http.post("/v1/tenants/shop-a/payments", headers={"Idempotency-Key": "p2"},
                                             json={**order, "partial": False, "amount": 100})  # fmt: skip
            assert declined_again.json() | {"request_id": ""} == declined.json() | {"request_id": ""}
            assert (declined_again.status_code, declined_again.headers["idempotent-replayed"]) == (402, "true")
            assert (await http.get("/healthz")).json()["status"] == "ok"
            assert (await http.get("/readyz")).json() == {"status": "ready", "ledger": "SERVING"}

    asyncio.run(go())


def test_holds_and_bookings_over_http(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (port, _, _), gateway(port) as http:
            assert (await http.post("/v1/tenants", json=SHOP)).status_code == 201
            await http.post("/v1/tenants/shop-a/wallets", json={"customer": "anna"})
            credit = {"customer": "anna", "amount": 1000, "currency": "EUR", "direction": "credit",
                      "operator": "op-1", "reason": "goodwill"}  # fmt: skip
            booked = await http.post("/v1/tenants/shop-a/bookings", headers={"Idempotency-Key": "b1"}, json=credit)
            assert booked.status_code == 201, booked.text
            booking = booked.json()
            assert (booking["direction"], booking["amount"], booking["balance"]) == ("credit", 1000, 1000)
            held = await http.post("/v1/tenants/shop-a/holds", headers={"Idempotency-Key": "h1"},
                                   json={"customer": "anna", "amount": 600, "currency": "EUR", "seconds": 600,
                                         "reference": "table 4"})  # fmt: skip
            assert held.status_code == 201, held.text
            hold = held.json()
            assert (hold["status"], hold["amount"], hold["balance"]) == ("pending", 600, 400)
            assert hold["expires_at"] > hold["created_at"]
            captured = await http.post(f"/v1/tenants/shop-a/holds/{hold['id']}/capture",
                                       headers={"Idempotency-Key": "c1"}, json={"amount": 450})  # fmt: skip
            assert captured.status_code == 200, captured.text
            assert (captured.json()["status"], captured.json()["amount"], captured.json()["balance"]) == (
                "captured",
                450,
                550,
            )
            again = await http.post(f"/v1/tenants/shop-a/holds/{hold['id']}/void", headers={"Idempotency-Key": "v1"})
            problem(again, 409, "hold_not_pending")
            small = await http.post("/v1/tenants/shop-a/bookings", headers={"Idempotency-Key": "b2"},
                                    json={**credit, "amount": 100})  # fmt: skip
            reversed_ = await http.post(f"/v1/tenants/shop-a/bookings/{small.json()['id']}/reversal",
                                        headers={"Idempotency-Key": "rv1"},
                                        json={"operator": "op-2", "reason": "booked twice"})  # fmt: skip
            assert reversed_.status_code == 201 and reversed_.json()["reverses"] == small.json()["id"]
            assert reversed_.json()["balance"] == 550
            twice = await http.post(
                f"/v1/tenants/shop-a/bookings/{small.json()['id']}/reversal",
                headers={"Idempotency-Key": "rv2"},
                json={"operator": "op-2", "reason": "again"},
            )
            problem(twice, 409, "booking_already_reversed")
            too_much = await http.post(
                f"/v1/tenants/shop-a/bookings/{booking['id']}/reversal",
                headers={"Idempotency-Key": "rv3"},
                json={"operator": "op-2", "reason": "no"},
            )
            problem(too_much, 402, "insufficient_funds")  # 550 left of the 1000 it would take back
            listed = (await http.get("/v1/tenants/shop-a/bookings", params={"limit": 2})).json()
            assert listed["has_more"] and [b["id"] for b in listed["data"]] == [booking["id"], small.json()["id"]]
            assert (
                listed["data"][1]["reversed_by"] == reversed_.json()["id"] and listed["data"][0]["reversed_by"] is None
            )
            rest = (
                await http.get(
                    "/v1/tenants/shop-a/bookings", params={"starting_after": small.json()["id"], "operator": "op-2"}
                )
            ).json()
            assert not rest["has_more"] and [b["reverses"] for b in rest["data"]] == [small.json()["id"]]
            problem(await http.get("/v1/tenants/shop-a/bookings", params={"limit": 0}), 400, "invalid_request",
                    "limit")  # fmt: skip
            close = {"status": "closed", "reason": "left"}
            problem(await http.post("/v1/tenants/shop-a/wallets/anna/status", json=close), 409, "wallet_not_empty")
            emptied = await http.post(
                "/v1/tenants/shop-a/wallets/anna/empty",
                headers={"Idempotency-Key": "e1"},
                json={"destination": "payout", "operator": "op-1", "reason": "moving away"},
            )
            assert emptied.status_code == 201, emptied.text
            assert (emptied.json()["amount"], emptied.json()["balance"]) == (550, 0)
            closed = await http.post("/v1/tenants/shop-a/wallets/anna/status", json=close)
            assert closed.json()["status"] == "closed"
            problem(await http.get("/v1/tenants/shop-a/bookings", params={"since": "yesterday"}), 400,
                    "invalid_request", "since")  # fmt: skip

    asyncio.run(go())


def test_vouchers_statements_and_settlement_over_http(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (port, _, _), gateway(port) as http:
            assert (await http.post("/v1/tenants", json=SHOP)).status_code == 201
            await http.post("/v1/tenants/shop-a/wallets", json={"customer": "anna"})
            issued = await http.post("/v1/tenants/shop-a/vouchers", headers={"Idempotency-Key": "v1"},
                                     json={"amount": 2500, "currency": "EUR", "never_expires": True})  # fmt: skip
            assert issued.status_code == 201, issued.text
            voucher = issued.json()
            assert voucher["code"] and voucher["remaining"] == 2500 and voucher["status"] == "active"
            code = voucher["code"]
            looked = (await http.post("/v1/tenants/shop-a/vouchers/lookup", json={"code": code.lower()})).json()
            assert (looked["remaining"], looked["code"]) == (2500, None)  # the code is shown once
            spent = await http.post(
                "/v1/tenants/shop-a/vouchers/spend",
                headers={"Idempotency-Key": "s1"},
                json={"code": code, "amount": 1000, "currency": "EUR", "order_reference": "o1"},
            )
            assert spent.status_code == 201 and spent.json()["remaining"] == 1500, spent.text
            redeemed = await http.post("/v1/tenants/shop-a/vouchers/redeem", headers={"Idempotency-Key": "r1"},
                                       json={"code": code, "customer": "anna"})  # fmt: skip
            assert redeemed.status_code == 201, redeemed.text
            assert (redeemed.json()["amount"], redeemed.json()["balance"]) == (1500, 1500)
            empty = await http.post("/v1/tenants/shop-a/vouchers/redeem", headers={"Idempotency-Key": "r2"},
                                    json={"code": code, "customer": "anna"})  # fmt: skip
            problem(empty, 402, "voucher_empty")
            problem(await http.post("/v1/tenants/shop-a/vouchers/lookup", json={"code": "AAAA-AAAA-AAAA-AAAA-A"}),
                    404, "voucher_not_found")  # fmt: skip
            order = {"customer": "anna", "amount": 700, "currency": "EUR", "order_reference": "4711"}
            paid = await http.post("/v1/tenants/shop-a/payments", headers={"Idempotency-Key": "p1"}, json=order)
            assert paid.status_code == 201, paid.text
            first = (await http.get("/v1/tenants/shop-a/wallets/anna/statement", params={"limit": 1})).json()
            assert first["has_more"] and [row["kind"] for row in first["data"]] == ["top_up"]
            assert first["data"][0]["amount"] == 1500 and first["data"][0]["balance"] == 1500
            rest = (
                await http.get(
                    "/v1/tenants/shop-a/wallets/anna/statement", params={"starting_after": first["next_cursor"]}
                )
            ).json()
            payment_row = rest["data"][0]
            assert payment_row["kind"] == "payment" and payment_row["amount"] == -700
            assert (
                payment_row["total"] == -700 - paid.json()["fee"] and payment_row["balance"] == paid.json()["balance"]
            )
            only = (await http.get("/v1/tenants/shop-a/wallets/anna/statement", params={"kinds": "payment"})).json()
            assert [row["kind"] for row in only["data"]] == ["payment"]
            problem(await http.get("/v1/tenants/shop-a/wallets/anna/statement", params={"kinds": "gift"}), 400,
                    "invalid_request", "kinds")  # fmt: skip
            problem(await http.get("/v1/tenants/shop-a/wallets/anna/statement", params={"starting_after": "junk"}),
                    400, "invalid_request", "starting_after")  # fmt: skip
            today = datetime.now(UTC).date().isoformat()
            report = (await http.get("/v1/tenants/shop-a/settlement", params={"day": today})).json()
            assert report["difference"] == 0 and report["currency"] == "EUR"
            assert report["closing_liability"] == report["opening_liability"] + report["movements"]
            csv = await http.get("/v1/tenants/shop-a/settlement", params={"day": today, "format": "csv"})
            assert csv.headers["content-type"].startswith("text/csv")
            assert csv.text.splitlines()[0].startswith("tenant,currency,since,until,section,line")
            problem(await http.get("/v1/tenants/shop-a/settlement", params={"day": "05/12/2026"}), 400,
                    "invalid_request", "day")  # fmt: skip
            problem(await http.get("/v1/tenants/shop-a/settlement"), 400, "invalid_request")

    asyncio.run(go())


def test_the_ledger_read_side_over_http(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (port, _, _), gateway(port) as http:
            assert (await http.post("/v1/tenants", json=SHOP)).status_code == 201
            wallet = (await http.post("/v1/tenants/shop-a/wallets", json={"customer": "anna"})).json()
            topped = await http.post("/v1/tenants/shop-a/top_ups", headers={"Idempotency-Key": "t1"},
                                     json={"customer": "anna", "amount": 2000, "currency": "EUR",
                                           "reference": "psp"})  # fmt: skip
            for n in range(3):
                paid = await http.post("/v1/tenants/shop-a/payments", headers={"Idempotency-Key": f"p{n}"},
                                       json={"customer": "anna", "amount": 100, "currency": "EUR",
                                             "order_reference": f"o{n}"})  # fmt: skip
                assert paid.status_code == 201, paid.text
            account = (await http.get(f"/v1/ledger/accounts/{wallet['id']}")).json()
            assert account["id"] == wallet["id"] and account["credits_posted"] == 2000
            assert account["debits_posted"] == 2000 - paid.json()["balance"]
            transfer = (await http.get(f"/v1/ledger/transfers/{topped.json()['id']}")).json()
            assert (transfer["amount"], transfer["credit_account_id"]) == (2000, wallet["id"])
            seen: list[str] = []
            cursor = ""
            while True:  # the top-up, then each payment and its fee
                page = (await http.get(f"/v1/ledger/accounts/{wallet['id']}/transfers",
                                       params={"limit": 2, "starting_after": cursor})).json()  # fmt: skip
                seen += [t["id"] for t in page["data"]]
                if not page["has_more"]:
                    break
                cursor = page["next_cursor"]
            assert len(seen) == 7 == len(set(seen)) and seen[0] == topped.json()["id"]
            newest = (await http.get(f"/v1/ledger/accounts/{wallet['id']}/transfers",
                                     params={"limit": 3, "reversed": "true"})).json()  # fmt: skip
            assert [t["id"] for t in newest["data"]] == seen[::-1][:3]
            balances = (await http.get(f"/v1/ledger/accounts/{wallet['id']}/balances", params={"limit": 1000})).json()
            last = balances["data"][-1]
            assert last["credits_posted"] - last["debits_posted"] == paid.json()["balance"]
            problem(await http.get(f"/v1/ledger/accounts/{'0' * 31}1"), 404, "not_found", "account_id")
            problem(await http.get("/v1/ledger/accounts/not-hex"), 400, "invalid_request", "account_id")
            problem(await http.get(f"/v1/ledger/accounts/{wallet['id']}/transfers", params={"starting_after": "x"}),
                    400, "invalid_request", "starting_after")  # fmt: skip

    asyncio.run(go())


def test_a_grant_run_over_http_pays_each_customer_once(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (port, _, _), gateway(port) as http:
            assert (await http.post("/v1/tenants", json=SHOP)).status_code == 201
            items = [{"customer": f"employee-{n}", "amount": 5000} for n in range(5)] + [
                {"customer": "bad\u0000name", "amount": 5000}]  # fmt: skip
            run = {"id": "benefits-2027-03", "currency": "EUR", "items": items, "open_wallets": True}
            first = await http.post("/v1/tenants/shop-a/grant_runs", json=run)
            assert first.status_code == 201, first.text
            body = first.json()
            assert (body["granted"], body["granted_amount"], body["refused"]) == (5, 25_000, 1)
            assert [r["status"] for r in body["results"]] == ["granted"] * 5 + ["refused"]
            assert body["results"][-1]["code"] == "customer_invalid"
            assert "idempotent-replayed" not in first.headers
            again = await http.post("/v1/tenants/shop-a/grant_runs", json=run)  # the whole run sent again
            assert again.headers["idempotent-replayed"] == "true" and again.json()["granted_amount"] == 25_000
            wallet = (await http.get("/v1/tenants/shop-a/wallets/employee-3")).json()
            assert wallet["available"] == 5000  # once, not twice
            strict = await http.post("/v1/tenants/shop-a/grant_runs",
                                     json={**run, "id": "strict", "all_or_nothing": True})  # fmt: skip
            assert strict.status_code == 201 and strict.json()["granted"] == 0
            assert {r["code"] for r in strict.json()["results"]} == {"grant_run_refused", "customer_invalid"}
            problem(await http.post("/v1/tenants/shop-a/grant_runs", json={**run, "currency": "USD"}), 400,
                    "currency_mismatch", "currency")  # fmt: skip
            problem(await http.post("/v1/tenants/shop-a/grant_runs", json={**run, "items": []}), 400,
                    "invalid_request", "items")  # fmt: skip
            too_many = {**run, "items": [{"customer": "c", "amount": 1}] * 10_001}
            problem(await http.post("/v1/tenants/shop-a/grant_runs", json=too_many), 400, "invalid_request", "items")

    asyncio.run(go())


HOSTILE: list[tuple[str, Any, int, str, str | None]] = [
    # (what, body, status, code, field)
    ("malformed JSON", b'{"customer": "anna", "amount": ', 400, "invalid_request", None),
    ("not an object", b"[1, 2]", 400, "invalid_request", None),
    ("a string amount", {"customer": "anna", "amount": "5", "currency": "EUR", "order_reference": "o"}, 400,
     "invalid_request", "amount"),
    ("a fractional amount", {"customer": "anna", "amount": 5.5, "currency": "EUR", "order_reference": "o"}, 400,
     "invalid_request", "amount"),
    ("a negative amount", {"customer": "anna", "amount": -5, "currency": "EUR", "order_reference": "o"}, 400,
     "invalid_request", "amount"),
    ("zero", {"customer": "anna", "amount": 0, "currency": "EUR", "order_reference": "o"}, 400,
     "invalid_request", "amount"),
    ("above 2^63 - 1", {"customer": "anna", "amount": 2**63, "currency": "EUR", "order_reference": "o"}, 400,
     "invalid_request", "amount"),
    ("an unknown field", {"customer": "anna", "amount": 5, "currency": "EUR", "order_reference": "o", "tip": 1},
     400, "invalid_request", "tip"),
    ("a missing field", {"customer": "anna", "amount": 5, "currency": "EUR"}, 400, "invalid_request",
     "order_reference"),
    ("another currency", {"customer": "anna", "amount": 5, "currency": "USD", "order_reference": "o"}, 402 - 2,
     "currency_mismatch", "currency"),
    ("a lowercase currency", {"customer": "anna", "amount": 5, "currency": "eur", "order_reference": "o"}, 400,
     "invalid_request", "currency"),
    ("an unknown wallet", {"customer": "nobody", "amount": 5, "currency": "EUR", "order_reference": "o"}, 404,
     "wallet_not_found", None),
]  # fmt: skip


def test_hostile_requests_get_problems_naming_the_field_and_change_nothing(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (port, _, _), gateway(port, body_bytes_max=4_096) as http:
            assert (await http.post("/v1/tenants", json=SHOP)).status_code == 201
            await http.post("/v1/tenants/shop-a/wallets", json={"customer": "anna"})
            topped = await http.post(
                "/v1/tenants/shop-a/top_ups",
                headers={"Idempotency-Key": "t1"},
                json={"customer": "anna", "amount": 1000, "currency": "EUR", "reference": "psp"},
            )
            assert topped.status_code == 201, topped.text
            before = (await http.get("/v1/tenants/shop-a/wallets/anna")).json()
            for number, (what, body, status, code, field) in enumerate(HOSTILE):
                headers = {"Idempotency-Key": f"h{number}", "Content-Type": "application/json"}
                sent = body if isinstance(body, bytes) else None
                answer = await http.post("/v1/tenants/shop-a/payments", headers=headers, content=sent,
                                         json=None if sent is not None else body)  # fmt: skip
                assert answer.status_code == status, (what, answer.text)
                problem(answer, status, code, field)
            payment = {"customer": "anna", "amount": 5, "currency": "EUR", "order_reference": "o"}
            problem(await http.post("/v1/tenants/shop-a/payments", json=payment), 400, "idempotency_key_invalid",
                    "Idempotency-Key")  # fmt: skip
            problem(
                await http.post(
                    "/v1/tenants/shop-a/payments",
                    headers={"Idempotency-Key": "big"},
                    content=b'{"customer": "' + b"a" * 8_000 + b'"}',
                ),
                413,
                "body_too_large",
            )
            problem(await http.post("/v1/tenants/shop-x/payments", headers={"Idempotency-Key": "x"}, json=payment),
                    404, "tenant_not_found")  # fmt: skip
            problem(await http.get("/v1/nothing-here"), 404, "not_found")
            problem(await http.delete("/v1/tenants/shop-a"), 405, "method_not_allowed")
            problem(await http.post("/v1/tenants/shop-a/payments/not-hex/refunds", headers={"Idempotency-Key": "r"},
                                    json={"amount": 1}), 400, "invalid_request", "payment_id")  # fmt: skip
            assert (await http.get("/v1/tenants/shop-a/wallets/anna")).json() == before

    asyncio.run(go())


def test_a_key_acts_for_its_own_tenant_with_its_own_permissions(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens: dict[str, str] = {}
    store = open_key_store(store_url)
    try:
        for who, tenant, role in (("a_shop", "shop-a", "shop"), ("a_pos", "shop-a", "pos"),
                                  ("b_shop", "shop-b", "shop"), ("admin", "ops", "admin")):  # fmt: skip
            _, tokens[who] = store.create_key(tenant=tenant, role=role, ledgers=[], name=who)
    finally:
        store.close()

    def as_(who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[who]}"}

    # An API key in the gateway's environment is never lent to a request that brings none.
    monkeypatch.setenv("LEDGER_API_KEY", tokens["admin"])

    async def go() -> None:
        async with serving(store_url, auth=True) as (port, _, _), gateway(port) as http:
            for tenant in ("shop-a", "shop-b"):
                created = await http.post("/v1/tenants", headers=as_("admin"), json={**SHOP, "id": tenant})
                assert created.status_code == 201, created.text
                await http.post(f"/v1/tenants/{tenant}/wallets", headers=as_("admin"), json={"customer": "anna"})
            topped = await http.post("/v1/tenants/shop-a/top_ups", headers={**as_("a_shop"), "Idempotency-Key": "t"},
                                     json={"customer": "anna", "amount": 1000, "currency": "EUR",
                                           "reference": "psp"})  # fmt: skip
            assert topped.status_code == 201, topped.text
            before = {t: (await http.get(f"/v1/tenants/{t}/wallets/anna", headers=as_("admin"))).json()
                      for t in ("shop-a", "shop-b")}  # fmt: skip
            problem(await http.get("/v1/tenants/shop-a/wallets/anna"), 401, "unauthenticated", "Authorization")
            problem(await http.get("/v1/tenants/shop-a/wallets/anna", headers={"Authorization": "Bearer lk_nope"}),
                    401, "unauthenticated")  # fmt: skip
            pos_top_up = await http.post("/v1/tenants/shop-a/top_ups", headers={**as_("a_pos"), "Idempotency-Key": "u"},
                                         json={"customer": "anna", "amount": 1000, "currency": "EUR"})  # fmt: skip
            assert "wallet.topup" in problem(pos_top_up, 403, "permission_denied")["detail"]
            for method, path, body in (
                ("GET", "/v1/tenants/shop-a/wallets/anna", None),
                ("POST", "/v1/tenants/shop-a/payments", {"customer": "anna", "amount": 5, "currency": "EUR",
                                                         "order_reference": "o"}),
                ("POST", "/v1/tenants/shop-a/top_ups", {"customer": "anna", "amount": 5, "currency": "EUR"}),
                ("POST", "/v1/tenants/shop-a/wallets", {"customer": "ben"}),
                ("GET", "/v1/tenants/shop-a", None),
            ):  # fmt: skip
                answer = await http.request(method, path, json=body, headers={**as_("b_shop"), "Idempotency-Key": "b"})
                body_text = problem(answer, 403, "permission_denied")["detail"]
                assert "anna" not in body_text and "1000" not in body_text
            paid = await http.post("/v1/tenants/shop-a/payments", headers={**as_("a_pos"), "Idempotency-Key": "p"},
                                   json={"customer": "anna", "amount": 100, "currency": "EUR",
                                         "order_reference": "o"})  # fmt: skip
            assert paid.status_code == 201, paid.text
            after = {t: (await http.get(f"/v1/tenants/{t}/wallets/anna", headers=as_("admin"))).json()
                     for t in ("shop-a", "shop-b")}  # fmt: skip
            assert after["shop-b"] == before["shop-b"]
            assert after["shop-a"]["available"] == before["shop-a"]["available"] - 100 - paid.json()["fee"]

    asyncio.run(go())


def test_every_wallet_result_has_its_status_and_code() -> None:
    results = {number for name, number in wallet_pb2.WalletResult.items() if name not in
               ("WALLET_RESULT_UNSPECIFIED", "WALLET_RESULT_OK")}  # fmt: skip
    assert set(WALLET_PROBLEMS) == results
    codes = [kind.code for kind in WALLET_PROBLEMS.values()]
    assert len(set(codes)) == len(codes)
    assert all(400 <= kind.status < 500 or kind.code == "ledger_refused" for kind in WALLET_PROBLEMS.values())


@pytest.mark.parametrize("given", ["abc-123", "x" * 65, "bad id!"])
def test_a_request_id_is_kept_when_sane_and_made_otherwise(given: str) -> None:
    async def go() -> None:
        async with gateway(1) as http:  # no ledger behind it: liveness still answers
            answer = await http.get("/healthz", headers={"X-Request-Id": given})
            assert answer.status_code == 200
            kept = answer.headers["x-request-id"]
            assert (kept == given) == (given == "abc-123")
            ready = await http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["status"] == "not_ready"

    asyncio.run(go())


def test_the_openapi_document_describes_the_api() -> None:
    async def go() -> None:
        async with gateway(1) as http:
            document = (await http.get("/docs/openapi.json")).json()
            assert document["openapi"].startswith("3.1")
            payments = document["paths"]["/v1/tenants/{tenant_id}/payments"]["post"]
            assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in payments["parameters"])
            schema = document["components"]["schemas"]["CreatePayment"]
            assert schema["properties"]["amount"]["minimum"] == 1
            assert set(schema["required"]) == {"customer", "amount", "currency", "order_reference"}
            assert (await http.get("/docs")).status_code == 200

    asyncio.run(go())


def test_ledger_gateway_serves_a_ledger_elsewhere_and_stops_on_sigterm(tmp_path: Path) -> None:
    async def go() -> None:
        async with serving(f"sqlite:///{tmp_path / 'journal.sqlite3'}") as (port, _, _):
            log_path = tmp_path / "gateway.log"
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "ledger", "gateway", "--ledger", f"127.0.0.1:{port}", "--address",
                     "127.0.0.1:0"], stdout=log, stderr=log, cwd=tmp_path,
                )  # fmt: skip
            try:
                deadline = time.monotonic() + 30
                while (found := GATEWAY_LINE.search(log_path.read_text())) is None:
                    assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
                    await asyncio.sleep(0.05)
                assert "store sqlite:data/gateway.sqlite3" in log_path.read_text()  # its start line names its store
                async with httpx.AsyncClient(base_url=found.group(1), timeout=10) as http:
                    assert (await http.get("/readyz")).json() == {"status": "ready", "ledger": "SERVING"}
                    assert (await http.post("/v1/tenants", json=SHOP)).status_code == 201
                process.send_signal(signal.SIGTERM)
                assert await asyncio.to_thread(process.wait, 30) == 0
                assert (tmp_path / "data" / "gateway.sqlite3").exists()  # its own store, in its working directory
            finally:
                if process.poll() is None:
                    process.kill()

    asyncio.run(go())


GATEWAY_LINE = re.compile(r"ledger gateway serving HTTP on (http://127\.0\.0\.1:\d+) \(docs http://\S+/docs\) for the "
                          r"ledger at 127\.0\.0\.1:\d+")  # fmt: skip


def test_http_metrics_count_requests_by_route_template_and_status(caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> None:
        async with gateway(1, timeout_seconds=0.5) as http:
            for path in ("/healthz", "/healthz", "/v1/tenants/shop-a/wallets/anna", "/nothing/1", "/nothing/2"):
                await http.get(path)
            text = (await http.get("/metrics")).text
            assert 'gateway_http_requests_total{method="GET",route="/healthz",status="200"} 2.0' in text
            # no ledger behind it: the wallet's route answers 503, counted under its template
            assert 'route="/v1/tenants/{tenant_id}/wallets/{customer}",status="503"' in text
            assert 'route="unmatched",status="404"} 2.0' in text and "/nothing/" not in text
            assert "gateway_http_request_seconds_bucket" in text
            unavailable = await http.get("/v1/tenants/shop-a/wallets/anna")
            assert unavailable.headers["retry-after"] == "1"
            assert "127.0.0.1" not in problem(unavailable, 503, "unavailable")["detail"]  # nothing of the inside
            request_id = unavailable.headers["x-request-id"]
            logged = [r.getMessage() for r in caplog.records if r.name.startswith("gateway")]
            assert any("did not answer" in line and line.endswith(f"[request {request_id}]") for line in logged)

    asyncio.run(go())


@given(st.integers(0, 2**64 // 10**9 - 1), st.integers(0, 999_999_999))
def test_a_ledger_time_reads_as_protobuf_reads_it(seconds: int, nanos: int) -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    from gateway._calls import when

    stamp = Timestamp(seconds=seconds, nanos=nanos)
    assert when(stamp) == (stamp.ToDatetime(tzinfo=UTC) if seconds or nanos else None)

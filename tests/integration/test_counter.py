"""The counter over gRPC on both stores: a phone enrolled, its offline code paying once even when two
terminals send it at the same moment, a lost reply replayed by the terminal's transaction id, devices listed
and revoked, and the same after a restart; payments by code in batches (PayByCodeBatch), and the clients that
coalesce them."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from ledger.auth import open_key_store
from ledger.client import AsyncClient, Client, ClientConfig, LedgerInvalidArgument, LedgerPermissionDenied
from ledger.server._wallet import REQUEST_BYTES_MAX
from ledger.v1 import wallet_pb2 as w
from ledger.wallet import _paycodes as paycodes
from tests.integration.test_wallet_service import client, serving

OK = w.WALLET_RESULT_OK


def shown(device: w.DeviceReply, at_ns: int | None = None) -> str:
    """The code the phone shows: computed from what enrolment gave it, with no call to the ledger."""
    step = paycodes.step_at(time.time_ns() if at_ns is None else at_ns)
    return paycodes.make_code(device.seed, device.code_key, device.number, step)


def test_a_phones_code_pays_once_across_terminals_and_restarts(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (port, _, _), client(port) as c:
            await c.create_tenant(w.CreateTenantRequest(tenant="bar", currency="EUR"))
            await c.open_wallet(w.WalletRequest(tenant="bar", customer="anna"))
            await c.top_up(w.TopUpRequest(tenant="bar", customer="anna", amount=5_000, key="t",
                                          source=w.TOP_UP_SOURCE_GIFT))  # fmt: skip
            device = await c.enroll_device(w.EnrollDeviceRequest(tenant="bar", customer="anna", name="phone", key="d1"))
            assert device.result == OK and len(device.seed) == 32 and len(device.code_key) == 32
            assert (device.step_seconds, device.grace_steps) == (30, 1) and device.enrolled_at.seconds
            code = shown(device)
            # two terminals send the same code at the same moment: one pays, the other is told it was used
            first, second = await asyncio.gather(
                c.pay_by_code(w.PayByCodeRequest(tenant="bar", code=code, amount=300, terminal="t1", transaction="a")),
                c.pay_by_code(w.PayByCodeRequest(tenant="bar", code=code, amount=300, terminal="t2", transaction="b")),
            )
            results = sorted([first.result, second.result])
            assert results == sorted([OK, w.WALLET_RESULT_CODE_USED]), (first, second)
            paid = first if first.result == OK else second
            balance = await c.get_balance(w.WalletRequest(tenant="bar", customer="anna"))
            assert balance.available == 4_700 and paid.wallet_id == device.wallet_id
            # the terminal lost its reply: the same transaction again answers the same, nothing moves
            terminal, transaction = ("t1", "a") if paid is first else ("t2", "b")
            again = await c.pay_by_code(w.PayByCodeRequest(tenant="bar", code=code, amount=300, terminal=terminal,
                                                           transaction=transaction))  # fmt: skip
            assert again.replayed and again.payment_id == paid.payment_id
            bad = await c.pay_by_code(w.PayByCodeRequest(tenant="bar", code="28" + "0" * 16, amount=1, terminal="t1",
                                                         transaction="c"))  # fmt: skip
            assert bad.result == w.WALLET_RESULT_CODE_INVALID
            listed = await c.list_devices(w.ListDevicesRequest(tenant="bar", customer="anna"))
            assert [d.device_id for d in listed.devices] == [device.device_id] and not listed.devices[0].seed
        async with serving(store_url) as (port, _, _), client(port) as c:  # restarted: the code stays used
            used = await c.pay_by_code(w.PayByCodeRequest(tenant="bar", code=code, amount=1, terminal="t3",
                                                          transaction="d"))  # fmt: skip
            assert used.result in (w.WALLET_RESULT_CODE_USED, w.WALLET_RESULT_CODE_INVALID)  # (its window may be over)
            revoked = await c.revoke_device(w.RevokeDeviceRequest(tenant="bar", device_id=device.device_id))
            assert revoked.result == OK and revoked.revoked_at.seconds
            after = await c.pay_by_code(w.PayByCodeRequest(tenant="bar", code=shown(device), amount=1, terminal="t3",
                                                           transaction="e"))  # fmt: skip
            assert after.result == w.WALLET_RESULT_CODE_INVALID
            assert (await c.get_balance(w.WalletRequest(tenant="bar", customer="anna"))).available == 4_700

    asyncio.run(go())


def test_pins_over_grpc_lock_after_wrong_tries_and_an_operator_unlocks(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (port, _, metrics), client(port) as c:
            settings = w.TenantSettings(pin_above=1_000, pin_attempts=2, pin_lock_seconds=3_600)
            await c.create_tenant(w.CreateTenantRequest(tenant="bar", currency="EUR", settings=settings))
            await c.open_wallet(w.WalletRequest(tenant="bar", customer="anna"))
            await c.top_up(w.TopUpRequest(tenant="bar", customer="anna", amount=5_000, key="t",
                                          source=w.TOP_UP_SOURCE_GIFT))  # fmt: skip
            device = await c.enroll_device(w.EnrollDeviceRequest(tenant="bar", customer="anna", name="phone", key="d1"))
            weak = await c.set_pin(w.SetPinRequest(tenant="bar", customer="anna", pin="1234"))
            assert weak.result == w.WALLET_RESULT_PIN_INVALID and "1234" not in weak.message
            assert (await c.set_pin(w.SetPinRequest(tenant="bar", customer="anna", pin="4711"))).pin_set

            def paying(transaction: str, amount: int, pin: str = "") -> w.PayByCodeRequest:
                return w.PayByCodeRequest(tenant="bar", code=shown(device), amount=amount, terminal="t",
                                          transaction=transaction, pin=pin)  # fmt: skip

            assert (await c.pay_by_code(paying("a", 1_500))).result == w.WALLET_RESULT_PIN_REQUIRED
            assert (await c.pay_by_code(paying("b", 1_500, "0000"))).result == w.WALLET_RESULT_PIN_INVALID
            assert (await c.pay_by_code(paying("c", 1_500, "9999"))).result == w.WALLET_RESULT_PIN_LOCKED
            assert (await c.pay_by_code(paying("d", 1_500, "4711"))).result == w.WALLET_RESULT_PIN_LOCKED
            status = await c.get_pin_status(w.WalletRequest(tenant="bar", customer="anna"))
            assert status.pin_set and status.locked_until.seconds > time.time()
            locks = {"kind": "wallet_locked", "tenant": "bar"}
            assert metrics.registry.get_sample_value("ledger_wallet_alerts_total", locks) == 1  # once, not per refusal
            unlocked = await c.unlock_pin(w.UnlockPinRequest(tenant="bar", customer="anna", operator="desk",
                                                             reason="customer identified"))  # fmt: skip
            assert unlocked.result == OK and not unlocked.locked_until.seconds
            paid = await c.pay_by_code(paying("e", 1_500, "4711"))
            assert paid.result == OK and paid.paid == 1_500
            # a PIN sent with a code that names no wallet: refused as any bad code, after the same work
            stranger = w.PayByCodeRequest(tenant="bar", code="28" + "0" * 16, amount=1_500, terminal="t",
                                          transaction="f", pin="4711")  # fmt: skip
            assert (await c.pay_by_code(stranger)).result == w.WALLET_RESULT_CODE_INVALID

    asyncio.run(go())


def test_the_counter_over_http(store_url: str) -> None:
    from tests.integration.test_gateway import SHOP, gateway, problem

    async def go() -> None:
        async with serving(store_url) as (port, _, metrics), gateway(port) as http:
            shop = {**SHOP, "settings": {**SHOP["settings"], "fee_fixed": 0, "fee_per_mille": 0,  # type: ignore[dict-item]
                                         "pin_above": 2_000, "pin_attempts": 2}}  # fmt: skip
            assert (await http.post("/v1/tenants", json=shop)).status_code == 201
            await http.post("/v1/tenants/shop-a/wallets", json={"customer": "anna"})
            top_up = {"customer": "anna", "amount": 10_000, "currency": "EUR", "reference": "psp"}
            await http.post("/v1/tenants/shop-a/top_ups", headers={"Idempotency-Key": "t"}, json=top_up)
            problem(await http.post("/v1/tenants/shop-a/devices", json={"customer": "anna"}), 400,
                    "idempotency_key_invalid", "Idempotency-Key")  # fmt: skip
            enrolled = await http.post("/v1/tenants/shop-a/devices", headers={"Idempotency-Key": "phone-1"},
                                       json={"customer": "anna", "name": "Anna's phone"})  # fmt: skip
            assert enrolled.status_code == 201, enrolled.text
            device = enrolled.json()
            assert device["status"] == "active" and len(device["seed"]) == 64 and device["step_seconds"] == 30
            listed = (await http.get("/v1/tenants/shop-a/wallets/anna/devices")).json()["data"]
            assert [d["id"] for d in listed] == [device["id"]] and listed[0]["seed"] is None

            def code(device: dict[str, Any] = device) -> str:
                step = paycodes.step_at(time.time_ns())
                return paycodes.make_code(bytes.fromhex(device["seed"]), bytes.fromhex(device["code_key"]),
                                          device["number"], step)  # fmt: skip

            body = {"code": code(), "amount": 700, "currency": "EUR", "terminal": "bar-1", "transaction": "tx-1"}
            paid = await http.post("/v1/tenants/shop-a/code_payments", json=body)
            assert paid.status_code == 201, paid.text
            assert paid.json()["amount_paid"] == 700 and paid.json()["wallet_id"] == device["wallet_id"]
            again = await http.post("/v1/tenants/shop-a/code_payments", json=body)
            assert (again.json(), again.headers["idempotent-replayed"]) == (paid.json(), "true")
            problem(await http.post("/v1/tenants/shop-a/code_payments", json={**body, "transaction": "tx-2"}), 409,
                    "code_used")  # fmt: skip
            problem(await http.post("/v1/tenants/shop-a/code_payments",
                                    json={**body, "code": "28" + "1" * 16, "transaction": "tx-3"}), 400,
                    "code_invalid")  # fmt: skip
            problem(await http.post("/v1/tenants/shop-a/code_payments", json={**body, "amount": 1.5}), 400,
                    "invalid_request", "amount")  # fmt: skip
            # the PIN: needed above 20.00; wrong twice locks; an operator unlocks
            problem(await http.post("/v1/tenants/shop-a/wallets/anna/pin", json={"pin": "1111"}), 402, "pin_invalid")
            status = await http.post("/v1/tenants/shop-a/wallets/anna/pin", json={"pin": "4711"})
            assert status.json()["pin_set"] and "4711" not in status.text
            second = await http.post("/v1/tenants/shop-a/devices", headers={"Idempotency-Key": "phone-2"},
                                     json={"customer": "anna", "name": "Anna's watch"})  # fmt: skip
            big = {**body, "code": code(second.json()), "amount": 2_500}
            problem(await http.post("/v1/tenants/shop-a/code_payments", json={**big, "transaction": "p1"}), 402,
                    "pin_required", "pin")  # fmt: skip
            for transaction, pin, code_expected in (("p2", "0000", "pin_invalid"), ("p3", "0001", "pin_locked")):
                answer = await http.post("/v1/tenants/shop-a/code_payments",
                                         json={**big, "transaction": transaction, "pin": pin})  # fmt: skip
                problem(answer, 402, code_expected, "pin")
            locked = (await http.get("/v1/tenants/shop-a/wallets/anna/pin")).json()
            assert locked["locked_until"] and locked["pin_set"]
            unlocked = await http.post("/v1/tenants/shop-a/wallets/anna/pin/unlock",
                                       json={"operator": "desk", "reason": "identified"})  # fmt: skip
            assert unlocked.status_code == 200 and unlocked.json()["locked_until"] is None
            ok = await http.post("/v1/tenants/shop-a/code_payments", json={**big, "transaction": "p4", "pin": "4711"})
            assert ok.status_code == 201, ok.text
            assert ok.json()["currency"] == paid.json()["currency"] == "EUR"
            # the gateway's client sent tx-1 (twice) in shared PayByCodeBatch calls, and the one with a PIN alone
            count = metrics.registry.get_sample_value
            assert count("ledger_wallet_operations_total", {"method": "PayByCodeBatch", "result": "OK"}) == 2
            assert count("ledger_wallet_operations_total", {"method": "PayByCode", "result": "OK"}) == 1
            # a terminal that lost a reply asks by its transaction; one that no longer wants a payment cancels it
            outcome = (await http.get("/v1/tenants/shop-a/code_payments/bar-1/tx-1")).json()
            assert outcome["status"] == "paid" and outcome["payment"] == paid.json()
            declined = (await http.get("/v1/tenants/shop-a/code_payments/bar-1/p2")).json()
            assert declined["status"] == "declined" and declined["declined"]["code"] == "pin_invalid"
            missing = (await http.get("/v1/tenants/shop-a/code_payments/bar-1/never")).json()
            assert (missing["status"], missing["payment"]) == ("unknown", None)
            cancelled = await http.post("/v1/tenants/shop-a/code_payments/bar-1/tx-1/cancel", json={"reason": "void"})
            assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
            assert cancelled.json()["refund_id"] and (await http.get("/v1/tenants/shop-a/code_payments/bar-1/tx-1")
                                                      ).json()["status"] == "cancelled"  # fmt: skip
            problem(await http.post("/v1/tenants/shop-a/code_payments", json=body), 409, "payment_cancelled")
            revoked = await http.post(f"/v1/tenants/shop-a/devices/{device['id']}/revoke")
            assert revoked.json()["status"] == "revoked"
            problem(await http.post(f"/v1/tenants/shop-a/devices/{'0' * 31}1/revoke"), 404, "device_not_found")
            wallet = (await http.get("/v1/tenants/shop-a/wallets/anna")).json()
            assert wallet["available"] == 10_000 - 2_500  # the 7.00 came back with the cancel
            # a hold by code: the bill held, captured later with the tip; a retry gets the same hold
            third = await http.post("/v1/tenants/shop-a/devices", headers={"Idempotency-Key": "phone-3"},
                                    json={"customer": "anna", "name": "Anna's tablet"})  # fmt: skip
            bill = {"code": code(third.json()), "amount": 1_800, "currency": "EUR", "terminal": "table-4",
                    "transaction": "bill-9", "reference": "Table 4"}  # fmt: skip
            held = await http.post("/v1/tenants/shop-a/code_payments/holds", json=bill)
            assert held.status_code == 201 and held.json()["status"] == "pending", held.text
            again = await http.post("/v1/tenants/shop-a/code_payments/holds", json=bill)
            assert again.headers["idempotent-replayed"] == "true" and again.json()["id"] == held.json()["id"]
            problem(await http.post("/v1/tenants/shop-a/code_payments/holds", json={**bill, "transaction": "bill-10"}),
                    409, "code_used")  # fmt: skip
            problem(await http.post("/v1/tenants/shop-a/code_payments/holds", json={**bill, "seconds": -1}), 400,
                    "invalid_request", "seconds")  # fmt: skip
            captured = await http.post(f"/v1/tenants/shop-a/holds/{held.json()['id']}/capture",
                                       headers={"Idempotency-Key": "cap-9"}, json={"amount": 1_650})  # fmt: skip
            assert captured.status_code == 200 and captured.json()["status"] == "captured", captured.text
            wallet = (await http.get("/v1/tenants/shop-a/wallets/anna")).json()
            assert wallet["available"] == 10_000 - 2_500 - 1_650

    asyncio.run(go())


def test_a_terminal_shows_a_request_a_customer_confirms_and_the_terminal_learns_it_by_long_poll(
    store_url: str,
) -> None:
    from gateway._emvco import decode
    from tests.integration.test_gateway import SHOP, gateway, problem

    async def go() -> None:
        async with serving(store_url) as (port, _, _), gateway(port) as http:
            shop = {**SHOP, "settings": {**SHOP["settings"], "fee_fixed": 0, "fee_per_mille": 0}}  # type: ignore[dict-item]
            assert (await http.post("/v1/tenants", json=shop)).status_code == 201
            await http.post("/v1/tenants/shop-a/wallets", json={"customer": "anna"})
            top_up = {"customer": "anna", "amount": 5_000, "currency": "EUR", "reference": "psp"}
            await http.post("/v1/tenants/shop-a/top_ups", headers={"Idempotency-Key": "t"}, json=top_up)
            body = {"terminal": "bar-1", "amount": 1_250, "currency": "EUR", "reference": "2 beers", "seconds": 60}
            made = await http.post("/v1/tenants/shop-a/payment_requests", headers={"Idempotency-Key": "r1"}, json=body)
            assert made.status_code == 201, made.text
            request = made.json()
            assert request["status"] == "open" and request["qr_payload"].startswith("000201010212")
            qr = decode(request["qr_payload"])  # what the customer's phone reads off the terminal's screen
            assert (qr.request_id, qr.amount, qr.currency_number, qr.merchant_name) == (request["id"], 1_250, 978,
                                                                                        "Shop A")  # fmt: skip
            svg = await http.get(f"/v1/tenants/shop-a/payment_requests/{request['id']}/qr.svg")
            png = await http.get(f"/v1/tenants/shop-a/payment_requests/{request['id']}/qr.png")
            assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content
            assert png.headers["content-type"] == "image/png" and png.content[:8] == b"\x89PNG\r\n\x1a\n"
            # the terminal waits; the customer confirms meanwhile; the wait ends with the payment
            started = time.monotonic()
            waiting = asyncio.ensure_future(http.get(f"/v1/tenants/shop-a/payment_requests/{request['id']}?wait=20",
                                                     timeout=30))  # fmt: skip
            await asyncio.sleep(0.3)
            confirmed = await http.post(f"/v1/tenants/shop-a/payment_requests/{qr.request_id}/confirm",
                                        json={"customer": "anna"})  # fmt: skip
            assert confirmed.status_code == 201 and confirmed.json()["amount_paid"] == 1_250
            learned = (await waiting).json()
            assert learned["status"] == "paid" and learned["payment_id"] == request["id"]
            assert time.monotonic() - started < 10  # answered by the payment, not by the wait running out
            again = await http.post(f"/v1/tenants/shop-a/payment_requests/{qr.request_id}/confirm",
                                    json={"customer": "anna"})  # fmt: skip
            assert again.headers["idempotent-replayed"] == "true"
            # an open request that nobody pays: the wait ends at `wait`; a cancel ends it at once
            other = (await http.post("/v1/tenants/shop-a/payment_requests", headers={"Idempotency-Key": "r2"},
                                     json=body)).json()  # fmt: skip
            still = (await http.get(f"/v1/tenants/shop-a/payment_requests/{other['id']}?wait=1")).json()
            assert still["status"] == "open"
            waiting = asyncio.ensure_future(http.get(f"/v1/tenants/shop-a/payment_requests/{other['id']}?wait=20",
                                                     timeout=30))  # fmt: skip
            await asyncio.sleep(0.3)
            assert (await http.post(f"/v1/tenants/shop-a/payment_requests/{other['id']}/cancel")).status_code == 200
            assert (await waiting).json()["status"] == "cancelled"
            problem(await http.post(f"/v1/tenants/shop-a/payment_requests/{other['id']}/confirm",
                                    json={"customer": "anna"}), 409, "request_not_open")  # fmt: skip
            problem(await http.get(f"/v1/tenants/shop-a/payment_requests/{'0' * 32}"), 404, "request_not_found")
            problem(await http.get(f"/v1/tenants/shop-a/payment_requests/{other['id']}?wait=31"), 400,
                    "invalid_request", "wait")  # fmt: skip
            wallet = (await http.get("/v1/tenants/shop-a/wallets/anna")).json()
            assert wallet["available"] == 5_000 - 1_250

    asyncio.run(go())


def test_a_request_above_the_pin_amount_is_confirmed_with_the_pin_over_grpc(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (port, _, _), client(port) as c:
            await c.create_tenant(w.CreateTenantRequest(tenant="bar", currency="EUR",
                                                        settings=w.TenantSettings(pin_above=1_000)))  # fmt: skip
            await c.open_wallet(w.WalletRequest(tenant="bar", customer="anna"))
            await c.top_up(w.TopUpRequest(tenant="bar", customer="anna", amount=5_000, key="t",
                                          source=w.TOP_UP_SOURCE_GIFT))  # fmt: skip
            await c.set_pin(w.SetPinRequest(tenant="bar", customer="anna", pin="4711"))
            made = await c.create_payment_request(w.CreatePaymentRequestRequest(
                tenant="bar", terminal="till", amount=2_000, reference="dinner", key="r1", currency="EUR"))  # fmt: skip
            assert made.result == OK and made.status == "open" and made.expires_at.seconds

            def confirming(pin: str) -> w.ConfirmPaymentRequestRequest:
                return w.ConfirmPaymentRequestRequest(tenant="bar", request_id=made.request_id, customer="anna",
                                                      pin=pin)  # fmt: skip

            assert (await c.confirm_payment_request(confirming(""))).result == w.WALLET_RESULT_PIN_REQUIRED
            assert (await c.confirm_payment_request(confirming("0000"))).result == w.WALLET_RESULT_PIN_INVALID
            paid = await c.confirm_payment_request(confirming("4711"))
            assert paid.result == OK and paid.paid == 2_000 and paid.payment_id == made.request_id
            status = await c.get_payment_request(w.PaymentRequestRequest(tenant="bar", request_id=made.request_id))
            assert (status.status, status.payment_id) == ("paid", made.request_id)
            wrong = await c.create_payment_request(w.CreatePaymentRequestRequest(
                tenant="bar", terminal="till", amount=1, reference="x", key="r2", currency="USD"))  # fmt: skip
            assert wrong.result == w.WALLET_RESULT_CURRENCY_MISMATCH

    asyncio.run(go())


# -- payments by code in batches (PayByCodeBatch), and the clients that coalesce into them ----------------------


async def festival(c: AsyncClient, **settings: Any) -> dict[str, w.DeviceReply]:
    """Tenant "bar" (no fee, a PIN above 20.00): anna with 50.00 and two phones, ben with 1.00 and one."""
    await c.create_tenant(w.CreateTenantRequest(tenant="bar", currency="EUR",
                                                settings=w.TenantSettings(pin_above=2_000, **settings)))  # fmt: skip
    phones = {}
    for customer, credit, count in (("anna", 5_000, 2), ("ben", 100, 1)):
        await c.open_wallet(w.WalletRequest(tenant="bar", customer=customer))
        await c.top_up(w.TopUpRequest(tenant="bar", customer=customer, amount=credit, key=f"t-{customer}",
                                      source=w.TOP_UP_SOURCE_GIFT))  # fmt: skip
        for n in range(count):
            phones[f"{customer}-{n}"] = await c.enroll_device(
                w.EnrollDeviceRequest(tenant="bar", customer=customer, name=f"phone {n}", key=f"{customer}-{n}")
            )
    return phones


def paying(code: str, amount: int, transaction: str, terminal: str = "t1", **fields: Any) -> w.PayByCodeRequest:
    return w.PayByCodeRequest(tenant=str(fields.pop("tenant", "bar")), code=code, amount=amount, terminal=terminal,
                              transaction=transaction, **fields)  # fmt: skip


async def available(c: AsyncClient, customer: str) -> int:
    return int((await c.get_balance(w.WalletRequest(tenant="bar", customer=customer))).available)


def test_a_batch_of_payments_by_code_pays_each_code_once_and_answers_each_payment(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (port, _, metrics), client(port) as c:
            phones = await festival(c)
            await c.set_pin(w.SetPinRequest(tenant="bar", customer="anna", pin="4711"))
            anna, ben = shown(phones["anna-0"]), shown(phones["ben-0"])
            batch = await c.pay_by_code_batch(w.PayByCodeBatchRequest(payments=[
                paying(anna, 300, "a"),
                paying(anna, 300, "b"),  # the same code again in the same batch: it paid already
                paying(ben, 500, "c"),  # ben has 1.00
                paying("28" + "0" * 16, 1, "d"),  # no phone shows it
                paying(shown(phones["anna-1"]), 2_500, "e"),  # above 20.00 without the PIN
                paying(shown(phones["anna-1"]), 2_500, "f", pin="0000"),  # a wrong PIN, checked before the batch
                paying(anna, 300, "a"),  # "a" again: its answer again
            ]))  # fmt: skip
            results = [reply.result for reply in batch.replies]
            assert results == [OK, w.WALLET_RESULT_CODE_USED, w.WALLET_RESULT_INSUFFICIENT_FUNDS,
                               w.WALLET_RESULT_CODE_INVALID, w.WALLET_RESULT_PIN_REQUIRED,
                               w.WALLET_RESULT_PIN_INVALID, OK]  # fmt: skip
            assert batch.replies[6].replayed and batch.replies[6].payment_id == batch.replies[0].payment_id
            assert (await available(c, "anna"), await available(c, "ben")) == (4_700, 100)
            # the same code in two batches sent at the same moment: one pays
            code = shown(phones["anna-1"])
            first, second = await asyncio.gather(
                c.pay_by_code_batch(w.PayByCodeBatchRequest(payments=[paying(code, 200, "g")])),
                c.pay_by_code_batch(w.PayByCodeBatchRequest(payments=[paying(code, 200, "h", terminal="t2")])),
            )
            assert sorted([first.replies[0].result, second.replies[0].result]) == [OK, w.WALLET_RESULT_CODE_USED]
            assert await available(c, "anna") == 4_500
            # a declined payment was recorded: its terminal asks for it by its transaction
            declined = await c.get_code_payment(w.CodePaymentRequest(tenant="bar", terminal="t1", transaction="c"))
            assert declined.status == "declined" and declined.payment.result == w.WALLET_RESULT_INSUFFICIENT_FUNDS
            count = metrics.registry.get_sample_value
            labels = {"method": "PayByCodeBatch"}
            assert count("ledger_wallet_operations_total", {**labels, "result": "OK"}) == 3
            assert count("ledger_wallet_operations_total", {**labels, "result": "CODE_USED"}) == 2
            assert count("ledger_wallet_operations_total", {**labels, "result": "PIN_INVALID"}) == 1

    asyncio.run(go())


def test_a_malformed_or_oversized_batch_is_refused_whole_and_moves_nothing(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (port, _, _), client(port) as c:
            phones = await festival(c)
            good = paying(shown(phones["anna-0"]), 100, "a")
            for payments, named in (([], "got 0"), ([good] * 513, "got 513")):
                with pytest.raises(LedgerInvalidArgument, match=f"payments must hold 1 to 512, {named}"):
                    await c.pay_by_code_batch(w.PayByCodeBatchRequest(payments=payments))
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                rpc = channel.unary_unary("/wallet.v1.Wallet/PayByCodeBatch", request_serializer=None,
                                          response_deserializer=None)  # fmt: skip
                longest = REQUEST_BYTES_MAX["PayByCodeBatch"]  # what 512 payments with every text at its longest take
                oversized = w.PayByCodeBatchRequest(payments=[good, paying("2" * longest, 1, "b")])
                for data in (b"\xff\xff\xff", oversized.SerializeToString()):
                    with pytest.raises(grpc.aio.AioRpcError) as caught:
                        await rpc(data, timeout=10)
                    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                    assert "PayByCodeBatch" in (caught.value.details() or "")
            assert await available(c, "anna") == 5_000
            again = await c.pay_by_code(good)  # the code was never used: it pays now
            assert again.result == OK and not again.replayed

    asyncio.run(go())


def test_a_batch_naming_another_tenant_is_refused_whole(store_url: str) -> None:
    keys = open_key_store(store_url)
    try:
        admin = keys.create_key(tenant="ops", role="admin")[1]
        pos = keys.create_key(tenant="bar", role="pos")[1]
    finally:
        keys.close()

    async def go() -> None:
        async with serving(store_url, auth=True) as (port, _, _):
            async with client(port, admin) as c:
                phones = await festival(c)
                await c.create_tenant(w.CreateTenantRequest(tenant="pub", currency="EUR"))
            async with client(port, pos) as terminal:
                mine = paying(shown(phones["anna-0"]), 100, "a")
                with pytest.raises(LedgerPermissionDenied) as refused:
                    await terminal.pay_by_code_batch(w.PayByCodeBatchRequest(payments=[
                        mine, paying(shown(phones["ben-0"]), 1, "b", tenant="pub")]))  # fmt: skip
                assert "pub" in refused.value.message and "anna" not in refused.value.message
                assert (await terminal.pay_by_code(mine)).result == OK  # nothing of the refused batch was applied

    asyncio.run(go())


def test_the_clients_coalesce_payments_by_code_and_send_one_with_a_pin_alone(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (port, _, metrics), client(port) as c:
            await festival(c)
            phones = [await c.enroll_device(w.EnrollDeviceRequest(tenant="bar", customer="anna", name=f"p{n}",
                                                                  key=f"p{n}")) for n in range(40)]  # fmt: skip
            await c.set_pin(w.SetPinRequest(tenant="bar", customer="anna", pin="4711"))
            paid = await asyncio.gather(*(c.pay_by_code(paying(shown(phone), 10, f"a{n}"))
                                          for n, phone in enumerate(phones[:30])))  # fmt: skip
            assert all(reply.result == OK for reply in paid) and len({r.payment_id for r in paid}) == 30
            with_pin = await c.pay_by_code(paying(shown(phones[30]), 2_500, "pin", pin="4711"))
            assert with_pin.result == OK

            def from_threads() -> list[w.PayReply]:  # the blocking client, off the loop the server runs on
                config = ClientConfig(server=f"127.0.0.1:{port}", timeout_seconds=10)
                with Client(config) as blocking, ThreadPoolExecutor(8) as pool:
                    return list(pool.map(lambda n: blocking.pay_by_code(paying(shown(phones[n]), 10, f"s{n}")),
                                         range(31, 40)))  # fmt: skip

            assert all(reply.result == OK for reply in await asyncio.to_thread(from_threads))
            count = metrics.registry.get_sample_value
            assert count("ledger_wallet_operations_total", {"method": "PayByCodeBatch", "result": "OK"}) == 39
            assert count("ledger_wallet_operations_total", {"method": "PayByCode", "result": "OK"}) == 1
            batches = count("ledger_rpcs_total", {"method": "wallet.v1.Wallet/PayByCodeBatch", "code": "OK"})
            assert batches is not None and batches < 39  # shared calls
            assert await available(c, "anna") == 5_000 - 39 * 10 - 2_500

    asyncio.run(go())

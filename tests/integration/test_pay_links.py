"""Pay links end to end over real HTTP on both stores: a shop makes one and has it sent, the customer opens the
page, gives their wallet's PIN and the one-time code that reached the contact through the outbox, pays, and sees
the receipt; partial and reusable links, cancelled and unknown ones, hostile input, and another shop's key."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import httpx

from ledger.server._notify import read_outbox
from tests.integration.test_gateway import SHOP, gateway, problem
from tests.integration.test_wallet_service import serving

PIN = "4711"


def last_code(store_url: str, contact: str) -> str:
    """The one-time code the newest message to `contact` carries (what the customer reads off their phone)."""
    rows = [row for row in read_outbox(store_url, contact) if row["kind"] == "pay_link_code"]
    found = re.match(r"([0-9]{6}) is your code", rows[-1]["body"])
    assert found, rows[-1]
    return found.group(1)


async def open_shop(http: httpx.AsyncClient, **settings: Any) -> None:
    shop = {**SHOP, "settings": {**SHOP["settings"], "fee_fixed": 0, "fee_per_mille": 0, **settings}}  # type: ignore[dict-item]
    assert (await http.post("/v1/tenants", json=shop)).status_code == 201
    assert (await http.post("/v1/tenants/shop-a/wallets", json={"customer": "anna"})).status_code == 201
    top_up = {"customer": "anna", "amount": 10_000, "currency": "EUR", "reference": "psp"}
    assert (await http.post("/v1/tenants/shop-a/top_ups", headers={"Idempotency-Key": "t"}, json=top_up)).is_success
    assert (await http.post("/v1/tenants/shop-a/wallets/anna/pin", json={"pin": PIN})).json()["pin_set"]


async def pay_on_page(
    http: httpx.AsyncClient, store_url: str, url: str, contact: str, pin: str = PIN
) -> httpx.Response:
    path = httpx.URL(url).path
    started = await http.post(f"{path}/start", data={"customer": "anna", "pin": pin})
    assert started.status_code == 200, started.text
    challenge = re.search(r'name="challenge" value="([0-9a-f]{32})"', started.text)
    assert challenge, started.text
    return await http.post(f"{path}/pay", data={"challenge": challenge.group(1), "code": last_code(store_url, contact)})


def test_a_pay_link_is_sent_opened_proved_and_paid(store_url: str) -> None:
    contact = f"+49151{uuid.uuid4().int % 10**8:08d}"

    async def go() -> None:
        async with serving(store_url) as (port, _, _), gateway(port) as http:
            await open_shop(http)
            body = {"amount": 2_500, "currency": "EUR", "reference": "Order 1001", "contact": contact,
                    "description": "Two tickets <b>row 5</b>", "send": True}  # fmt: skip
            problem(await http.post("/v1/tenants/shop-a/pay_links", json=body), 400, "idempotency_key_invalid",
                    "Idempotency-Key")  # fmt: skip
            made = await http.post("/v1/tenants/shop-a/pay_links", headers={"Idempotency-Key": "l1"}, json=body)
            assert made.status_code == 201, made.text
            link = made.json()
            assert link["status"] == "open" and link["sent"] and link["url"].startswith(str(http.base_url) + "/l/")
            assert link["share"]["whatsapp"].startswith(f"https://wa.me/{contact[1:]}?text=Shop%20A%20asks")
            assert link["share"]["sms"].startswith(f"sms:{contact}?body=")
            assert link["share"]["email"].startswith("mailto:?subject=Shop%20A")
            again = await http.post("/v1/tenants/shop-a/pay_links", headers={"Idempotency-Key": "l1"}, json=body)
            assert again.headers.get("idempotent-replayed") == "true" and again.json()["id"] == link["id"]
            assert not again.json()["sent"]  # a retry does not send it twice
            sent = [row for row in read_outbox(store_url, contact) if row["kind"] == "pay_link"]
            assert len(sent) == 1 and link["url"] in sent[0]["body"] and "25.00 EUR" in sent[0]["body"]
            assert (await http.get(link["qr_svg"])).headers["content-type"].startswith("image/svg+xml")
            assert (await http.get(link["qr_png"])).content.startswith(b"\x89PNG")
            page = await http.get(httpx.URL(link["url"]).path)
            assert page.status_code == 200 and "25.00 EUR" in page.text and "Shop A" in page.text
            assert "<b>row 5</b>" not in page.text and "&lt;b&gt;row 5&lt;/b&gt;" in page.text  # escaped
            assert contact not in page.text and page.headers["cache-control"] == "no-store"
            assert page.headers["x-frame-options"] == "DENY" and page.headers["referrer-policy"] == "no-referrer"
            wrong = await http.post(httpx.URL(link["url"]).path + "/start", data={"customer": "anna", "pin": "9517"})
            assert "do not match a wallet" in wrong.text
            nobody = await http.post(httpx.URL(link["url"]).path + "/start", data={"customer": "eve", "pin": "9517"})
            assert re.search(r'id="error"[^>]*>([^<]*)', nobody.text).group(1) == re.search(  # type: ignore[union-attr]
                r'id="error"[^>]*>([^<]*)', wrong.text).group(1)  # type: ignore[union-attr]  # fmt: skip
            receipt = await pay_on_page(http, store_url, link["url"], contact)
            assert receipt.status_code == 200 and 'id="receipt"' in receipt.text and "25.00 EUR" in receipt.text
            assert "75.00 EUR" in receipt.text  # left in the wallet
            after = (await http.get(f"/v1/tenants/shop-a/pay_links/{link['id']}")).json()
            assert after["status"] == "paid" and after["paid"] == 2_500 and after["payments"] == 1
            balance = (await http.get("/v1/tenants/shop-a/wallets/anna")).json()
            assert balance["available"] == 7_500
            reopened = await http.get(httpx.URL(link["url"]).path)
            assert 'id="receipt"' in reopened.text and "<form" not in reopened.text
            # the code messages name the amount and never appear in the page
            code_rows = [row for row in read_outbox(store_url, contact) if row["kind"] == "pay_link_code"]
            assert len(code_rows) == 1 and "25.00 EUR" in code_rows[0]["body"]
            # the shop cancels a link; its page says so; an unknown token is a 404 page
            other = await http.post("/v1/tenants/shop-a/pay_links", headers={"Idempotency-Key": "l2"},
                                    json={**body, "send": False})  # fmt: skip
            cancelled = await http.post(f"/v1/tenants/shop-a/pay_links/{other.json()['id']}/cancel")
            assert cancelled.json()["status"] == "cancelled"
            assert "cancelled this link" in (await http.get(httpx.URL(other.json()["url"]).path)).text
            assert (await http.get("/l/" + "a" * 26)).status_code == 404

    asyncio.run(go())


def test_partial_and_reusable_links_and_hostile_input(store_url: str) -> None:
    contact = f"anna-{uuid.uuid4().hex[:8]}@example.com"

    async def go() -> None:
        async with serving(store_url) as (port, _, metrics), gateway(port) as http:
            await open_shop(http)
            base = {"currency": "EUR", "reference": "Invoice 7", "contact": contact}
            big = await http.post("/v1/tenants/shop-a/pay_links", headers={"Idempotency-Key": "big"},
                                  json={**base, "amount": 12_000, "partial": True})  # fmt: skip
            assert big.status_code == 201, big.text
            assert big.json()["share"]["email"].startswith(f"mailto:{contact}?subject=")
            receipt = await pay_on_page(http, store_url, big.json()["url"], contact)
            assert "Paid in part" in receipt.text and "20.00 EUR" in receipt.text  # the rest, paid another way
            read = await http.get(f"/v1/tenants/shop-a/pay_links/{big.json()['id']}")
            assert read.json()["status"] == "partially_paid"
            top_up = {"customer": "anna", "amount": 3_000, "currency": "EUR", "reference": "psp"}
            await http.post("/v1/tenants/shop-a/top_ups", headers={"Idempotency-Key": "t2"}, json=top_up)
            tab = await http.post("/v1/tenants/shop-a/pay_links", headers={"Idempotency-Key": "tab"},
                                  json={**base, "amount": 1_000, "reusable": True})  # fmt: skip
            for _ in range(2):
                assert 'id="receipt"' in (await pay_on_page(http, store_url, tab.json()["url"], contact)).text
            paid = (await http.get(f"/v1/tenants/shop-a/pay_links/{tab.json()['id']}")).json()
            assert (paid["status"], paid["payments"], paid["paid"]) == ("open", 2, 2_000)
            # hostile and malformed requests: named problems, nothing made
            cases: list[tuple[dict[str, Any], str, str]] = [
                ({**base, "amount": 0}, "invalid_request", "amount"),
                ({**base, "amount": 1.5}, "invalid_request", "amount"),
                ({**base, "amount": 100, "contact": "0151 123"}, "contact_invalid", "contact"),
                ({**base, "amount": 100, "currency": "USD"}, "currency_mismatch", "currency"),
                ({**base, "amount": 100, "seconds": 10}, "expiry_invalid", "seconds"),
                ({**base, "amount": 100, "partial": True, "reusable": True}, "partial_payment_disabled", "partial"),
                ({**base, "amount": 100, "extra": 1}, "invalid_request", "extra"),
            ]
            for number, (body, code, field) in enumerate(cases):
                answer = await http.post("/v1/tenants/shop-a/pay_links", headers={"Idempotency-Key": f"bad-{number}"},
                                         json=body)  # fmt: skip
                assert answer.status_code in (400, 402, 409), (body, answer.text)
                assert answer.json()["code"] == code and answer.json().get("field") == field, (body, answer.text)
            problem(await http.get("/v1/tenants/shop-a/pay_links/" + "0" * 32), 404, "request_not_found")
            path = httpx.URL(tab.json()["url"]).path
            for form in ({}, {"customer": "anna"}, {"pin": PIN}, {"customer": "x" * 5_000, "pin": PIN}):
                answer = await http.post(f"{path}/start", data=form)
                assert answer.status_code == 200 and 'id="error"' in answer.text
            for form in ({}, {"challenge": "zz"}, {"challenge": "0" * 32, "code": "123456"}):
                answer = await http.post(f"{path}/pay", data=form)
                assert answer.status_code == 200 and 'id="error"' in answer.text
            raw = await http.post(f"{path}/start", content=b"\xff\xfe" * 10, headers={"content-type": "text/plain"})
            assert raw.status_code == 200
            # guesses on one link: after 20 wrong PINs it takes no more, even the right one (an alert, once)
            for number in range(20):
                await http.post(f"{path}/start", data={"customer": f"guess-{number}", "pin": "9517"})
            closed = await http.post(f"{path}/start", data={"customer": "anna", "pin": PIN})
            assert "Too many wrong PINs" in closed.text
            alerts = {"kind": "pay_link_locked", "tenant": "shop-a"}
            assert metrics.registry.get_sample_value("ledger_wallet_alerts_total", alerts) == 1
            assert (await http.get("/v1/tenants/shop-a/wallets/anna")).json()["available"] == 1_000

    asyncio.run(go())

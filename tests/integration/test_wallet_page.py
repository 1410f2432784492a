"""The customer's wallet page over real HTTP on both stores: a one-time sign-in link, a session in an HttpOnly
cookie, the balance and statement, the device keys the page makes codes from (a terminal pays with a code made
from them), the PIN, a terminal's request confirmed, and sign-out; links used twice, other tenants' requests,
requests from another site and signed-out calls refused."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from ledger.wallet import _paycodes as paycodes
from tests.integration.test_gateway import SHOP, gateway, problem
from tests.integration.test_wallet_service import serving


async def shop_with_anna(http: httpx.AsyncClient, tenant: str = "shop-a") -> None:
    shop = {**SHOP, "id": tenant, "settings": {**SHOP["settings"], "fee_fixed": 0, "fee_per_mille": 0,  # type: ignore[dict-item]
                                               "pin_above": 2_000}}  # fmt: skip
    assert (await http.post("/v1/tenants", json=shop)).status_code == 201
    assert (await http.post(f"/v1/tenants/{tenant}/wallets", json={"customer": "anna"})).status_code == 201
    top_up = {"customer": "anna", "amount": 10_000, "currency": "EUR", "reference": "psp"}
    assert (await http.post(f"/v1/tenants/{tenant}/top_ups", headers={"Idempotency-Key": "t"}, json=top_up)).is_success


def test_the_wallet_page_signs_in_once_shows_the_wallet_and_pays(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (port, _, _), gateway(port) as http:
            await shop_with_anna(http)
            await shop_with_anna(http, "shop-b")
            problem(await http.post("/v1/tenants/shop-a/wallets/nobody/page_links"), 404, "wallet_not_found")
            made = await http.post("/v1/tenants/shop-a/wallets/anna/page_links", json={"contact": "+4915112345678"})
            assert made.status_code == 201, made.text
            link = made.json()
            assert "/w/signin/" in link["url"] and link["share"]["whatsapp"].startswith("https://wa.me/4915112345678")
            signin = httpx.URL(link["url"]).path
            async with httpx.AsyncClient(base_url=str(http.base_url), timeout=10) as phone:
                assert "Open the sign-in link" in (await phone.get("/w/")).text
                opened = await phone.get(signin)
                assert opened.status_code == 303 and opened.headers["location"] == "/w/"
                cookie = opened.headers["set-cookie"].lower()
                assert "httponly" in cookie and "samesite=strict" in cookie and "path=/w" in cookie
                page = await phone.get("/w/")
                assert page.status_code == 200 and "100.00 EUR" in page.text and 'id="statement"' in page.text
                assert page.headers["x-frame-options"] == "DENY" and "script-src 'self'" in page.headers[
                    "content-security-policy"]  # fmt: skip
                # the page's keys: the codes the page makes are the ones a terminal pays with
                keys = (await phone.post("/w/device")).json()
                assert keys == (await phone.post("/w/device")).json()  # one device per session
                code = paycodes.make_code(bytes.fromhex(keys["seed"]), bytes.fromhex(keys["code_key"]),
                                          keys["number"], paycodes.step_at(time.time_ns()))  # fmt: skip
                body = {"code": code, "amount": 300, "currency": "EUR", "terminal": "bar", "transaction": "x1"}
                paid = await http.post("/v1/tenants/shop-a/code_payments", json=body)
                assert paid.status_code == 201, paid.text
                after = (await phone.get("/w/")).text
                assert "97.00 EUR" in after and "-3.00 EUR" in after  # the balance, and the payment's row
                # the PIN, set from the page
                differ = await phone.post("/w/pin", data={"pin": "4711", "pin_again": "4712"})
                assert "The two PINs differ" in differ.text
                weak = await phone.post("/w/pin", data={"pin": "1234", "pin_again": "1234"})
                assert "cannot be used" in weak.text and "1234" not in weak.text
                set_pin = await phone.post("/w/pin", data={"pin": "4711", "pin_again": "4711"})
                assert set_pin.status_code == 303 and set_pin.headers["location"] == "/w/?done=pin"
                assert (await http.get("/v1/tenants/shop-a/wallets/anna/pin")).json()["pin_set"]
                # a terminal's request, by its QR payload, confirmed with the PIN (it is above pin_above)
                asked = (await http.post("/v1/tenants/shop-a/payment_requests", headers={"Idempotency-Key": "q"},
                                         json={"terminal": "t", "amount": 2_500, "currency": "EUR",
                                               "reference": "Dinner"})).json()  # fmt: skip
                shown = await phone.get("/w/pay", params={"request": asked["qr_payload"]})
                assert "25.00 EUR" in shown.text and "Dinner" in shown.text and 'name="pin"' in shown.text
                wrong = await phone.post("/w/pay", data={"request": asked["id"], "pin": "9517"})
                assert "Wrong PIN" in wrong.text
                confirmed = await phone.post("/w/pay", data={"request": asked["id"], "pin": "4711"})
                assert confirmed.status_code == 303 and confirmed.headers["location"] == "/w/?done=paid"
                status = (await http.get(f"/v1/tenants/shop-a/payment_requests/{asked['id']}")).json()["status"]
                assert status == "paid" and "72.00 EUR" in (await phone.get("/w/")).text
                # shop B's request is not one this session may pay
                other = (await http.post("/v1/tenants/shop-b/payment_requests", headers={"Idempotency-Key": "q"},
                                         json={"terminal": "t", "amount": 100, "currency": "EUR",
                                               "reference": "B"})).json()  # fmt: skip
                refused = await phone.get("/w/pay", params={"request": other["qr_payload"]})
                assert "not a payment request of this shop" in refused.text
                # a form from another site is not taken
                foreign = await phone.post("/w/pin", data={"pin": "9517", "pin_again": "9517"},
                                           headers={"origin": "https://evil.example"})  # fmt: skip
                assert foreign.status_code == 303
                # sign out: the session is over; the link does not open twice
                assert (await phone.post("/w/signout")).status_code == 303
                assert (await phone.post("/w/device")).status_code == 401
            async with httpx.AsyncClient(base_url=str(http.base_url), timeout=10) as thief:
                again = await thief.get(signin)
                assert again.status_code == 404 and "used or has expired" in again.text
                assert (await thief.get("/w/signin/" + "x" * 500)).status_code in (400, 404)
                assert (await thief.get("/w/app.js")).headers["content-type"].startswith("text/javascript")
                assert (await thief.get("/w/sw.js")).headers["service-worker-allowed"] == "/w/"
                assert (await thief.get("/w/../pyproject.toml")).status_code == 404
                assert (await thief.get("/w/templates/wallet.html")).status_code == 404
            balance: dict[str, Any] = (await http.get("/v1/tenants/shop-a/wallets/anna")).json()
            assert balance["available"] == 7_200

    asyncio.run(go())

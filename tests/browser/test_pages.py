"""The customer's pages in a real headless Chromium (Debian's `chromium`, driven by Playwright) at phone size:
the pay link page opened, the wallet proved with its PIN and the one-time code from the outbox, paid, the receipt
shown, and the signed webhook at a local receiver; the wallet page opened, the network cut, the page reloaded
from its service worker, its payment code read off the screen and paid with by a terminal.

Screenshots go to LEDGER_SCREENSHOTS_DIR (docs/ holds the committed ones), else to a temporary directory."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from ledger.server._notify import read_outbox
from ledger.wallet import _paycodes as paycodes
from tests.integration.test_gateway import SHOP, gateway
from tests.integration.test_gateway_webhooks import receiver, verified
from tests.integration.test_wallet_service import serving

if os.environ.get("CI") == "true":  # under CI the browser tests run or fail, never skip
    import playwright.async_api as playwright
else:
    playwright = pytest.importorskip("playwright.async_api")
CHROMIUM = os.environ.get("LEDGER_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("Chromium is needed for the browser tests: apt-get install chromium (.ci/run does)")
    pytest.skip("no chromium on this machine", allow_module_level=True)
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
SHOTS = Path(os.environ.get("LEDGER_SCREENSHOTS_DIR") or tempfile.mkdtemp(prefix="screenshots-"))
PIN = "4711"


@asynccontextmanager
async def phone() -> AsyncIterator[playwright.BrowserContext]:  # type: ignore[name-defined]
    async with playwright.async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = await browser.new_context(**PHONE)  # type: ignore[arg-type]
            yield context
        finally:
            await browser.close()


async def open_shop(http: httpx.AsyncClient) -> None:
    shop = {**SHOP, "settings": {**SHOP["settings"], "name": "Harbour Café", "fee_fixed": 0,  # type: ignore[dict-item]
                                 "fee_per_mille": 0}}  # fmt: skip
    assert (await http.post("/v1/tenants", json=shop)).status_code == 201
    assert (await http.post("/v1/tenants/shop-a/wallets", json={"customer": "anna"})).status_code == 201
    top_up = {"customer": "anna", "amount": 8_000, "currency": "EUR", "reference": "psp"}
    assert (await http.post("/v1/tenants/shop-a/top_ups", headers={"Idempotency-Key": "t"}, json=top_up)).is_success


def test_a_pay_link_is_paid_in_the_browser_and_its_webhook_arrives_signed(store_url: str) -> None:
    contact = f"+49151{uuid.uuid4().int % 10**8:08d}"

    async def go() -> None:
        async with (
            receiver() as hooks,
            serving(store_url) as (port, _, _),
            gateway(port, webhook_private=True, webhook_retry_seconds="0.2,0.4") as http,
            phone() as context,
        ):
            await open_shop(http)
            assert (await http.post("/v1/tenants/shop-a/wallets/anna/pin", json={"pin": PIN})).json()["pin_set"]
            endpoint = await http.post("/v1/tenants/shop-a/webhooks/endpoints",
                                       json={"url": hooks.url, "types": ["pay_link.paid"]})  # fmt: skip
            assert endpoint.status_code == 201, endpoint.text
            secret = endpoint.json()["secret"]
            body = {"amount": 3_450, "currency": "EUR", "reference": "Order 1001", "contact": contact, "send": True,
                    "description": "2 \u00d7 Harbour breakfast\nPick-up Saturday, 10:00"}  # fmt: skip
            link = (await http.post("/v1/tenants/shop-a/pay_links", headers={"Idempotency-Key": "l1"},
                                    json=body)).json()  # fmt: skip
            page = await context.new_page()
            await page.goto(link["url"])
            assert await page.text_content("#amount") == "34.50 EUR"
            assert (await page.text_content("#status") or "").strip() == "open"
            await page.screenshot(path=str(SHOTS / "pay-link-page.png"), full_page=True)
            await page.fill("input[name=customer]", "anna")
            await page.fill("input[name=pin]", PIN)
            await page.click("button[type=submit]")
            await page.wait_for_selector("input[name=code]")
            rows = [row for row in read_outbox(store_url, contact) if row["kind"] == "pay_link_code"]
            code = re.match(r"([0-9]{6})", rows[-1]["body"]).group(1)  # type: ignore[union-attr]
            await page.fill("input[name=code]", code)
            await page.click("button[type=submit]")
            await page.wait_for_selector("#receipt")
            assert await page.text_content("#paid") == "34.50 EUR"
            assert (await page.text_content("#status") or "").strip() == "paid"
            await page.screenshot(path=str(SHOTS / "pay-link-receipt.png"), full_page=True)
            await hooks.wait_for(lambda: any(status < 300 for _, _, status in hooks.got), 20)
            headers, delivered, _ = next(item for item in hooks.got if item[2] < 300)
            event = verified(secret, headers, delivered)
            assert event["type"] == "pay_link.paid" and event["data"]["operation_id"] == link["id"]
            record = event["data"]["record"]
            assert (record["link"], record["amount"], record["status"]) == (link["id"], 3_450, "paid")
            assert (await http.get("/v1/tenants/shop-a/wallets/anna")).json()["available"] == 4_550

    asyncio.run(go())


def test_the_wallet_page_shows_a_code_with_the_network_cut_and_a_terminal_pays_with_it(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (port, _, _), gateway(port) as http, phone() as context:
            await open_shop(http)
            await http.post("/v1/tenants/shop-a/payments", headers={"Idempotency-Key": "p1"},
                            json={"customer": "anna", "amount": 1_250, "currency": "EUR",
                                  "order_reference": "Lunch"})  # fmt: skip
            signin = (await http.post("/v1/tenants/shop-a/wallets/anna/page_links")).json()["url"]
            page = await context.new_page()
            await page.goto(signin)
            await page.wait_for_selector("#code-digits[data-code]")
            assert await page.text_content("#balance") == "67.50 EUR"
            assert "-12.50 EUR" in (await page.text_content("#statement") or "")
            # the service worker takes the page, then the phone loses its network
            await page.evaluate("navigator.serviceWorker.ready.then(() => true)")
            await page.reload()
            await page.wait_for_function("navigator.serviceWorker.controller !== null")
            await page.wait_for_selector("#code-digits[data-code]")
            await page.screenshot(path=str(SHOTS / "wallet-page.png"), full_page=True)
            await context.set_offline(True)
            await page.reload()
            await page.wait_for_selector("#offline:not([hidden])")
            await page.wait_for_selector("#code-digits[data-code]")
            assert await page.text_content("#balance") == "67.50 EUR"
            # the terminal reads the code off the screen (as a scanner reads the QR or the barcode)
            shown = (await page.text_content("#code-digits") or "").replace(" ", "")
            assert re.fullmatch(r"28[0-9]{16}", shown)
            assert await page.get_attribute("#code-digits", "data-code") == shown
            assert await page.locator("#code-qr svg").count() == 1 and await page.locator("#code-barcode rect").count()
            await page.screenshot(path=str(SHOTS / "wallet-page-offline.png"), full_page=True)
            keys = await page.evaluate("JSON.parse(localStorage.getItem('wallet-device-keys'))")
            step = paycodes.step_at(time.time_ns())
            expected = {paycodes.make_code(bytes.fromhex(keys["seed"]), bytes.fromhex(keys["code_key"]),
                                           keys["number"], moment) for moment in (step, step - 1)}  # fmt: skip
            assert shown in expected, json.dumps(keys)
            paid = await http.post("/v1/tenants/shop-a/code_payments",
                                   json={"code": shown, "amount": 480, "currency": "EUR", "terminal": "bar-1",
                                         "transaction": "tx-1"})  # fmt: skip
            assert paid.status_code == 201, paid.text
            assert (await http.get("/v1/tenants/shop-a/wallets/anna")).json()["available"] == 6_270

    asyncio.run(go())

"""Webhooks end to end: endpoints registered over HTTP, events of a real core posted to a local receiver and
verified with the `standardwebhooks` package, retries with backoff, the delivery log, redelivery, secret
rotation, pausing; and at-least-once across a gateway restart and a ledger restart, on both stores."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from standardwebhooks import Webhook, WebhookVerificationError

from gateway import GatewayConfig
from gateway._models import EVENT_TYPES
from gateway._webhooks import UrlRefused, check_url
from ledger.auth import open_key_store
from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.server import ledger_service, start_server, wallet_service
from ledger.server._metrics import LedgerMetrics
from ledger.wallet import EVENT_TYPES_ALL, Wallets
from tests.integration.test_gateway import SHOP, gateway, problem

FAST = {"webhook_private": True, "webhook_retry_seconds": "0.2,0.4,0.4"}


@dataclass
class Receiver:
    """A webhook receiver on a free port: what it got, answering each request with the next status of
    `answers` (200 once they run out)."""

    url: str = ""
    answers: list[int] = field(default_factory=list)
    got: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status = self.answers.pop(0) if self.answers else 200
        headers = {name.decode(): value.decode() for name, value in scope["headers"]}
        self.got.append((headers, body, status))
        self.arrived.set()
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    def delivered(self) -> dict[str, bytes]:
        """Bodies answered 2xx, by webhook-id."""
        return {headers["webhook-id"]: body for headers, body, status in self.got if status < 300}

    async def wait_for(self, check: Callable[[], bool], seconds: float = 15.0) -> None:
        async with asyncio.timeout(seconds):
            while not check():
                self.arrived.clear()
                await self.arrived.wait()


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    server = uvicorn.Server(uvicorn.Config(found, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    found.url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/hooks"
    try:
        yield found
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def ledger_at(
    url: str, address: str = "127.0.0.1:0", *, auth: bool = False, capacity: int = 1_000
) -> AsyncIterator[int]:
    """A core with the Wallet service on `address`; its port."""
    from ledger.auth import Authenticator

    config = LedgerConfig(store=url, accounts_max=capacity, transfers_max=10 * capacity, pending_transfers_max=100,
                          auth="required" if auth else "off")  # fmt: skip
    wallets = Wallets()
    async with await Ledger.open(config, domain=wallets) as ledger:
        authenticator = await Authenticator.open(config) if auth else None
        metrics = LedgerMetrics()
        services = [ledger_service(ledger, metrics), wallet_service(ledger, wallets, metrics)]
        server, port, _ = await start_server(ledger, address, metrics=metrics, auth=authenticator, services=services)
        try:
            yield port
        finally:
            await server.stop(None)
            if authenticator is not None:
                await authenticator.close()


def verified(secret: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(body, headers)
    return payload


async def pay(http: httpx.AsyncClient, key: str, amount: int, headers: dict[str, str] | None = None) -> str:
    order = {"customer": "anna", "amount": amount, "currency": "EUR", "order_reference": key}
    answer = await http.post(
        "/v1/tenants/shop-a/payments", headers={**(headers or {}), "Idempotency-Key": key}, json=order
    )
    assert answer.status_code == 201, answer.text
    payment_id: str = answer.json()["id"]
    return payment_id


async def shop_with_credit(http: httpx.AsyncClient, headers: dict[str, str] | None = None) -> None:
    assert (await http.post("/v1/tenants", headers=headers, json=SHOP)).status_code == 201
    assert (
        await http.post("/v1/tenants/shop-a/wallets", headers=headers, json={"customer": "anna"})
    ).status_code == 201
    top_up = {"customer": "anna", "amount": 10_000, "currency": "EUR", "reference": "psp"}
    topped = await http.post(
        "/v1/tenants/shop-a/top_ups", headers={**(headers or {}), "Idempotency-Key": "t"}, json=top_up
    )
    assert topped.status_code == 201, topped.text


def test_the_gateway_knows_every_event_type_of_the_feed() -> None:
    assert set(EVENT_TYPES) == set(EVENT_TYPES_ALL) and len(EVENT_TYPES) == len(set(EVENT_TYPES))


def test_webhooks_are_signed_retried_logged_redelivered_rotated_and_paused(store_url: str) -> None:
    async def go() -> None:
        async with ledger_at(store_url) as port, receiver() as hooks, gateway(port, **FAST) as http:
            await shop_with_credit(http)
            # registered with an Idempotency-Key: a retry answers the same endpoint, another body is refused
            body = {"url": hooks.url, "types": ["payment.succeeded", "refund.succeeded"], "description": "orders"}
            created = await http.post("/v1/tenants/shop-a/webhooks/endpoints", json=body,
                                      headers={"Idempotency-Key": "hook-1"})  # fmt: skip
            assert created.status_code == 201, created.text
            endpoint = created.json()
            assert endpoint["secret"].startswith("whsec_") and endpoint["status"] == "enabled"
            again = await http.post("/v1/tenants/shop-a/webhooks/endpoints", json=body,
                                    headers={"Idempotency-Key": "hook-1"})  # fmt: skip
            assert (again.status_code, again.json(), again.headers["idempotent-replayed"]) == (201, endpoint, "true")
            other = await http.post("/v1/tenants/shop-a/webhooks/endpoints", json={**body, "description": "x"},
                                    headers={"Idempotency-Key": "hook-1"})  # fmt: skip
            problem(other, 422, "idempotency_key_reused", "Idempotency-Key")
            listed = (await http.get("/v1/tenants/shop-a/webhooks/endpoints")).json()
            assert [e["id"] for e in listed["data"]] == [endpoint["id"]] and listed["data"][0]["secret"] is None
            # the first attempt fails (500), the retry succeeds; a top-up (not subscribed) is never sent
            hooks.answers = [500]
            payment_id = await pay(http, "p1", 700)
            await hooks.wait_for(lambda: len(hooks.delivered()) == 1)
            [(headers, body_bytes, _status)] = [entry for entry in hooks.got if entry[2] == 200]
            assert [entry[2] for entry in hooks.got] == [500, 200]
            assert hooks.got[0][0]["webhook-id"] == headers["webhook-id"]  # the same id on every attempt
            event = verified(endpoint["secret"], headers, body_bytes)
            assert event["type"] == "payment.succeeded" and event["id"] == headers["webhook-id"]
            assert event["data"]["operation_id"] == payment_id and event["data"]["amount"] == 700
            assert event["timestamp"].endswith("Z") and event["data"]["tenant"] == "shop-a"
            with pytest.raises(WebhookVerificationError):
                verified(endpoint["secret"], headers, body_bytes.replace(b"700", b"701"))
            # the delivery log: one delivery, two attempts, and its body
            log = (await http.get("/v1/tenants/shop-a/webhooks/deliveries")).json()
            [delivery] = log["data"]
            assert (delivery["status"], delivery["attempts"], delivery["event_id"]) == ("succeeded", 2, event["id"])
            assert delivery["payload"] == event and delivery["last_status_code"] == 200
            one = (await http.get(f"/v1/tenants/shop-a/webhooks/deliveries/{delivery['id']}")).json()
            assert [(a["attempt"], a["status_code"]) for a in one["attempt_log"]] == [(1, 500), (2, 200)]
            assert (
                all(a["latency_ms"] >= 0 for a in one["attempt_log"]) and "HTTP 500" in one["attempt_log"][0]["error"]
            )
            # redelivery: the same webhook-id again
            redelivered = await http.post(f"/v1/tenants/shop-a/webhooks/deliveries/{delivery['id']}/redeliver")
            assert redelivered.status_code == 202, redelivered.text
            await hooks.wait_for(lambda: len(hooks.got) == 3)
            assert hooks.got[2][0]["webhook-id"] == event["id"]
            # rotation: the next webhook is signed with the new secret and, for a day, the old one too
            rotated = (await http.post(f"/v1/tenants/shop-a/webhooks/endpoints/{endpoint['id']}/secret/rotate")).json()
            assert rotated["secret"] != endpoint["secret"] and rotated["previous_secret_valid_until"]
            secret = (await http.get(f"/v1/tenants/shop-a/webhooks/endpoints/{endpoint['id']}/secret")).json()
            assert secret["secret"] == rotated["secret"]
            await pay(http, "p2", 100)
            await hooks.wait_for(lambda: len(hooks.delivered()) == 2)
            headers, body_bytes, _ = hooks.got[-1]
            assert len(headers["webhook-signature"].split(" ")) == 2
            assert verified(rotated["secret"], headers, body_bytes) == verified(endpoint["secret"], headers, body_bytes)
            # paused: events wait, and are delivered once it is enabled again
            paused = await http.patch(
                f"/v1/tenants/shop-a/webhooks/endpoints/{endpoint['id']}", json={"enabled": False}
            )
            assert paused.json()["status"] == "disabled"
            await asyncio.sleep(1.2)  # the leader has seen it
            await pay(http, "p3", 50)
            await asyncio.sleep(1.5)
            assert len(hooks.delivered()) == 2
            await http.patch(f"/v1/tenants/shop-a/webhooks/endpoints/{endpoint['id']}", json={"enabled": True})
            await hooks.wait_for(lambda: len(hooks.delivered()) == 3)
            # deleted: gone for reads, its log stays, a redelivery is refused
            assert (await http.delete(f"/v1/tenants/shop-a/webhooks/endpoints/{endpoint['id']}")).status_code == 204
            problem(await http.get(f"/v1/tenants/shop-a/webhooks/endpoints/{endpoint['id']}"), 404, "not_found")
            problem(await http.delete(f"/v1/tenants/shop-a/webhooks/endpoints/{endpoint['id']}"), 404, "not_found")
            problem(await http.post(f"/v1/tenants/shop-a/webhooks/deliveries/{delivery['id']}/redeliver"), 409,
                    "endpoint_deleted")  # fmt: skip
            assert len((await http.get("/v1/tenants/shop-a/webhooks/deliveries")).json()["data"]) == 3
            metrics = (await http.get("/metrics")).text
            assert 'gateway_webhook_attempts_total{outcome="retrying"} 1.0' in metrics

    asyncio.run(go())


def test_a_receiver_that_keeps_failing_is_given_up_after_the_schedule(tmp_path: Path) -> None:
    async def go() -> None:
        journal = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
        async with ledger_at(journal) as port, receiver() as hooks, gateway(port, **FAST) as http:
            await shop_with_credit(http)
            endpoint = (
                await http.post(
                    "/v1/tenants/shop-a/webhooks/endpoints", json={"url": hooks.url, "types": ["payment.succeeded"]}
                )
            ).json()
            hooks.answers = [503] * 10
            await pay(http, "p1", 100)
            await hooks.wait_for(lambda: len(hooks.got) == 4)  # the first attempt and three retries
            await asyncio.sleep(1.0)
            assert len(hooks.got) == 4
            [failed] = (await http.get("/v1/tenants/shop-a/webhooks/deliveries?status=failed")).json()["data"]
            assert (failed["attempts"], failed["last_status_code"], failed["next_attempt_at"]) == (4, 503, None)
            assert failed["endpoint_id"] == endpoint["id"]
            assert (await http.get("/v1/tenants/shop-a/webhooks/deliveries?status=pending")).json()["data"] == []

    asyncio.run(go())


def test_no_event_is_lost_or_skipped_across_a_gateway_restart_and_a_ledger_restart(store_url: str) -> None:
    """The receiver is down while the first events are made; the gateway stops mid-retry and more events are
    made while it is away; the ledger restarts under a running gateway. Every event arrives, signed, under
    its stable id."""

    async def go() -> None:
        store = f"sqlite:///{tempfile.mkdtemp(prefix='gateway-')}/gateway.sqlite3"
        if not store_url.startswith("sqlite:"):
            store = store_url  # the gateway's tables beside the ledger's, as `ledger serve` puts them
        settings = {**FAST, "webhook_retry_seconds": "0.3,2,2,2", "store": store}
        payments: list[str] = []
        async with receiver() as hooks:
            async with ledger_at(store_url) as port:
                async with gateway(port, **settings) as http:
                    await shop_with_credit(http)
                    endpoint = (
                        await http.post(
                            "/v1/tenants/shop-a/webhooks/endpoints",
                            json={"url": hooks.url, "types": ["payment.succeeded"]},
                        )
                    ).json()
                    hooks.answers = [500] * 4
                    payments.append(await pay(http, "p1", 100))
                    await hooks.wait_for(lambda: len(hooks.got) == 2)  # first attempt and one retry, both failed
                # the gateway stopped with p1's next retry 2 s away; one more comes and goes
                async with gateway(port, **settings) as http:
                    payments.append(await pay(http, "p2", 200))
                async with gateway(port, **settings) as http:
                    hooks.answers = []
                    await hooks.wait_for(lambda: len(hooks.delivered()) == 2)
                    ledger_port = port
            # the ledger restarts on the same port and store, under a gateway that keeps running
            async with gateway(ledger_port, **settings) as http:
                async with ledger_at(store_url, f"127.0.0.1:{ledger_port}"):
                    payments.append(await pay(http, "p3", 300))
                async with ledger_at(store_url, f"127.0.0.1:{ledger_port}"):
                    payments.append(await pay(http, "p4", 400))
                    await hooks.wait_for(lambda: len(hooks.delivered()) == 4, seconds=30)
                    log = (await http.get("/v1/tenants/shop-a/webhooks/deliveries?limit=100")).json()["data"]
        delivered = hooks.delivered()
        events = [verified(endpoint["secret"], headers, body) for headers, body, status in hooks.got if status == 200]
        assert sorted(event["data"]["operation_id"] for event in events) == sorted(payments)
        assert len(delivered) == 4 and {event["id"] for event in events} == set(delivered)
        assert len(log) == 4 and {entry["status"] for entry in log} == {"succeeded"}

    asyncio.run(go())


def test_endpoints_need_wallet_webhooks_for_the_keys_own_tenant(store_url: str) -> None:
    tokens: dict[str, str] = {}
    keys = open_key_store(store_url)
    try:
        for who, tenant, role in (("a_shop", "shop-a", "shop"), ("a_pos", "shop-a", "pos"),
                                  ("b_shop", "shop-b", "shop"), ("admin", "ops", "admin")):  # fmt: skip
            _, tokens[who] = keys.create_key(tenant=tenant, role=role, ledgers=[], name=who)
    finally:
        keys.close()

    def as_(who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[who]}"}

    async def go() -> None:
        async with (
            ledger_at(store_url, auth=True) as port,
            receiver() as hooks,
            gateway(port, **FAST, events_key=tokens["admin"]) as http,
        ):
            await shop_with_credit(http, as_("admin"))
            path = "/v1/tenants/shop-a/webhooks/endpoints"
            body = {"url": hooks.url, "types": ["payment.succeeded"]}
            problem(await http.post(path, json=body), 401, "unauthenticated", "Authorization")
            denied = problem(await http.post(path, headers=as_("a_pos"), json=body), 403, "permission_denied")
            assert "wallet.webhooks" in denied["detail"]
            problem(await http.post(path, headers=as_("b_shop"), json=body), 403, "permission_denied")
            problem(await http.get(path, headers=as_("b_shop")), 403, "permission_denied")
            assert (await http.get(path, headers=as_("admin"))).json()["data"] == []  # nothing was made
            created = await http.post(path, headers=as_("a_shop"), json=body)
            assert created.status_code == 201, created.text
            endpoint = created.json()
            for who in ("a_pos", "b_shop"):
                for answer in (
                    await http.get(f"{path}/{endpoint['id']}/secret", headers=as_(who)),
                    await http.post(f"{path}/{endpoint['id']}/secret/rotate", headers=as_(who)),
                    await http.patch(f"{path}/{endpoint['id']}", headers=as_(who), json={"enabled": False}),
                    await http.delete(f"{path}/{endpoint['id']}", headers=as_(who)),
                    await http.get("/v1/tenants/shop-a/webhooks/deliveries", headers=as_(who)),
                ):
                    problem(answer, 403, "permission_denied")
            # another tenant's path shows nothing of shop-a's even to its own key
            assert (await http.get("/v1/tenants/shop-b/webhooks/endpoints", headers=as_("b_shop"))).json()["data"] == []
            other = f"/v1/tenants/shop-b/webhooks/endpoints/{endpoint['id']}"
            problem(await http.get(other, headers=as_("b_shop")), 404, "not_found")
            # nothing changed by the refused calls: still enabled, same secret; and deliveries flow
            same = (await http.get(f"{path}/{endpoint['id']}/secret", headers=as_("a_shop"))).json()
            assert same["secret"] == endpoint["secret"]
            await pay(http, "p1", 100, as_("a_shop"))
            await hooks.wait_for(lambda: len(hooks.delivered()) == 1)

    asyncio.run(go())


def test_webhook_urls_and_bodies_are_checked(tmp_path: Path) -> None:
    for url in ("ftp://example.com/x", "http://", "https://user:pw@example.com/", "not a url", "http://[::1/"):
        with pytest.raises(UrlRefused):
            check_url(url, private_allowed=True)
    for url in ("http://127.0.0.1/x", "http://localhost:8080/", "http://10.0.0.5/", "http://169.254.169.254/",
                "http://[::1]/", "http://[::ffff:10.0.0.1]/", "http://0.0.0.0/"):  # fmt: skip
        with pytest.raises(UrlRefused, match="LEDGER_GATEWAY_WEBHOOK_PRIVATE"):
            check_url(url, private_allowed=False)
        check_url(url, private_allowed=True)
    check_url("https://hooks.example.com/wallet?x=1", private_allowed=False)

    async def go() -> None:
        async with ledger_at(f"sqlite:///{tmp_path / 'journal.sqlite3'}") as port, gateway(port) as http:
            await shop_with_credit(http)
            path = "/v1/tenants/shop-a/webhooks/endpoints"
            problem(await http.post(path, json={"url": "http://127.0.0.1:9/x"}), 400, "url_refused", "url")
            problem(await http.post(path, json={"url": "https://example.com", "types": ["payment.done"]}), 400,
                    "invalid_request", "types[0]")  # fmt: skip
            problem(await http.post(path, json={"url": "https://example.com", "extra": 1}), 400, "invalid_request",
                    "extra")  # fmt: skip
            problem(await http.post(path, json={"url": 5}), 400, "invalid_request", "url")
            problem(await http.post("/v1/tenants/nobody/webhooks/endpoints", json={"url": "https://example.com"}),
                    404, "tenant_not_found")  # fmt: skip
            problem(await http.get(f"{path}/we_0123"), 400, "invalid_request")
            problem(await http.get("/v1/tenants/shop-a/webhooks/deliveries?status=lost"), 400, "invalid_request")
            assert (await http.get(path)).json()["data"] == []
            # the gateway's config refuses a bad schedule at start
            with pytest.raises(ValueError, match="webhook_retry_seconds"):
                GatewayConfig(webhook_retry_seconds="5,soon")

    asyncio.run(go())


def test_a_grant_job_shows_its_progress_and_a_run_sent_again_pays_nobody_twice(store_url: str) -> None:
    """A grant job is the gateway's too: 202 at once, its progress by GET; one stopped with its gateway reads
    interrupted, and its run sent again grants the rest, no customer twice."""

    async def go() -> None:
        store = f"sqlite:///{tempfile.mkdtemp(prefix='gateway-')}/gateway.sqlite3"
        tenant = {**SHOP, "settings": {**SHOP["settings"], "max_balance": 1_000}}  # type: ignore[dict-item]
        items = [{"customer": f"c{n}", "amount": 10 + n % 7} for n in range(2_500)]
        items[1_234]["amount"] = 5_000  # over the tenant's max_balance: refused alone
        run = {"id": "benefits-1", "currency": "EUR", "items": items, "open_wallets": True}

        async def finished(http: httpx.AsyncClient, location: str) -> dict[str, Any]:
            async with asyncio.timeout(60):
                while (job := (await http.get(location)).json())["status"] == "running":
                    assert 0 <= job["done"] <= job["total"]
                    await asyncio.sleep(0.05)
            return job

        async with ledger_at(store_url, capacity=50_000) as port:
            async with gateway(port, store=store) as http:
                assert (await http.post("/v1/tenants", json=tenant)).status_code == 201
                accepted = await http.post("/v1/tenants/shop-a/grant_jobs", json=run)
                assert accepted.status_code == 202, accepted.text
                assert accepted.json()["status"] == "running" and accepted.json()["total"] == 2_500
                job = await finished(http, accepted.headers["location"])
                assert (job["status"], job["done"], job["granted"], job["refused"]) == ("succeeded", 2_500, 2_499, 1)
                assert job["granted_amount"] == sum(item["amount"] for item in items) - 5_000
                assert job["refusals"] == [{"customer": "c1234", "status": "refused", "code": "max_balance_exceeded",
                                            "detail": job["refusals"][0]["detail"], "id": None, "wallet_id": None,
                                            "amount": None, "balance": None, "expires_at": None}]  # fmt: skip
                # the same run again: every grant replays, no balance moves
                again = await finished(http, (await http.post("/v1/tenants/shop-a/grant_jobs", json=run)).headers[
                    "location"])  # fmt: skip
                assert (again["status"], again["granted"], again["refused"]) == ("succeeded", 2_499, 1)
                assert (await http.get("/v1/tenants/shop-a/wallets/c3")).json()["available"] == 13
                # a bigger run, stopped with its gateway
                big = {**run, "id": "benefits-2", "items": [{"customer": f"c{n}", "amount": 1} for n in range(20_000)]}
                location = (await http.post("/v1/tenants/shop-a/grant_jobs", json=big)).headers["location"]
            async with gateway(port, store=store) as http:
                stopped = (await http.get(location)).json()
                assert stopped["status"] == "interrupted" and stopped["done"] < 20_000 and stopped["message"]
                done = await finished(http, (await http.post("/v1/tenants/shop-a/grant_jobs", json=big)).headers[
                    "location"])  # fmt: skip
                assert (done["status"], done["granted"], done["refused"]) == ("succeeded", 20_000, 0)
                for customer, amount in (("c3", 14), ("c19999", 1), ("c2600", 1)):
                    assert (await http.get(f"/v1/tenants/shop-a/wallets/{customer}")).json()["available"] == amount
                problem(await http.get("/v1/tenants/shop-a/grant_jobs/gj_00000000000000000000000a"), 404, "not_found")
                problem(await http.post("/v1/tenants/shop-a/grant_jobs", json={**run, "currency": "USD"}), 400,
                        "currency_mismatch")  # fmt: skip
                problem(await http.post("/v1/tenants/shop-a/grant_jobs", json={**run, "items": []}), 400,
                        "invalid_request", "items")  # fmt: skip

    asyncio.run(go())


SERVE_LINE = re.compile(r"ledger serving gRPC on 127\.0\.0\.1:(\d+) .* HTTP on (http://127\.0\.0\.1:\d+) ")


@contextmanager
def ledger_serve(store_url: str, log_path: Path, grpc_port: int = 0) -> Iterator[tuple[int, str]]:
    """`ledger serve` in its own process, keys required: its gRPC port and HTTP URL; SIGKILLed at the end."""
    started_before = len(SERVE_LINE.findall(log_path.read_text())) if log_path.exists() else 0
    environment = {
        **os.environ, "LEDGER_ACCOUNTS_MAX": "1000", "LEDGER_TRANSFERS_MAX": "10000", "LEDGER_AUTH": "required",
        "LEDGER_METRICS_ADDRESS": "", "LEDGER_HTTP_ADDRESS": "127.0.0.1:0", "LEDGER_GATEWAY_WEBHOOK_PRIVATE": "true",
        "LEDGER_GATEWAY_WEBHOOK_RETRY_SECONDS": "0.3,1,1,1",
    }  # fmt: skip
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ledger", "serve", "--address", f"127.0.0.1:{grpc_port}", "--store", store_url],
            stdout=log, stderr=log, env=environment,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(started := SERVE_LINE.findall(log_path.read_text())) == started_before:
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        port, url = started[-1]
        yield int(port), url
    finally:
        process.kill()  # no drain: as a crash would
        process.wait(30)


def test_ledger_serve_delivers_with_keys_required_and_after_being_killed_mid_delivery(
    store_url: str, tmp_path: Path
) -> None:
    """The embedded gateway reads the feeds with the server's own in-memory key (no admin key configured), keeps
    its state beside the journal, and after a SIGKILL mid-retry the restarted server delivers the event."""
    keys = open_key_store(store_url)
    try:
        admin = {"Authorization": f"Bearer {keys.create_key(tenant='ops', role='admin', ledgers=[], name='a')[1]}"}
        shop = {"Authorization": f"Bearer {keys.create_key(tenant='shop-a', role='shop', ledgers=[], name='s')[1]}"}
    finally:
        keys.close()
    log_path = tmp_path / "serve.log"

    async def go() -> None:
        async with receiver() as hooks:
            with ledger_serve(store_url, log_path) as (grpc_port, url):
                async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                    await shop_with_credit(http, admin)
                    created = await http.post("/v1/tenants/shop-a/webhooks/endpoints", headers=shop,
                                              json={"url": hooks.url, "types": ["payment.succeeded"]})  # fmt: skip
                    assert created.status_code == 201, created.text
                    secret = created.json()["secret"]
                    hooks.answers = [500] * 3
                    payment_id = await pay(http, "p1", 100, shop)
                    await hooks.wait_for(lambda: len(hooks.got) >= 2)
            if store_url.startswith("sqlite:"):
                assert (tmp_path / "gateway.sqlite3").exists()
            hooks.answers = []
            with ledger_serve(store_url, log_path, grpc_port) as (_, url):
                await hooks.wait_for(lambda: len(hooks.delivered()) == 1, seconds=30)
                async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                    [delivery] = (await http.get("/v1/tenants/shop-a/webhooks/deliveries", headers=shop)).json()["data"]
        [(headers, body)] = [(h, b) for h, b, status in hooks.got if status == 200]
        event = verified(secret, headers, body)
        assert event["data"]["operation_id"] == payment_id and delivery["event_id"] == event["id"]
        # (an attempt the kill cut off before it was recorded is not in the log: the receiver saw it)
        assert delivery["status"] == "succeeded" and delivery["attempts"] >= 2 and len(hooks.got) >= 3
        assert {h["webhook-id"] for h, _, _ in hooks.got} == {event["id"]}

    asyncio.run(go())


def test_one_of_several_workers_delivers_and_another_takes_over_when_it_stops(tmp_path: Path) -> None:
    async def go() -> None:
        store = f"sqlite:///{tmp_path / 'gateway.sqlite3'}"
        async with ledger_at(f"sqlite:///{tmp_path / 'journal.sqlite3'}") as port, receiver() as hooks:
            async with gateway(port, **FAST, store=store) as first:
                async with gateway(port, **FAST, store=store) as second:
                    await shop_with_credit(first)
                    created = await second.post("/v1/tenants/shop-a/webhooks/endpoints",
                                                json={"url": hooks.url, "types": ["payment.succeeded"]})  # fmt: skip
                    secret = created.json()["secret"]
                    for n in range(5):
                        await pay(first if n % 2 else second, f"p{n}", 10 + n)
                    await hooks.wait_for(lambda: len(hooks.delivered()) == 5)
                await pay(first, "p5", 15)  # the second worker is gone; the first delivers, as before or now
                await hooks.wait_for(lambda: len(hooks.delivered()) == 6)
            async with gateway(port, **FAST, store=store) as third:
                await pay(third, "p6", 16)
                await hooks.wait_for(lambda: len(hooks.delivered()) == 7)
        # Each event delivered; a second post of one can only come from a stop that cut off its recording.
        events = {h["webhook-id"]: verified(secret, h, b) for h, b, _ in hooks.got}
        assert sorted(event["data"]["amount"] for event in events.values()) == [10, 11, 12, 13, 14, 15, 16]
        assert len(hooks.got) <= len(events) + 1

    asyncio.run(go())

"""`ledger demo`: a shop's day through the Wallet service, on the running server or, when none runs, on a
temporary ledger of its own.

It books as a tenant of its own (DEMO_TENANT, `--tenant` for another), so it never touches a user's books:
the Wallet service gives the tenant its own ledger and derives every id from the tenant, the customer and
each step's idempotency key. The keys are fixed, so running it again retries every step: each answers its
first reply (declines included) and nothing moves twice. Without a server it runs the steps on a temporary
SQLite journal, restarts that ledger from its journal and runs them again, then deletes it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ledger.client import AsyncClient, ClientConfig, LedgerCallError, LedgerError, LedgerUnreachable
from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.server import ledger_service, start_server, sweep_expiries, wallet_service
from ledger.v1 import wallet_pb2
from ledger.wallet import Wallets

from ._ops import (
    CONNECT_SECONDS_MAX,
    EXIT_CALL_FAILED,
    EXIT_FAILED_ITEMS,
    Commands,
    add_connection_options,
    client_config,
)
from ._parse import Money, format_time
from ._wallet import describe_settings, result_name, shown

w = wallet_pb2
DEMO_TENANT: Final = "demo-shop"
EUR: Final = Money(2, "EUR")
DEMO_SETTINGS: Final = w.TenantSettings(
    name="Demo shop", self_topup=True, topup_min=5_00, topup_max=200_00, partial_payment=True, fee_fixed=10,
    fee_per_mille=15, credit_expiry_seconds=365 * 86_400,
)  # fmt: skip
"""Partial payment, a fee for paying with credit (0.10 EUR + 1.5 %), top-ups of 5.00 to 200.00 EUR, and
credit that expires after a year unless it says otherwise."""
CUSTOMERS: Final = ("anna", "ben")
DEMO_ACCOUNTS_MAX: Final = 1_000
DEMO_TRANSFERS_MAX: Final = 10_000
"""The temporary ledger's engine: room for the demo, not for millions of transfers."""


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "demo",
        help="a shop's day through the Wallet service (top-ups, payments with a fee, a retry, a refund, a hold)",
        description="Runs on the server at --server (default LEDGER_SERVER, else 127.0.0.1:7100) as a tenant of "
        "its own; when no server answers at the default address, on a temporary ledger that it deletes "
        "afterwards. Run it again: every step answers its first reply and nothing moves twice.",
    )
    add_connection_options(parser)
    parser.add_argument(
        "--tenant",
        default=DEMO_TENANT,
        help=f"the tenant to book as (default {DEMO_TENANT}; another one for a key of that tenant)",
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    # A server named by the operator must answer; the default address may simply have nobody serving.
    named = args.server is not None or bool(os.environ.get("LEDGER_SERVER"))
    return asyncio.run(_demo(client_config(args), args.tenant, named))


async def _demo(config: ClientConfig, tenant: str, named: bool) -> int:
    try:
        async with AsyncClient(config) as client:
            try:
                await client.wait_for_server(min(CONNECT_SECONDS_MAX, config.timeout_seconds))
            except LedgerUnreachable as exc:
                if named:
                    raise
                print(f"{exc}: no ledger serves there (`ledger serve` starts one).")
            else:
                print(f"The ledger at {config.server}{await _describe(client)}:")
                verdict = await run_steps(client, tenant)
                if verdict == FIRST_RUN:
                    server = f" --server {config.server}" if named else ""
                    print(
                        f"Run it again: every step answers its first reply and nothing moves twice. A wallet: "
                        f"ledger wallet balance {tenant} anna{server}"
                    )
                return 0 if verdict in (FIRST_RUN, RETRY) else EXIT_FAILED_ITEMS
        return await _on_a_temporary_ledger(tenant)
    except LedgerCallError as exc:
        print(f"ledger demo: error: {exc}", file=sys.stderr)
        print(
            f"  it books as tenant {tenant}: it needs a key of that tenant (an operator key creates it, a shop "
            "key books once it exists) or an admin key, or --tenant T for your key's tenant",
            file=sys.stderr,
        )
        return EXIT_CALL_FAILED
    except LedgerError as exc:
        print(f"ledger demo: error: {exc}", file=sys.stderr)
        return EXIT_CALL_FAILED


async def _describe(client: AsyncClient) -> str:
    try:
        info = await client.server_info()
    except LedgerCallError:  # a server from before GetServerInfo, or a key it refuses: the steps will say
        return ""
    return f" ({info.version}, engine {info.engine}{', store ' + info.store if info.store else ''})"


async def _on_a_temporary_ledger(tenant: str) -> int:
    """The steps on a ledger of the demo's own; then again after a restart from its journal: all replayed."""
    with tempfile.TemporaryDirectory(prefix="ledger-demo-") as directory:
        config = LedgerConfig(
            store=f"sqlite:///{Path(directory) / 'demo.sqlite3'}",
            accounts_max=DEMO_ACCOUNTS_MAX,
            transfers_max=DEMO_TRANSFERS_MAX,
            pending_transfers_max=DEMO_ACCOUNTS_MAX,
        )
        print(f"Running on a temporary ledger of its own instead ({directory}, deleted afterwards):")
        async with _served(config) as client:
            first = await run_steps(client, tenant)
        print("Restarting that ledger from its journal, and retrying the same steps:")
        async with _served(config) as client:
            again = await run_steps(client, tenant)
    return 0 if (first, again) == (FIRST_RUN, RETRY) else EXIT_FAILED_ITEMS


@asynccontextmanager
async def _served(config: LedgerConfig) -> AsyncIterator[AsyncClient]:
    """The ledger with the wallet domain, both services and the expiry sweep, as `ledger serve` runs them."""
    wallets = Wallets()
    async with await Ledger.open(config, domain=wallets) as ledger:
        server, port, _ = await start_server(ledger, services=[ledger_service(ledger), wallet_service(ledger, wallets)])
        sweeps = asyncio.get_running_loop().create_task(sweep_expiries(ledger, wallets))
        report = ledger.recovery
        if report.transfers_count:
            tenants = len(wallets.state.tenants)
            print(
                f"  (recovered {tenants} wallet tenant{'' if tenants == 1 else 's'}, {report.accounts_count} "
                f"accounts and {report.transfers_count} transfers from its journal)"
            )
        try:
            async with AsyncClient(ClientConfig(server=f"127.0.0.1:{port}")) as client:
                yield client
        finally:
            sweeps.cancel()
            await asyncio.gather(sweeps, return_exceptions=True)
            await server.stop(None)


FIRST_RUN: Final = "first run"
RETRY: Final = "retry"
UNEXPECTED: Final = "unexpected"


Replies = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    """Later steps find this one's reply under it (a payment to refund, a hold to capture)."""
    title: str
    call: Callable[[Replies], Awaitable[Any]]
    """The step's one call, given the replies of the steps before it; its reply has `result` and `message`."""
    said: Callable[[Any], str]
    """What an OK reply did, in a few words."""
    customer: str
    """The wallet the step moves money in or out of."""
    result: str = "OK"
    """What the step answers, every time (a decline is replayed as it was decided)."""
    moves: bool = True
    """Whether the step moves money on a first run (the retry of a payment and the decline do not)."""


def steps(client: AsyncClient, tenant: str) -> list[Step]:
    """The demo's day. Every write has a fixed key, so a second run is a retry of each step."""
    t = tenant

    def top_up(customer: str, amount: int, key: str, **fields: Any) -> Callable[[Replies], Awaitable[Any]]:
        request = w.TopUpRequest(tenant=t, customer=customer, amount=amount, key=key, **fields)
        return lambda _: client.top_up(request)

    def pay(customer: str, amount: int, order: str, partial: bool = False) -> Callable[[Replies], Awaitable[Any]]:
        request = w.PayRequest(tenant=t, customer=customer, amount=amount, key=f"demo:order-{order}",
                               order_reference=order, partial=partial)  # fmt: skip
        return lambda _: client.pay(request)

    def refund(replies: Replies) -> Awaitable[Any]:
        return client.refund(w.RefundRequest(tenant=t, payment_id=replies["1001"].payment_id, amount=5_00,
                                             key="demo:refund-1001", reason="a returned item"))  # fmt: skip

    def hold(_: Replies) -> Awaitable[Any]:
        return client.authorize_hold(w.AuthorizeHoldRequest(tenant=t, customer="ben", amount=6_00, key="demo:table-7",
                                                             seconds=3600, reference="table 7"))  # fmt: skip

    def capture(replies: Replies) -> Awaitable[Any]:
        return client.capture_hold(w.CaptureHoldRequest(tenant=t, hold_id=replies["hold"].hold_id, amount=4_50,
                                                        key="demo:capture-table-7"))  # fmt: skip

    def topped(reply: Any) -> str:
        until = format_time(reply.expires_at.ToNanoseconds())[:10] if reply.HasField("expires_at") else ""
        return f"{shown(reply.amount, EUR)} credited, {'expires ' + until if until else 'never expires'}"

    def paid(reply: Any) -> str:
        rest = f", {shown(reply.remainder, EUR)} left to pay another way" if reply.remainder else ""
        return f"{shown(reply.paid, EUR)} paid{rest}, fee {shown(reply.fee, EUR)}"

    def replayed(reply: Any) -> str:
        return f"the first reply again: payment {reply.payment_id[:8]}…, {shown(reply.paid, EUR)} paid"

    return [
        Step("purchase", "anna buys 50.00 EUR of credit", top_up("anna", 50_00, "demo:anna-purchase",
             source=w.TOP_UP_SOURCE_PURCHASE, reference="psp-4711", never_expires=True), topped, "anna"),
        Step("gift", "ben is given 10.00 EUR (a gift)", top_up("ben", 10_00, "demo:ben-gift",
             source=w.TOP_UP_SOURCE_GIFT, reference="welcome"), topped, "ben"),
        Step("1001", "anna pays order 1001, 12.00 EUR, in full", pay("anna", 12_00, "1001"), paid, "anna"),
        Step("1002", "anna pays order 1002, 80.00 EUR, in part", pay("anna", 80_00, "1002", partial=True), paid,
             "anna"),
        Step("retry", "the terminal retries that payment (same key)", pay("anna", 80_00, "1002", partial=True),
             replayed, "anna", moves=False),
        Step("refund", "5.00 EUR of order 1001 is refunded", refund,
             lambda r: f"{shown(r.amount, EUR)} back, {shown(r.refundable, EUR)} left to refund", "anna"),
        Step("hold", "a hold of 6.00 EUR on ben's wallet (table 7)", hold,
             lambda r: f"{shown(r.amount, EUR)} held until {format_time(r.expires_at.ToNanoseconds())[11:19]}Z",
             "ben"),
        Step("capture", "4.50 EUR of it is captured", capture,
             lambda r: f"{shown(r.amount, EUR)} captured, {shown(6_00 - r.amount, EUR)} released", "ben"),
        Step("1003", "ben pays order 1003, 20.00 EUR, in full", pay("ben", 20_00, "1003"), paid, "ben",
             result="INSUFFICIENT_FUNDS", moves=False),
    ]  # fmt: skip


async def run_steps(client: AsyncClient, tenant: str) -> str:
    """The tenant (made with the demo's settings if it is not there), the wallets, each step with what it
    answered and the wallet after it, then the balances. FIRST_RUN if every step answered as it should and
    moved money where it should, RETRY if every step answered as it should and nothing moved, else UNEXPECTED
    (printed)."""
    if (problem := await _tenant(client, tenant)) is not None:
        print(f"  {problem}")
        return UNEXPECTED
    for customer in CUSTOMERS:
        opened = await client.open_wallet(w.WalletRequest(tenant=tenant, customer=customer))
        if opened.result != w.WALLET_RESULT_OK:
            print(f"  opening {customer}'s wallet: {result_name(opened.result)} ({opened.message})")
            return UNEXPECTED
    print(f"  opened the wallets of {' and '.join(CUSTOMERS)}")
    balances = {customer: await _balance(client, tenant, customer) for customer in CUSTOMERS}
    as_expected, moved, as_first = True, False, True
    replies: Replies = {}
    for step in steps(client, tenant):
        reply = replies[step.name] = await step.call(replies)
        name = result_name(reply.result)
        said = step.said(reply) if reply.result == w.WALLET_RESULT_OK else f"{name} ({reply.message})"
        if name == "OK":
            said = f"OK, {said}"
        before = balances[step.customer]
        after = balances[step.customer] = await _balance(client, tenant, step.customer)
        moving = after != before
        as_expected &= name == step.result
        moved |= moving
        as_first &= moving == step.moves
        print(f"  {step.title:<45} {said} → {step.customer}: {_balance_text(after)}")
    for customer in CUSTOMERS:
        reply = await client.get_balance(w.WalletRequest(tenant=tenant, customer=customer))
        expiring = "; ".join(
            f"{shown(credit.amount, EUR)} expires {format_time(credit.expires_at.ToNanoseconds())[:10]}"
            for credit in reply.expiring
        )
        print(f"  {customer}'s wallet: {_balance_text(_amounts(reply))}{'; ' + expiring if expiring else ''}")
    if as_expected and not moved:
        print(
            "  A retry: every step answered its first reply, the decline too, and nothing moved twice "
            "(the keys are the demo's own, fixed per step)."
        )
        return RETRY
    if as_expected and as_first:
        return FIRST_RUN
    print("  Some steps answered otherwise than a first run or a retry would (see above).")
    return UNEXPECTED


async def _tenant(client: AsyncClient, tenant: str) -> str | None:
    """Make sure the tenant is there with the demo's settings; None, or what stands in the way."""
    reply = await client.get_tenant(w.GetTenantRequest(tenant=tenant))
    if reply.result == w.WALLET_RESULT_TENANT_NOT_FOUND:
        reply = await client.create_tenant(w.CreateTenantRequest(tenant=tenant, currency="EUR", settings=DEMO_SETTINGS))
    if reply.result != w.WALLET_RESULT_OK:
        return f"tenant {tenant}: {result_name(reply.result)} ({reply.message})"
    if reply.currency != "EUR" or reply.settings != DEMO_SETTINGS:
        return (
            f"tenant {tenant} exists with other settings ({reply.currency}: "
            f"{describe_settings(reply.settings, Money(reply.currency_scale, reply.currency))}); the demo books "
            "as a tenant of its own settings: --tenant T for another"
        )
    print(f"  tenant {tenant}: {reply.currency} in ledger {reply.ledger}: {describe_settings(reply.settings, EUR)}")
    return None


async def _balance(client: AsyncClient, tenant: str, customer: str) -> tuple[int, int, int]:
    return _amounts(await client.get_balance(w.WalletRequest(tenant=tenant, customer=customer)))


def _amounts(reply: Any) -> tuple[int, int, int]:
    return reply.available, reply.held, reply.posted


def _balance_text(amounts: tuple[int, int, int]) -> str:
    available, held, _ = amounts
    return f"{shown(available, EUR)} to spend" + (f", {shown(held, EUR)} held" if held else "")

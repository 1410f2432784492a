"""The Ledger service refuses writes to wallet tenants' ledgers (DOMAIN_LEDGER_FIRST and up), on every write
path and before anything is applied; the Wallet service, which writes them through Ledger.operation(), goes on
working beside it, and the Ledger service still reads them. Over gRPC on both stores, and on the Ledger itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest

from ledger.auth import Authenticator, open_key_store
from ledger.client import AsyncClient, ClientConfig
from ledger.config import LedgerConfig
from ledger.core import Ledger, LedgerReserved
from ledger.engine import (
    Account,
    Transfer,
    TransferFlags,
    pack_accounts,
    pack_transfers,
    unpack_account_results,
    unpack_transfer_results,
)
from ledger.records.limits import DOMAIN_LEDGER_FIRST
from ledger.server import ledger_service, start_server
from ledger.server._wallet import wallet_service
from ledger.v1 import ledger_pb2, ledger_pb2_grpc, types_pb2
from ledger.v1 import wallet_pb2 as w
from ledger.wallet import WALLET_LEDGER_FIRST, Wallets

OK = 1
OWN = 1
"""A ledger of our own books, below the wallet's."""


def test_the_wallet_takes_its_ledgers_from_the_boundary() -> None:
    assert WALLET_LEDGER_FIRST == DOMAIN_LEDGER_FIRST == 2**31


def u128(value: int) -> types_pb2.Uint128:
    return types_pb2.Uint128(lo=value & (2**64 - 1), hi=value >> 64)


def transfer(transfer_id: int, debit: int, credit: int, amount: int, ledger: int, **fields: Any) -> types_pb2.Transfer:
    return types_pb2.Transfer(id=u128(transfer_id), debit_account_id=u128(debit), credit_account_id=u128(credit),
                              amount=amount, ledger=ledger, code=1, **fields)  # fmt: skip


def packed(*transfers: Transfer) -> ledger_pb2.PackedTransfers:
    return ledger_pb2.PackedTransfers(records=pack_transfers(list(transfers)))


@asynccontextmanager
async def serving(url: str, *, auth: bool = False) -> AsyncIterator[tuple[Ledger, int]]:
    config = LedgerConfig(
        store=url, accounts_max=1_000, transfers_max=10_000, pending_transfers_max=100,
        auth="required" if auth else "off",
    )  # fmt: skip
    wallets = Wallets()
    async with await Ledger.open(config, domain=wallets) as ledger:
        authenticator = await Authenticator.open(config) if auth else None
        services = [ledger_service(ledger), wallet_service(ledger, wallets)]
        server, port, _ = await start_server(ledger, auth=authenticator, services=services)
        try:
            yield ledger, port
        finally:
            await server.stop(None)
            if authenticator is not None:
                await authenticator.close()


async def refused(call: Awaitable[Any]) -> str:
    """The message of a call refused PERMISSION_DENIED."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED, info.value.details()
    return info.value.details() or ""


def saying(ledger: int) -> str:
    return f"ledger {ledger} belongs to a wallet tenant"


def test_every_write_path_refuses_a_wallet_ledger_and_applies_nothing(store_url: str) -> None:
    async def go() -> None:
        async with serving(store_url) as (ledger, port):
            address = f"127.0.0.1:{port}"
            async with AsyncClient(ClientConfig(server=address, timeout_seconds=10)) as c:
                tenant = await c.create_tenant(w.CreateTenantRequest(tenant="shop-a", currency="EUR"))
                assert tenant.result == OK
                anna = await c.open_wallet(w.WalletRequest(tenant="shop-a", customer="anna"))
                topped = await c.top_up(w.TopUpRequest(tenant="shop-a", customer="anna", amount=5000, key="t1",
                                                       source=w.TOP_UP_SOURCE_GIFT))  # fmt: skip
                assert topped.result == OK
                hold = await c.authorize_hold(w.AuthorizeHoldRequest(tenant="shop-a", customer="anna", amount=1000,
                                                                     key="h1", reference="pump 3"))  # fmt: skip
                assert hold.result == OK
            theirs = tenant.ledger
            wallet, funding = int(anna.wallet_id, 16), int(tenant.accounts["funding"], 16)
            hold_id = int(hold.hold_id, 16)

            async with grpc.aio.insecure_channel(address) as channel:
                stub = ledger_pb2_grpc.LedgerStub(channel)
                ours = [types_pb2.Account(id=u128(i), ledger=OWN, code=1) for i in (1, 2)]
                created = await stub.CreateAccounts(ledger_pb2.CreateAccountsRequest(accounts=ours))
                assert [r.result for r in created.results] == [OK, OK]
                before = ledger.stats().engine
                counts = (before.accounts_count, before.transfers_count, before.pending_transfers_count)

                # Each path, with a record of our own ledger ahead of the refused one: the whole batch is refused.
                message = await refused(stub.CreateAccounts(ledger_pb2.CreateAccountsRequest(accounts=[
                    types_pb2.Account(id=u128(3), ledger=OWN, code=1),
                    types_pb2.Account(id=u128(4), ledger=theirs, code=1),
                ])))  # fmt: skip
                assert message.startswith("accounts[1].ledger: ") and saying(theirs) in message
                assert "Wallet service" in message
                message = await refused(stub.CreateTransfers(ledger_pb2.CreateTransfersRequest(transfers=[
                    transfer(10, 1, 2, 100, OWN),
                    transfer(11, funding, wallet, 100, theirs),
                ])))  # fmt: skip
                assert message.startswith("transfers[1].ledger: ") and saying(theirs) in message
                message = await refused(stub.CreateTransfersPacked(packed(
                    Transfer(id=12, debit_account_id=funding, credit_account_id=wallet, amount=1, ledger=theirs,
                             code=1),
                )))  # fmt: skip
                assert message.startswith("transfers[0].ledger: ") and saying(theirs) in message
                # The last ledger a u32 holds is a wallet's too.
                message = await refused(stub.CreateTransfersPacked(packed(
                    Transfer(id=12, debit_account_id=1, credit_account_id=2, amount=1, ledger=2**32 - 1, code=1),
                )))  # fmt: skip
                assert saying(2**32 - 1) in message
                # A capture or void of ledger 0 takes its hold's ledger: the wallet's hold is not the Ledger's to end.
                for flags in (TransferFlags.POST_PENDING_TRANSFER, TransferFlags.VOID_PENDING_TRANSFER):
                    message = await refused(stub.CreateTransfers(ledger_pb2.CreateTransfersRequest(transfers=[
                        transfer(10, 1, 2, 100, OWN),
                        types_pb2.Transfer(id=u128(13), pending_id=u128(hold_id), flags=int(flags)),
                    ])))  # fmt: skip
                    assert message.startswith("transfers[1].ledger: 0 takes its hold's ledger") and saying(theirs) in (
                        message
                    )

                # The POS stream: what came before is applied and answered; the wallet's transfer is not.
                async def stream_requests() -> AsyncIterator[ledger_pb2.TransferStreamRequest]:
                    yield ledger_pb2.TransferStreamRequest(transfer=transfer(20, 1, 2, 100, OWN))
                    yield ledger_pb2.TransferStreamRequest(transfer=transfer(21, funding, wallet, 100, theirs))

                stream = stub.TransferStream(stream_requests())
                first = await stream.read()
                assert first.result.result == OK
                message = await refused(stream.read())
                assert message.startswith("message 1: transfers[0].ledger: ") and saying(theirs) in message

                async def batches() -> AsyncIterator[ledger_pb2.PackedTransfers]:
                    yield packed(Transfer(id=22, debit_account_id=funding, credit_account_id=wallet, amount=1,
                                          ledger=theirs, code=1))  # fmt: skip

                message = await refused(stub.TransferBatches(batches()).read())
                assert message.startswith("message 0: transfers[0].ledger: ") and saying(theirs) in message

                # Nothing refused was applied: only the stream's first transfer (of our own ledger) is new.
                after = ledger.stats().engine
                assert (after.accounts_count, after.transfers_count, after.pending_transfers_count) == (
                    counts[0], counts[1] + 1, counts[2]
                )  # fmt: skip
                found = await stub.LookupTransfers(ledger_pb2.LookupRequest(ids=[u128(i) for i in range(10, 23)]))
                assert [t.id.lo for t in found.transfers] == [20]
                # A transfer of our own ledger naming the wallet's accounts is the engine's to refuse, as ever.
                other = await stub.CreateTransfers(ledger_pb2.CreateTransfersRequest(transfers=[
                    transfer(30, wallet, 2, 100, OWN),
                ]))  # fmt: skip
                assert other.results[0].result != OK
                # Reads of the wallet's ledger stay allowed (no key here: every ledger).
                [read] = (await stub.LookupAccounts(ledger_pb2.LookupRequest(ids=[u128(wallet)]))).accounts
                assert (read.ledger, read.credits_posted, read.debits_pending) == (theirs, 5000, 1000)

            # The wallet itself goes on: the hold is still its own to capture, and it pays.
            async with AsyncClient(ClientConfig(server=address, timeout_seconds=10)) as c:
                captured = await c.capture_hold(w.CaptureHoldRequest(tenant="shop-a", hold_id=hold.hold_id,
                                                                     amount=400, key="c1"))  # fmt: skip
                assert (captured.result, captured.status, captured.amount) == (OK, "captured", 400)
                paid = await c.pay(w.PayRequest(tenant="shop-a", customer="anna", amount=600, key="p1",
                                                order_reference="o-1"))  # fmt: skip
                assert paid.result == OK and paid.balance == 4000
                balance = await c.get_balance(w.WalletRequest(tenant="shop-a", customer="anna"))
                assert (balance.available, balance.held, balance.posted) == (4000, 0, 4000)

    asyncio.run(go())


def test_no_key_writes_a_wallet_ledger_through_the_ledger_service(store_url: str) -> None:
    """Not an admin key, nor a write key that names the wallet's ledger (keys may name any u32 ledger)."""
    keys = open_key_store(store_url)
    try:
        admin = keys.create_key(tenant="ops", role="admin")[1]
        writer = keys.create_key(tenant="shop-a", role="write", ledgers=[DOMAIN_LEDGER_FIRST])[1]
    finally:
        keys.close()

    async def go() -> None:
        async with serving(store_url, auth=True) as (ledger, port):
            address = f"127.0.0.1:{port}"
            async with AsyncClient(ClientConfig(server=address, api_key=admin, timeout_seconds=10)) as c:
                tenant = await c.create_tenant(w.CreateTenantRequest(tenant="shop-a", currency="EUR"))
                assert tenant.ledger == DOMAIN_LEDGER_FIRST
            funding, revenue = int(tenant.accounts["funding"], 16), int(tenant.accounts["revenue"], 16)
            before = ledger.stats().engine.transfers_count
            async with grpc.aio.insecure_channel(address) as channel:
                stub = ledger_pb2_grpc.LedgerStub(channel)
                request = ledger_pb2.CreateTransfersRequest(transfers=[transfer(1, funding, revenue, 1, tenant.ledger)])
                for token in (admin, writer):
                    metadata = (("authorization", f"Bearer {token}"),)
                    message = await refused(stub.CreateTransfers(request, metadata=metadata))
                    assert saying(tenant.ledger) in message
                # The write key reads the ledger it names.
                found = await stub.LookupAccounts(
                    ledger_pb2.LookupRequest(ids=[u128(funding)]), metadata=(("authorization", f"Bearer {writer}"),)
                )
                assert [a.ledger for a in found.accounts] == [tenant.ledger]
            assert ledger.stats().engine.transfers_count == before

    asyncio.run(go())


def test_the_ledger_refuses_before_applying_and_the_domains_operation_writes(tmp_path: Any) -> None:
    """On the Ledger itself: create_accounts, create_transfers and submit_transfers refuse at once (the last
    before it returns a future), 2**31 - 1 is still the caller's; operation() writes the domain's ledgers."""

    async def go() -> None:
        config = LedgerConfig(store=f"sqlite:///{tmp_path / 'l.sqlite3'}", accounts_max=100, transfers_max=100,
                              pending_transfers_max=10)  # fmt: skip
        async with await Ledger.open(config) as ledger:
            last_own, first_domain = DOMAIN_LEDGER_FIRST - 1, DOMAIN_LEDGER_FIRST
            results = await ledger.create_accounts(pack_accounts([
                Account(id=1, ledger=last_own, code=1), Account(id=2, ledger=last_own, code=1),
            ]))  # fmt: skip
            assert [r.result for r in unpack_account_results(results)] == [OK, OK]
            with pytest.raises(LedgerReserved, match=rf"accounts\[0\].ledger: {saying(first_domain)}"):
                await ledger.create_accounts(pack_accounts([Account(id=3, ledger=first_domain, code=1)]))
            move = Transfer(id=10, debit_account_id=1, credit_account_id=2, amount=5, ledger=first_domain, code=1)
            with pytest.raises(LedgerReserved, match=r"transfers\[0\].ledger"):
                await ledger.create_transfers(pack_transfers([move]))
            with pytest.raises(LedgerReserved, match=r"transfers\[0\].ledger"):
                ledger.submit_transfers(bytearray(pack_transfers([move])))
            assert ledger.stats().engine.accounts_count == 2 and ledger.stats().engine.transfers_count == 0

            operation = ledger.operation()
            operation.create_accounts(pack_accounts([
                Account(id=3, ledger=first_domain, code=1), Account(id=4, ledger=first_domain, code=1),
            ]))  # fmt: skip
            applied = operation.create_transfers(pack_transfers([
                Transfer(id=11, debit_account_id=3, credit_account_id=4, amount=5, ledger=first_domain, code=1,
                         flags=TransferFlags.PENDING),
            ]))  # fmt: skip
            await ledger.until_durable(operation.finish())
            assert [r.result for r in unpack_transfer_results(applied)] == [OK]
            own = Transfer(id=12, debit_account_id=1, credit_account_id=2, amount=5, ledger=last_own, code=1)
            assert [
                r.result for r in unpack_transfer_results(await ledger.create_transfers(pack_transfers([own])))
            ] == [OK]
            void = Transfer(id=13, pending_id=11, flags=TransferFlags.VOID_PENDING_TRANSFER)
            with pytest.raises(LedgerReserved, match=r"transfers\[0\].ledger: 0 takes its hold's ledger"):
                await ledger.create_transfers(pack_transfers([void]))
            # Among captures of ledger 0 of the caller's own holds, the one of the domain's hold is named.
            holds = [
                Transfer(id=20 + i, debit_account_id=1, credit_account_id=2, amount=5, ledger=last_own, code=1,
                         flags=TransferFlags.PENDING)
                for i in range(3)
            ]  # fmt: skip
            await ledger.create_transfers(pack_transfers(holds))
            captures = [
                Transfer(id=30 + i, pending_id=20 + i, flags=TransferFlags.POST_PENDING_TRANSFER) for i in range(3)
            ]
            with pytest.raises(
                LedgerReserved, match=r"transfers\[2\].ledger: 0 takes its hold's ledger, and ledger 2147483648"
            ):
                await ledger.create_transfers(pack_transfers([*captures[:2], void, captures[2]]))
            assert ledger.stats().engine.pending_transfers_count == 4
            results = await ledger.create_transfers(pack_transfers(captures))
            assert [r.result for r in unpack_transfer_results(results)] == [OK] * 3
            assert ledger.stats().engine.pending_transfers_count == 1

    asyncio.run(go())

"""API keys on the Ledger service in process, on port 0, over both stores: every RPC for every kind of key,
tenant isolation through every write path (typed, packed, stream, post and void of a hold), the auth
policies, revocation while serving, the key table, the `ledger keys` commands and the start line."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ledger.auth import (
    LEDGERS_REQUIRED,
    ROLE_PERMISSIONS,
    TABLE,
    ApiKey,
    Authenticator,
    AuthFailure,
    KeyNotFound,
    KeyStoreError,
    KeyStoreUnavailable,
    Permission,
    Principal,
    Role,
    format_token,
    hash_secret,
    new_secret,
    open_key_store,
    parse_token,
)
from ledger.auth._store import SqliteKeyStore
from ledger.cli import main
from ledger.client import AsyncClient, ClientConfig, LedgerPermissionDenied
from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.engine import CreateAccountResult as AR
from ledger.engine import CreateTransferResult as TR
from ledger.engine import Transfer, TransferFlags, pack_transfers, unpack_transfer_results
from ledger.journal import open_store
from ledger.server import SERVICE_NAME, LedgerMetrics, serve, start_server
from ledger.v1 import ledger_pb2, ledger_pb2_grpc, types_pb2
from tests.stores import execute

A, B = 978, 840
"""The ledgers of tenant a and tenant b."""
FUNDING = {A: 1, B: 11}
WALLET = {A: 2, B: 12}
SEED = {A: 100, B: 200}
"""A top-up of each tenant's wallet."""
B_HOLD = 201
"""A hold on tenant b's wallet."""
WALLET_FLAGS = 2 | 8  # no overdraft, history
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
REFRESH_SECONDS = 0.2
KEYS = {
    # who: (tenant, role, ledgers)
    "a_read": ("a", "read", [A]),
    "a_write": ("a", "write", [A]),
    "b_write": ("b", "write", [B]),
    "admin": ("ops", "admin", []),
    "revoked": ("a", "write", [A]),
    "a_pos": ("a", "pos", []),
    "a_operator": ("a", "operator", []),
    "a_readonly": ("a", "readonly", [A]),
    "a_dashboard": ("a", "readonly", []),
}
Metadata = tuple[tuple[str, str], ...]


def u128(value: int) -> types_pb2.Uint128:
    return types_pb2.Uint128(lo=value & (2**64 - 1), hi=value >> 64)


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


def secret_of(token: str) -> str:
    return parse_token(token)[1]


@dataclass
class World:
    stub: ledger_pb2_grpc.LedgerStub
    channel: grpc.aio.Channel
    store_url: str
    auth: Authenticator | None
    tokens: dict[str, str]
    key_ids: dict[str, str]
    server: str
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(10_000))

    def md(self, who: str) -> Metadata:
        if who == "none":
            return ()
        if who == "garbled":
            return bearer("lk_garbled")
        if who == "unknown":
            return bearer(format_token(*new_secret()))
        return bearer(self.tokens[who])


def create_keys(store_url: str, keys: dict[str, tuple[str, str, list[int]]]) -> tuple[dict[str, str], dict[str, str]]:
    tokens, key_ids = {}, {}
    store = open_key_store(store_url)
    try:
        for who, (tenant, role, ledgers) in keys.items():
            key, token = store.create_key(tenant=tenant, role=role, ledgers=ledgers, name=who)
            tokens[who], key_ids[who] = token, key.key_id
        if "revoked" in key_ids:
            store.revoke(key_ids["revoked"])
    finally:
        store.close()
    return tokens, key_ids


def run(
    store_url: str,
    body: Callable[[World], Awaitable[None]],
    *,
    auth: str = "auto",
    keys: dict[str, tuple[str, str, list[int]]] | None = None,
    engine_class: type[Any] | None = None,
    metrics: LedgerMetrics | None = None,
) -> None:
    """Serve a fresh ledger with these keys (all of KEYS by default) and run `body` against it."""
    tokens, key_ids = create_keys(store_url, KEYS if keys is None else keys)

    async def go() -> None:
        config = LedgerConfig(
            store=store_url, accounts_max=1_000, transfers_max=100_000, pending_transfers_max=100,
            auth=auth, auth_refresh_seconds=REFRESH_SECONDS,
        )  # fmt: skip
        async with await Ledger.open(config, engine_class=engine_class) as ledger:
            authenticator = await Authenticator.open(config)
            try:
                server, port, _ = await start_server(ledger, auth=authenticator, metrics=metrics)
                try:
                    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                        stub = ledger_pb2_grpc.LedgerStub(channel)
                        await body(World(stub, channel, store_url, authenticator, tokens, key_ids, f"127.0.0.1:{port}"))
                finally:
                    await server.stop(None)
            finally:
                if authenticator is not None:
                    await authenticator.close()

    asyncio.run(go())


def transfer(transfer_id: int, debit: int, credit: int, amount: int, ledger: int, **fields: Any) -> types_pb2.Transfer:
    fields.setdefault("code", 1)
    return types_pb2.Transfer(id=u128(transfer_id), debit_account_id=u128(debit), credit_account_id=u128(credit),
                              amount=amount, ledger=ledger, **fields)  # fmt: skip


def resolve(transfer_id: int, pending_id: int, flag: int, ledger: int, **fields: Any) -> types_pb2.Transfer:
    """A post or void of a hold (accounts, code and amount left 0: taken from the hold)."""
    return types_pb2.Transfer(id=u128(transfer_id), pending_id=u128(pending_id), flags=flag, ledger=ledger, **fields)


async def seed(w: World, metadata: Metadata | None = None) -> None:
    """Both tenants' books: funding and wallet accounts, a top-up each, and a hold on b's wallet."""
    md = w.md("admin") if metadata is None else metadata
    accounts = [types_pb2.Account(id=u128(FUNDING[ledger]), ledger=ledger, code=1) for ledger in (A, B)]
    accounts += [
        types_pb2.Account(id=u128(WALLET[ledger]), ledger=ledger, code=2, flags=WALLET_FLAGS) for ledger in (A, B)
    ]
    created = await w.stub.CreateAccounts(ledger_pb2.CreateAccountsRequest(accounts=accounts), metadata=md)
    assert [r.result for r in created.results] == [AR.OK] * 4
    transfers = [transfer(SEED[ledger], FUNDING[ledger], WALLET[ledger], 1_000, ledger) for ledger in (A, B)]
    transfers.append(transfer(B_HOLD, WALLET[B], FUNDING[B], 300, B, flags=TransferFlags.PENDING))
    applied = await w.stub.CreateTransfers(ledger_pb2.CreateTransfersRequest(transfers=transfers), metadata=md)
    assert [r.result for r in applied.results] == [TR.OK] * 3


async def balances(w: World) -> dict[int, tuple[int, int, int, int]]:
    ids = [u128(i) for i in (*FUNDING.values(), *WALLET.values())]
    found = await w.stub.LookupAccounts(ledger_pb2.LookupRequest(ids=ids), metadata=w.md("admin"))
    return {a.id.lo: (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted) for a in found.accounts}


async def status_of(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code(), info.value.details() or ""


async def stream(w: World, md: Metadata, transfers: Sequence[types_pb2.Transfer]) -> list[Any]:
    """The stream's answers, or the AioRpcError of its status.

    Written message by message: a refused call may end before the client's write of its first message,
    and grpc.aio reports such a write that lost the race as INTERNAL; the call's own status is the answer.
    """
    call = w.stub.TransferStream(metadata=md)
    try:
        for t in transfers:
            await call.write(ledger_pb2.TransferStreamRequest(transfer=t))
        await call.done_writing()
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
        if await call.code() == grpc.StatusCode.OK:
            raise
    return [answer.result async for answer in call]


# -- every RPC for every kind of key --------------------------------------------------------------

Outcome = Any
"""'ok' (applied, or records found), 'empty' (nothing found) or a status code."""


async def outcome(attempt: Awaitable[Outcome]) -> Outcome:
    try:
        return await attempt
    except grpc.aio.AioRpcError as exc:
        return exc.code()


def all_ok(results: Sequence[Any]) -> Outcome:
    return "ok" if [r.result for r in results] == [1] * len(results) else [r.result for r in results]


async def try_create_accounts(w: World, md: Metadata, ledger: int) -> Outcome:
    account = types_pb2.Account(id=u128(next(w.ids)), ledger=ledger, code=1)
    response = await w.stub.CreateAccounts(ledger_pb2.CreateAccountsRequest(accounts=[account]), metadata=md)
    return all_ok(response.results)


async def try_create_transfers(w: World, md: Metadata, ledger: int) -> Outcome:
    request = ledger_pb2.CreateTransfersRequest(
        transfers=[transfer(next(w.ids), FUNDING[ledger], WALLET[ledger], 1, ledger)]
    )
    return all_ok((await w.stub.CreateTransfers(request, metadata=md)).results)


async def try_create_transfers_packed(w: World, md: Metadata, ledger: int) -> Outcome:
    record = Transfer(id=next(w.ids), debit_account_id=FUNDING[ledger], credit_account_id=WALLET[ledger], amount=1,
                      ledger=ledger, code=1)  # fmt: skip
    packed = pack_transfers([record])
    response = await w.stub.CreateTransfersPacked(ledger_pb2.PackedTransfers(records=packed), metadata=md)
    return all_ok(unpack_transfer_results(response.results))


async def try_transfer_stream(w: World, md: Metadata, ledger: int) -> Outcome:
    return all_ok(await stream(w, md, [transfer(next(w.ids), FUNDING[ledger], WALLET[ledger], 1, ledger)]))


async def try_transfer_batches(w: World, md: Metadata, ledger: int) -> Outcome:
    record = Transfer(id=next(w.ids), debit_account_id=FUNDING[ledger], credit_account_id=WALLET[ledger], amount=1,
                      ledger=ledger, code=1)  # fmt: skip
    call = w.stub.TransferBatches(metadata=md)
    try:
        await call.write(ledger_pb2.PackedTransfers(records=pack_transfers([record])))
        await call.done_writing()
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
        if await call.code() == grpc.StatusCode.OK:
            raise
    return all_ok([r for reply in [reply async for reply in call] for r in unpack_transfer_results(reply.results)])


def found(records: Sequence[Any]) -> Outcome:
    return "ok" if records else "empty"


async def try_lookup_accounts(w: World, md: Metadata, ledger: int) -> Outcome:
    request = ledger_pb2.LookupRequest(ids=[u128(FUNDING[ledger]), u128(WALLET[ledger])])
    return found((await w.stub.LookupAccounts(request, metadata=md)).accounts)


async def try_lookup_transfers(w: World, md: Metadata, ledger: int) -> Outcome:
    request = ledger_pb2.LookupRequest(ids=[u128(SEED[ledger])])
    return found((await w.stub.LookupTransfers(request, metadata=md)).transfers)


async def try_get_account_transfers(w: World, md: Metadata, ledger: int) -> Outcome:
    request = ledger_pb2.AccountFilter(account_id=u128(WALLET[ledger]))
    return found((await w.stub.GetAccountTransfers(request, metadata=md)).transfers)


async def try_get_account_balances(w: World, md: Metadata, ledger: int) -> Outcome:
    request = ledger_pb2.AccountFilter(account_id=u128(WALLET[ledger]))
    return found((await w.stub.GetAccountBalances(request, metadata=md)).balances)


WRITES = {
    "CreateAccounts": try_create_accounts,
    "CreateTransfers": try_create_transfers,
    "CreateTransfersPacked": try_create_transfers_packed,
    "TransferStream": try_transfer_stream,
    "TransferBatches": try_transfer_batches,
}
READS = {
    "LookupAccounts": try_lookup_accounts,
    "LookupTransfers": try_lookup_transfers,
    "GetAccountTransfers": try_get_account_transfers,
    "GetAccountBalances": try_get_account_balances,
}
WHO = ("a_read", "a_write", "admin", "none", "garbled", "unknown", "revoked", "a_pos", "a_operator", "a_readonly",
       "a_dashboard")  # fmt: skip
WALLET_ONLY = ("a_pos", "a_operator")
"""Keys of roles with no ledger permission: the Ledger service refuses them every method."""


def expected(method: str, who: str, ledger: int) -> Outcome:
    if who in ("none", "garbled", "unknown", "revoked"):
        return UNAUTHENTICATED
    if who in WALLET_ONLY:
        return PERMISSION_DENIED
    if method in WRITES:
        if who in ("a_read", "a_readonly", "a_dashboard"):
            return PERMISSION_DENIED  # the role
        return "ok" if who == "admin" or ledger == A else PERMISSION_DENIED  # the ledger
    if who == "a_dashboard":
        return "empty"  # a readonly key that names no ledger reads none through the Ledger service
    return "ok" if who == "admin" or ledger == A else "empty"


async def try_subscribe(w: World, md: Metadata) -> Outcome:
    """Whether the key may subscribe: the feed's own behaviour (live, or not there yet) is not the point."""
    call = w.stub.SubscribeTransfers(ledger_pb2.SubscribeTransfersRequest(), metadata=md, timeout=2)
    try:
        await call.read()
    except grpc.aio.AioRpcError as exc:
        return exc.code() if exc.code() in (UNAUTHENTICATED, PERMISSION_DENIED) else "ok"
    call.cancel()
    return "ok"


def test_every_rpc_for_every_kind_of_key(store_url: str) -> None:
    async def body(w: World) -> None:
        await seed(w)
        wrong = []
        for method, attempt in {**WRITES, **READS}.items():
            for who in WHO:
                for ledger in (A, B):
                    got = await outcome(attempt(w, w.md(who), ledger))
                    if got != expected(method, who, ledger):
                        wrong.append(
                            f"{method} as {who} on ledger {ledger}: {got}, not {expected(method, who, ledger)}"
                        )
        for who in WHO:
            want = UNAUTHENTICATED if who in ("none", "garbled", "unknown", "revoked") else "ok"
            want = PERMISSION_DENIED if who in WALLET_ONLY else want
            if (got := await try_subscribe(w, w.md(who))) != want:
                wrong.append(f"SubscribeTransfers as {who}: {got}, not {want}")
        assert not wrong, "\n".join(wrong)

    run(store_url, body)


def test_refusals_say_why_and_never_repeat_the_secret(store_url: str) -> None:
    async def body(w: World) -> None:
        accounts = ledger_pb2.LookupRequest(ids=[u128(1)])
        code, message = await status_of(w.stub.LookupAccounts(accounts))
        assert code == UNAUTHENTICATED and message.startswith("missing API key")
        code, message = await status_of(w.stub.LookupAccounts(accounts, metadata=bearer("lk_x")))
        assert code == UNAUTHENTICATED and message.startswith("malformed API key") and "lk_x" not in message
        code, message = await status_of(
            w.stub.LookupAccounts(accounts, metadata=(("authorization", f"Basic {w.tokens['a_read']}"),))
        )
        assert code == UNAUTHENTICATED and "Bearer" in message and secret_of(w.tokens["a_read"]) not in message
        two = (*w.md("a_read"), *w.md("a_write"))
        code, message = await status_of(w.stub.LookupAccounts(accounts, metadata=two))
        assert code == UNAUTHENTICATED and "2 authorization entries" in message
        unknown_id, unknown_secret = new_secret()
        code, message = await status_of(
            w.stub.LookupAccounts(accounts, metadata=bearer(format_token(unknown_id, unknown_secret)))
        )
        assert (code, message) == (UNAUTHENTICATED, f"unknown API key: no key {unknown_id}")
        # A known key id with another secret.
        key_id = w.key_ids["a_read"]
        code, message = await status_of(
            w.stub.LookupAccounts(accounts, metadata=bearer(format_token(key_id, unknown_secret)))
        )
        assert code == UNAUTHENTICATED and "another secret" in message and unknown_secret not in message
        code, message = await status_of(w.stub.LookupAccounts(accounts, metadata=w.md("revoked")))
        assert code == UNAUTHENTICATED and f"API key {w.key_ids['revoked']} was revoked at" in message
        assert secret_of(w.tokens["revoked"]) not in message
        # The role: a read key may not write, and the message says what it would need.
        request = ledger_pb2.CreateTransfersRequest(transfers=[transfer(1, FUNDING[A], WALLET[A], 1, A)])
        code, message = await status_of(w.stub.CreateTransfers(request, metadata=w.md("a_read")))
        assert code == PERMISSION_DENIED
        assert message == (
            f"API key {w.key_ids['a_read']} (tenant a, role read) may not call CreateTransfers: "
            "that needs permission ledger.write"
        )
        # The scheme is case-insensitive (RFC 6750), surrounding space is ignored.
        found = await w.stub.LookupAccounts(accounts, metadata=(("authorization", f"  bearer  {w.tokens['a_read']} "),))
        assert list(found.accounts) == []

    run(store_url, body, auth="required")


def test_health_and_reflection_need_no_key(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        health = health_pb2_grpc.HealthStub(w.channel)
        for service in ("", SERVICE_NAME):
            answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING

        async def ask() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        async for answer in reflection_pb2_grpc.ServerReflectionStub(w.channel).ServerReflectionInfo(ask()):
            assert SERVICE_NAME in {s.name for s in answer.list_services_response.service}
        # While the Ledger service itself does.
        code, _ = await status_of(w.stub.LookupAccounts(ledger_pb2.LookupRequest(ids=[u128(1)])))
        assert code == UNAUTHENTICATED

    run(f"sqlite:///{tmp_path / 'journal.sqlite3'}", body, auth="required", keys={})


# -- tenant isolation -------------------------------------------------------------------------------


def test_a_write_key_of_one_tenant_moves_and_sees_nothing_of_another(store_url: str, engine_class: type[Any]) -> None:
    async def body(w: World) -> None:
        await seed(w)
        before = await balances(w)
        md = w.md("a_write")
        post, void = TransferFlags.POST_PENDING_TRANSFER, TransferFlags.VOID_PENDING_TRANSFER
        refused = (PERMISSION_DENIED, "transfers[0].ledger")
        cases: list[tuple[str, types_pb2.Transfer, Any]] = [
            ("b's money on b's ledger", transfer(30, WALLET[B], WALLET[A], 500, B), refused),
            ("b's wallet to a's, on a's ledger", transfer(31, WALLET[B], WALLET[A], 500, A),
             TR.DEBIT_ACCOUNT_NOT_FOUND),
            ("a's wallet to b's, on a's ledger", transfer(32, WALLET[A], WALLET[B], 500, A),
             TR.CREDIT_ACCOUNT_NOT_FOUND),
            ("between b's accounts on a's ledger", transfer(33, WALLET[B], FUNDING[B], 500, A),
             TR.DEBIT_ACCOUNT_NOT_FOUND),
            ("b's wallet to nowhere, on a's ledger", transfer(43, WALLET[B], 999, 500, A), TR.DEBIT_ACCOUNT_NOT_FOUND),
            ("b's wallet, balancing, on a's ledger",
             transfer(34, WALLET[B], WALLET[A], 500, A, flags=TransferFlags.BALANCING_DEBIT),
             TR.DEBIT_ACCOUNT_NOT_FOUND),
            ("post b's hold, ledger 0", resolve(35, B_HOLD, post, 0), refused),
            ("post b's hold, b's ledger", resolve(36, B_HOLD, post, B), refused),
            ("post b's hold, a's ledger", resolve(37, B_HOLD, post, A), TR.PENDING_TRANSFER_NOT_FOUND),
            ("post b's hold naming its accounts", resolve(38, B_HOLD, post, A, debit_account_id=u128(WALLET[B]),
             credit_account_id=u128(FUNDING[B])), TR.PENDING_TRANSFER_NOT_FOUND),
            ("void b's hold, ledger 0", resolve(39, B_HOLD, void, 0), refused),
            ("void b's hold, a's ledger", resolve(40, B_HOLD, void, A), TR.PENDING_TRANSFER_NOT_FOUND),
            ("post b's plain transfer as a hold", resolve(41, SEED[B], post, A), TR.PENDING_TRANSFER_NOT_FOUND),
            # Ids b already used: the answer says only that the id is taken, not when or for how much.
            ("b's transfer id", transfer(SEED[B], FUNDING[A], WALLET[A], 1_000, A), TR.EXISTS_WITH_DIFFERENT_LEDGER),
            ("b's hold id", transfer(B_HOLD, WALLET[A], FUNDING[A], 300, A, flags=TransferFlags.PENDING),
             TR.EXISTS_WITH_DIFFERENT_LEDGER),
            ("post b's hold naming a's accounts", resolve(42, B_HOLD, post, A, debit_account_id=u128(WALLET[A])),
             TR.PENDING_TRANSFER_NOT_FOUND),
        ]  # fmt: skip
        wrong = []
        for title, t, want in cases:
            typed = await outcome(w.stub.CreateTransfers(ledger_pb2.CreateTransfersRequest(transfers=[t]), metadata=md))
            packed = await outcome(
                w.stub.CreateTransfersPacked(
                    ledger_pb2.PackedTransfers(records=pack_transfers([transfer_record(t)])), metadata=md
                )
            )
            streamed = await outcome(stream(w, md, [t]))
            for path, got in (("typed", typed), ("packed", packed), ("stream", streamed)):
                if isinstance(got, grpc.StatusCode):
                    result: Any = got
                elif path == "packed":
                    result = [(r.result, r.timestamp, r.amount) for r in unpack_transfer_results(got.results)]
                elif path == "typed":
                    result = [(r.result, r.timestamp, r.amount) for r in got.results]
                else:
                    result = [(r.result, r.timestamp, r.amount) for r in got]
                expect = want[0] if isinstance(want, tuple) else [(want, 0, 0)]
                if result != expect:
                    wrong.append(f"{title} ({path}): {result}, not {expect}")
        assert not wrong, "\n".join(wrong)
        sent = {title: t for title, t, _ in cases}
        # The refusals name the record and the field, and apply nothing.
        code, message = await status_of(
            w.stub.CreateTransfers(
                ledger_pb2.CreateTransfersRequest(transfers=[sent["b's money on b's ledger"]]), metadata=md
            )
        )
        assert code == PERMISSION_DENIED
        assert message == f"transfers[0].ledger: ledger {B} is not one of this key's ledgers ({A})"
        code, message = await status_of(
            stream(w, md, [transfer(50, FUNDING[A], WALLET[A], 1, A), sent["post b's hold, ledger 0"]])
        )
        assert code == PERMISSION_DENIED and message.startswith("message 1: transfers[0].ledger: 0 (take the pending")
        # A chain with one transfer of another ledger is refused whole: its own transfer did not happen either.
        chain = [transfer(51, FUNDING[A], WALLET[A], 1, A, flags=TransferFlags.LINKED), sent["b's money on b's ledger"]]
        code, message = await status_of(
            w.stub.CreateTransfers(ledger_pb2.CreateTransfersRequest(transfers=chain), metadata=md)
        )
        assert code == PERMISSION_DENIED and message.startswith("transfers[1].ledger")
        found = await w.stub.LookupTransfers(ledger_pb2.LookupRequest(ids=[u128(51)]), metadata=w.md("admin"))
        assert list(found.transfers) == []
        # Accounts: b's account id answers only that it is taken; b's ledger is refused.
        taken = types_pb2.Account(id=u128(WALLET[B]), ledger=A, code=2, flags=WALLET_FLAGS)
        answer = await w.stub.CreateAccounts(ledger_pb2.CreateAccountsRequest(accounts=[taken]), metadata=md)
        assert [(r.result, r.timestamp) for r in answer.results] == [(AR.EXISTS_WITH_DIFFERENT_LEDGER, 0)]
        in_b = [types_pb2.Account(id=u128(60), ledger=A, code=1), types_pb2.Account(id=u128(61), ledger=B, code=1)]
        code, message = await status_of(
            w.stub.CreateAccounts(ledger_pb2.CreateAccountsRequest(accounts=in_b), metadata=md)
        )
        assert (code, message) == (
            PERMISSION_DENIED,
            f"accounts[1].ledger: ledger {B} is not one of this key's ledgers ({A})",
        )
        # Reads of b's records find nothing.
        ids = ledger_pb2.LookupRequest(ids=[u128(WALLET[B]), u128(FUNDING[B]), u128(WALLET[A])])
        assert [a.id.lo for a in (await w.stub.LookupAccounts(ids, metadata=md)).accounts] == [WALLET[A]]
        ids = ledger_pb2.LookupRequest(ids=[u128(SEED[B]), u128(B_HOLD), u128(SEED[A])])
        assert [t.id.lo for t in (await w.stub.LookupTransfers(ids, metadata=md)).transfers] == [SEED[A]]
        history = ledger_pb2.AccountFilter(account_id=u128(WALLET[B]))
        assert list((await w.stub.GetAccountTransfers(history, metadata=md)).transfers) == []
        assert list((await w.stub.GetAccountBalances(history, metadata=md)).balances) == []
        # Nothing of b's moved and b's hold is still held; of a's, only the stream's first message moved.
        after = await balances(w)
        assert {i: after[i] for i in (FUNDING[B], WALLET[B])} == {i: before[i] for i in (FUNDING[B], WALLET[B])}
        assert (after[FUNDING[A]], after[WALLET[A]]) == ((0, 1_001, 0, 0), (0, 0, 0, 1_001))
        assert before[WALLET[B]] == (300, 0, 0, 1_000)
        # What the masking hides: the admin key sees the original's timestamp and amount.
        admin = await w.stub.CreateTransfers(
            ledger_pb2.CreateTransfersRequest(transfers=[sent["b's transfer id"]]), metadata=w.md("admin")
        )
        [result] = admin.results
        assert result.result == TR.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID and result.timestamp > 0
        # Tenant a's key still posts its own holds, naming its ledger.
        hold = transfer(70, WALLET[A], FUNDING[A], 100, A, flags=TransferFlags.PENDING)
        capture = resolve(71, 70, post, A, amount=60)
        answer = await w.stub.CreateTransfers(ledger_pb2.CreateTransfersRequest(transfers=[hold, capture]), metadata=md)
        assert [(r.result, r.amount) for r in answer.results] == [(TR.OK, 100), (TR.OK, 60)]

    run(store_url, body, engine_class=engine_class)


def test_the_feed_sends_each_key_the_transfers_of_its_ledgers(store_url: str) -> None:
    async def body(w: World) -> None:
        await seed(w)  # one commit with a's top-up, b's top-up and b's hold
        feeds = {who: w.stub.SubscribeTransfers(ledger_pb2.SubscribeTransfersRequest(), metadata=w.md(who))
                 for who in ("a_read", "admin")}  # fmt: skip
        # Then live: a commit of b's only, one of a's only, one of both.
        for transfers in (
            [transfer(300, FUNDING[B], WALLET[B], 5, B)],
            [transfer(301, FUNDING[A], WALLET[A], 6, A)],
            [transfer(302, FUNDING[B], WALLET[B], 7, B), transfer(303, FUNDING[A], WALLET[A], 8, A)],
        ):
            request = ledger_pb2.CreateTransfersRequest(transfers=transfers)
            assert [r.result for r in (await w.stub.CreateTransfers(request, metadata=w.md("admin"))).results] == [
                TR.OK
            ] * len(transfers)

        async def received(who: str, count: int) -> list[list[int]]:
            messages: list[list[int]] = []
            while sum(map(len, messages)) < count:
                message = await asyncio.wait_for(feeds[who].read(), 10)
                assert message is not grpc.aio.EOF
                messages.append([t.id.lo for t in message.transfers])
            return messages

        # Commits with nothing of a's are not sent to a's key at all.
        assert await received("a_read", 3) == [[SEED[A]], [301], [303]]
        assert await received("admin", 7) == [[SEED[A], SEED[B], B_HOLD], [300], [301], [302, 303]]
        for feed in feeds.values():
            feed.cancel()

    run(store_url, body)


def transfer_record(t: types_pb2.Transfer) -> Transfer:
    return Transfer(
        id=t.id.lo | t.id.hi << 64, debit_account_id=t.debit_account_id.lo | t.debit_account_id.hi << 64,
        credit_account_id=t.credit_account_id.lo | t.credit_account_id.hi << 64, amount=t.amount,
        pending_id=t.pending_id.lo | t.pending_id.hi << 64, ledger=t.ledger, code=t.code, flags=t.flags,
        timeout=t.timeout,
    )  # fmt: skip


def test_clients_for_several_keys_share_one_channel_and_each_acts_as_its_own_key(store_url: str) -> None:
    async def body(w: World) -> None:
        await seed(w)
        async with AsyncClient(ClientConfig(server=w.server, api_key=w.tokens["a_read"])) as reader:
            writer = reader.with_api_key(w.tokens["a_write"])
            stranger = reader.with_api_key(w.tokens["b_write"])
            try:
                assert writer._channel is reader._channel is stranger._channel
                moved = await writer.create_transfer(
                    Transfer(id=next(w.ids), debit_account_id=FUNDING[A], credit_account_id=WALLET[A], amount=5,
                             ledger=A, code=1)
                )  # fmt: skip
                assert moved.result is TR.OK
                with pytest.raises(LedgerPermissionDenied, match="ledger"):
                    await reader.create_transfer(
                        Transfer(id=next(w.ids), debit_account_id=FUNDING[A], credit_account_id=WALLET[A], amount=5,
                                 ledger=A, code=1)
                    )  # fmt: skip
                assert [a.id for a in await reader.lookup_accounts([WALLET[A]])] == [WALLET[A]]
                assert await stranger.lookup_accounts([WALLET[A]]) == []
            finally:
                await writer.close()
                await stranger.close()
            assert [a.id for a in await reader.lookup_accounts([WALLET[A]])] == [WALLET[A]]  # still open

    run(store_url, body)


def test_a_key_bound_to_two_ledgers_sees_both_and_an_admin_key_all(tmp_path: Path) -> None:
    keys = {"admin": ("ops", "admin", []), "both": ("group", "read", [A, B])}

    async def body(w: World) -> None:
        await seed(w)
        ids = ledger_pb2.LookupRequest(ids=[u128(i) for i in (*FUNDING.values(), *WALLET.values())])
        assert len((await w.stub.LookupAccounts(ids, metadata=w.md("both"))).accounts) == 4
        assert len((await w.stub.LookupAccounts(ids, metadata=w.md("admin"))).accounts) == 4

    run(f"sqlite:///{tmp_path / 'journal.sqlite3'}", body, keys=keys)


# -- policies and revocation --------------------------------------------------------------------------


async def until(condition: Callable[[], Awaitable[bool]], seconds: float = 10 * REFRESH_SECONDS + 5) -> float:
    """Wait for `condition`; the time it took."""
    start = time.monotonic()
    while not await condition():
        assert time.monotonic() - start < seconds, "condition not reached in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def test_revocation_takes_effect_while_serving(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    async def body(w: World) -> None:
        await seed(w)
        request = ledger_pb2.LookupRequest(ids=[u128(WALLET[A])])
        assert len((await w.stub.LookupAccounts(request, metadata=w.md("a_write"))).accounts) == 1
        # The operator revokes the key with the CLI while the server runs.
        key_id = w.key_ids["a_write"]
        assert await asyncio.to_thread(main, ["keys", "revoke", key_id, "--store", w.store_url]) == 0
        assert f"revoked API key {key_id}" in capsys.readouterr().out

        async def refused() -> bool:
            code = await outcome(w.stub.LookupAccounts(request, metadata=w.md("a_write")))
            return bool(code == UNAUTHENTICATED)

        assert await until(refused) < 10 * REFRESH_SECONDS + 5
        code, message = await status_of(w.stub.LookupAccounts(request, metadata=w.md("a_write")))
        assert code == UNAUTHENTICATED and "was revoked" in message
        # A key created while serving works on its first call, before any refresh.
        assert (
            await asyncio.to_thread(
                main, ["keys", "create", "--tenant", "a", "--role", "read", "--ledger", str(A), "--store", w.store_url]
            )
            == 0
        )
        token = capsys.readouterr().out.strip()
        assert len((await w.stub.LookupAccounts(request, metadata=bearer(token))).accounts) == 1

    run(store_url, body)


def test_revocation_ends_the_streams_opened_before_it(store_url: str) -> None:
    """A TransferStream and a SubscribeTransfers opened with a key end UNAUTHENTICATED once it is revoked,
    and no transfer sent on the stream after that is applied."""

    metrics = LedgerMetrics()

    async def body(w: World) -> None:
        await seed(w)
        md = w.md("a_write")
        pos = w.stub.TransferStream(metadata=md)
        await pos.write(ledger_pb2.TransferStreamRequest(transfer=transfer(400, FUNDING[A], WALLET[A], 1, A)))
        assert (await pos.read()).result.result == TR.OK
        feed = w.stub.SubscribeTransfers(ledger_pb2.SubscribeTransfersRequest(), metadata=md)
        assert [t.id.lo for t in (await asyncio.wait_for(feed.read(), 10)).transfers] == [SEED[A]]

        store = open_key_store(w.store_url)
        try:
            store.revoke(w.key_ids["a_write"])
        finally:
            store.close()
        revoked_at = time.monotonic()
        # The terminal goes on sending; the server stops applying within the refresh interval.
        sent: list[int] = []
        answered: list[int] = []
        # A write after the server ended the stream fails on the client's side (InvalidStateError, or an INTERNAL
        # the client makes itself): the status the server ended it with is read from the server's metrics.
        with pytest.raises((grpc.aio.AioRpcError, asyncio.InvalidStateError)):
            for transfer_id in itertools.count(401):
                await pos.write(ledger_pb2.TransferStreamRequest(
                    transfer=transfer(transfer_id, FUNDING[A], WALLET[A], 1, A)
                ))  # fmt: skip
                sent.append(transfer_id)
                answer = await asyncio.wait_for(pos.read(), 10)
                assert answer is not grpc.aio.EOF
                answered.append(transfer_id)
                await asyncio.sleep(0.01)
        # The server counts the stream once its handler has returned, which may be after the client saw it end.
        ended = None
        for _ in range(100):
            ended = metrics.registry.get_sample_value(
                "ledger_rpcs_total", {"method": f"{SERVICE_NAME}/TransferStream", "code": "UNAUTHENTICATED"}
            )
            if ended is not None:
                break
            await asyncio.sleep(0.05)
        assert ended == 1
        assert await pos.code() in (UNAUTHENTICATED, grpc.StatusCode.INTERNAL)
        if await pos.code() == UNAUTHENTICATED:
            assert "was revoked" in (await pos.details() or "")
        assert time.monotonic() - revoked_at < 10 * REFRESH_SECONDS + 5
        with pytest.raises(grpc.aio.AioRpcError) as feed_ended:
            while (message := await asyncio.wait_for(feed.read(), 10)) is not grpc.aio.EOF:
                assert all(t.ledger == A for t in message.transfers)
        assert feed_ended.value.code() == UNAUTHENTICATED and "the stream ends" in (feed_ended.value.details() or "")
        # What was applied is what was answered: nothing sent after the refusal was applied.
        lookup = ledger_pb2.LookupRequest(ids=[u128(i) for i in sent])
        applied = [t.id.lo for t in (await w.stub.LookupTransfers(lookup, metadata=w.md("admin"))).transfers]
        assert sorted(applied) == answered
        # The key is refused for new calls too; another tenant's key goes on working.
        code, _ = await status_of(w.stub.LookupAccounts(lookup, metadata=md))
        assert code == UNAUTHENTICATED
        b_stream = w.stub.TransferStream(metadata=w.md("b_write"))
        await b_stream.write(ledger_pb2.TransferStreamRequest(transfer=transfer(500, FUNDING[B], WALLET[B], 1, B)))
        assert (await b_stream.read()).result.result == TR.OK
        await b_stream.done_writing()

    run(store_url, body, metrics=metrics)


def test_a_key_that_expires_stops_working_and_ends_its_streams(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    store = open_key_store(store_url)
    try:
        _, admin = store.create_key(tenant="ops", role="admin")
        key, token = store.create_key(
            tenant="a", role="read", ledgers=[A], expires_at=datetime.now(UTC) + timedelta(seconds=2)
        )
        with pytest.raises(ValueError, match="is not in the future"):
            store.create_key(tenant="a", role="read", ledgers=[A], expires_at=datetime.now(UTC))
    finally:
        store.close()
    assert key.expires_at is not None

    async def body(w: World) -> None:
        await seed(w, bearer(admin))
        feed = w.stub.SubscribeTransfers(ledger_pb2.SubscribeTransfersRequest(), metadata=bearer(token))
        assert [t.id.lo for t in (await asyncio.wait_for(feed.read(), 10)).transfers] == [SEED[A]]
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            while await asyncio.wait_for(feed.read(), 10) is not grpc.aio.EOF:
                pass
        assert ended.value.code() == UNAUTHENTICATED and f"API key {key.key_id} expired at" in str(
            ended.value.details()
        )
        code, message = await status_of(
            w.stub.LookupAccounts(ledger_pb2.LookupRequest(ids=[u128(WALLET[A])]), metadata=bearer(token))
        )
        assert code == UNAUTHENTICATED and "expired at" in message

    run(store_url, body, keys={})


def test_auto_requires_keys_from_the_first_one_created(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    async def body(w: World) -> None:
        assert w.auth is not None and not w.auth.required
        assert w.auth.description.startswith("auth off until the first key is created")
        await seed(w, metadata=())  # no key needed yet
        request = ledger_pb2.LookupRequest(ids=[u128(WALLET[A]), u128(WALLET[B])])
        assert len((await w.stub.LookupAccounts(request)).accounts) == 2
        # A key that is sent is checked even now.
        code, _ = await status_of(w.stub.LookupAccounts(request, metadata=bearer(format_token(*new_secret()))))
        assert code == UNAUTHENTICATED
        assert (
            await asyncio.to_thread(
                main, ["keys", "create", "--tenant", "b", "--role", "read", "--ledger", str(B), "--store", w.store_url]
            )
            == 0
        )
        token = capsys.readouterr().out.strip()
        # The new key works at once, and is scoped to its tenant.
        assert [a.id.lo for a in (await w.stub.LookupAccounts(request, metadata=bearer(token))).accounts] == [WALLET[B]]

        async def keys_required() -> bool:
            return bool(await outcome(w.stub.LookupAccounts(request)) == UNAUTHENTICATED)

        await until(keys_required)
        assert w.auth.required and w.auth.description.startswith("auth on (LEDGER_AUTH=auto, 1 active keys of 1)")

    run(store_url, body, keys={})


def test_auto_stays_on_when_every_key_is_revoked(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        assert w.auth is not None and w.auth.required
        assert w.auth.description == "auth on (LEDGER_AUTH=auto, 0 active keys of 1)"
        code, _ = await status_of(w.stub.LookupAccounts(ledger_pb2.LookupRequest(ids=[u128(1)])))
        assert code == UNAUTHENTICATED

    run(f"sqlite:///{tmp_path / 'journal.sqlite3'}", body, keys={"revoked": ("a", "write", [A])})


def test_required_with_no_key_refuses_every_call(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def body(w: World) -> None:
        assert "LEDGER_AUTH=required and no active API key: every call but health checks" in caplog.text
        assert w.auth is not None and w.auth.description == "auth on (LEDGER_AUTH=required, 0 active keys of 0)"
        code, message = await status_of(w.stub.LookupAccounts(ledger_pb2.LookupRequest(ids=[u128(1)])))
        assert code == UNAUTHENTICATED and message.startswith("missing API key")

    run(f"sqlite:///{tmp_path / 'journal.sqlite3'}", body, auth="required", keys={})


def test_off_asks_for_no_key_and_checks_none(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        assert w.auth is None
        await seed(w, metadata=())
        request = ledger_pb2.LookupRequest(ids=[u128(WALLET[A]), u128(WALLET[B])])
        assert len((await w.stub.LookupAccounts(request, metadata=bearer("not a key"))).accounts) == 2
        assert len((await w.stub.LookupAccounts(request, metadata=w.md("revoked"))).accounts) == 2

    run(f"sqlite:///{tmp_path / 'journal.sqlite3'}", body, auth="off")


def test_metrics_count_the_calls_auth_refuses(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    tokens, _ = create_keys(store_url, {"a_read": KEYS["a_read"]})
    metrics = LedgerMetrics()

    async def go() -> None:
        config = LedgerConfig(store=store_url, accounts_max=100, transfers_max=1_000, pending_transfers_max=10)
        async with await Ledger.open(config) as ledger:
            auth = await Authenticator.open(config)
            server, port, _ = await start_server(ledger, metrics=metrics, auth=auth)
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                    stub = ledger_pb2_grpc.LedgerStub(channel)
                    lookup = ledger_pb2.LookupRequest(ids=[u128(1)])
                    assert await outcome(stub.LookupAccounts(lookup)) == UNAUTHENTICATED
                    await stub.LookupAccounts(lookup, metadata=bearer(tokens["a_read"]))
                    create = ledger_pb2.CreateAccountsRequest(
                        accounts=[types_pb2.Account(id=u128(1), ledger=A, code=1)]
                    )
                    assert await outcome(stub.CreateAccounts(create, metadata=bearer(tokens["a_read"]))) == (
                        PERMISSION_DENIED
                    )
            finally:
                await server.stop(None)
                assert auth is not None
                await auth.close()

    asyncio.run(go())

    def calls(method: str, code: str) -> float | None:
        return metrics.registry.get_sample_value(
            "ledger_rpcs_total", {"method": f"{SERVICE_NAME}/{method}", "code": code}
        )

    assert calls("LookupAccounts", "UNAUTHENTICATED") == 1 and calls("LookupAccounts", "OK") == 1
    assert calls("CreateAccounts", "PERMISSION_DENIED") == 1


def test_policy_and_refresh_come_from_the_environment() -> None:
    config = LedgerConfig.from_env({"LEDGER_AUTH": "required", "LEDGER_AUTH_REFRESH_SECONDS": "0.5"})
    assert (config.auth, config.auth_refresh_seconds) == ("required", 0.5)
    assert (LedgerConfig().auth, LedgerConfig().auth_refresh_seconds) == ("auto", 5.0)
    with pytest.raises(ValueError, match="auth must be one of auto, required, off, got 'on'"):
        LedgerConfig.from_env({"LEDGER_AUTH": "on"})
    with pytest.raises(ValueError, match="auth_refresh_seconds must be positive"):
        LedgerConfig(auth_refresh_seconds=0)
    with pytest.raises(ValueError, match="auth_refresh_seconds must be at most 3600"):
        LedgerConfig(auth_refresh_seconds=3601)


# -- the key table -----------------------------------------------------------------------------------


def test_the_key_table_keeps_hashes_and_revocations(store_url: str) -> None:
    store = open_key_store(store_url)
    try:
        key, token = store.create_key(tenant="shop-1", role="write", ledgers=[A, B, A], name="till 3")
        key_id, secret = parse_token(token)
        assert key.key_id == key_id and key.matches(secret) and not key.matches(new_secret()[1])
        assert (key.tenant, key.role, key.ledgers, key.name) == ("shop-1", Role.WRITE, frozenset({A, B}), "till 3")
        admin, _ = store.create_key(tenant="ops", role="admin")
        assert admin.ledgers == frozenset()
        assert [k.key_id for k in store.all_keys()] == [key.key_id, admin.key_id]
        assert store.find(key_id) == key and store.find("0" * 16) is None
        revoked, now = store.revoke(key_id)
        assert now and revoked.revoked_at is not None and revoked.revoked_at >= key.created_at
        again, now = store.revoke(key_id)
        assert not now and again.revoked_at == revoked.revoked_at
        with pytest.raises(KeyNotFound, match="no key with id 0000000000000000"):
            store.revoke("0" * 16)
        with pytest.raises(ValueError, match="key id must be 16 lowercase hex digits"):
            store.revoke("x")
        with pytest.raises(ValueError, match="ledgers: a write key must name at least one ledger"):
            store.create_key(tenant="a", role="write")
        assert len(store.all_keys()) == 2  # the refused key was not stored
    finally:
        store.close()
    # Opening again finds the table as it was; the secret itself is nowhere in it.
    store = open_key_store(store_url)
    try:
        assert [k.key_id for k in store.all_keys()] == [key.key_id, admin.key_id]
    finally:
        store.close()
    rows = read_table(store_url)
    assert len(rows) == 2 and not any(secret in str(value) for row in rows for value in row)


def test_every_role_is_stored_read_back_and_authenticated(store_url: str) -> None:
    """Keys of the wallet roles name no ledger and act for their tenant; a readonly key may name ledgers."""
    store = open_key_store(store_url)
    try:
        made: dict[str, tuple[ApiKey, str]] = {}
        for role in Role:
            made[role.value] = store.create_key(
                tenant="shop-1", role=role.value, ledgers=[A] if role in LEDGERS_REQUIRED else [], name=role.value
            )
        made["readonly on A"] = store.create_key(tenant="shop-1", role="readonly", ledgers=[A, B], name="dash")
        for key, _ in made.values():
            assert store.find(key.key_id) == key
        assert [k.key_id for k in store.all_keys()] == [key.key_id for key, _ in made.values()]
        assert made["readonly on A"][0].ledgers == {A, B} and made["pos"][0].ledgers == frozenset()
    finally:
        store.close()
    stored = {row[0]: row[3] for row in read_table(store_url)}
    assert {stored[key.key_id] for key, _ in made.values()} == {role.value for role in Role}

    async def go() -> None:
        auth = Authenticator(open_key_store(store_url), policy="required", refresh_seconds=60)
        await auth.start()
        try:
            for who, (key, token) in made.items():
                for permission in Permission:
                    method = f"/test.v1.Probe/{permission.name.title()}"
                    try:
                        principal = await auth.authenticate(bearer(token), method, permission)
                    except AuthFailure as refusal:
                        assert permission not in ROLE_PERMISSIONS[key.role], (who, permission)
                        assert refusal.code == PERMISSION_DENIED
                        assert refusal.message == (
                            f"API key {key.key_id} (tenant shop-1, role {key.role.value}) may not call "
                            f"{permission.name.title()}: that needs permission {permission.value}"
                        )
                    else:
                        assert permission in ROLE_PERMISSIONS[key.role], (who, permission)
                        assert principal == Principal.of(key)
                        assert principal.may_act_for_tenant("shop-1")
                        assert principal.may_act_for_tenant("shop-2") is (key.role is Role.ADMIN)
        finally:
            await auth.close()

    asyncio.run(go())


OLD_TABLES = {
    "sqlite": f"""CREATE TABLE {TABLE} (key_id TEXT PRIMARY KEY, name TEXT NOT NULL, tenant TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('read', 'write', 'admin')), ledgers TEXT NOT NULL,
        secret_sha256 BLOB NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT)""",
    "postgresql": f"""CREATE TABLE {TABLE} (key_id text PRIMARY KEY, name text NOT NULL, tenant text NOT NULL,
        role text NOT NULL CHECK (role IN ('read', 'write', 'admin')), ledgers text NOT NULL,
        secret_sha256 bytea NOT NULL, created_at timestamptz NOT NULL, revoked_at timestamptz)""",
}
"""The key table as the first version with keys made it: three roles, keys that never expire."""
REFUSED_ROLE = (sqlite3.IntegrityError, psycopg.errors.CheckViolation)


def test_a_key_table_made_before_the_wallet_roles_takes_them(store_url: str) -> None:
    kind = "sqlite" if store_url.startswith("sqlite:") else "postgresql"
    execute(store_url, OLD_TABLES[kind])
    key_id, secret = new_secret()
    created = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    insert = f"INSERT INTO {TABLE} VALUES (%s, %s, %s, %s, %s, %s, %s, NULL)"
    execute(store_url, insert, key_id, "till", "shop-1", "write", f"{A}", hash_secret(key_id, secret),
            created.isoformat(timespec="microseconds") if kind == "sqlite" else created)  # fmt: skip
    with pytest.raises(REFUSED_ROLE, match=r"(?i)check constraint"):
        execute(store_url, insert, "1" * 16, "", "shop-1", "pos", "", b"", created.isoformat())
    for _ in range(2):  # the second opening finds nothing to do
        store = open_key_store(store_url)
        try:
            old = store.find(key_id)
            assert old is not None and old.matches(secret)
            assert (old.role, old.ledgers, old.created_at, old.expires_at) == (Role.WRITE, {A}, created, None)
            pos, _ = store.create_key(tenant="shop-1", role="pos", expires_at=datetime.now(UTC) + timedelta(days=1))
            assert store.find(pos.key_id) == pos and pos.expires_at is not None
        finally:
            store.close()
    assert len(read_table(store_url)) == 3
    with pytest.raises(REFUSED_ROLE, match=r"(?i)check constraint"):  # the constraint was widened, not dropped
        execute(
            store_url, insert.replace("NULL", "NULL, NULL"), "1" * 16, "", "a", "root", "", b"", created.isoformat()
        )


def read_table(store_url: str) -> list[tuple[Any, ...]]:
    if store_url.startswith("sqlite:"):
        connection = sqlite3.connect(store_url.removeprefix("sqlite:///"))
        try:
            return connection.execute(f"SELECT * FROM {TABLE}").fetchall()
        finally:
            connection.close()
    with psycopg.connect(store_url) as connection:
        return connection.execute(f"SELECT * FROM {TABLE}").fetchall()


def test_the_key_table_is_found_where_the_journal_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for url in ("sqlite:///relative/j.sqlite3", f"sqlite:///{tmp_path}/absolute.sqlite3", "plain.sqlite3"):
        store = open_key_store(url)
        store.close()
        assert store.description == open_store(url).description
    # Looking at keys never creates a store that is not there.
    with pytest.raises(KeyStoreError, match=r"no ledger store at missing\.sqlite3"):
        open_key_store("sqlite:///missing.sqlite3", create=False)
    assert not (tmp_path / "missing.sqlite3").exists()


def test_an_unreachable_key_store_is_named_without_its_password() -> None:
    with pytest.raises(KeyStoreUnavailable) as info:
        open_key_store("postgresql://keeper:hunter2@127.0.0.1:1/ledger")
    assert "postgresql://keeper@127.0.0.1:1/ledger" in str(info.value) and "hunter2" not in str(info.value)


class FlakyKeys(SqliteKeyStore):
    """A key table whose reads fail while `broken` is set."""

    broken = False

    def _query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self.broken:
            raise KeyStoreUnavailable(f"{self.description}: reading the key table failed: disk I/O error")
        return super()._query(statement, params)


def test_when_the_key_table_cannot_be_read_the_keys_read_before_still_serve(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyKeys(tmp_path / "journal.sqlite3", create=True)
    key, token = store.create_key(tenant="a", role="read", ledgers=[A])
    method = f"/{SERVICE_NAME}/LookupAccounts"

    async def go() -> None:
        auth = Authenticator(store, policy="required", refresh_seconds=0.02)
        await auth.start()
        try:
            principal = await auth.authenticate(bearer(token), method, Permission.LEDGER_READ)
            assert principal == Principal(key.key_id, "a", Role.READ, frozenset({A}))
            store.broken = True
            await asyncio.sleep(0.2)  # several refreshes fail
            assert await auth.authenticate(bearer(token), method, Permission.LEDGER_READ) == principal
            unknown = format_token(*new_secret())
            with pytest.raises(AuthFailure) as info:
                await auth.authenticate(bearer(unknown), method, Permission.LEDGER_READ)
            assert info.value.code == grpc.StatusCode.UNAVAILABLE
            assert info.value.message.startswith(f"cannot check API key {parse_token(unknown)[0]} now")
            store.broken = False
            await asyncio.sleep(0.2)
        finally:
            await auth.close()

    with caplog.at_level(logging.INFO, logger="ledger.auth"):
        asyncio.run(go())
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("ledger.auth")]
    assert [m.split(":")[0] for m in messages] == [
        "cannot re-read the API keys, going on with those read before",
        "API keys read again",
    ]


# -- the commands -----------------------------------------------------------------------------------


def test_keys_commands(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = ["--store", store_url]
    assert main(["keys", "create", "--tenant", "acme", "--role", "write", "--ledger", "978", "--ledger", "840",
                 "--name", "pos fleet", *store]) == 0  # fmt: skip
    out, err = capsys.readouterr()
    token = out.strip()
    key_id, secret = parse_token(token)
    assert f"created API key {key_id}: 'pos fleet', tenant acme, role write, ledgers 840,978" in err
    assert "cannot be shown again" in err
    assert main(["keys", "create", "--tenant", "ops", "--role", "admin", *store]) == 0
    admin_id = parse_token(capsys.readouterr().out.strip())[0]
    assert main(["keys", "create", "--tenant", "fair-2025", "--role", "pos", "--name", "till 3", *store]) == 0
    out, err = capsys.readouterr()
    pos_id = parse_token(out.strip())[0]
    assert f"created API key {pos_id}: 'till 3', tenant fair-2025, role pos, ledgers none" in err
    assert main(["keys", "create", "--tenant", "acme", "--role", "readonly", "--ledger", "978", *store]) == 0
    readonly_id = parse_token(capsys.readouterr().out.strip())[0]
    assert main(["keys", "list", *store]) == 0
    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "TENANT", "ROLE", "LEDGERS", "CREATED", "EXPIRES", "REVOKED"]
    assert lines[1].split()[:6] == [key_id, "pos", "fleet", "acme", "write", "840,978"]
    assert lines[1].split()[-1] == "-" and lines[2].split()[:5] == [admin_id, "-", "ops", "admin", "all"]
    assert lines[3].split()[:6] == [pos_id, "till", "3", "fair-2025", "pos", "-"]
    assert lines[4].split()[:5] == [readonly_id, "-", "acme", "readonly", "978"]
    assert secret not in out and token not in out
    assert main(["keys", "revoke", key_id, *store]) == 0
    assert f"revoked API key {key_id}" in capsys.readouterr().out
    assert main(["keys", "revoke", key_id, *store]) == 0
    assert "was already revoked" in capsys.readouterr().out
    main(["keys", "list", *store])
    assert capsys.readouterr().out.splitlines()[1].split()[-1].endswith("Z")  # revoked at
    # Refusals name the problem and store nothing.
    for argv, message in [
        (["create", "--tenant", "ops", "--role", "admin", "--ledger", "1"], "an admin key is not bound to ledgers"),
        (["create", "--tenant", "a", "--role", "read"], "a read key must name at least one ledger"),
        (["create", "--tenant", "a", "--role", "shop", "--ledger", "1"], "a shop key is bound to its tenant"),
        (["create", "--tenant", "a", "--role", "operator", "--ledger", "1"], "an operator key is bound to its"),
        (["create", "--tenant", "a", "--role", "read", "--ledger", "0"], "ledger must be between 1 and 4294967295"),
        (["create", "--tenant", "a", "--role", "read", "--ledger", str(2**32)], "got 4294967296"),
        (["create", "--tenant", "a b", "--role", "read", "--ledger", "1"], "tenant must be 1 to 64"),
        (["create", "--tenant", "a" * 65, "--role", "read", "--ledger", "1"], "tenant must be 1 to 64"),
        (["create", "--tenant", "a", "--role", "read", "--ledger", "1", "--name", "x" * 129], "at most 128"),
        (["revoke", "zz"], "key id must be 16 lowercase hex digits"),
    ]:
        assert main(["keys", *argv, *store]) == 2, argv
        assert message in capsys.readouterr().err, argv
    assert main(["keys", "revoke", "0" * 16, *store]) == 1
    assert "no key with id 0000000000000000" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["keys", "create", "--tenant", "a", "--role", "owner", "--ledger", "1", *store])
    assert "invalid choice: 'owner' (choose from 'read', 'write', 'admin', 'pos', 'shop', 'operator', 'readonly')" in (
        capsys.readouterr().err
    )
    main(["keys", "list", *store])
    assert len(capsys.readouterr().out.splitlines()) == 5


def test_keys_roles_lists_each_role_with_its_permissions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "roles"]) == 0  # no store needed
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(None, 2) for line in lines[:8]] == [
        ["ROLE", "LEDGERS", "PERMISSIONS"],
        ["read", "required", "ledger.read"],
        ["write", "required", "ledger.read, ledger.write"],
        ["admin", "all", "every permission"],
        ["pos", "none", "wallet.read, wallet.pay"],
        ["shop", "none", "wallet.read, wallet.pay, wallet.topup, wallet.refund, wallet.voucher, wallet.webhooks"],
        ["operator", "none", "wallet.read, wallet.pay, wallet.topup, wallet.refund, wallet.book, wallet.grant, "
                             "wallet.voucher, wallet.tenant, wallet.webhooks"],
        ["readonly", "optional", "ledger.read, wallet.read"],
    ]  # fmt: skip
    assert "act for their own tenant (--tenant) only" in " ".join(lines[8:])
    with pytest.raises(SystemExit):
        main(["keys", "create", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "pos (wallet.read, wallet.pay); shop (wallet.read, wallet.pay, wallet.topup" in help_text
    assert "readonly (ledger.read, wallet.read)" in help_text and "admin (every permission)" in help_text


def test_keys_list_of_a_store_that_is_not_there(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "list", "--store", f"sqlite:///{tmp_path / 'nothing.sqlite3'}"]) == 1
    assert "no ledger store at" in capsys.readouterr().err
    assert not (tmp_path / "nothing.sqlite3").exists()


# -- the start line ------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["auto", "off"])
def test_the_start_line_says_whether_auth_is_on(
    policy: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    tokens, _ = create_keys(store_url, {"a_read": KEYS["a_read"]})
    config = LedgerConfig(store=store_url, address="127.0.0.1:0", accounts_max=100, transfers_max=1_000,
                          pending_transfers_max=100, auth=policy, metrics_address="",
                          http_address="127.0.0.1:0")  # fmt: skip
    answers: list[Any] = []

    def ready(port: int) -> None:
        async def ask() -> None:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = ledger_pb2_grpc.LedgerStub(channel)
                answers.append(await outcome(stub.LookupAccounts(ledger_pb2.LookupRequest(ids=[u128(1)]))))
                answers.append(await outcome(stub.LookupAccounts(ledger_pb2.LookupRequest(ids=[u128(1)]),
                                                                 metadata=bearer(tokens["a_read"]))))  # fmt: skip
            os.kill(os.getpid(), signal.SIGTERM)

        asyncio.get_running_loop().create_task(ask())

    with caplog.at_level(logging.INFO, logger="ledger.server"):
        asyncio.run(serve(config, ready=ready))
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ledger serving gRPC")]
    assert re.search(r", HTTP on http://127\.0\.0\.1:\d+ \(docs http://127\.0\.0\.1:\d+/docs\), metrics off, ", line)
    if policy == "auto":
        assert line.endswith(", auth on (LEDGER_AUTH=auto, 1 active keys of 1)")
        assert [a if isinstance(a, grpc.StatusCode) else type(a).__name__ for a in answers] == [
            UNAUTHENTICATED, "LookupAccountsResponse",
        ]  # fmt: skip
    else:
        assert line.endswith(", auth off (LEDGER_AUTH=off)")
        assert [type(a).__name__ for a in answers] == ["LookupAccountsResponse"] * 2

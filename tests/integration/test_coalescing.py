"""Concurrent write calls coalesced into one engine batch: the same outcomes as one call after the other."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.engine import (
    Account,
    AccountFlags,
    CreateTransferResult,
    MalformedBatch,
    Transfer,
    TransferFlags,
    pack_accounts,
    pack_ids,
    pack_transfers,
    unpack_accounts,
    unpack_transfer_results,
)
from tests.support import ManualClock

LEDGER = 978
TR = CreateTransferResult
FUNDING, SHOP = 1, 2
WALLETS = list(range(100, 116))


def config(url: str) -> LedgerConfig:
    return LedgerConfig(store=url, accounts_max=100, transfers_max=10_000, pending_transfers_max=100)


def move(transfer_id: int, debit: int, credit: int, amount: int, flags: int = 0) -> Transfer:
    return Transfer(id=transfer_id, debit_account_id=debit, credit_account_id=credit, amount=amount,
                    ledger=LEDGER, code=1, flags=flags, timeout=60 if flags & TransferFlags.PENDING else 0)  # fmt: skip


async def open_books(ledger: Ledger) -> None:
    accounts = [Account(id=FUNDING, ledger=LEDGER, code=1), Account(id=SHOP, ledger=LEDGER, code=2)]
    flags = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    accounts += [Account(id=w, ledger=LEDGER, code=3, flags=flags) for w in WALLETS]
    await ledger.create_accounts(pack_accounts(accounts))


def random_calls(seed: int) -> list[list[Transfer]]:
    """Top-ups, payments that may exceed the wallet, chains, open chains, holds, retries."""
    rng = random.Random(seed)
    calls: list[list[Transfer]] = []
    next_id = 1000
    for _ in range(60):
        call = []
        for position in range(rng.choice([1, 1, 1, 2, 3])):
            wallet = rng.choice(WALLETS)
            kind = rng.random()
            if kind < 0.3:
                t = move(next_id, FUNDING, wallet, rng.randint(1, 500))
            elif kind < 0.8:
                t = move(next_id, wallet, SHOP, rng.randint(1, 400))
            else:
                t = move(next_id, wallet, SHOP, rng.randint(1, 300), flags=TransferFlags.PENDING)
            if rng.random() < 0.3 and position < 2:
                t = replace(t, flags=t.flags | TransferFlags.LINKED)  # sometimes a chain left open at the end
            call.append(t)
            next_id += 1
        calls.append(call)
    calls += [list(rng.choice(calls)) for _ in range(10)]  # retries of earlier calls
    return calls


async def outcomes(ledger: Ledger, calls: list[list[Transfer]], together: bool) -> tuple[list[Any], list[Any]]:
    await open_books(ledger)
    if together:
        results = await asyncio.gather(*(ledger.create_transfers(pack_transfers(c)) for c in calls))
    else:
        results = [await ledger.create_transfers(pack_transfers(c)) for c in calls]
    per_call = [[(r.result, r.amount) for r in unpack_transfer_results(packed)] for packed in results]
    balances = unpack_accounts(await ledger.lookup_accounts(pack_ids([FUNDING, SHOP, *WALLETS])))
    return per_call, [(a.debits_posted, a.credits_posted, a.debits_pending) for a in balances]


async def run_calls(url: str, calls: list[list[Transfer]], together: bool) -> tuple[Any, Any, int]:
    async with await Ledger.open(config(url), clock=ManualClock()) as ledger:
        per_call, balances = await outcomes(ledger, calls, together)
        return per_call, balances, ledger._transfers_batcher.batches_count


def test_concurrent_calls_are_one_batch_with_the_outcomes_of_one_call_after_the_other(tmp_path: Path) -> None:
    for seed in range(5):
        calls = random_calls(seed)
        sequential = asyncio.run(run_calls(f"sqlite:///{tmp_path}/one-by-one{seed}.db", calls, together=False))
        coalesced = asyncio.run(run_calls(f"sqlite:///{tmp_path}/together{seed}.db", calls, together=True))
        assert coalesced[:2] == sequential[:2]
        assert sequential[2] == len(calls)
        open_chains = sum(1 for c in calls if c[-1].flags & TransferFlags.LINKED)
        assert coalesced[2] <= 2 * open_chains + 1  # the rest joined one batch


def test_an_open_chain_never_runs_into_the_next_call(store_url: str) -> None:
    async def body() -> None:
        async with await Ledger.open(config(store_url)) as ledger:
            await open_books(ledger)
            open_chain = [move(10, FUNDING, WALLETS[0], 5, flags=TransferFlags.LINKED)]
            plain = [move(11, FUNDING, WALLETS[1], 7)]
            first, second = await asyncio.gather(
                ledger.create_transfers(pack_transfers(open_chain)), ledger.create_transfers(pack_transfers(plain))
            )
            assert [r.result for r in unpack_transfer_results(first)] == [TR.LINKED_EVENT_CHAIN_OPEN]
            assert [r.result for r in unpack_transfer_results(second)] == [TR.OK]

    asyncio.run(body())


def test_a_malformed_call_fails_alone(store_url: str) -> None:
    async def body() -> None:
        async with await Ledger.open(config(store_url)) as ledger:
            await open_books(ledger)
            good = ledger.create_transfers(pack_transfers([move(10, FUNDING, WALLETS[0], 5)]))
            bad = ledger.create_transfers(b"\x00" * 100)
            results = await asyncio.gather(good, bad, return_exceptions=True)
            assert [r.result for r in unpack_transfer_results(results[0])] == [TR.OK]  # type: ignore[arg-type]
            assert isinstance(results[1], MalformedBatch)

    asyncio.run(body())


def test_calls_past_the_batch_limit_are_split_in_arrival_order(tmp_path: Path) -> None:
    async def body() -> None:
        async with await Ledger.open(config(f"sqlite:///{tmp_path}/split.db")) as ledger:
            await open_books(ledger)
            await ledger.create_transfers(pack_transfers([move(1, FUNDING, WALLETS[0], 10_000)]))
            calls = [[move(100 + c * 3000 + i, WALLETS[0], SHOP, 1) for i in range(3000)] for c in range(3)]
            before = ledger._transfers_batcher.batches_count
            results = await asyncio.gather(*(ledger.create_transfers(pack_transfers(c)) for c in calls))
            assert ledger._transfers_batcher.batches_count - before == 2  # 6000 together, then 3000
            assert all(r.result == TR.OK for packed in results for r in unpack_transfer_results(packed))
            timestamps = [r.timestamp for packed in results for r in unpack_transfer_results(packed)]
            assert timestamps == sorted(timestamps)  # applied in arrival order

    asyncio.run(body())

"""AsyncClient's auto-batching without a server: deadlines of queued, waiting and in-flight calls, and the
bookkeeping of deadlines staying as small as the calls still waiting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from ledger.client import AsyncClient, ClientConfig, CreateTransferResult, LedgerClosed, LedgerTimeout, Transfer, _async
from ledger.client._retry import Attempts
from ledger.records.layout import TRANSFER_RESULT_STRUCT, TRANSFER_STRUCT
from ledger.v1 import ledger_pb2

OK = CreateTransferResult.OK
SLACK_SECONDS = 0.25
"""How late a call may end after its deadline on a busy machine: far less than the longer deadlines used."""
EARLY_SECONDS = 0.002
"""How early: a loop runs a timer that is due within its clock's resolution (1 ms for uvloop)."""


class FakeLedger:
    """Stands in for the channel: answers OK for every transfer, except that a request carrying a held
    id waits until `release()` (or until its own deadline, as a real call would)."""

    def __init__(self) -> None:
        self.held: set[int] = set()
        self.sent: list[list[int]] = []
        self._released = asyncio.Event()

    def release(self) -> None:
        self._released.set()

    async def call(self, rpc: str, request: Any, timeout: float | Attempts) -> Any:
        assert rpc == "CreateTransfersPacked"
        attempts = timeout if isinstance(timeout, Attempts) else Attempts(timeout)
        attempts.count += 1
        ids = [fields[0] for fields in TRANSFER_STRUCT.iter_unpack(request.records)]
        self.sent.append(ids)
        if self.held.intersection(ids):
            try:
                async with asyncio.timeout(attempts.timeout_seconds):
                    await self._released.wait()
            except TimeoutError:
                raise attempts.timeout() from None
        results = b"".join(TRANSFER_RESULT_STRUCT.pack(OK, 0, i, 1) for i in ids)
        return ledger_pb2.PackedTransferResults(results=results)


def with_client(body: Callable[[AsyncClient, FakeLedger], Coroutine[Any, Any, None]], **config: Any) -> None:
    async def run() -> None:
        fake = FakeLedger()
        client = AsyncClient(ClientConfig(server="127.0.0.1:1", **config))
        client._call = fake.call  # type: ignore[method-assign]
        try:
            await body(client, fake)
        finally:
            fake.release()
            await client.close()

    # Both loops: the deadlines rest on the loop's timers, whose resolution differs.
    asyncio.run(run())
    uvloop.run(run())


def one(transfer_id: int) -> Transfer:
    return Transfer(id=transfer_id, debit_account_id=1, credit_account_id=2, amount=1, ledger=978, code=1)


async def ends_with_timeout(call: Coroutine[Any, Any, Any]) -> tuple[LedgerTimeout, float]:
    started = time.monotonic()
    with pytest.raises(LedgerTimeout) as caught:
        await call
    return caught.value, time.monotonic() - started


def test_a_call_in_flight_ends_at_its_own_deadline_while_its_request_goes_on() -> None:
    async def body(client: AsyncClient, fake: FakeLedger) -> None:
        fake.held.add(1)
        patient = asyncio.create_task(client.create_transfer(one(1), timeout=30))
        await asyncio.sleep(0)
        # Joins the same request (sent once the loop is idle): in flight, held, with a deadline of its own.
        error, elapsed = await ends_with_timeout(client.create_transfer(one(2), timeout=0.1))
        assert fake.sent == [[1, 2]]
        assert 0.1 - EARLY_SECONDS <= elapsed < 0.1 + SLACK_SECONDS
        assert error.attempts == 1 and "no answer within 0.1 s (1 attempt)" in str(error)
        assert not patient.done()
        fake.release()
        assert (await patient).result == OK

    with_client(body)


def test_a_call_queued_behind_the_requests_in_flight_ends_at_its_deadline_unsent() -> None:
    async def body(client: AsyncClient, fake: FakeLedger) -> None:
        fake.held.add(1)
        first = asyncio.create_task(client.create_transfer(one(1), timeout=30))
        await asyncio.sleep(0.01)  # its request is in flight and holds the only slot
        error, elapsed = await ends_with_timeout(client.create_transfer(one(2), timeout=0.1))
        assert 0.1 - EARLY_SECONDS <= elapsed < 0.1 + SLACK_SECONDS
        assert error.attempts == 0
        fake.release()
        assert (await first).result == OK
        assert (await client.create_transfer(one(3))).result == OK
        assert [ids for ids in fake.sent] == [[1], [3]], "a call that timed out before it was sent is never sent"

    with_client(body, batch_in_flight_max=1)


def test_a_call_waiting_for_room_in_the_queue_ends_at_its_deadline_unsent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_async, "CALLS_QUEUED_MAX", 4)

    async def body(client: AsyncClient, fake: FakeLedger) -> None:
        fake.held.add(1)
        queued = [asyncio.create_task(client.create_transfer(one(1), timeout=30))]
        await asyncio.sleep(0.01)  # in flight, holding the only slot
        # One taken by the runner to start the next batch, then 4 filling the queue.
        queued += [asyncio.create_task(client.create_transfer(one(i), timeout=30)) for i in range(2, 7)]
        await asyncio.sleep(0.01)
        assert client._transfers_batcher._queue.full()
        error, elapsed = await ends_with_timeout(client.create_transfer(one(99), timeout=0.1))
        assert 0.1 - EARLY_SECONDS <= elapsed < 0.1 + SLACK_SECONDS
        assert error.attempts == 0
        fake.release()
        assert [outcome.result for outcome in await asyncio.gather(*queued)] == [OK] * 6
        assert sorted(i for ids in fake.sent for i in ids) == [1, 2, 3, 4, 5, 6]
        # Room again: the next call goes straight in.
        assert (await client.create_transfer(one(7))).result == OK

    with_client(body, batch_in_flight_max=1)


def test_a_call_with_a_shorter_timeout_than_the_calls_before_it_ends_at_its_own_deadline() -> None:
    async def body(client: AsyncClient, fake: FakeLedger) -> None:
        fake.held.update(range(1, 10))
        patient = [asyncio.create_task(client.create_transfer(one(i), timeout=30)) for i in range(1, 4)]
        await asyncio.sleep(0)
        shorter = [asyncio.create_task(ends_with_timeout(client.create_transfer(one(i), timeout=t)))
                   for i, t in ((4, 0.3), (5, 0.1), (6, 0.2))]  # fmt: skip
        for (error, elapsed), timeout in zip(await asyncio.gather(*shorter), (0.3, 0.1, 0.2), strict=True):
            assert timeout - EARLY_SECONDS <= elapsed < timeout + SLACK_SECONDS
            assert error.timeout_seconds == timeout
        assert not any(task.done() for task in patient)
        fake.release()
        assert [outcome.result for outcome in await asyncio.gather(*patient)] == [OK] * 3

    with_client(body)


def test_deadlines_are_dropped_as_calls_end_and_no_timer_is_left_when_none_waits() -> None:
    async def body(client: AsyncClient, fake: FakeLedger) -> None:
        deadlines = client._transfers_batcher._deadlines
        for wave in range(20):
            outcomes = await asyncio.gather(*(client.create_transfer(one(wave << 16 | i)) for i in range(256)))
            assert {outcome.result for outcome in outcomes} == {OK}
            assert len(deadlines) == 0 and deadlines._timer is None

    with_client(body)


def test_deadlines_stay_bounded_behind_a_call_that_waits_long() -> None:
    async def body(client: AsyncClient, fake: FakeLedger) -> None:
        deadlines = client._transfers_batcher._deadlines
        fake.held.add(1)
        stuck = asyncio.create_task(client.create_transfer(one(1), timeout=30))
        await asyncio.sleep(0.01)  # sent alone, and held
        most = 0
        for wave in range(40):
            outcomes = await asyncio.gather(*(client.create_transfer(one(wave + 1 << 16 | i)) for i in range(256)))
            assert {outcome.result for outcome in outcomes} == {OK}
            most = max(most, len(deadlines))
        # 10,240 calls ended behind the one still waiting; what is kept of them stays around the floor.
        assert 0 < most <= 2 * _async.DEADLINES_COMPACTED_MIN
        fake.release()
        assert (await stuck).result == OK
        assert len(deadlines) == 0 and deadlines._timer is None

    with_client(body)


def test_closing_fails_the_calls_not_yet_sent_and_lets_the_requests_in_flight_finish() -> None:
    async def body(client: AsyncClient, fake: FakeLedger) -> None:
        fake.held.add(1)
        in_flight = asyncio.create_task(client.create_transfer(one(1), timeout=30))
        await asyncio.sleep(0.01)
        queued = asyncio.create_task(client.create_transfer(one(2), timeout=30))
        await asyncio.sleep(0.01)
        closing = asyncio.create_task(client.close())
        with pytest.raises(LedgerClosed, match="nothing of it was sent"):
            await queued
        fake.release()
        await closing
        assert (await in_flight).result == OK
        assert client._transfers_batcher._deadlines._timer is None
        with pytest.raises(LedgerClosed, match="the client is closed"):
            await client.create_transfer(one(3))

    with_client(body, batch_in_flight_max=1)


def test_a_single_transfer_is_checked_as_the_first_of_a_list_and_an_open_chain_goes_alone() -> None:
    async def body(client: AsyncClient, fake: FakeLedger) -> None:
        with pytest.raises(ValueError, match=r"transfers\[0\]\.amount: -5 is out of range"):
            await client.create_transfer(Transfer(id=1, amount=-5))
        with pytest.raises(TypeError, match=r"transfers\[0\]\.flags: expected an integer, got bool"):
            await client.create_transfer({"id": 1, "flags": True})
        assert fake.sent == []
        linked = Transfer(id=2, debit_account_id=1, credit_account_id=2, amount=1, ledger=978, flags=1)
        calls = [client.create_transfer(one(1)), client.create_transfer(linked), client.create_transfer(one(3))]
        assert [outcome.result for outcome in await asyncio.gather(*calls)] == [OK] * 3
        # The call that leaves a chain open ends its request: the next call's transfer never joins the chain.
        assert fake.sent == [[1, 2], [3]]

    with_client(body)


def test_closing_fails_a_call_waiting_for_room_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_async, "CALLS_QUEUED_MAX", 2)

    async def body(client: AsyncClient, fake: FakeLedger) -> None:
        fake.held.add(1)
        in_flight = asyncio.create_task(client.create_transfer(one(1), timeout=30))
        await asyncio.sleep(0.01)
        queued = [asyncio.create_task(client.create_transfer(one(i), timeout=30)) for i in range(2, 5)]
        await asyncio.sleep(0.01)
        assert client._transfers_batcher._queue.full()
        waiting = asyncio.create_task(client.create_transfer(one(99), timeout=30))
        await asyncio.sleep(0.01)
        closing = asyncio.create_task(client.close())
        started = time.monotonic()
        for call in [*queued, waiting]:
            with pytest.raises(LedgerClosed, match="nothing of it was sent"):
                await call
        assert time.monotonic() - started < SLACK_SECONDS
        fake.release()
        await closing
        assert (await in_flight).result == OK
        assert [ids for ids in fake.sent] == [[1]]

    with_client(body, batch_in_flight_max=1)


async def turns_until_sent(client: AsyncClient, fake: FakeLedger, transfer_id: int) -> int:
    """Turns of the event loop from a call to its request reaching the channel."""
    turns = 0

    async def count() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    counter = asyncio.create_task(count())
    await asyncio.sleep(0)
    started, before = turns, len(fake.sent)
    call = asyncio.create_task(client.create_transfer(one(transfer_id)))
    while len(fake.sent) == before:
        await asyncio.sleep(0)
    sent_after = turns - started
    counter.cancel()
    assert (await call).result == OK
    return sent_after


def test_a_lone_call_goes_at_once_and_calls_gather_only_behind_a_request_in_flight() -> None:
    async def body(client: AsyncClient, fake: FakeLedger) -> None:
        # Nothing in flight: the runner sends what it has on its first turn (task start, runner, request)
        # instead of first letting the loop turn once more for callers who might come.
        assert await turns_until_sent(client, fake, 1) <= 3
        # A request in flight: the next batch still waits that turn, and the caller who comes then joins it.
        fake.held.add(2)
        held = asyncio.create_task(client.create_transfer(one(2)))
        while len(fake.sent) < 2:
            await asyncio.sleep(0)
        first = asyncio.create_task(client.create_transfer(one(3)))
        await asyncio.sleep(0)  # the first call is queued and the runner woken: the second starts behind the runner
        second = asyncio.create_task(client.create_transfer(one(4)))
        assert [(await first).result, (await second).result] == [OK, OK]
        assert fake.sent[2:] == [[3, 4]]
        fake.release()
        assert (await held).result == OK

    with_client(body)

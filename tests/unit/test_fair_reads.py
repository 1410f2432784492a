"""ledger.core._reads: reads run a step at a time on threads of their own, callers in turn, each caller's
queue bounded."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ledger.config import LedgerConfig
from ledger.core._reads import TURN_SECONDS_MAX, FairReads, ReadsRefused
from ledger.journal import Steps


def steps(
    log: list[str], name: str, count: int, gate: threading.Event | None = None, step_seconds: float = 0.0
) -> Steps[str]:
    """`count` steps, each logged as `name` and taking `step_seconds` (the first waits for `gate`); returns
    `name`."""
    for index in range(count):
        if index:
            yield
        if gate is not None and index == 0:
            gate.wait(10)
        time.sleep(step_seconds)
        log.append(name)
    return name


def run(body: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(body())  # type: ignore[arg-type]


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.005)


def test_callers_take_turns_and_a_small_read_ends_in_its_own() -> None:
    slow = 2 * TURN_SECONDS_MAX

    async def body() -> list[str]:
        reads = FairReads(concurrent_max=1, per_caller_max=10)
        log: list[str] = []
        gate = threading.Event()
        first = asyncio.ensure_future(reads.run("flood", steps(log, "f0", 5, gate, slow)))
        await settle()  # f0's first step holds the only thread until the gate opens
        flood = [asyncio.ensure_future(reads.run("flood", steps(log, f"f{i}", 5, step_seconds=slow)))
                 for i in range(1, 4)]  # fmt: skip
        small = asyncio.ensure_future(reads.run("small", steps(log, "s", 3)))
        other = asyncio.ensure_future(reads.run("other", steps(log, "o", 2, step_seconds=slow)))
        await settle()
        gate.set()
        assert await small == "s" and await other == "o"
        assert await asyncio.gather(first, *flood) == ["f0", "f1", "f2", "f3"]
        await reads.close()
        return log

    log = run(body)
    # The flood's caller had its turn (f0's first step) before the others queued, and queued again ahead of
    # them; then each caller takes a turn: the small read's quick steps all run in its own; a slow step ends
    # its caller's turn, so the other slow caller alternates with the flood, whose reads go oldest first.
    assert log[:8] == ["f0", "f0", "s", "s", "s", "o", "f0", "o"], log
    assert log[8:] == ["f0"] * 2 + ["f1"] * 5 + ["f2"] * 5 + ["f3"] * 5, log


def test_a_full_queue_refuses_its_own_caller_only_and_frees_as_reads_end() -> None:
    async def body() -> None:
        reads = FairReads(concurrent_max=1, per_caller_max=2)
        gate = threading.Event()
        log: list[str] = []
        held = [asyncio.ensure_future(reads.run("a", steps(log, f"a{i}", 1, gate))) for i in range(2)]
        await settle()
        with pytest.raises(ReadsRefused, match="history_reads_per_caller_max=2") as refused:
            await reads.run("a", steps(log, "a2", 1))
        assert refused.value.overloaded
        other = asyncio.ensure_future(reads.run("b", steps(log, "b", 1)))
        await settle()
        assert reads.stats().refused_total == 1 and reads.stats().running == 1 and reads.stats().waiting == 2
        gate.set()
        assert await asyncio.gather(*held, other) == ["a0", "a1", "b"]
        assert await reads.run("a", steps(log, "a3", 1)) == "a3"  # room again
        # The rest of a read already admitted (its reply) is never refused for a full queue.
        gate.clear()
        full = [asyncio.ensure_future(reads.run("a", steps(log, f"a{i}", 1, gate))) for i in (4, 5)]
        await settle()
        reply = asyncio.ensure_future(reads.run("a", steps(log, "reply", 1), continuing=True))
        await settle()
        gate.set()
        assert await asyncio.gather(*full, reply) == ["a4", "a5", "reply"]
        assert "a2" not in log
        assert reads.stats().running == reads.stats().waiting == 0
        await reads.close()

    run(body)


def test_a_cancelled_read_gives_back_its_place() -> None:
    async def body() -> None:
        reads = FairReads(concurrent_max=1, per_caller_max=1)
        gate = threading.Event()
        log: list[str] = []
        blocker = asyncio.ensure_future(reads.run("a", steps(log, "blocker", 1, gate)))
        waiting = asyncio.ensure_future(reads.run("b", steps(log, "gone", 3)))
        await settle()
        waiting.cancel()  # while it waits for its turn
        await settle()
        gate.set()
        assert await reads.run("b", steps(log, "b", 1)) == "b"  # its only place (per_caller_max=1) is free again
        assert await blocker == "blocker"
        assert "gone" not in log
        # Cancelled while a step runs: the step finishes, the read goes no further, its place is free.
        gate.clear()
        running = asyncio.ensure_future(reads.run("c", steps(log, "c", 3, gate)))
        await settle()
        running.cancel()
        await settle()  # the cancellation reaches the reads
        gate.set()
        await settle()
        assert log.count("c") == 1
        assert await reads.run("c", steps(log, "c2", 1)) == "c2"
        await reads.close()

    run(body)


def test_steps_run_on_the_read_threads_and_errors_reach_the_caller() -> None:
    async def body() -> None:
        reads = FairReads(concurrent_max=2, per_caller_max=4, thread_name="reads-test")

        def where() -> Steps[str]:
            yield
            return threading.current_thread().name

        def fails() -> Steps[None]:
            yield
            raise ValueError("account_id must be between 1 and 2**128 - 2")

        assert (await reads.run(None, where())).startswith("reads-test")
        with pytest.raises(ValueError, match="account_id"):
            await reads.run(None, fails())
        assert reads.stats().running == reads.stats().waiting == 0
        await reads.close()

    run(body)


def test_a_read_waits_to_be_ready_holding_its_place_but_no_thread() -> None:
    async def body() -> None:
        reads = FairReads(concurrent_max=1, per_caller_max=1)
        log: list[str] = []
        ready = asyncio.Event()

        async def until_ready() -> None:
            await ready.wait()

        waiting = asyncio.ensure_future(reads.run("a", steps(log, "a", 1), ready=until_ready))
        await settle()
        assert reads.stats().waiting == 1
        with pytest.raises(ReadsRefused):
            await reads.run("a", steps(log, "a-again", 1))
        assert await reads.run("b", steps(log, "b", 1)) == "b"  # the thread is free meanwhile
        ready.set()
        assert await waiting == "a"
        await reads.close()

    run(body)


def test_close_ends_waiting_reads_and_refuses_new_ones() -> None:
    async def body() -> None:
        reads = FairReads(concurrent_max=1, per_caller_max=4)
        gate = threading.Event()
        log: list[str] = []
        running = asyncio.ensure_future(reads.run("a", steps(log, "a", 2, gate)))
        queued = asyncio.ensure_future(reads.run("b", steps(log, "b", 1)))
        await settle()
        closing = asyncio.ensure_future(reads.close())
        await settle()
        gate.set()
        await closing
        for read in (running, queued):
            with pytest.raises(ReadsRefused, match="shutting down") as refused:
                await read
            assert not refused.value.overloaded
        with pytest.raises(ReadsRefused, match="shutting down"):
            await reads.run("c", steps(log, "c", 1))
        assert log == ["a"]  # the step running finished; nothing started after

    run(body)


def test_the_settings_are_bounded_and_read_from_the_environment() -> None:
    config = LedgerConfig.from_env(
        {"LEDGER_HISTORY_READS_CONCURRENT_MAX": "3", "LEDGER_HISTORY_READS_PER_CALLER_MAX": "40"}
    )
    assert (config.history_reads_concurrent_max, config.history_reads_per_caller_max) == (3, 40)
    assert (LedgerConfig().history_reads_concurrent_max, LedgerConfig().history_reads_per_caller_max) == (1, 64)
    assert LedgerConfig.from_env({"LEDGER_SWITCH_INTERVAL_SECONDS": "0.002"}).switch_interval_seconds == 0.002
    for name, value, message in (
        ("history_reads_concurrent_max", 0, "history_reads_concurrent_max must be at least 1"),
        ("history_reads_concurrent_max", 65, "history_reads_concurrent_max must be at most 64"),
        ("history_reads_per_caller_max", 0, "history_reads_per_caller_max must be at least 1"),
        ("switch_interval_seconds", -0.001, "switch_interval_seconds must be between 0 and 1"),
        ("switch_interval_seconds", 2, "switch_interval_seconds must be between 0 and 1"),
    ):
        with pytest.raises(ValueError, match=message):
            LedgerConfig(**{name: value})

"""Prometheus metrics of a ledger server, in base units, on a registry of their own.

Nothing here is a module global: every `LedgerMetrics` holds its own
`CollectorRegistry`, so several servers (and tests) in one process never share
a series. What the server does is recorded as it happens (gRPC calls by an
interceptor, per-item results once per batch, engine calls and journal commits
through the ledger's observers); what the ledger holds (accounts, backlog,
availability) is read from `Ledger.stats()` when Prometheus scrapes.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import inspect
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from enum import IntEnum
from typing import Any, Final
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ledger import __version__
from ledger.core import Ledger, LedgerStats
from ledger.engine import Buffer, CreateAccountResult, CreateTransferResult, available_memory_bytes
from ledger.records.limits import ACCOUNT_RESULT_SIZE, BATCH_EVENTS_MAX, TRANSFER_RESULT_SIZE

logger = logging.getLogger(__name__)

RPC_SECONDS_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""A durable call takes a commit (about a millisecond) and should never take seconds."""
APPLY_SECONDS_BUCKETS: Final = (
    1e-5,
    2.5e-5,
    5e-5,
    1e-4,
    2.5e-4,
    5e-4,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
)
"""One engine call: microseconds for one transfer, up to tens of milliseconds for a full batch."""
COMMIT_SECONDS_BUCKETS: Final = (*RPC_SECONDS_BUCKETS, 10.0)
BATCH_EVENTS_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, BATCH_EVENTS_MAX)
COMMIT_TRANSFERS_BUCKETS: Final = tuple(4**n for n in range(11))
"""One transaction holds everything pending, up to commit_bytes_max (64 MiB, half a million transfers) a commit."""
RESULT_CODES_SCANNED_MAX: Final = 4
"""Distinct result codes of a batch counted by scanning (about 30 µs each for 8190 results); a batch with more
is counted result by result for the rest (about 30 ns each)."""
STATS_WAIT_SECONDS: Final = 5.0
"""How long a scrape waits for the event loop to read the ledger's stats before it answers without them."""

# A result code is the little-endian u32 at offset 0 of its result; below 256 it is the byte at offset 0.
assert max(CreateTransferResult) < 256 and max(CreateAccountResult) < 256


def count_results(results: Buffer, result_size: int) -> collections.Counter[int]:
    """How many results of each code a packed result buffer holds (16-byte account or 24-byte transfer results)."""
    data = results if isinstance(results, bytes) else memoryview(results).cast("B").tobytes()
    if len(data) % result_size:
        raise ValueError(f"results: {len(data)} bytes is not a whole number of {result_size}-byte results")
    codes = data[0::result_size]  # the low byte of each code: the whole code, as every code is below 256
    # A batch has one code or a few: count each and strip it, all in C; only past a few, one by one.
    counts: collections.Counter[int] = collections.Counter()
    for _ in range(RESULT_CODES_SCANNED_MAX):
        if not codes:
            return counts
        code = codes[0]
        counts[code] = codes.count(code)
        if counts[code] == len(codes):
            return counts
        codes = codes.translate(None, bytes((code,)))
    counts.update(codes)
    return counts


class LedgerMetrics:
    """A ledger server's metrics: make one, hand its observers to `Ledger.open`, pass it to `start_server`.

    `registry` holds everything; `start_http` serves it for Prometheus.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self._info = Info("ledger", "The ledger's engine implementation, journal store and version.", registry=r)
        self._rpcs = Counter(
            "ledger_rpcs", "gRPC calls finished, by method and status code.", ["method", "code"], registry=r
        )
        self._rpc_seconds = Histogram(
            "ledger_rpc_seconds",
            "Time from a gRPC call's arrival to its status, by method (for a stream: its whole life).",
            ["method"],
            buckets=RPC_SECONDS_BUCKETS,
            registry=r,
        )
        self._stream_messages = Counter(
            "ledger_stream_messages",
            "Messages of streaming gRPC calls, by method and direction (received, sent).",
            ["method", "direction"],
            registry=r,
        )
        self._transfers = Counter(
            "ledger_transfers", "Transfers answered, by result (CreateTransferResult).", ["result"], registry=r
        )
        self._accounts = Counter(
            "ledger_accounts", "Accounts answered, by result (CreateAccountResult).", ["result"], registry=r
        )
        self._apply_seconds = Histogram(
            "ledger_engine_apply_seconds",
            "Time the engine took for one call, by operation (create_accounts, create_transfers, "
            "expire_pending_transfers).",
            ["operation"],
            buckets=APPLY_SECONDS_BUCKETS,
            registry=r,
        )
        self._batch_transfers = Histogram(
            "ledger_batch_transfers", "Transfers per engine batch.", buckets=BATCH_EVENTS_BUCKETS, registry=r
        )
        self._batch_accounts = Histogram(
            "ledger_batch_accounts", "Accounts per engine batch.", buckets=BATCH_EVENTS_BUCKETS, registry=r
        )
        self._commit_seconds = Histogram(
            "ledger_journal_commit_seconds",
            "Time to write one group-commit transaction to the store.",
            buckets=COMMIT_SECONDS_BUCKETS,
            registry=r,
        )
        self._commit_transfers = Histogram(
            "ledger_journal_commit_transfers",
            "Transfers made durable by one group-commit transaction.",
            buckets=COMMIT_TRANSFERS_BUCKETS,
            registry=r,
        )
        self._commits = Counter(
            "ledger_journal_commits", "Journal commits written (one transaction may hold several).", registry=r
        )
        self._wallet_operations = Counter(
            "ledger_wallet_operations",
            "Wallet operations answered, by method and result (WalletResult: OK or the rule broken).",
            ["method", "result"],
            registry=r,
        )
        self._wallet_alerts = Counter(
            "ledger_wallet_alerts",
            "Wallets locked by wrong PINs, terminals flagged by refused codes and pay links closed to wrong PINs, "
            "by kind (wallet_locked, terminal_flagged, pay_link_locked) and tenant.",
            ["kind", "tenant"],
            registry=r,
        )
        self._recovery_seconds = Gauge(
            "ledger_recovery_seconds", "How long this start took to recover the engine from the journal.", registry=r
        )
        self._limits = {
            name: Gauge(f"ledger_{name}", documentation, registry=r)
            for name, documentation in (
                ("engine_accounts_max", "Accounts the engine has room for (accounts_max)."),
                ("engine_transfers_max", "Transfers the engine has room for (transfers_max)."),
                ("engine_pending_transfers_max", "Holds the engine has room for (pending_transfers_max)."),
                ("journal_backlog_bytes_max", "Backlog past which writes are refused (journal_backlog_bytes_max)."),
            )
        }
        self._transfer_children = _ResultChildren(self._transfers, CreateTransferResult)
        self._account_children = _ResultChildren(self._accounts, CreateAccountResult)
        self._rpc_children: dict[str, _RpcChildren] = {}
        self._watched: _LedgerCollector | None = None
        self._http: tuple[WSGIServer, threading.Thread] | None = None
        self.interceptor: grpc.aio.ServerInterceptor = _MetricsInterceptor(self)

    # -- observers ---------------------------------------------------------------

    def journal_committed(self, commits: int, transfers: int, seconds: float) -> None:
        """`Ledger.open(on_commit=...)`: called on the writer thread after every transaction."""
        self._commits.inc(commits)
        self._commit_transfers.observe(transfers)
        self._commit_seconds.observe(seconds)

    def engine_applied(self, operation: str, events_count: int, seconds: float) -> None:
        """`Ledger.open(on_apply=...)`: called on the event loop after every engine call."""
        self._apply_seconds.labels(operation).observe(seconds)
        if operation == "create_transfers":
            self._batch_transfers.observe(events_count)
        elif operation == "create_accounts":
            self._batch_accounts.observe(events_count)

    def count_transfer_results(self, results: Buffer) -> None:
        """Count one batch's packed 24-byte transfer results by result code."""
        if isinstance(results, bytes) and len(results) == TRANSFER_RESULT_SIZE:  # one transfer (a stream message)
            self._transfer_children.add_one(results[0])
            return
        self._transfer_children.add(count_results(results, TRANSFER_RESULT_SIZE))

    def count_wallet_results(self, method: str, results: dict[str, int]) -> None:
        """Count a Wallet call's operations by result name (a PayBatch counts each payment)."""
        for result, count in results.items():
            self._wallet_operations.labels(method, result).inc(count)

    def count_wallet_alert(self, kind: str, tenant: str) -> None:
        self._wallet_alerts.labels(kind, tenant).inc()

    def count_account_results(self, results: Buffer) -> None:
        """Count one batch's packed 16-byte account results by result code."""
        self._account_children.add(count_results(results, ACCOUNT_RESULT_SIZE))

    def rpc_children(self, method: str) -> _RpcChildren:
        children = self._rpc_children.get(method)
        if children is None:
            children = self._rpc_children[method] = _RpcChildren(self, method)
        return children

    # -- what the ledger holds ---------------------------------------------------

    def watch(self, ledger: Ledger) -> None:
        """Report `ledger` (info, recovery, and its stats at every scrape); call once, on its event loop."""
        if self._watched is not None:
            raise RuntimeError("these metrics already watch a ledger; make one LedgerMetrics per ledger")
        stats = ledger.stats()
        self._info.info({"engine": stats.implementation, "store": stats.store, "version": __version__})
        self._recovery_seconds.set(ledger.recovery.seconds)
        config = ledger.config
        self._limits["engine_accounts_max"].set(config.accounts_max)
        self._limits["engine_transfers_max"].set(config.transfers_max)
        self._limits["engine_pending_transfers_max"].set(config.pending_transfers_max)
        self._limits["journal_backlog_bytes_max"].set(config.journal_backlog_bytes_max)
        self._watched = _LedgerCollector(ledger, asyncio.get_running_loop())
        self.registry.register(self._watched)

    # -- the HTTP endpoint -------------------------------------------------------

    def start_http(self, host: str, port: int) -> int:
        """Serve the registry over HTTP on host:port (port 0 picks one) from a thread; returns the bound port."""
        if self._http is not None:
            raise RuntimeError("the metrics endpoint is already serving")
        try:
            self._http = start_http_server(port, host, registry=self.registry)
        except OSError as exc:
            raise OSError(exc.errno, f"metrics_address {host}:{port}: {exc.strerror}") from exc
        return int(self._http[0].server_port)

    def stop_http(self) -> None:
        """Stop the HTTP endpoint (blocks for up to half a second while its thread notices)."""
        if self._http is None:
            return
        server, thread = self._http
        self._http = None
        server.shutdown()
        server.server_close()
        thread.join()


class _ResultChildren:
    """A result counter's child per code, made on first use; codes are named by their enum."""

    def __init__(self, counter: Counter, codes: type[IntEnum]) -> None:
        self._counter = counter
        self._codes = codes
        self._children: dict[int, Counter] = {}

    def add(self, counts: collections.Counter[int]) -> None:
        for code, count in counts.items():
            self._child(code).inc(count)

    def add_one(self, code: int) -> None:
        self._child(code).inc()

    def _child(self, code: int) -> Counter:
        child = self._children.get(code)
        if child is None:
            try:
                name = self._codes(code).name
            except ValueError:  # not a code of this build: still counted, by number
                name = str(code)
            child = self._children[code] = self._counter.labels(name)
        return child


class _RpcChildren:
    """One method's series, each made on first use (so a unary method has no message series)."""

    def __init__(self, metrics: LedgerMetrics, method: str) -> None:
        self.method = method
        self.seconds = metrics._rpc_seconds.labels(method)
        self._rpcs = metrics._rpcs
        self._stream_messages = metrics._stream_messages
        self._by_code: dict[str, Counter] = {}
        self._messages: tuple[Counter, Counter] | None = None

    def messages(self) -> tuple[Counter, Counter]:
        """The (received, sent) message counters of a streaming method."""
        if self._messages is None:
            self._messages = (
                self._stream_messages.labels(self.method, "received"),
                self._stream_messages.labels(self.method, "sent"),
            )
        return self._messages

    def finished(self, code: str, started: float) -> None:
        self.seconds.observe(time.perf_counter() - started)
        child = self._by_code.get(code)
        if child is None:
            child = self._by_code[code] = self._rpcs.labels(self.method, code)
        child.inc()


def _status(context: grpc.aio.ServicerContext, error: BaseException | None) -> str:
    """The status a call ended with: the one the handler set or aborted with, else what its exception means."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    if isinstance(error, asyncio.CancelledError | GeneratorExit) or context.cancelled():
        return "CANCELLED"  # by the caller (or its deadline), even if the handler ended as its requests did
    return "OK" if error is None else "UNKNOWN"


class _MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Times and counts every call of a known method by status code; counts streams' messages."""

    def __init__(self, metrics: LedgerMetrics) -> None:
        self._metrics = metrics
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}
        """Per method, the handler last found and its wrapped twin: a method's handler is usually the same object
        every call, and then it is wrapped once."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:  # an unknown method: not counted, so callers cannot make up label values
            return None
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrapped_handler(handler, self._metrics.rpc_children(method.lstrip("/")))
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    @staticmethod
    def _wrapped_handler(handler: grpc.RpcMethodHandler, children: _RpcChildren) -> grpc.RpcMethodHandler:
        behavior, make = _HANDLER_KINDS[bool(handler.request_streaming), bool(handler.response_streaming)]
        return make(
            _wrap_behavior(getattr(handler, behavior), children, handler),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


_HANDLER_KINDS: Final = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}
"""(request streaming, response streaming): the handler's behavior attribute and how to make one like it."""


def _wrap_behavior(
    behavior: Callable[..., Any], children: _RpcChildren, handler: grpc.RpcMethodHandler
) -> Callable[..., Any]:
    """The handler's behavior, timed and counted; an async generator stays an async generator."""
    if not (handler.request_streaming or handler.response_streaming):

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            try:
                response = await behavior(request, context)
            except BaseException as exc:
                children.finished(_status(context, exc), started)
                raise
            children.finished(_status(context, None), started)
            return response

        return unary

    received, sent = children.messages()
    request_streaming = bool(handler.request_streaming)

    if inspect.isasyncgenfunction(behavior):

        async def responses(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                async for response in behavior(
                    _CountingRequests(request, received) if request_streaming else request, context
                ):
                    sent.inc()
                    yield response
            except BaseException as exc:
                error = exc
                raise
            finally:
                children.finished(_status(context, error), started)

        return responses

    async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        # A stream may also be read and written with context.read() and write(): its context counts those.
        started = time.perf_counter()
        try:
            response = await behavior(
                _CountingRequests(request, received) if request_streaming else request,
                _CountingContext(context, received, sent),
            )
        except BaseException as exc:
            children.finished(_status(context, exc), started)
            raise
        children.finished(_status(context, None), started)
        return response

    return stream


class _CountingRequests:
    """A call's request stream, counting each message received."""

    def __init__(self, requests: AsyncIterator[Any], received: Counter) -> None:
        self._requests = requests
        self._received = received

    def __aiter__(self) -> _CountingRequests:
        return self

    async def __anext__(self) -> Any:
        message = await self._requests.__anext__()
        self._received.inc()
        return message


class _CountingContext:
    """A call's context whose read() and write() count messages; everything else is the call's own."""

    def __init__(self, context: grpc.aio.ServicerContext, received: Counter, sent: Counter) -> None:
        self._context = context
        self._received = received
        self._sent = sent

    async def read(self) -> Any:
        message = await self._context.read()
        if message is not grpc.aio.EOF:
            self._received.inc()
        return message

    async def write(self, message: Any) -> None:
        await self._context.write(message)
        self._sent.inc()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


_STATS_GAUGES: Final[tuple[tuple[str, str, Callable[[LedgerStats], float]], ...]] = (
    ("ledger_engine_accounts", "Accounts the engine holds.", lambda s: s.engine.accounts_count),
    ("ledger_engine_transfers", "Transfers the engine holds.", lambda s: s.engine.transfers_count),
    ("ledger_engine_pending_transfers", "Holds open in the engine.", lambda s: s.engine.pending_transfers_count),
    ("ledger_journal_backlog_bytes", "Entries applied but not yet durable.", lambda s: s.writer.backlog_bytes),
    (
        "ledger_durable_lag_batches",
        "Engine calls applied whose entries are not yet durable (applied ticket minus durable ticket).",
        lambda s: s.ticket_applied - s.writer.ticket_durable,
    ),
    ("ledger_journal_seq", "Sequence number of the newest journal commit.", lambda s: s.writer.seq_last),
    (
        "ledger_journal_commits_since_checkpoint",
        "Journal commits after the last checkpoint: what a restart would replay.",
        lambda s: s.commits_since_checkpoint,
    ),
    (
        "ledger_journal_bytes_since_checkpoint",
        "Bytes of journal records after the last checkpoint.",
        lambda s: s.bytes_since_checkpoint,
    ),
    (
        "ledger_store_available",
        "1 while the journal store takes commits and the ledger acknowledges writes, else 0.",
        lambda s: float(s.available),
    ),
    (
        "ledger_history_store_available",
        "1 while the history index reads and writes the store, else 0 (it retries until the store is back).",
        lambda s: float(s.history.store_available),
    ),
    (
        "ledger_history_lag_commits",
        "Durable journal commits the history index has not indexed yet.",
        lambda s: s.history.durable_seq - s.history.indexed_seq,
    ),
    ("ledger_history_reads_running", "History and balance read steps running now.", lambda s: s.reads.running),
    (
        "ledger_history_reads_waiting",
        "History and balance reads admitted and waiting for their caller's turn.",
        lambda s: s.reads.waiting,
    ),
)
_STATS_COUNTERS: Final[tuple[tuple[str, str, Callable[[LedgerStats], float]], ...]] = (
    ("ledger_journal_checkpoints", "Checkpoints stored since the start.", lambda s: s.writer.checkpoints_total),
    (
        "ledger_history_store_outages",
        "Times the history index found the store unavailable (one per outage, however long).",
        lambda s: s.history.store_outages_total,
    ),
    (
        "ledger_history_reads_refused",
        "History and balance reads refused (RESOURCE_EXHAUSTED) because their caller's own queue was full.",
        lambda s: s.reads.refused_total,
    ),
)


class _LedgerCollector:
    """What the ledger holds, read from `Ledger.stats()` on its event loop when Prometheus scrapes."""

    def __init__(self, ledger: Ledger, loop: asyncio.AbstractEventLoop) -> None:
        self._ledger = ledger
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def describe(self) -> Iterable[Metric]:
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        stats = self._stats()
        return [] if stats is None else self._families(stats)

    def _stats(self) -> LedgerStats | None:
        """The ledger's stats, read on its own loop (it is used from one thread); None if it does not answer."""
        if threading.get_ident() == self._loop_thread:
            return self._ledger.stats()
        answer: concurrent.futures.Future[LedgerStats] = concurrent.futures.Future()

        def read() -> None:
            try:
                answer.set_result(self._ledger.stats())
            except BaseException as exc:
                answer.set_exception(exc)

        try:
            self._loop.call_soon_threadsafe(read)
            return answer.result(STATS_WAIT_SECONDS)
        except RuntimeError:  # the loop is closed: the ledger is gone
            return None
        except TimeoutError:
            logger.warning("metrics scrape: the event loop did not answer within %.0f s", STATS_WAIT_SECONDS)
            return None

    @staticmethod
    def _families(stats: LedgerStats | None) -> list[Metric]:
        """The families, with their values when there are stats (without, for `describe`)."""
        families: list[Metric] = [
            GaugeMetricFamily(name, documentation, value=None if stats is None else value(stats))
            for name, documentation, value in _STATS_GAUGES
        ]
        for name, documentation, value in _STATS_COUNTERS:
            counter = CounterMetricFamily(name, documentation)
            if stats is not None:
                counter.add_metric([], value(stats))
            families.append(counter)
        return families + _memory_families(stats, None if stats is None else available_memory_bytes())


def _memory_families(stats: LedgerStats | None, memory_available: int | None) -> list[Metric]:
    """What the engine's tables take and what the machine has left (`memory_available`, MemAvailable), and how
    many transfers more that holds."""
    tables = GaugeMetricFamily(
        "ledger_engine_memory_bytes", "Bytes of each engine table backed by memory (the native engine).",
        labels=["table"],
    )  # fmt: skip
    per_account = GaugeMetricFamily(
        "ledger_engine_bytes_per_account", "Bytes of the account table and its index per account held."
    )
    per_transfer = GaugeMetricFamily(
        "ledger_engine_bytes_per_transfer",
        "Bytes of the transfer tables (the hot records, statuses, index and open holds) per transfer held.",
    )
    available = GaugeMetricFamily(
        "ledger_memory_available_bytes", "What the machine could still give a process (MemAvailable)."
    )
    headroom = GaugeMetricFamily(
        "ledger_engine_transfers_headroom",
        "Transfers more that the machine's available memory would hold, at what each new one adds today (its "
        "status, fingerprint and index slot where old records are read from the journal; its record too where not).",
    )
    warnings = GaugeMetricFamily(
        "ledger_capacity_warnings", "Engine tables past 80 % of their limit (accounts, transfers, holds)."
    )
    if stats is not None:
        warnings.add_metric([], len(stats.capacity_warnings))
        if memory_available is not None:
            available.add_metric([], memory_available)
        used = stats.memory_used
        if used is not None:
            for table, size in sorted(used.items()):
                tables.add_metric([table], size)
            if stats.engine.accounts_count:
                per_account.add_metric([], (used["accounts"] + used["account_index"]) / stats.engine.accounts_count)
            count = stats.engine.transfers_count
            if count:
                growing = used["transfer_status"] + used.get("transfer_fingerprints", 0) + used["transfer_index"]
                bounded = used["transfers"] + used.get("open_holds", 0)
                per_transfer.add_metric([], (growing + bounded) / count)
                # The hot records' ring stops growing at its window; without one, every record stays.
                added = growing / count if stats.transfers_hot is not None else (growing + bounded) / count
                if memory_available is not None:
                    headroom.add_metric([], memory_available // added)
    return [tables, per_account, per_transfer, available, headroom, warnings]

"""The Ledger service as an attacker meets it: bodies that are not protobuf, bodies larger than any valid
request, calls without a key, header bytes gRPC's own client would never send, and a second server on a
port already served. Every one gets a clear status naming the RPC (never UNKNOWN), is counted, changes
nothing, leaves at most a rate-limited line in the log and never a traceback or a secret."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from ledger.auth import open_key_store, parse_token
from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.server import LedgerMetrics, start_server
from ledger.server._limits import REQUEST_BYTES_MAX
from ledger.server._status import REFUSAL_LOG_INTERVAL_SECONDS
from ledger.v1 import ledger_pb2, ledger_pb2_grpc, types_pb2
from tests.hostile import raw_call, served, start_serving

SERVICE = ledger_pb2.DESCRIPTOR.services_by_name["Ledger"]
METHODS = {method.name: method for method in SERVICE.methods}
GARBAGE = (b"\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x0f", b"\x08" + b"\xff" * 11)
"""A bad tag, a length past the end, a truncated tag, a varint longer than 10 bytes."""
UNAUTHENTICATED, INVALID_ARGUMENT = grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT


async def call_raw(channel: grpc.aio.Channel, name: str, body: bytes, metadata: Any = None) -> grpc.StatusCode:
    """Send `body` as the request of method `name`, as it is; the status the call ends with."""
    method = METHODS[name]
    path = f"/{SERVICE.full_name}/{name}"
    try:
        if method.client_streaming:
            call = channel.stream_stream(path)(metadata=metadata)
            await call.write(body)
            await call.done_writing()
            async for _ in call:
                pass
        elif method.server_streaming:
            async for _ in channel.unary_stream(path)(body, metadata=metadata):
                pass
        else:
            await channel.unary_unary(path)(body, metadata=metadata, timeout=30)
    except grpc.aio.AioRpcError as exc:
        call_raw.details = exc.details() or ""  # type: ignore[attr-defined]
        return exc.code()
    return grpc.StatusCode.OK


def metric(metrics: LedgerMetrics, method: str, code: str) -> float:
    value = metrics.registry.get_sample_value("ledger_rpcs_total", {"method": f"{SERVICE.full_name}/{method}",
                                                                    "code": code})  # fmt: skip
    return value or 0.0


def test_bad_bodies_are_refused_before_decoding_with_a_status_naming_the_rpc(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store_url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    keys = open_key_store(store_url)
    _, token = keys.create_key(tenant="ops", role="admin")
    keys.close()
    bearer = (("authorization", f"Bearer {token}"),)

    async def run() -> None:
        config = LedgerConfig(store=store_url, accounts_max=100, transfers_max=1_000, pending_transfers_max=10,
                              auth="required")  # fmt: skip
        metrics = LedgerMetrics()
        from ledger.auth import Authenticator

        async with await Ledger.open(config) as ledger:
            authenticator = await Authenticator.open(config)
            assert authenticator is not None
            server, port, _ = await start_server(ledger, metrics=metrics, auth=authenticator)
            try:
                async with grpc.aio.insecure_channel(
                    f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 8 << 20)]
                ) as channel:
                    stub = ledger_pb2_grpc.LedgerStub(channel)
                    account = types_pb2.Account(id=types_pb2.Uint128(lo=1), ledger=1, code=1)
                    await stub.CreateAccounts(ledger_pb2.CreateAccountsRequest(accounts=[account]), metadata=bearer)
                    before = ledger.stats().engine
                    started = time.monotonic()
                    for name in METHODS:
                        oversized = b"\x00" * (REQUEST_BYTES_MAX[name] + 1)
                        huge = b"\xff" * ((4 << 20) - 64)
                        # No key: refused as such, whatever the body; nothing of it is read.
                        for body in (*GARBAGE, oversized, huge):
                            assert await call_raw(channel, name, body) == UNAUTHENTICATED, name
                        # A valid key: the body is read, and refused naming the RPC.
                        for body in GARBAGE:
                            assert await call_raw(channel, name, body, bearer) == INVALID_ARGUMENT, (name, body)
                            assert call_raw.details.startswith(f"{name}: "), call_raw.details  # type: ignore[attr-defined]
                        assert await call_raw(channel, name, oversized, bearer) == INVALID_ARGUMENT, name
                        details: str = call_raw.details  # type: ignore[attr-defined]
                        assert f"more than the {REQUEST_BYTES_MAX[name]} its largest valid form takes" in details
                        assert await call_raw(channel, name, huge, bearer) == INVALID_ARGUMENT, name
                    elapsed = time.monotonic() - started
                    # Nothing changed, everything was counted.
                    assert ledger.stats().engine == before
                    for name in METHODS:
                        assert metric(metrics, name, "UNAUTHENTICATED") == len(GARBAGE) + 2, name
                        assert metric(metrics, name, "INVALID_ARGUMENT") == len(GARBAGE) + 2, name
                        assert metric(metrics, name, "UNKNOWN") == 0 and metric(metrics, name, "INTERNAL") == 0
            finally:
                await server.stop(None)
                await authenticator.close()
        lines = [r for r in caplog.records if r.getMessage().startswith("refused ")]
        assert 1 <= len(lines) <= 1 + elapsed / REFUSAL_LOG_INTERVAL_SECONDS
        # (asyncio's own lines are left out: grpc.aio's poller may log one when a process has run several loops.)
        served = [r for r in caplog.records if r.name.startswith(("ledger", "grpc"))]
        assert not any(r.exc_info for r in served), "no traceback for anything a caller sent"
        assert "DecodeError" not in caplog.text

    caplog.set_level(logging.INFO)
    asyncio.run(run())


def test_the_refusal_log_counts_what_it_does_not_repeat(caplog: pytest.LogCaptureFixture) -> None:
    from ledger.server._status import RefusalLog

    log = RefusalLog(interval_seconds=3600)
    for index in range(1000):
        log.refused("LookupAccounts", "ipv4:10.0.0.1:1", f"LookupAccounts: bad {index}")
    assert [r.getMessage() for r in caplog.records] == [
        "refused LookupAccounts from ipv4:10.0.0.1:1: LookupAccounts: bad 0"
    ]
    log._logged_at -= 3600  # the interval has passed
    log.refused("CreateTransfers", "ipv4:10.0.0.1:1", "CreateTransfers: bad")
    assert caplog.records[-1].getMessage().endswith("(999 more refused since the last line)")


def test_a_streams_bad_message_is_refused_naming_it(tmp_path: Path) -> None:
    async def run() -> None:
        config = LedgerConfig(store=f"sqlite:///{tmp_path / 'journal.sqlite3'}", accounts_max=10,
                              transfers_max=100, pending_transfers_max=10)  # fmt: skip
        async with await Ledger.open(config) as ledger:
            server, port, _ = await start_server(ledger)
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                    stream = channel.stream_stream(f"/{SERVICE.full_name}/TransferStream")()

                    async def messages() -> AsyncIterator[bytes]:
                        yield ledger_pb2.TransferStreamRequest().SerializeToString()
                        yield b"\x00" * (REQUEST_BYTES_MAX["TransferStream"] + 1)

                    for message in [m async for m in messages()]:
                        await stream.write(message)
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        async for _ in stream:
                            pass
                    assert refused.value.code() == INVALID_ARGUMENT
                    assert (refused.value.details() or "").startswith("TransferStream: message 1: TransferStream: ")
            finally:
                await server.stop(None)

    asyncio.run(run())


def test_no_secret_reaches_the_log_whatever_the_headers(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'data' / 'ledger.sqlite3'}"
    keys = open_key_store(store_url)
    _, token = keys.create_key(tenant="shop", role="read", ledgers=[1])
    keys.close()
    _, secret = parse_token(token)
    raw_token = token.encode()
    hostile = [
        b"Bearer " + raw_token + b"\xff",
        b"Bearer \xff" + raw_token,
        b"Bearer " + raw_token[:40] + b"\x80" + raw_token[40:],
        b"\xc3\x28 " + raw_token,
        raw_token + b"\xfe\xfe",
        b"Bearer " + raw_token + b"\x00",
        b"Bearer " + raw_token * 40 + b"\xff",
        b"Basic " + secret.encode() + b"\xff",
    ]
    with served(tmp_path, "--store", store_url, env={"LEDGER_AUTH": "required", "LEDGER_METRICS_ADDRESS": ""}) as s:
        body = ledger_pb2.LookupRequest(ids=[types_pb2.Uint128(lo=1)]).SerializeToString()
        for value in hostile:
            for header in (b"authorization", b"x-api-key", b"authorization-bin"):
                answer = raw_call(s.port, f"/{SERVICE.full_name}/LookupAccounts", body, [(header, value)])
                assert answer.grpc_status != grpc.StatusCode.UNKNOWN.value[0], answer
        # Two authorization entries, one good, one broken.
        answer = raw_call(s.port, f"/{SERVICE.full_name}/LookupAccounts", body,
                          [(b"authorization", b"Bearer " + raw_token), (b"authorization", hostile[0])])  # fmt: skip
        assert answer.grpc_status == grpc.StatusCode.UNAUTHENTICATED.value[0]
        s.process.terminate()
        s.process.wait(60)
        log = s.log()
    assert "metadata value is not valid UTF-8; its value is not logged" in log
    assert secret not in log and token not in log
    assert secret[:16] not in log and secret[-16:] not in log
    assert "Traceback" not in log


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_second_server_on_a_served_address_fails_at_start(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    env = {"LEDGER_AUTH": "off"}
    with served(first_dir, "--address", f"127.0.0.1:{port}", "--metrics-address", f"127.0.0.1:{metrics_port}",
                env=env) as first:  # fmt: skip
        assert first.port == port
        for arguments, setting in (
            (("--address", f"127.0.0.1:{port}", "--metrics-address", ""), f"address 127.0.0.1:{port}"),
            (("--address", "127.0.0.1:0", "--metrics-address", f"127.0.0.1:{metrics_port}"),
             f"metrics_address 127.0.0.1:{metrics_port}"),
        ):  # fmt: skip
            process, log_path = start_serving(second_dir, *arguments, env=env, log_name="second.log")
            try:
                assert process.wait(60) == 1
            except subprocess.TimeoutExpired:
                process.kill()
                raise
            log = log_path.read_text()
            assert f"ledger serve: {setting} is already in use" in log, log
            assert "Traceback" not in log
            assert not (second_dir / "data").exists(), "the second server opened no journal"
        # The first one still serves, alone.

        async def call() -> None:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                account = types_pb2.Account(id=types_pb2.Uint128(lo=7), ledger=1, code=1)
                stub = ledger_pb2_grpc.LedgerStub(channel)
                response = await stub.CreateAccounts(ledger_pb2.CreateAccountsRequest(accounts=[account]))
                assert [r.result for r in response.results] == [1]

        asyncio.run(call())


def test_the_hostile_benchmark_runs_every_phase_and_counts_what_attackers_got(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench import hostile

    assert hostile.main(["--store", "sqlite", "--seconds", "0.3", "--history-transfers", "9000", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report["phases"]) == list(hostile.PHASES)
    for phase, result in report["phases"].items():
        assert result["terminal"]["all_calls"]["calls"] > 0, phase
        assert set(result["attackers"]) == {kind for kind, _ in hostile.ATTACKS[phase]}, phase
        for statuses in result["attackers"].values():
            assert sum(statuses.values()) > 0 and not statuses.keys() & {"UNKNOWN", "INTERNAL"}, (phase, statuses)
    assert report["targets"]["attackers_unknown_or_internal"] == {"measured": 0, "target": 0, "met": True}


def test_a_refused_stream_is_refused_with_its_own_status_while_the_client_still_writes(tmp_path: Path) -> None:
    """grpc.aio's client turns a write that loses the race with the end of the call into INTERNAL: the server
    reads what the client still sends for a moment before refusing, so the client sees the real status."""
    store_url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    keys = open_key_store(store_url)
    _, token = keys.create_key(tenant="a", role="write", ledgers=[1])
    keys.close()

    async def run() -> None:
        config = LedgerConfig(store=store_url, accounts_max=10, transfers_max=1_000, pending_transfers_max=10,
                              auth="required")  # fmt: skip
        from ledger.auth import Authenticator

        async with await Ledger.open(config) as ledger:
            authenticator = await Authenticator.open(config)
            assert authenticator is not None
            server, port, _ = await start_server(ledger, auth=authenticator)
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                    one, two = types_pb2.Uint128(lo=1), types_pb2.Uint128(lo=2)
                    transfer = types_pb2.Transfer(id=one, debit_account_id=one, credit_account_id=two, amount=1,
                                                  ledger=2, code=1)  # fmt: skip
                    message = ledger_pb2.TransferStreamRequest(transfer=transfer)
                    cases = (
                        (None, UNAUTHENTICATED),  # refused by the interceptor
                        ((("authorization", f"Bearer {token}"),), grpc.StatusCode.PERMISSION_DENIED),  # by the service
                    )
                    for metadata, expected in cases:
                        for _ in range(30):
                            call = ledger_pb2_grpc.LedgerStub(channel).TransferStream(metadata=metadata)
                            for _ in range(5):
                                await call.write(message)
                            await call.done_writing()
                            with pytest.raises(grpc.aio.AioRpcError) as refused:
                                async for _ in call:
                                    pass
                            assert refused.value.code() == expected, refused.value.details()
            finally:
                await server.stop(None)
                await authenticator.close()

    asyncio.run(run())

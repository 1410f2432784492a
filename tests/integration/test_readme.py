"""The README's grpcurl requests, sent as grpcurl sends them: descriptors from server reflection, bodies as JSON."""

from __future__ import annotations

import asyncio
import re
import shlex
import threading
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.server import start_server
from ledger.v1 import ledger_pb2, ledger_pb2_grpc, types_pb2

README = Path(__file__).resolve().parents[2] / "README.md"


def grpcurl_commands() -> list[list[str]]:
    return [shlex.split(line) for line in README.read_text().splitlines() if line.startswith("grpcurl ")]


def call(target: str, command: list[str]) -> Any:
    """What grpcurl would do with `command`: list, describe, or a call with a JSON body."""
    with grpc.insecure_channel(target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        pool = descriptor_pool.DescriptorPool(database)
        words = [w for w in command[1:] if w != "-plaintext"]
        body = None
        if "-d" in words:
            index = words.index("-d")
            body = words[index + 1]
            del words[index : index + 2]
        _, verb = words[0], words[1:]
        if verb == ["list"]:
            return set(database.get_services())
        if verb[0] == "describe":
            return pool.FindServiceByName(verb[1])
        service_name, method_name = verb[0].rsplit("/", 1)
        method = pool.FindServiceByName(service_name).FindMethodByName(method_name)
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        request = json_format.Parse(body or "{}", request_class())
        path = f"/{service_name}/{method_name}"
        if method.server_streaming:
            stream = channel.unary_stream(path, request_serializer=lambda m: m.SerializeToString(),
                                          response_deserializer=response_class.FromString)(request)  # fmt: skip
            first = next(stream)
            stream.cancel()
            return first
        unary = channel.unary_unary(
            path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=response_class.FromString
        )
        return unary(request, timeout=10)


def test_the_readme_grpcurl_requests_work_through_reflection(tmp_path: Path) -> None:
    commands = grpcurl_commands()
    assert len(commands) >= 5
    ready = threading.Event()
    stop = threading.Event()
    port: list[int] = []

    async def serve() -> None:
        config = LedgerConfig(store=f"sqlite:///{tmp_path}/tour.db", accounts_max=10, transfers_max=100,
                              pending_transfers_max=10)  # fmt: skip
        async with await Ledger.open(config) as ledger:
            server, bound, _ = await start_server(ledger)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{bound}") as channel:
                accounts = [types_pb2.Account(id=types_pb2.Uint128(lo=i), ledger=978, code=i) for i in (1, 2, 3)]
                await ledger_pb2_grpc.LedgerStub(channel).CreateAccounts(
                    ledger_pb2.CreateAccountsRequest(accounts=accounts)
                )
            port.append(bound)
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)
            await server.stop(None)

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    try:
        assert ready.wait(30)
        target = f"127.0.0.1:{port[0]}"
        outcomes = {" ".join(c[c.index("127.0.0.1:7100") + 1 :]): call(target, c) for c in commands}
    finally:
        stop.set()
        thread.join(30)
    services = outcomes["list"]
    assert {"ledger.v1.Ledger", "grpc.health.v1.Health"} <= services
    assert outcomes["describe ledger.v1.Ledger"].FindMethodByName("TransferStream") is not None
    created = outcomes["ledger.v1.Ledger/CreateTransfers"]
    assert [(r.result, r.amount) for r in created.results] == [(1, 1000)]
    [wallet] = outcomes["ledger.v1.Ledger/LookupAccounts"].accounts
    assert wallet.credits_posted == 1000
    [fed] = outcomes["ledger.v1.Ledger/SubscribeTransfers"].transfers
    assert fed.id.lo == 30
    assert outcomes["grpc.health.v1.Health/Check"].status == 1  # SERVING
    assert re.search(r"grpcurl -plaintext 127\.0\.0\.1:7100 list", README.read_text())

"""The README's grpcurl requests, sent as grpcurl sends them: descriptors from server reflection, bodies as JSON;
the Ledger service's tour and the Wallet service's shop's day, in README order."""

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
from ledger.server import ledger_service, start_server, wallet_service
from ledger.v1 import ledger_pb2, ledger_pb2_grpc, types_pb2
from ledger.v1 import wallet_pb2 as w
from ledger.wallet import Wallets

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
        config = LedgerConfig(store=f"sqlite:///{tmp_path}/tour.db", accounts_max=100, transfers_max=100,
                              pending_transfers_max=10)  # fmt: skip
        wallets = Wallets()
        async with await Ledger.open(config, domain=wallets) as ledger:
            services = [ledger_service(ledger), wallet_service(ledger, wallets)]
            server, bound, _ = await start_server(ledger, services=services)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{bound}") as channel:
                accounts = [types_pb2.Account(id=types_pb2.Uint128(lo=i), ledger=1, code=i) for i in (1, 2, 3)]
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
        methods = [" ".join(c[c.index("127.0.0.1:7100") + 1 :]) for c in commands]
        assert len(set(methods)) == len(methods), "one request per method: each is checked by its method"
        outcomes = {method: call(target, c) for method, c in zip(methods, commands, strict=True)}
    finally:
        stop.set()
        thread.join(30)
    services = outcomes["list"]
    assert {"ledger.v1.Ledger", "wallet.v1.Wallet", "grpc.health.v1.Health"} <= services
    assert outcomes["describe ledger.v1.Ledger"].FindMethodByName("TransferStream") is not None
    created = outcomes["ledger.v1.Ledger/CreateTransfers"]
    assert [(r.result, r.amount) for r in created.results] == [(1, 1000)]
    [wallet] = outcomes["ledger.v1.Ledger/LookupAccounts"].accounts
    assert wallet.credits_posted == 1000
    [fed] = outcomes["ledger.v1.Ledger/SubscribeTransfers"].transfers
    assert fed.id.lo == 30
    assert outcomes["grpc.health.v1.Health/Check"].status == 1  # SERVING
    # A shop's day: every call OK, with the amounts the README tells.
    assert outcomes["describe wallet.v1.Wallet"].FindMethodByName("Pay") is not None
    wallet_calls = {method: reply for method, reply in outcomes.items() if method.startswith("wallet.v1.Wallet/")}
    assert len(wallet_calls) == 8 and all(reply.result == w.WALLET_RESULT_OK for reply in wallet_calls.values())
    assert outcomes["wallet.v1.Wallet/CreateTenant"].ledger == 2**31
    paid = outcomes["wallet.v1.Wallet/Pay"]
    readme = README.read_text()
    assert (paid.paid, paid.remainder, paid.fee) == (1961, 1039, 39) and f'"{paid.payment_id}"' in readme
    assert outcomes["wallet.v1.Wallet/Refund"].refundable == 1961 - 500
    assert outcomes["wallet.v1.Wallet/CaptureHold"].status == "captured"
    assert outcomes["wallet.v1.Wallet/GetBalance"].available == 300 and '"available": "300"' in readme
    assert re.search(r"grpcurl -plaintext 127\.0\.0\.1:7100 list", README.read_text())

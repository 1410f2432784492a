"""The server assembles a list of services: a service added beside the Ledger service is registered, reflected,
health-checked, counted in the metrics and guarded by the permissions it names, with no change elsewhere; a
wallet-like service is guarded by the wallet permissions of each role and asks whether a key acts for the
tenant a request names."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ledger.auth import LEDGERS_REQUIRED, Authenticator, Permission, Role, current_principal, open_key_store
from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.server import SERVICE_NAME, LedgerMetrics, Service, ledger_service, start_server

PROBE = "test.v1.Probe"
PROBE_PERMISSIONS = {"Look": Permission.LEDGER_READ, "Move": Permission.LEDGER_WRITE}
"""Secret, its third method, is named by nobody: it needs ADMIN."""


def register_probe(server: grpc.aio.Server) -> None:
    async def answer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return b"done:" + request

    handlers = {
        name: grpc.unary_unary_rpc_method_handler(answer, request_deserializer=None, response_serializer=None)
        for name in ("Look", "Move", "Secret")
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(PROBE, handlers),))


async def call(channel: grpc.aio.Channel, method: str, token: str | None) -> tuple[grpc.StatusCode, str]:
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    rpc = channel.unary_unary(f"/{PROBE}/{method}", request_serializer=None, response_deserializer=None)
    try:
        reply = await rpc(b"x", metadata=metadata, timeout=10)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, reply.decode()


def test_a_second_service_is_served_reflected_checked_counted_and_guarded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    keys = open_key_store(url)
    try:
        tokens = {role: keys.create_key(tenant="t", role=role, ledgers=[] if role == "admin" else [7])[1]
                  for role in ("read", "write", "admin")}  # fmt: skip
    finally:
        keys.close()

    async def go() -> None:
        config = LedgerConfig(
            store=url, accounts_max=100, transfers_max=1_000, pending_transfers_max=10, auth="required"
        )
        metrics = LedgerMetrics()
        async with await Ledger.open(config) as ledger:
            auth = await Authenticator.open(config)
            services = [ledger_service(ledger, metrics), Service(PROBE, register_probe, PROBE_PERMISSIONS)]
            server, port, _ = await start_server(ledger, metrics=metrics, auth=auth, services=services)
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                    await check(channel, tokens, metrics)
            finally:
                await server.stop(None)
                await auth.close()

    asyncio.run(go())


async def check(channel: grpc.aio.Channel, tokens: dict[str, str], metrics: LedgerMetrics) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", SERVICE_NAME, PROBE):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, name

    async def ask() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    listed: set[str] = set()
    async for answer in reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(ask()):
        listed |= {s.name for s in answer.list_services_response.service}
    assert {SERVICE_NAME, PROBE} <= listed

    allowed: dict[str, set[str]] = {"read": {"Look"}, "write": {"Look", "Move"}, "admin": {"Look", "Move", "Secret"}}
    needs = {"Look": "ledger.read", "Move": "ledger.write", "Secret": "admin"}
    for role, token in tokens.items():
        for method in ("Look", "Move", "Secret"):
            code, message = await call(channel, method, token)
            if method in allowed[role]:
                assert (code, message) == (grpc.StatusCode.OK, "done:x"), (role, method)
            else:
                assert code == grpc.StatusCode.PERMISSION_DENIED, (role, method)
                assert message.endswith(f"may not call {method}: that needs permission {needs[method]}")
                assert token.split("_")[2] not in message  # never the secret
    code, _ = await call(channel, "Look", None)
    assert code == grpc.StatusCode.UNAUTHENTICATED

    def counted(method: str, code: str) -> Any:
        return metrics.registry.get_sample_value("ledger_rpcs_total", {"method": f"{PROBE}/{method}", "code": code})

    assert counted("Look", "OK") == 3
    assert counted("Secret", "PERMISSION_DENIED") == 2
    assert counted("Look", "UNAUTHENTICATED") == 1


WALLET_PROBE = "test.v1.WalletProbe"
WALLET_PROBE_PERMISSIONS = {
    "Balance": Permission.WALLET_READ,
    "Pay": Permission.WALLET_PAY,
    "TopUp": Permission.WALLET_TOPUP,
    "Refund": Permission.WALLET_REFUND,
    "Book": Permission.WALLET_BOOK,
    "Grant": Permission.WALLET_GRANT,
    "IssueVoucher": Permission.WALLET_VOUCHER,
    "ConfigureTenant": Permission.WALLET_TENANT,
}
"""A method for each wallet permission, as the Wallet service will name them."""


def register_wallet_probe(server: grpc.aio.Server) -> None:
    async def answer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """The request is the tenant the call acts for: refused unless the key may act for it."""
        principal = current_principal()
        assert principal is not None
        if not principal.may_act_for_tenant(request.decode()):
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, f"{principal.describe()} may not act for {request.decode()}"
            )
        return b"done:" + request

    handlers = {
        name: grpc.unary_unary_rpc_method_handler(answer, request_deserializer=None, response_serializer=None)
        for name in WALLET_PROBE_PERMISSIONS
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(WALLET_PROBE, handlers),))


def test_a_wallet_service_is_guarded_by_each_roles_wallet_permissions_and_tenant(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    keys = open_key_store(url)
    try:
        tokens = {
            role: keys.create_key(tenant="ops" if role is Role.ADMIN else "shop-1", role=role.value,
                                  ledgers=[7] if role in LEDGERS_REQUIRED else [])[1]
            for role in Role
        }  # fmt: skip
    finally:
        keys.close()
    everything = set(WALLET_PROBE_PERMISSIONS)
    allowed = {
        Role.READ: set(),
        Role.WRITE: set(),
        Role.ADMIN: everything,
        Role.POS: {"Balance", "Pay"},
        Role.SHOP: {"Balance", "Pay", "TopUp", "Refund", "IssueVoucher"},
        Role.OPERATOR: everything,
        Role.READONLY: {"Balance"},
    }

    async def check_wallet(channel: grpc.aio.Channel) -> None:
        wrong = []
        for role, token in tokens.items():
            metadata = (("authorization", f"Bearer {token}"),)
            for method, permission in WALLET_PROBE_PERMISSIONS.items():
                rpc = channel.unary_unary(f"/{WALLET_PROBE}/{method}", request_serializer=None,
                                          response_deserializer=None)  # fmt: skip
                for tenant in ("shop-1", "shop-2"):
                    try:
                        got: tuple[grpc.StatusCode, str] = (
                            grpc.StatusCode.OK, (await rpc(tenant.encode(), metadata=metadata, timeout=10)).decode()
                        )  # fmt: skip
                    except grpc.aio.AioRpcError as exc:
                        got = (exc.code(), exc.details() or "")
                    if method not in allowed[role]:
                        want = f"role {role.value}) may not call {method}: that needs permission {permission.value}"
                    elif tenant == "shop-1" or role is Role.ADMIN:
                        want = f"done:{tenant}"
                    else:
                        want = f"role {role.value}) may not act for shop-2"
                    code = grpc.StatusCode.OK if want.startswith("done:") else grpc.StatusCode.PERMISSION_DENIED
                    if got[0] != code or not got[1].endswith(want):
                        wrong.append(f"{method} as {role.value} for {tenant}: {got}, not {code} {want!r}")
        assert not wrong, "\n".join(wrong)

    async def go() -> None:
        config = LedgerConfig(
            store=url, accounts_max=100, transfers_max=1_000, pending_transfers_max=10, auth="required"
        )
        metrics = LedgerMetrics()
        async with await Ledger.open(config) as ledger:
            auth = await Authenticator.open(config)
            services = [
                ledger_service(ledger, metrics),
                Service(WALLET_PROBE, register_wallet_probe, WALLET_PROBE_PERMISSIONS),
            ]
            server, port, _ = await start_server(ledger, metrics=metrics, auth=auth, services=services)
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                    await check_wallet(channel)
            finally:
                await server.stop(None)
                await auth.close()

    asyncio.run(go())

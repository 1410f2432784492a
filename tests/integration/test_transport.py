"""Transport: TLS and client certificates (mTLS), the concurrent-RPC bound, deadlines."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.server import _status, start_server
from ledger.server._serve import server_credentials, transport
from ledger.v1 import ledger_pb2, ledger_pb2_grpc

KeyAndCert = tuple[ec.EllipticCurvePrivateKey, x509.Certificate]


def issue(name: str, issuer: KeyAndCert | None = None, *, server: bool = False) -> KeyAndCert:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[1].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, builder.sign(issuer[0] if issuer else key, hashes.SHA256())


def write(directory: Path, name: str, pair: KeyAndCert) -> tuple[Path, Path]:
    key_path, cert_path = directory / f"{name}.key", directory / f"{name}.pem"
    key_path.write_bytes(
        pair[0].private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert_path.write_bytes(pair[1].public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("pki")
    ca, other_ca = issue("ledger test CA"), issue("some other CA")
    files: dict[str, Path] = {}
    for name, pair in {
        "ca": ca,
        "server": issue("ledger server", ca, server=True),
        "client": issue("pos terminal 7", ca),
        "stranger": issue("pos terminal 7", other_ca),
    }.items():
        files[f"{name}_key"], files[name] = write(directory, name, pair)
    return files


def serve_and(config: LedgerConfig, body: Callable[[int], Awaitable[None]]) -> None:
    async def run() -> None:
        async with await Ledger.open(config) as ledger:
            server, port, _ = await start_server(ledger)
            try:
                await body(port)
            finally:
                await server.stop(None)

    asyncio.run(run())


def tls_config(tmp_path: Path, pki: dict[str, Path], mtls: bool) -> LedgerConfig:
    return LedgerConfig(
        store=f"sqlite:///{tmp_path}/tls.db",
        accounts_max=10,
        transfers_max=100,
        pending_transfers_max=10,
        tls_cert=str(pki["server"]),
        tls_key=str(pki["server_key"]),
        tls_client_ca=str(pki["ca"]) if mtls else "",
    )


async def lookup(channel: grpc.aio.Channel) -> grpc.StatusCode:
    try:
        await ledger_pb2_grpc.LedgerStub(channel).LookupAccounts(ledger_pb2.LookupRequest(), timeout=5)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def credentials(pki: dict[str, Path], client: str | None = None) -> grpc.ChannelCredentials:
    chain = {}
    if client:
        chain = {"private_key": pki[f"{client}_key"].read_bytes(), "certificate_chain": pki[client].read_bytes()}
    return grpc.ssl_channel_credentials(root_certificates=pki["ca"].read_bytes(), **chain)


def test_tls_serves_encrypted_only(tmp_path: Path, pki: dict[str, Path]) -> None:
    config = tls_config(tmp_path, pki, mtls=False)
    assert transport(config) == "TLS"

    async def body(port: int) -> None:
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials(pki)) as channel:
            assert await lookup(channel) == grpc.StatusCode.OK
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert await lookup(channel) == grpc.StatusCode.UNAVAILABLE

    serve_and(config, body)


def test_mtls_requires_a_certificate_from_the_client_ca(tmp_path: Path, pki: dict[str, Path]) -> None:
    config = tls_config(tmp_path, pki, mtls=True)
    assert transport(config) == "TLS with client certificates (mTLS)"

    async def body(port: int) -> None:
        outcomes = {}
        for client in ("client", "stranger", None):
            async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials(pki, client)) as channel:
                outcomes[client] = await lookup(channel)
        assert outcomes == {
            "client": grpc.StatusCode.OK,
            "stranger": grpc.StatusCode.UNAVAILABLE,
            None: grpc.StatusCode.UNAVAILABLE,
        }

    serve_and(config, body)


def test_tls_settings_are_checked(tmp_path: Path, pki: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="tls_cert and tls_key go together"):
        LedgerConfig(tls_cert=str(pki["server"]))
    with pytest.raises(ValueError, match=r"tls_client_ca .* needs tls_cert"):
        LedgerConfig(tls_client_ca=str(pki["ca"]))
    with pytest.raises(ValueError, match=r"tls_key: cannot read .*missing\.key"):
        server_credentials(LedgerConfig(tls_cert=str(pki["server"]), tls_key=str(tmp_path / "missing.key")))
    assert transport(LedgerConfig()) == "plaintext"


def test_calls_past_the_concurrent_rpc_bound_are_refused(tmp_path: Path) -> None:
    config = LedgerConfig(store=f"sqlite:///{tmp_path}/bound.db", accounts_max=10, transfers_max=100,
                          pending_transfers_max=10, concurrent_rpcs_max=1)  # fmt: skip

    async def body(port: int) -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = ledger_pb2_grpc.LedgerStub(channel)
            feed = stub.SubscribeTransfers(ledger_pb2.SubscribeTransfersRequest())
            await asyncio.sleep(0.2)  # the feed holds the only slot
            assert await lookup(channel) == grpc.StatusCode.RESOURCE_EXHAUSTED
            feed.cancel()
            await asyncio.sleep(0.2)
            assert await lookup(channel) == grpc.StatusCode.OK

    serve_and(config, body)


class PastDeadline:
    def __init__(self) -> None:
        self.aborted: tuple[Any, str] | None = None

    def time_remaining(self) -> float:
        return -0.001

    async def abort(self, code: grpc.StatusCode, message: str) -> None:
        self.aborted = (code, message)
        raise grpc.RpcError(message)


def test_a_call_whose_deadline_has_passed_is_not_started() -> None:
    started = []

    async def work() -> None:
        started.append(True)

    context = PastDeadline()
    with pytest.raises(grpc.RpcError):
        asyncio.run(_status.call(context, "CreateTransfers", work))  # type: ignore[arg-type]
    assert started == []
    assert context.aborted is not None and context.aborted[0] == grpc.StatusCode.DEADLINE_EXCEEDED

"""The committed Python code of the proto contract is what proto/generate.py makes of the .proto files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("proto_generate", ROOT / "proto" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["proto_generate"] = module
    spec.loader.exec_module(module)
    stale = [
        str(path.relative_to(tmp_path))
        for path in module.generate(tmp_path)
        if path.read_bytes() != (ROOT / path.relative_to(tmp_path)).read_bytes()
    ]
    assert not stale, f"run `python proto/generate.py`: {', '.join(stale)} differ from the .proto files"


def test_generated_code_loads_and_names_every_rpc() -> None:
    from ledger.v1 import ledger_pb2, ledger_pb2_grpc, types_pb2

    service = ledger_pb2.DESCRIPTOR.services_by_name["Ledger"]
    assert [m.name for m in service.methods] == [
        "CreateAccounts", "CreateTransfers", "CreateTransfersPacked", "LookupAccounts", "LookupTransfers",
        "GetAccountTransfers", "GetAccountBalances", "TransferStream", "TransferBatches", "SubscribeTransfers",
        "GetServerInfo",
    ]  # fmt: skip
    assert hasattr(ledger_pb2_grpc, "LedgerServicer") and hasattr(ledger_pb2_grpc, "LedgerStub")
    transfer = types_pb2.Transfer(amount=2**63 - 1)
    assert types_pb2.Transfer.FromString(transfer.SerializeToString()).amount == 2**63 - 1

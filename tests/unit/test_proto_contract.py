"""The proto contract and the Python definitions name the same codes with the same numbers."""

from __future__ import annotations

import re
from enum import IntEnum, IntFlag
from pathlib import Path

import pytest

from ledger.engine import AccountFlags, CreateAccountResult, CreateTransferResult, TransferFlags, TransferStatus

PROTO = Path(__file__).resolve().parents[2] / "proto" / "ledger" / "v1" / "types.proto"


def proto_enum(name: str) -> dict[str, int]:
    body = re.search(rf"enum {name} {{(.*?)}}", PROTO.read_text(), re.S)
    assert body is not None, f"enum {name} missing from {PROTO}"
    return {member: int(number) for member, number in re.findall(r"^\s*(\w+)\s*=\s*(\d+);", body.group(1), re.M)}


@pytest.mark.parametrize(
    ("proto_name", "prefix", "python_enum"),
    [
        ("CreateAccountResult", "CREATE_ACCOUNT_RESULT_", CreateAccountResult),
        ("CreateTransferResult", "CREATE_TRANSFER_RESULT_", CreateTransferResult),
        ("TransferStatus", "TRANSFER_STATUS_", TransferStatus),
        ("AccountFlag", "ACCOUNT_FLAG_", AccountFlags),
        ("TransferFlag", "TRANSFER_FLAG_", TransferFlags),
    ],
)
def test_proto_enum_matches_python(proto_name: str, prefix: str, python_enum: type[IntEnum] | type[IntFlag]) -> None:
    expected = {f"{prefix}{name}": int(member) for name, member in python_enum.__members__.items()}
    assert proto_enum(proto_name) == expected

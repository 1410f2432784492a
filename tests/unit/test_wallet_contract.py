"""The Wallet service's proto and the wallet domain agree: result codes and sources name for name and
number for number, every method has a bound and a permission."""

from __future__ import annotations

from ledger.server._limits import MESSAGE_BYTES_MAX
from ledger.server._wallet import PAY_BATCH_PAYMENTS_MAX, PERMISSIONS, REQUEST_BYTES_MAX, format_id, parse_id
from ledger.v1 import wallet_pb2
from ledger.wallet import TopUpSource, WalletResult


def proto_values(enum: object, prefix: str) -> dict[str, int]:
    return {name.removeprefix(prefix): number for name, number in enum.items()}  # type: ignore[attr-defined]


def test_result_codes_agree() -> None:
    assert proto_values(wallet_pb2.WalletResult, "WALLET_RESULT_") == {code.name: code.value for code in WalletResult}


def test_top_up_sources_agree() -> None:
    assert proto_values(wallet_pb2.TopUpSource, "TOP_UP_SOURCE_") == {s.name: s.value for s in TopUpSource}


def test_every_method_has_a_bound_under_the_message_cap_and_a_permission() -> None:
    methods = {method.name for method in wallet_pb2.DESCRIPTOR.services_by_name["Wallet"].methods}
    assert methods == REQUEST_BYTES_MAX.keys() == PERMISSIONS.keys()
    assert max(REQUEST_BYTES_MAX.values()) < MESSAGE_BYTES_MAX
    assert REQUEST_BYTES_MAX["PayBatch"] > PAY_BATCH_PAYMENTS_MAX * 3 * 1020
    assert REQUEST_BYTES_MAX["PayByCodeBatch"] > PAY_BATCH_PAYMENTS_MAX * 7 * 1020  # its every text at its longest


def test_ids_round_trip_and_malformed_ones_name_nothing() -> None:
    assert parse_id(format_id(2**128 - 2)) == 2**128 - 2
    assert parse_id(format_id(5)) == 5 and format_id(5) == "0" * 31 + "5"
    for text in ("", "xyz", "f" * 32, "0" * 31, "g" * 32, "-" + "1" * 31):
        assert parse_id(text) == 0

"""The operator commands' parsing of what people type: ids, amounts, flags and times, and the connection options."""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path

import pytest

from ledger.cli import main
from ledger.cli._ops import client_config, flag_names, format_time, parse_flags, parse_id, parse_time, unsigned
from ledger.client import AccountFlags, TransferFlags


def test_ids_are_decimal_hexadecimal_or_uuids() -> None:
    value = uuid.uuid4()
    assert parse_id(str(value)) == value.int
    assert parse_id("1_000") == 1000 and parse_id("0xff") == 255 and parse_id(str(2**128 - 1)) == 2**128 - 1
    for bad in ("-1", str(2**128), "twelve", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_id(bad)


def test_unsigned_values_name_their_range() -> None:
    assert unsigned(16)("65535") == 65535
    with pytest.raises(argparse.ArgumentTypeError, match=r"'65536' is out of range \(0 to 2\*\*16 - 1\)"):
        unsigned(16)("65536")
    with pytest.raises(argparse.ArgumentTypeError, match=r"'12\.50' is not an integer"):
        unsigned(64)("12.50")


def test_flags_by_name_or_number() -> None:
    assert parse_flags(TransferFlags, "linked|PENDING") == 3
    assert parse_flags(AccountFlags, "debits_must_not_exceed_credits, history") == 10
    assert parse_flags(AccountFlags, "10") == 10 and parse_flags(AccountFlags, "") == 0
    assert flag_names(AccountFlags, 10) == "DEBITS_MUST_NOT_EXCEED_CREDITS|HISTORY"
    assert flag_names(TransferFlags, 0) == "NONE" and flag_names(TransferFlags, 1 | 1 << 9) == "LINKED|512"
    with pytest.raises(argparse.ArgumentTypeError, match="'pending' is not a flag"):
        parse_flags(AccountFlags, "pending")


def test_times_are_nanoseconds_or_iso_8601_in_utc() -> None:
    assert parse_time("1700000000123456789") == 1_700_000_000_123_456_789
    assert parse_time("1970-01-02") == 86_400 * 10**9
    assert parse_time("1970-01-01T01:00:00+01:00") == 0
    assert parse_time("2023-11-14T22:13:20.5Z") == 1_700_000_000_500_000_000
    assert format_time(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    with pytest.raises(argparse.ArgumentTypeError, match="neither nanoseconds"):
        parse_time("yesterday")


def test_connection_options_override_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LEDGER_SERVER", "ledger.internal:7100")
    monkeypatch.setenv("LEDGER_API_KEY", "from-env")
    namespace = argparse.Namespace(server=None, api_key=None, tls_ca=tmp_path / "ca.pem", tls_cert=None, tls_key=None,
                                   call_timeout=2.5)  # fmt: skip
    config = client_config(namespace)
    assert (config.server, config.api_key, config.tls_ca, config.timeout_seconds) == (
        "ledger.internal:7100", "from-env", tmp_path / "ca.pem", 2.5,
    )  # fmt: skip
    namespace.server, namespace.api_key = "other:1", "from-flag"
    assert (client_config(namespace).server, client_config(namespace).api_key) == ("other:1", "from-flag")


def test_every_operator_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["accounts", "create"], ["transfer"], ["lookup"], ["balance"], ["history"], ["import"], ["export"]):
        with pytest.raises(SystemExit) as exit_:
            main([*command, "--help"])
        assert exit_.value.code == 0
        assert "--server" in capsys.readouterr().out

"""The operator commands' parsing of what people type (ids, amounts, flags, times, the server), their errors,
and how fast they give up on a server that is not there; no ledger runs here."""

from __future__ import annotations

import argparse
import json
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from ledger.cli import main
from ledger.cli._ops import client_config
from ledger.cli._parse import (
    MINOR,
    InputError,
    Money,
    check_amount_text,
    flag_names,
    format_amount,
    format_id,
    format_time,
    money,
    parse_amount,
    parse_flags,
    parse_id,
    parse_id_range,
    parse_record_id,
    parse_server,
    parse_time,
    unsigned,
)
from ledger.client import AccountFlags, TransferFlags

EUR = Money(2, "EUR")


def test_ids_are_decimal_hexadecimal_or_uuids() -> None:
    value = uuid.uuid4()
    assert parse_id(str(value)) == value.int
    assert parse_id("1_000") == 1000 and parse_id("0xff") == 255 and parse_id(str(2**128 - 1)) == 2**128 - 1
    for bad in ("-1", str(2**128), "twelve", "", "1__0", "_1"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_id(bad)
    # An account's or a transfer's own id: 0 and 2**128 - 1 are reserved.
    for reserved in ("0", str(2**128 - 1)):
        with pytest.raises(argparse.ArgumentTypeError, match="is reserved: ids are 1 to 2"):
            parse_record_id(reserved)
    assert parse_id_range("0x10:20") == (16, 20)
    # Shown as typed back: decimal up to 64 bits, a UUID beyond.
    assert format_id(12) == "12" and format_id(2**64 - 1) == str(2**64 - 1)
    assert parse_id(format_id(value.int)) == value.int and format_id(value.int) == str(value)


def test_unsigned_values_name_their_range() -> None:
    assert unsigned(16)("65535") == 65535 and unsigned(64)("1_000") == 1000
    with pytest.raises(argparse.ArgumentTypeError, match=r"'65536' is out of range \(0 to 2\*\*16 - 1\)"):
        unsigned(16)("65536")
    with pytest.raises(argparse.ArgumentTypeError, match=r"'-3' is negative \(0 to 2\*\*32 - 1\)"):
        unsigned(32)("-3")
    with pytest.raises(argparse.ArgumentTypeError, match=r"'12\.50' is not an integer"):
        unsigned(64)("12.50")
    with pytest.raises(argparse.ArgumentTypeError, match=r"must not be 0 \(1 to 2\*\*32 - 1\)"):
        unsigned(32, nonzero=True)("0")


def test_amounts_in_minor_units_are_integers_up_to_the_amount_limit() -> None:
    assert parse_amount("1250") == 1250 and parse_amount("1_000") == 1000 and parse_amount(" 7 ") == 7
    assert parse_amount(str(2**63 - 1)) == 2**63 - 1
    # The range a negative amount is told is the amount's, not an unsigned integer's.
    with pytest.raises(argparse.ArgumentTypeError, match=r"'-5' is negative: amounts are positive"):
        parse_amount("-5")
    with pytest.raises(argparse.ArgumentTypeError, match=r"is more than an amount can be \(9223372036854775807 minor"):
        parse_amount(str(2**63))
    with pytest.raises(argparse.ArgumentTypeError, match=r"'12\.50' has decimals: amounts are integers in minor units"):
        parse_amount("12.50")
    for bad in ("twelve", "1e3", "0x10", "1,50", "1.", ".5", "+5", "", "1 000"):
        with pytest.raises(argparse.ArgumentTypeError, match="is not an amount"):
            parse_amount(bad)


def test_amounts_in_major_units_are_exact_to_the_currency_scale() -> None:
    assert parse_amount("12.50", EUR) == 1250 and parse_amount("12.5", EUR) == 1250
    assert (
        parse_amount("12", EUR) == 1200 and parse_amount("0.01", EUR) == 1 and parse_amount("1_000.00", EUR) == 100_000
    )
    # Digit by digit, never through a float: 0.29 is 29 cents exactly (float(0.29) * 100 is 28.999…).
    assert parse_amount("0.29", EUR) == 29 and parse_amount("92233720368547758.07", EUR) == 2**63 - 1
    with pytest.raises(argparse.ArgumentTypeError, match=r"'12\.505' has 3 decimal places; EUR has 2"):
        parse_amount("12.505", EUR)
    with pytest.raises(argparse.ArgumentTypeError, match=r"more than an amount can be \(92233720368547758\.07\)"):
        parse_amount("92233720368547758.08", EUR)
    assert parse_amount("1500", money("jpy", None)) == 1500
    with pytest.raises(argparse.ArgumentTypeError, match="has 1 decimal places; JPY has 0"):
        parse_amount("15.5", money("JPY", None))
    assert parse_amount("1.234", money("KWD", None)) == 1234 and parse_amount("1.5", money(None, 4)) == 15_000
    assert format_amount(1250, EUR) == "12.50" and format_amount(-5, EUR) == "-0.05"
    assert format_amount(1250, EUR, sign=True) == "+12.50" and format_amount(0, EUR, sign=True) == "0.00"
    assert format_amount(1250) == "1250" and format_amount(7, money(None, 3)) == "0.007"
    assert check_amount_text(" 12.50 ") == "12.50"


def test_the_currency_gives_the_scale_and_must_agree_with_it() -> None:
    assert money(None, None) is MINOR and money("EUR", 2) == EUR and money("usd", None) == Money(2, "USD")
    assert money("XTS", 3) == Money(3, "XTS")  # a code outside the table, with its scale
    with pytest.raises(InputError, match=r"argument --currency: 'XTS' is not in this command's table.*--scale N"):
        money("XTS", None)
    with pytest.raises(InputError, match="argument --scale: EUR has 2 decimal places"):
        money("EUR", 3)


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
    with pytest.raises(argparse.ArgumentTypeError, match=r"outside the ledger's times \(1970 to 2262\)"):
        parse_time("1969-12-31")


def test_the_server_is_host_and_port() -> None:
    for good in ("127.0.0.1:7100", "ledger.internal:7100", "[::1]:7100", "unix:/run/ledger.sock"):
        assert parse_server(good) == good
    for bad, message in [("localhost:71OO", "is not HOST:PORT"), ("127.0.0.1", "is not HOST:PORT"),
                         ("host:0", "the port must be 1 to 65535"), ("host:70000", "the port must be")]:  # fmt: skip
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            parse_server(bad)


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


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["accounts", "create"], ["transfer"], ["lookup"], ["balance"], ["history"], ["import"], ["export"],
                    ["info"], ["demo"], ["wallet", "tenant", "create"], ["wallet", "tenant", "configure"],
                    ["wallet", "tenant", "show"], ["wallet", "open"], ["wallet", "balance"], ["wallet", "top-up"],
                    ["wallet", "pay"], ["wallet", "refund"], ["wallet", "hold"], ["wallet", "capture"],
                    ["wallet", "void"], ["wallet", "freeze"], ["wallet", "unfreeze"], ["wallet", "close"]):  # fmt: skip
        with pytest.raises(SystemExit) as exit_:
            main([*command, "--help"])
        assert exit_.value.code == 0
        assert "--server" in capsys.readouterr().out


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


TRANSFER = ["transfer", "--id", "1", "--debit", "1", "--credit", "2", "--ledger", "978", "--code", "1"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*TRANSFER, "--amount", "-5"], "ledger transfer: error: argument --amount: '-5' is negative"),
        ([*TRANSFER, "--amount", "0"], "ledger transfer: error: argument --amount: must be more than 0"),
        ([*TRANSFER, "--amount", "12.50"], "has decimals: amounts are integers in minor units (e.g. 1250); or give"),
        ([*TRANSFER, "--amount", "12.505", "--currency", "EUR"], "argument --amount: '12.505' has 3 decimal places"),
        ([*TRANSFER, "--amount", "5", "--currency", "XTS"], "argument --currency: 'XTS' is not in this command's"),
        ([*TRANSFER, "--amount", "5", "--timeout", "60"], "argument --timeout: only a hold (--pending) expires"),
        ([*TRANSFER[:5], "--amount", "5"], "required: --credit, --ledger, --code (all but --post and --void need"),
        (["transfer", "--id", "1", "--ledger", "0"], "ledger transfer: error: argument --ledger: must not be 0"),
        (["accounts", "create", "--id", "0", "--ledger", "1", "--code", "1"], "argument --id: '0' is reserved"),
        (["history", "2", "--from", "yesterday"], "ledger history: error: argument --from: 'yesterday' is neither"),
        (["history", "2", "--limit", "-1"], "ledger history: error: argument --limit: '-1' is negative"),
        (["export", "transfers", "x.csv", "--account", "1", "--to", "soon"], "argument --to: 'soon' is neither"),
        (["balance", "2", "--server", "localhost:71OO"], "argument --server: 'localhost:71OO' is not HOST:PORT"),
        (["lookup", "account", "not-an-id"], "ledger lookup: error: argument ID: 'not-an-id' is not an id"),
        (["wallet", "pay", "s", "anna", "-5", "--order", "o"], "ledger wallet pay: error: argument AMOUNT: '-5' is"),
        (["wallet", "refund", "s", "12", "5"], "ledger wallet refund: error: argument PAYMENT_ID: '12' is not an id"),
        (["wallet", "hold", "s", "a", "5", "--reference", "r", "--for", "1w"], "argument --for: '1w' is not a span"),
        (["wallet", "top-up", "s", "a", "5", "--source", "gift", "--expires", "soon"], "argument --expires: 'soon'"),
        (["wallet", "tenant", "create", "s", "--currency", "EUR", "--credit-expiry", "1y"], "'1y' is not a span"),
        (["wallet", "freeze", "s", "a"], "ledger wallet freeze: error: the following arguments are required: --reason"),
    ],
)
def test_a_bad_argument_is_one_line_naming_it(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: `--amount 0` said "--amount required", a negative amount stated the range of a u64, and every
    error came under the command's whole usage (13 lines for `transfer`)."""
    code, out, err = run([*argv, "--server", "127.0.0.1:1"] if "--server" not in argv else argv, capsys)
    assert (code, out) == (2, "")
    assert message in err and len(err.splitlines()) == 1 and "usage:" not in err, err


def test_ledger_alone_shows_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run([], capsys)
    assert code == 2 and "demo" in err and "history" in err


def test_local_info_names_the_engine_and_limits(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["info"], capsys)
    info = json.loads(out)
    assert code == 0 and info["engine"] in ("cython", "python") and info["amount_max"] == 2**63 - 1


def refused_address() -> str:
    """An address where nothing listens (a port just freed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize(
    "argv",
    [
        ["balance", "1"],
        ["history", "1"],
        ["lookup", "transfer", "1"],
        [*TRANSFER, "--amount", "5"],
        ["accounts", "create", "--id", "1", "--ledger", "1", "--code", "1"],
        ["export", "transfers", "-", "--account", "1"],
        ["info"],
        ["demo"],
        ["wallet", "balance", "s", "anna"],
        ["wallet", "pay", "s", "anna", "5", "--order", "o"],
    ],
)
def test_a_server_that_is_not_there_is_said_at_once(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Before: 30 s of retries (the call timeout) and then "no answer within 30 s", for reads as for writes.
    Nothing was sent, so there is no outcome to wait for."""
    server = refused_address()
    started = time.monotonic()
    code, _, err = run([*argv, "--server", server], capsys)
    assert time.monotonic() - started < 5
    assert code == 3 and f"cannot reach {server}" in err and "nothing was sent" in err, err


@pytest.fixture
def unavailable_server() -> Iterator[str]:
    """A gRPC server that answers every call UNAVAILABLE, as a ledger does while its store is down."""

    def refuse(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.UNAVAILABLE, "the journal cannot make writes durable now")

    handler = grpc.method_handlers_generic_handler(
        "ledger.v1.Ledger", {name: grpc.unary_unary_rpc_method_handler(refuse) for name in
                             ("CreateTransfersPacked", "LookupTransfers", "LookupAccounts", "CreateTransfers")},
    )  # fmt: skip
    server = grpc.server(futures.ThreadPoolExecutor(4), handlers=(handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


def test_a_write_sent_keeps_retrying_until_its_deadline(
    unavailable_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fast "cannot reach" is only for a server with no connection: a write that reached a server keeps
    the safe retry with the same id until --call-timeout, then says its outcome is unknown."""
    started = time.monotonic()
    code, _, err = run([*TRANSFER, "--amount", "5", "--server", unavailable_server, "--call-timeout", "4"], capsys)
    assert time.monotonic() - started >= 3.9
    # While it waits, it says so (once), then why it gave up.
    waiting, failed = err.splitlines()
    assert waiting == (
        f"ledger transfer: no answer from {unavailable_server} yet: retrying with the same ids until --call-timeout "
        "(4 s); stopping and running it again is safe"
    )
    assert code == 3 and "no answer within 4 s" in failed and "UNAVAILABLE" in failed
    assert "the outcome is unknown; retrying with the same ids is safe" in failed

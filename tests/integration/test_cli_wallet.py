"""`ledger wallet …` against a served ledger (the Ledger and Wallet services, over both stores): every command's
line, its exit code and its JSON; keys drawn and printed when not given, retries that replay, refusals named,
bad input refused before anything is sent; vouchers, bookings and their trail, statements and settlements
page by page and as CSV, and the event feed until caught up or, followed, until Ctrl-C."""

from __future__ import annotations

import csv
import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.cli import _bookings as bookings_module
from ledger.cli import _grant as grant_module
from ledger.cli._wallet import KEY_PREFIX

from .test_cli_ops import Cli, Served, _startswith, columns

HEX = "[0-9a-f]{32}"
SETTINGS = ["--name", "Demo shop", "--topup-amounts", "10.00,20.00,50.00", "--partial-payment", "--fee-fixed",
            "0.10", "--fee-per-mille", "15", "--credit-expiry", "365d", "--refund-to-credit"]  # fmt: skip


@pytest.fixture
def cli(store_url: str, capsys: pytest.CaptureFixture[str]) -> Iterator[Cli]:
    with Served(store_url) as served:
        yield Cli(served, capsys)


def line(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern + "\n")


def test_tenant_create_show_and_configure(cli: Cli) -> None:
    code, out, _ = cli("wallet", "tenant", "create", "demo-shop", "--currency", "EUR", *SETTINGS)
    assert code == 0 and out == (
        "tenant demo-shop: OK, EUR in ledger 2147483648: self top-up of 10.00, 20.00, 50.00 EUR, partial payment, "
        "fee 0.10 EUR + 15‰, credit expires after 365d, refunds to credit\n"
    )
    # Again with the same settings: the same tenant (idempotent); with others: refused, named.
    assert cli("wallet", "tenant", "create", "demo-shop", "--currency", "EUR", *SETTINGS)[:2] == (0, out)
    code, out, _ = cli("wallet", "tenant", "create", "demo-shop", "--currency", "EUR")
    assert (code, out) == (1, _startswith("tenant demo-shop: TENANT_EXISTS (tenant: demo-shop exists with other"))
    second = cli.json("wallet", "tenant", "create", "other-shop", "--currency", "JPY", "--topup-min", "500")
    assert (second["result"], second["ledger"], second["currency_scale"]) == ("OK", 2**31 + 1, 0)
    assert second["settings"]["topup_min"] == 500 and second["settings"]["self_topup"] is True

    code, out, _ = cli("wallet", "tenant", "show", "demo-shop")
    rows = dict(re.split(r"\s{2,}", row, maxsplit=1) for row in out.splitlines())
    assert code == 0 and rows["ledger"] == "2147483648" and rows["currency"] == "EUR (2 decimals)"
    assert rows["top-up amounts"] == "10.00, 20.00, 50.00 EUR" and rows["credit expiry"] == "365d"
    assert rows["fee"] == "0.10 EUR + 15 per mille of what the wallet pays" and rows["self top-up"] == "yes"
    assert re.fullmatch(HEX, rows["account revenue"]) and len([r for r in rows if r.startswith("account ")]) == 8
    shown = cli.json("wallet", "tenant", "show", "demo-shop")
    assert shown["settings"]["topup_amounts"] == [1000, 2000, 5000] and shown["settings"]["fee_fixed"] == 10

    # Configure changes only what it names.
    code, out, _ = cli("wallet", "tenant", "configure", "demo-shop", "--no-partial-payment", "--max-balance", "500.00")
    assert code == 0 and out.startswith("tenant demo-shop: OK, changed partial_payment, max_balance: ")
    assert "at most 500.00 EUR a wallet" in out and "fee 0.10 EUR + 15‰" in out and "partial payment" not in out
    code, out, _ = cli("wallet", "tenant", "configure", "demo-shop", "--topup-amounts", "none", "--topup-min", "5.00")
    assert code == 0 and "self top-up 5.00 to any amount" in out
    assert cli("wallet", "tenant", "configure", "demo-shop")[1].startswith("tenant demo-shop: OK, nothing changed: ")
    code, out, _ = cli("wallet", "tenant", "configure", "no-shop", "--partial-payment")
    assert (code, out) == (1, "tenant no-shop: TENANT_NOT_FOUND (tenant: no tenant 'no-shop')\n")
    assert cli("wallet", "tenant", "show", "no-shop")[0] == 1

    # Input refused before anything is sent.
    code, _, err = cli("wallet", "tenant", "create", "x", "--currency", "XYZ")
    assert code == 2 and "argument --currency: 'XYZ' is not an ISO 4217 code" in err
    code, _, err = cli("wallet", "tenant", "create", "x", "--currency", "EUR", "--fee-per-mille", "1001")
    assert code == 2 and "'1001' is not 0 to 1000" in err
    code, _, err = cli("wallet", "tenant", "create", "x", "--currency", "JPY", "--fee-fixed", "0.5")
    assert code == 2 and "argument --fee-fixed: '0.5' has 1 decimal places; JPY has 0" in err
    code, _, err = cli("wallet", "tenant", "create", "x", "--currency", "EUR", "--credit-expiry", "a year")
    assert code == 2 and "'a year' is not a span of time" in err
    assert cli("wallet", "tenant", "show", "x")[0] == 1  # none of them was created


def test_the_counter_settings_of_a_tenant(cli: Cli) -> None:
    counter = ["--pin-above", "20.00", "--pin-attempts", "3", "--pin-lock", "1h", "--code-payment-max", "100.00",
               "--wallet-hour-amount", "150.00", "--wallet-hour-count", "10", "--wallet-day-amount", "300.00",
               "--wallet-day-count", "40", "--terminal-hour-amount", "2000.00", "--terminal-day-amount", "9000.00",
               "--terminal-declines-flag", "5"]  # fmt: skip
    code, out, _ = cli("wallet", "tenant", "create", "bar", "--currency", "EUR", *counter)
    assert code == 0 and "PIN above 20.00 EUR, 7 risk limits on code payments" in out, out
    settings = cli.json("wallet", "tenant", "show", "bar")["settings"]
    assert (settings["pin_above"], settings["pin_attempts"], settings["pin_lock_seconds"]) == (2_000, 3, 3_600)
    assert (settings["code_payment_max"], settings["wallet_hour_amount"], settings["wallet_hour_count"]) == (
        10_000, 15_000, 10)  # fmt: skip
    assert (
        settings["wallet_day_amount"],
        settings["wallet_day_count"],
        settings["terminal_hour_amount"],
        settings["terminal_day_amount"],
        settings["terminal_declines_flag"],
    ) == (30_000, 40, 200_000, 900_000, 5)
    rows = dict(re.split(r"\s{2,}", row, maxsplit=1) for row in cli("wallet", "tenant", "show", "bar")[1].splitlines())
    assert rows["PIN attempts"] == "3, then locked 1h" and rows["wallet per hour"] == "150.00 EUR in 10 payments"
    assert rows["terminal flagged at"] == "5 refused codes in 10 minutes"
    code, out, _ = cli("wallet", "tenant", "configure", "bar", "--pin-above", "0", "--wallet-hour-count", "0")
    assert code == 0 and out.startswith("tenant bar: OK, changed pin_above, wallet_hour_count: ") and "PIN" not in out
    code, _, err = cli("wallet", "tenant", "configure", "bar", "--pin-attempts", "-1")
    assert code == 2 and "'-1' is not a count" in err
    code, _, err = cli("wallet", "tenant", "configure", "bar", "--pin-above", "1.001")
    assert code == 2 and "--pin-above" in err


def test_a_wallets_day(cli: Cli) -> None:
    assert cli("wallet", "tenant", "create", "demo-shop", "--currency", "EUR", *SETTINGS)[0] == 0
    code, out, _ = cli("wallet", "open", "demo-shop", "anna")
    assert code == 0 and line(rf"wallet anna of demo-shop: OK, open \(active\), id {HEX}, available 0.00 EUR").match(
        out
    )
    assert cli("wallet", "open", "demo-shop", "anna")[:2] == (0, out)  # opening again is harmless

    # Top-ups: an amount not offered is refused by name; a key is drawn and printed when none is given.
    code, out, err = cli("wallet", "top-up", "demo-shop", "anna", "15.00", "--source", "purchase", "--reference", "p0")
    assert code == 1 and out == (
        "top-up of anna's wallet: AMOUNT_NOT_ALLOWED (amount 15.00 EUR is not one of the top-up amounts offered: "
        "10.00 EUR, 20.00 EUR, 50.00 EUR)\n"
    )
    drawn = re.search(
        rf"key ({KEY_PREFIX}[0-9a-f]{{32}}) \(drawn at random\): a retry of this top-up must send it", err
    )
    assert drawn is not None and f"--key {drawn[1]}" in err
    code, out, err = cli("wallet", "top-up", "demo-shop", "anna", "5000", "--source", "purchase", "--reference",
                         "psp-1", "--key", "t-1")  # fmt: skip
    assert code == 0 and err == ""
    assert line(rf"top-up {HEX}: OK, 50.00 EUR credited to anna \(purchase\), expires \S+Z, balance 50.00 EUR").match(
        out
    )
    assert cli("wallet", "top-up", "demo-shop", "anna", "50.00", "--source", "purchase", "--reference", "psp-1",
               "--key", "t-1")[:2] == (0, out)  # fmt: skip  # a retry: the same reply, nothing credited twice
    code, out, _ = cli("wallet", "top-up", "demo-shop", "anna", "7.50", "--source", "gift", "--reference", "welcome",
                       "--expires", "30d", "--key", "t-2")  # fmt: skip
    assert code == 0 and "7.50 EUR credited to anna (gift), expires " in out and "balance 57.50 EUR" in out
    code, out, _ = cli("wallet", "top-up", "demo-shop", "anna", "2.50", "--source", "operator", "--reference",
                       "goodwill", "--operator", "eve", "--never-expires", "--key", "t-3")  # fmt: skip
    assert code == 0 and "(operator), never expires, balance 60.00 EUR" in out
    code, out, _ = cli("wallet", "top-up", "demo-shop", "anna", "1.00", "--source", "operator", "--reference", "x",
                       "--key", "t-4")  # fmt: skip
    assert code == 1 and out.startswith("top-up of anna's wallet: REFERENCE_REQUIRED (operator and reference")
    code, out, _ = cli("wallet", "balance", "demo-shop", "anna")
    lines = out.splitlines()
    assert code == 0 and lines[0] == (
        "wallet anna of demo-shop: active, available 60.00 EUR, held 0.00 EUR, posted 60.00 EUR"
    )
    assert re.fullmatch(r"  7.50 EUR expires \S+Z", lines[1]) and re.fullmatch(r"  50.00 EUR expires \S+Z", lines[2])
    assert lines[3:] == ["  2.50 EUR never expires"]
    balance = cli.json("wallet", "balance", "demo-shop", "anna")
    assert (balance["available"], balance["status"], [e["amount"] for e in balance["expiring"]]) == (
        6000,
        "ACTIVE",
        [750, 5000],
    )

    # Payments: in full with the fee; a retry replays; a larger order in part; one refused.
    code, out, _ = cli("wallet", "pay", "demo-shop", "anna", "20.00", "--order", "4711", "--key", "p-1")
    assert code == 0 and line(rf"payment ({HEX}): OK, 20.00 EUR paid for order 4711, fee 0.40 EUR, "
                              r"balance 39.60 EUR").match(out)  # fmt: skip
    payment_id = out.split()[1].rstrip(":")
    assert cli("wallet", "pay", "demo-shop", "anna", "20.00", "--order", "4711", "--key", "p-1")[:2] == (0, out)
    code, out, _ = cli("wallet", "pay", "demo-shop", "anna", "80.00", "--order", "4712", "--partial", "--key", "p-2")
    assert code == 0 and re.fullmatch(
        rf"payment {HEX}: OK, 38.92 EUR of 80.00 EUR paid for order 4712, 41.08 EUR left to pay another way, "
        r"fee 0.68 EUR, balance 0.00 EUR\n",
        out,
    )
    paid = cli.json("wallet", "pay", "demo-shop", "anna", "1.00", "--order", "4713", "--key", "p-3", exit_code=1)
    assert paid["result"] == "INSUFFICIENT_FUNDS" and paid["key"] == "p-3" and paid["requested"] == 100
    code, out, _ = cli("wallet", "pay", "demo-shop", "anna", "1.00", "--order", "4713", "--key", "p-2")
    assert code == 1 and out.startswith("payment of order 4713: IDEMPOTENCY_KEY_REUSED (key: this idempotency key")

    # Refunds: bounded by what was paid.
    code, out, _ = cli("wallet", "refund", "demo-shop", payment_id, "5.00", "--reason", "returned", "--key", "r-1")
    assert code == 0 and out == (
        f"refund {out.split()[1].rstrip(':')}: OK, 5.00 EUR back into the wallet, 15.00 EUR left to refund of "
        f"payment {payment_id}, balance 5.00 EUR\n"
    )
    code, out, _ = cli("wallet", "refund", "demo-shop", payment_id, "15.01", "--key", "r-2")
    assert code == 1 and out == (
        f"refund of payment {payment_id}: REFUND_EXCEEDS_PAYMENT (amount: 15.01 EUR is more than the 15.00 EUR left "
        "to refund of this payment)\n"
    )
    code, out, _ = cli("wallet", "refund", "demo-shop", "0" * 32, "1", "--key", "r-3")
    assert code == 1 and "PAYMENT_NOT_FOUND" in out

    # Holds: capture part of one, void another; a hold ends once.
    code, out, _ = cli("wallet", "hold", "demo-shop", "anna", "3.00", "--reference", "table 4", "--for", "2h",
                       "--key", "h-1")  # fmt: skip
    assert code == 0 and line(rf"hold ({HEX}): OK, 3.00 EUR held until \S+Z, balance 2.00 EUR").match(out)
    hold_id = out.split()[1].rstrip(":")
    other = cli.json("wallet", "hold", "demo-shop", "anna", "1.00", "--reference", "table 5", "--key", "h-2")
    assert cli.json("wallet", "balance", "demo-shop", "anna")["held"] == 400
    code, out, _ = cli("wallet", "capture", "demo-shop", hold_id, "2.50", "--key", "c-1")
    assert (code, out) == (
        0, f"hold {hold_id}: OK, 2.50 EUR captured, the rest of the hold released, balance 1.50 EUR\n"
    )  # fmt: skip
    code, out, _ = cli("wallet", "void", "demo-shop", other["hold_id"], "--key", "v-1")
    assert (code, out) == (0, f"hold {other['hold_id']}: OK, 1.00 EUR released, balance 2.50 EUR\n")
    code, out, _ = cli("wallet", "capture", "demo-shop", other["hold_id"], "--key", "c-2")
    assert code == 1 and out.startswith(f"capture of hold {other['hold_id']}: HOLD_NOT_PENDING (")
    code, out, _ = cli("wallet", "refund", "demo-shop", hold_id, "2.50", "--key", "r-4")  # a capture is refundable
    assert code == 0 and "2.50 EUR back into the wallet, 0.00 EUR left to refund" in out

    # Status: a frozen wallet takes refunds only; a wallet closes at zero only, and then for good.
    assert cli("wallet", "freeze", "demo-shop", "anna", "--reason", "card lost") == (
        0, "wallet anna of demo-shop: OK, frozen\n", ""
    )  # fmt: skip
    code, out, _ = cli("wallet", "pay", "demo-shop", "anna", "1.00", "--order", "4714", "--key", "p-4")
    assert code == 1 and "WALLET_FROZEN" in out
    assert cli("wallet", "balance", "demo-shop", "anna")[1].startswith("wallet anna of demo-shop: frozen, ")
    assert cli("wallet", "unfreeze", "demo-shop", "anna", "--reason", "found")[:2] == (
        0, "wallet anna of demo-shop: OK, active\n"
    )  # fmt: skip
    code, out, _ = cli("wallet", "close", "demo-shop", "anna", "--reason", "moving away")
    assert (code, out) == (
        1, "wallet anna of demo-shop: WALLET_NOT_EMPTY (the wallet holds 5.00 EUR; pay it out or write it off first)\n"
    )  # fmt: skip
    assert cli("wallet", "open", "demo-shop", "ben")[0] == 0
    assert cli("wallet", "close", "demo-shop", "ben", "--reason", "duplicate")[:2] == (
        0, "wallet ben of demo-shop: OK, closed\n"
    )  # fmt: skip
    code, out, _ = cli("wallet", "top-up", "demo-shop", "ben", "10.00", "--source", "gift", "--key", "t-5")
    assert code == 1 and "WALLET_CLOSED" in out
    code, out, _ = cli("wallet", "balance", "demo-shop", "carl")
    assert (code, out) == (1, "wallet carl of demo-shop: WALLET_NOT_FOUND (customer: this customer has no wallet)\n")


def test_bad_input_is_refused_before_anything_is_sent(cli: Cli) -> None:
    assert cli("wallet", "tenant", "create", "s", "--currency", "EUR")[0] == 0
    assert cli("wallet", "open", "s", "anna")[0] == 0
    cases = [
        (["pay", "s", "anna", "1.005", "--order", "o", "--key", "k"], "argument AMOUNT: '1.005' has 3 decimal places; "
                                                                       "EUR has 2"),
        (["pay", "s", "anna", "0", "--order", "o", "--key", "k"], "argument AMOUNT: must be more than 0"),
        (["pay", "s", "anna", "-5", "--order", "o"], "'-5' is negative"),
        (["pay", "s", "anna", "5"], "the following arguments are required: --order"),
        (["refund", "s", "not-an-id", "5"], "argument PAYMENT_ID: 'not-an-id' is not an id of the Wallet service"),
        (["capture", "s", "12", "5"], "argument HOLD_ID: '12' is not an id"),
        (["freeze", "s", "anna"], "the following arguments are required: --reason"),
        (["top-up", "s", "anna", "5", "--source", "lottery"], "argument --source: invalid choice: 'lottery'"),
        (["top-up", "s", "anna", "5", "--source", "gift", "--expires", "someday"], "'someday' is neither"),
        (["hold", "s", "anna", "5", "--reference", "r", "--for", "1 week"], "'1 week' is not a span of time"),
    ]  # fmt: skip
    for argv, said in cases:
        code, out, err = cli("wallet", *argv)
        assert (code, out) == (2, ""), argv
        assert said in err, (argv, err)
    assert cli.json("wallet", "balance", "s", "anna")["posted"] == 0  # nothing moved
    code, _, err = cli("wallet", "balance", "s", "anna", "--server", "127.0.0.1:1", "--call-timeout", "0.3",
                       server=False)  # fmt: skip
    assert code == 3 and "ledger wallet balance: error: cannot reach 127.0.0.1:1" in err


def test_a_key_of_a_wallet_role(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A POS terminal's key pays and reads its own tenant's wallets; what its role lacks is the call's failure."""
    keys = {"ops": ("demo-shop", "operator", []), "till": ("demo-shop", "pos", []), "other": ("shop-b", "pos", [])}
    with Served(store_url, keys) as served:
        cli = Cli(served, capsys)
        ops, till, other = (["--api-key", served.tokens[who]] for who in ("ops", "till", "other"))
        assert cli("wallet", "tenant", "create", "demo-shop", "--currency", "EUR", *ops)[0] == 0
        assert cli("wallet", "open", "demo-shop", "anna", *ops)[0] == 0
        assert cli("wallet", "top-up", "demo-shop", "anna", "20.00", "--source", "gift", "--key", "t", *ops)[0] == 0
        code, out, _ = cli("wallet", "pay", "demo-shop", "anna", "4.00", "--order", "o-1", "--key", "p", *till)
        assert code == 0 and "OK, 4.00 EUR paid for order o-1, balance 16.00 EUR" in out
        code, _, err = cli("wallet", "top-up", "demo-shop", "anna", "5.00", "--source", "gift", "--key", "t2", *till)
        assert code == 3 and "ledger wallet top-up: error: " in err and "wallet.topup" in err
        code, _, err = cli("wallet", "balance", "demo-shop", "anna", *other)
        assert code == 3 and "acts for its own tenant only, not for 'demo-shop'" in err
        assert json.loads(cli("wallet", "balance", "demo-shop", "anna", "--json", *till)[1])["available"] == 1600


def test_a_grant_run_from_a_csv_file_pays_each_customer_once(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(grant_module, "CALL_GRANTS_MAX", 500)  # several calls of a run, with a small ledger
    assert cli("wallet", "tenant", "create", "corp", "--currency", "EUR", "--max-balance", "300.00")[0] == 0
    grants = tmp_path / "march.csv"
    rows = [
        "customer,amount,expires_at",
        *(f"emp-{n},150.00," for n in range(1_200)),
        "emp-x,400.00,2031-01-01T00:00:00Z",
    ]
    grants.write_text("\n".join(rows) + "\n")
    code, out, err = cli("wallet", "grant", "corp", "--csv", str(grants), "--run-id", "2027-03", "--progress")
    assert code == 1 and out.splitlines()[0] == "grant run 2027-03: 1200 of 1201 grants OK, 180000.00 EUR credited"
    assert out.splitlines()[1].startswith("  line 1202: MAX_BALANCE_EXCEEDED (") and "grant" in err
    again = cli.json("wallet", "grant", "corp", "--csv", str(grants), "--run-id", "2027-03", exit_code=1)
    assert (again["granted"], again["granted_amount"]) == (1_200, 18_000_000)  # replayed: nothing moved twice
    assert [refused["result"] for refused in again["refused"]] == ["MAX_BALANCE_EXCEEDED"]  # replayed too
    balance = cli.json("wallet", "balance", "corp", "emp-7")
    assert balance["available"] == 15_000
    bad = tmp_path / "bad.csv"
    bad.write_text("who,amount\nanna,1\n")
    code, _, err = cli("wallet", "grant", "corp", "--csv", str(bad), "--run-id", "x")
    assert code == 2 and "the header must name the columns customer and amount" in err


# -- vouchers, bookings, statements, settlement and events -----------------------------------------------

CODE = "[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]"


def test_vouchers_issued_shown_spent_redeemed_and_deactivated(cli: Cli) -> None:
    assert cli("wallet", "tenant", "create", "demo-shop", "--currency", "EUR", *SETTINGS)[0] == 0
    assert cli("wallet", "open", "demo-shop", "anna")[0] == 0

    # The code is printed once, saying so; a retry with the key answers the first reply, the code with it.
    code, out, err = cli("wallet", "voucher", "issue", "demo-shop", "25.00", "--key", "v-1")
    issued = line(rf"voucher ({HEX}): OK, 25.00 EUR issued, expires \S+Z, code ({CODE}) "
                  r"\(shown only now: the ledger keeps only a hash of it\)").fullmatch(out)  # fmt: skip
    assert code == 0 and err == "" and issued is not None
    voucher_id, voucher_code = issued[1], issued[2]
    assert cli("wallet", "voucher", "issue", "demo-shop", "25.00", "--key", "v-1")[:2] == (0, out)
    code, out, err = cli("wallet", "voucher", "issue", "demo-shop", "10.00", "--never-expires")
    assert code == 0 and "10.00 EUR issued, never expires, code " in out
    assert re.search(rf"key {KEY_PREFIX}[0-9a-f]{{32}} \(drawn at random\): a retry of this voucher issue must", err)
    gift = cli.json("wallet", "voucher", "issue", "demo-shop", "5.00", "--expires", "30d", "--key", "v-3")
    assert (gift["amount"], gift["remaining"], gift["status"], gift["key"]) == (500, 500, "active", "v-3")
    assert re.fullmatch(CODE, gift["code"])

    # Shown by its code as people type it: any case, without dashes.
    typed = voucher_code.replace("-", "").lower()
    code, out, _ = cli("wallet", "voucher", "show", "demo-shop", typed)
    assert code == 0 and line(rf"voucher {voucher_id}: active, 25.00 EUR left of 25.00 EUR, expires \S+Z").fullmatch(
        out
    )

    # Spent on orders: up to what is left, the rest of an order left to pay another way.
    code, out, _ = cli("wallet", "voucher", "spend", "demo-shop", voucher_code, "10.00", "--order", "5001",
                       "--key", "s-1")  # fmt: skip
    assert (code, out) == (0, f"voucher {voucher_id}: OK, 10.00 EUR paid for order 5001, 15.00 EUR left on it\n")
    code, out, _ = cli("wallet", "voucher", "spend", "demo-shop", voucher_code, "20.00", "--order", "5002",
                       "--key", "s-2")  # fmt: skip
    assert (code, out) == (
        0, f"voucher {voucher_id}: OK, 15.00 EUR of 20.00 EUR paid for order 5002, 5.00 EUR left to pay another way, "
        "0.00 EUR left on it\n",
    )  # fmt: skip
    code, out, _ = cli("wallet", "voucher", "show", "demo-shop", voucher_code)
    assert (code, out) == (1, f"voucher {voucher_code}: VOUCHER_EMPTY (code: nothing is left on the voucher)\n")
    shown = cli.json("wallet", "voucher", "show", "demo-shop", voucher_code, exit_code=1)
    assert (shown["result"], shown["amount"], shown["remaining"]) == ("VOUCHER_EMPTY", 2500, 0)

    # Redeemed into a wallet: all that is left, as credit expiring with the voucher (here: never).
    never = re.search(rf"code ({CODE})", cli("wallet", "voucher", "issue", "demo-shop", "10.00", "--never-expires",
                                              "--key", "v-4")[1])  # fmt: skip
    assert never is not None
    code, out, _ = cli("wallet", "voucher", "redeem", "demo-shop", never[1], "anna", "--key", "r-1")
    assert code == 0 and line(
        rf"voucher {HEX}: OK, 10.00 EUR redeemed into anna's wallet, never expires, balance 10.00 EUR"
    ).fullmatch(out)
    code, out, _ = cli("wallet", "voucher", "redeem", "demo-shop", never[1], "anna", "--key", "r-2")
    assert code == 1 and out.startswith(f"redemption of voucher {never[1]}: VOUCHER_EMPTY (")
    code, out, _ = cli("wallet", "voucher", "redeem", "demo-shop", gift["code"], "nobody", "--key", "r-3")
    assert code == 1 and "WALLET_NOT_FOUND (customer: this customer has no wallet; open it first)" in out
    assert cli.json("wallet", "balance", "demo-shop", "anna")["available"] == 1000

    # Deactivated: what is left goes back; the voucher is then refused by name.
    code, out, _ = cli("wallet", "voucher", "deactivate", "demo-shop", gift["code"], "--reason", "sold by mistake",
                       "--key", "d-1")  # fmt: skip
    assert (code, out) == (0, f"voucher {gift['voucher_id']}: OK, deactivated, 5.00 EUR back to the funding account\n")
    code, out, _ = cli("wallet", "voucher", "spend", "demo-shop", gift["code"], "1.00", "--order", "5003", "--key",
                       "s-3")  # fmt: skip
    assert (code, out) == (
        1, f"payment of order 5003 by voucher {gift['code']}: VOUCHER_DEACTIVATED (code: the voucher was deactivated)\n"
    )  # fmt: skip
    code, out, _ = cli("wallet", "voucher", "deactivate", "demo-shop", voucher_code, "--reason", "used", "--key", "d-2")
    assert (code, out) == (0, f"voucher {voucher_id}: OK, deactivated, nothing was left on it\n")

    # A mistyped code (its check character differs) and a missing option: refused before anything is sent.
    mistyped = ("1" if voucher_code[0] != "1" else "2") + voucher_code[1:]
    code, out, err = cli("wallet", "voucher", "show", "demo-shop", mistyped)
    assert (code, out) == (2, "") and f"argument CODE: {mistyped!r} is not a voucher code" in err and "mistyped?" in err
    code, _, err = cli("wallet", "voucher", "deactivate", "demo-shop", voucher_code, "--key", "d-3")
    assert code == 2 and "the following arguments are required: --reason" in err
    code, _, err = cli("wallet", "voucher", "spend", "demo-shop", voucher_code, "1.001", "--order", "o", "--key", "x")
    assert code == 2 and "argument AMOUNT: '1.001' has 3 decimal places; EUR has 2" in err


def test_bookings_their_reversal_the_audit_trail_and_emptying_a_wallet(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("wallet", "tenant", "create", "demo-shop", "--currency", "EUR")[0] == 0
    assert cli("wallet", "open", "demo-shop", "anna")[0] == 0 and cli("wallet", "open", "demo-shop", "ben")[0] == 0
    assert cli("wallet", "top-up", "demo-shop", "anna", "20.00", "--source", "gift", "--key", "t-1")[0] == 0

    code, out, _ = cli("wallet", "book", "demo-shop", "anna", "5.00", "--credit", "--operator", "eve", "--reason",
                       "goodwill", "--key", "b-1")  # fmt: skip
    booked = line(rf"booking ({HEX}): OK, 5.00 EUR credited to anna by eve, balance 25.00 EUR").fullmatch(out)
    assert code == 0 and booked is not None
    assert cli("wallet", "book", "demo-shop", "anna", "5.00", "--credit", "--operator", "eve", "--reason",
               "goodwill", "--key", "b-1")[:2] == (0, out)  # fmt: skip  # a retry moves nothing twice
    code, out, _ = cli("wallet", "book", "demo-shop", "anna", "30.00", "--debit", "--operator", "eve", "--reason",
                       "x", "--key", "b-2")  # fmt: skip
    assert (code, out) == (1, "booking on anna's wallet: INSUFFICIENT_FUNDS (amount: the wallet has 25.00 EUR to "
                              "spend)\n")  # fmt: skip
    code, out, _ = cli("wallet", "book", "demo-shop", "anna", "200", "--debit", "--operator", "max", "--reason",
                       "fee correction", "--key", "b-3")  # fmt: skip
    assert code == 0 and out.endswith("OK, 2.00 EUR debited from anna by max, balance 23.00 EUR\n")
    ben = cli.json("wallet", "book", "demo-shop", "ben", "1.00", "--credit", "--operator", "eve", "--reason",
                   "welcome", "--key", "b-4")  # fmt: skip
    assert (ben["direction"], ben["amount"], ben["balance"], ben["key"]) == ("CREDIT", 100, 100, "b-4")

    code, out, _ = cli("wallet", "reverse", "demo-shop", booked[1], "--operator", "max", "--reason", "booked twice",
                       "--key", "r-1")  # fmt: skip
    reversal = line(rf"booking ({HEX}): OK, reverses {booked[1]}: 5.00 EUR debited from the wallet by max, "
                    r"balance 18.00 EUR").fullmatch(out)  # fmt: skip
    assert code == 0 and reversal is not None
    code, out, _ = cli("wallet", "reverse", "demo-shop", booked[1], "--operator", "max", "--reason", "again",
                       "--key", "r-2")  # fmt: skip
    assert (code, out) == (1, f"reversal of booking {booked[1]}: BOOKING_ALREADY_REVERSED (booking_id: reversed "
                              f"already by {reversal[1]})\n")  # fmt: skip
    code, out, _ = cli("wallet", "reverse", "demo-shop", reversal[1], "--operator", "max", "--reason", "x",
                       "--key", "r-3")  # fmt: skip
    assert code == 1 and "BOOKING_NOT_FOUND" in out

    # The audit trail: every booking in the order made, what reversed what; filtered; a page at a time.
    code, out, err = cli("wallet", "bookings", "demo-shop")
    rows = columns(out)
    assert code == 0 and err == "" and out.split()[:7] == [
        "TIME", "BOOKING", "WALLET", "AMOUNT", "(EUR)", "OPERATOR", "REASON"
    ]  # fmt: skip
    assert [row[1:] for row in rows] == [
        [booked[1], rows[0][2], "+5.00", "eve", "goodwill", f"reversed by {reversal[1]}"],
        [rows[1][1], rows[0][2], "-2.00", "max", "fee correction", ""],
        [ben["booking_id"], ben["wallet_id"], "+1.00", "eve", "welcome", ""],
        [reversal[1], rows[0][2], "-5.00", "max", "booked twice", f"reverses {booked[1]}"],
    ]
    assert [row[1] for row in columns(cli("wallet", "bookings", "demo-shop", "--customer", "ben")[1])] == [
        ben["booking_id"]
    ]
    assert len(columns(cli("wallet", "bookings", "demo-shop", "--operator", "max")[1])) == 2
    none = cli("wallet", "bookings", "demo-shop", "--customer", "carl")
    assert none[:2] == (0, "bookings of demo-shop: none (customer carl)\n")
    since = rows[2][0]
    assert [row[0] for row in columns(cli("wallet", "bookings", "demo-shop", "--since", since)[1])] == [
        since, rows[3][0]
    ]  # fmt: skip
    assert len(columns(cli("wallet", "bookings", "demo-shop", "--until", since)[1])) == 2
    code, out, err = cli("wallet", "bookings", "demo-shop", "--limit", "3")
    assert code == 0 and len(columns(out)) == 3
    assert err == "ledger wallet bookings: the first 3 shown; more with --limit N or --all\n"
    monkeypatch.setattr(bookings_module, "PAGE_BOOKINGS_MAX", 1)  # one booking a call: --all follows the pages
    assert columns(cli("wallet", "bookings", "demo-shop", "--all")[1]) == rows
    assert cli("wallet", "bookings", "demo-shop", "--limit", "0")[1:] == (cli("wallet", "bookings", "demo-shop")[1], "")
    listed = cli.json("wallet", "bookings", "demo-shop", "--limit", "2")
    assert [entry["booking_id"] for entry in listed["bookings"]] == [rows[0][1], rows[1][1]] and listed["more"]
    assert listed["bookings"][0]["reversed_by"] == reversal[1] and listed["bookings"][1]["direction"] == "DEBIT"

    # Emptying a wallet so it may close: not with a hold open; then paid out or written off, all of it.
    hold = cli.json("wallet", "hold", "demo-shop", "anna", "3.00", "--reference", "locker", "--key", "h-1")
    code, out, _ = cli("wallet", "empty", "demo-shop", "anna", "--payout", "--operator", "eve", "--reason", "moving",
                       "--key", "e-1")  # fmt: skip
    assert (code, out) == (1, "payout of anna's wallet: WALLET_NOT_EMPTY (the wallet has 3.00 EUR held: capture or "
                              "void it first)\n")  # fmt: skip
    assert cli("wallet", "void", "demo-shop", hold["hold_id"], "--key", "v-1")[0] == 0
    code, out, _ = cli("wallet", "empty", "demo-shop", "anna", "--write-off", "--operator", "eve", "--reason",
                       "moving", "--key", "e-2")  # fmt: skip
    assert code == 0 and line(rf"write-off {HEX}: OK, 18.00 EUR written off from anna's wallet, balance 0.00 EUR: "
                              "it may close").fullmatch(out)  # fmt: skip
    assert cli("wallet", "close", "demo-shop", "anna", "--reason", "moving")[:2] == (
        0, "wallet anna of demo-shop: OK, closed\n"
    )  # fmt: skip
    code, out, _ = cli("wallet", "empty", "demo-shop", "ben", "--payout", "--operator", "eve", "--reason", "closing",
                       "--key", "e-3")  # fmt: skip
    assert code == 0 and out.endswith(": OK, 1.00 EUR paid out of ben's wallet, balance 0.00 EUR: it may close\n")
    code, out, _ = cli("wallet", "empty", "demo-shop", "ben", "--payout", "--operator", "eve", "--reason", "closing",
                       "--key", "e-4")  # fmt: skip
    assert (code, out) == (1, "payout of ben's wallet: AMOUNT_INVALID (the wallet holds nothing to move)\n")

    for argv, said in [
        (["book", "demo-shop", "ben", "1", "--operator", "o", "--reason", "r"], "one of the arguments --credit"),
        (["book", "demo-shop", "ben", "1", "--credit", "--reason", "r"], "required: --operator"),
        (["reverse", "demo-shop", "b-1", "--operator", "o", "--reason", "r"], "argument BOOKING_ID: 'b-1' is not an"),
        (["empty", "demo-shop", "ben", "--operator", "o", "--reason", "r"], "one of the arguments --payout"),
        (["bookings", "demo-shop", "--since", "2026-02-01", "--until", "2026-01-01"], "argument --until: must be"),
        (["bookings", "demo-shop", "--limit", "5", "--all"], "argument --all: not allowed with argument --limit"),
    ]:  # fmt: skip
        code, out, err = cli("wallet", *argv)
        assert (code, out) == (2, "") and said in err, (argv, err)


def test_a_wallets_statement_a_page_at_a_time(cli: Cli) -> None:
    assert cli("wallet", "tenant", "create", "demo-shop", "--currency", "EUR", *SETTINGS)[0] == 0
    assert cli("wallet", "open", "demo-shop", "anna")[0] == 0
    top_up = cli.json("wallet", "top-up", "demo-shop", "anna", "50.00", "--source", "purchase", "--reference", "psp-1",
                      "--key", "t-1")  # fmt: skip
    paid = cli.json("wallet", "pay", "demo-shop", "anna", "20.00", "--order", "4711", "--key", "p-1")
    partial = cli.json("wallet", "pay", "demo-shop", "anna", "80.00", "--order", "4712", "--partial", "--key", "p-2")
    refund = cli.json("wallet", "refund", "demo-shop", paid["payment_id"], "5.00", "--key", "r-1")
    hold = cli.json("wallet", "hold", "demo-shop", "anna", "3.00", "--reference", "table 4", "--key", "h-1")
    capture = cli.json("wallet", "capture", "demo-shop", hold["hold_id"], "2.50", "--key", "c-1")
    other = cli.json("wallet", "hold", "demo-shop", "anna", "1.00", "--reference", "table 5", "--key", "h-2")
    void = cli.json("wallet", "void", "demo-shop", other["hold_id"], "--key", "v-1")
    booking = cli.json("wallet", "book", "demo-shop", "anna", "2.00", "--credit", "--operator", "eve", "--reason",
                       "goodwill", "--key", "b-1")  # fmt: skip
    voucher = cli.json("wallet", "voucher", "issue", "demo-shop", "10.00", "--key", "v-2")
    redeemed = cli.json("wallet", "voucher", "redeem", "demo-shop", voucher["code"], "anna", "--key", "v-3")

    code, out, err = cli("wallet", "statement", "demo-shop", "anna")
    assert code == 0 and err == "" and out.split()[:8] == [
        "TIME", "KIND", "OPERATION", "AMOUNT", "(EUR)", "FEE", "BALANCE", "NOTE"
    ]  # fmt: skip
    rows = columns(out)
    other_way = format(partial["remainder"] / 100, ".2f")
    assert [row[1:] for row in rows] == [
        ["top-up", top_up["operation_id"], "+50.00", "", "50.00", "purchase"],
        ["payment", paid["payment_id"], "-20.00", "0.40", "29.60", ""],
        ["payment", partial["payment_id"], f"-{partial['paid'] / 100:.2f}", f"{partial['fee'] / 100:.2f}", "0.00",
         f"of 80.00, {other_way} paid another way"],
        ["refund", refund["refund_id"], "+5.00", "", "5.00", f"of payment {paid['payment_id']}"],
        ["hold", hold["hold_id"], "0.00", "", "5.00", "3.00 held"],
        ["capture", rows[5][2], "-2.50", "", "2.50", f"captures hold {hold['hold_id']} (3.00 held)"],
        ["hold", other["hold_id"], "0.00", "", "2.50", "1.00 held"],
        ["void", rows[7][2], "0.00", "", "2.50", f"voids hold {other['hold_id']} (1.00 held)"],
        ["booking", booking["booking_id"], "+2.00", "", "4.50", ""],
        ["top-up", rows[9][2], "+10.00", "", "14.50", "voucher"],
    ]  # fmt: skip
    # A capture and a void have ids of their own, as a redemption has (the statement's, not the voucher's).
    assert re.fullmatch(HEX, rows[5][2]) and rows[5][2] != hold["hold_id"] and rows[7][2] != other["hold_id"]
    assert capture["amount"] == 250 and redeemed["voucher_id"] == voucher["voucher_id"] != rows[9][2]
    assert void["result"] == "OK" and cli.json("wallet", "balance", "demo-shop", "anna")["posted"] == 1450
    assert all(re.fullmatch(r"\S+Z", row[0]) for row in rows) and [row[0] for row in rows] == sorted(r[0] for r in rows)

    # Kinds; a range; pages by the cursor the service gives, and all of them.
    kinds = columns(cli("wallet", "statement", "demo-shop", "anna", "--kind", "hold,void", "--kind", "capture")[1])
    assert [row[1] for row in kinds] == ["hold", "capture", "hold", "void"]
    assert [row[2] for row in columns(cli("wallet", "statement", "demo-shop", "anna", "--kind", "PAYMENT")[1])] == [
        paid["payment_id"], partial["payment_id"]
    ]  # fmt: skip
    ranged = cli("wallet", "statement", "demo-shop", "anna", "--since", rows[4][0], "--until", rows[6][0])[1]
    assert columns(ranged) == rows[4:6]
    code, out, err = cli("wallet", "statement", "demo-shop", "anna", "--limit", "4")
    cursor = re.fullmatch(r"ledger wallet statement: more rows follow: --after (\S+) for the next page, or --all for "
                          r"every one\n", err)  # fmt: skip
    assert code == 0 and columns(out) == rows[:4] and cursor is not None
    code, out, err = cli("wallet", "statement", "demo-shop", "anna", "--limit", "4", "--after", cursor[1])
    assert columns(out) == rows[4:8] and "more rows follow" in err
    code, out, err = cli("wallet", "statement", "demo-shop", "anna", "--limit", "3", "--all")
    assert (code, err) == (0, "") and columns(out) == rows
    whole = cli.json("wallet", "statement", "demo-shop", "anna", "--limit", "3", "--all")
    assert [row["operation_id"] for row in whole["rows"]] == [row[2] for row in rows] and not whole["has_more"]
    assert whole["rows"][1] == {**whole["rows"][1], "kind": "PAYMENT", "amount": -2000, "fee": 40, "total": -2040,
                                "balance": 2960, "requested": 2000}  # fmt: skip
    assert whole["rows"][0]["source"] == "PURCHASE" and whole["wallet_id"] == top_up["wallet_id"]
    code, out, _ = cli("wallet", "statement", "demo-shop", "anna", "--kind", "expiry")
    assert (code, out) == (0, "wallet anna of demo-shop: no movements of these kinds\n")
    code, out, _ = cli("wallet", "statement", "demo-shop", "anna", "--since", "2030-01-01")
    assert (code, out) == (0, "wallet anna of demo-shop: no movements in this range\n")

    code, out, _ = cli("wallet", "statement", "demo-shop", "carl")
    assert (code, out) == (1, "wallet carl of demo-shop: WALLET_NOT_FOUND (customer: this customer has no wallet)\n")
    for argv, said in [
        (["--kind", "lunch"], "argument --kind: 'lunch' is not a statement kind (top-up, payment, refund, hold,"),
        (["--limit", "0"], "argument --limit: '0' is not 1 to 1000"),
        (["--since", "2026-02-01", "--until", "2026-01-01"], "argument --until: must be after --since"),
    ]:
        code, out, err = cli("wallet", "statement", "demo-shop", "anna", *argv)
        assert (code, out) == (2, "") and said in err, (argv, err)
    code, _, err = cli("wallet", "statement", "demo-shop", "anna", "--after", "not-a-cursor")
    assert code == 3 and "starting_after" in err  # the service's to read: it is opaque


def test_the_settlement_of_a_day_as_a_table_and_as_csv(cli: Cli, tmp_path: Path) -> None:
    assert cli("wallet", "tenant", "create", "demo-shop", "--currency", "EUR", *SETTINGS)[0] == 0
    assert cli("wallet", "open", "demo-shop", "anna")[0] == 0
    assert cli("wallet", "top-up", "demo-shop", "anna", "50.00", "--source", "purchase", "--reference", "psp-1",
               "--key", "t-1")[0] == 0  # fmt: skip
    assert cli("wallet", "pay", "demo-shop", "anna", "20.00", "--order", "4711", "--key", "p-1")[0] == 0
    assert cli("wallet", "voucher", "issue", "demo-shop", "10.00", "--key", "v-1")[0] == 0

    code, out, err = cli("wallet", "settlement", "demo-shop", "--day", "today")
    first, table = out.split("\n", 1)
    period = r"from (\S+)T00:00:00.000000000Z to \S+T00:00:00.000000000Z, as of \S+Z"
    assert code == 0 and err == "" and re.fullmatch(rf"settlement of demo-shop \(EUR\) {period}", first)
    rows = {(row[0], row[1]): row[2:] for row in columns(table)}
    assert table.split()[:5] == ["SECTION", "LINE", "TRANSFERS", "AMOUNT", "(EUR)"]
    assert rows[("opening", "liability")] == ["", "0.00"] and rows[("top_up", "purchase")] == ["1", "+50.00"]
    assert rows[("payment", "payment")] == ["1", "-20.00"] and rows[("fee", "fee")] == ["1", "-0.40"]
    assert rows[("movements", "total")] == ["3", "+29.60"] and rows[("closing", "liability")] == ["", "29.60"]
    assert rows[("check", "difference")] == ["", "0.00"] and rows[("vouchers", "closing")] == ["", "10.00"]
    assert len(rows) == 23
    report = cli.json("wallet", "settlement", "demo-shop", "--day", "today")
    assert (report["opening_liability"], report["movements"], report["closing_liability"]) == (0, 2960, 2960)
    assert report["difference"] == 0 and report["closing_vouchers"] == 1000 and report["csv"] == ""

    # As CSV: the service's own text, to a file (a line says so) or to standard output (nothing else there).
    target = tmp_path / "settlement.csv"
    code, out, _ = cli("wallet", "settlement", "demo-shop", "--day", "today", "--csv", str(target))
    assert code == 0 and out == (
        f"settlement of demo-shop {first.split(') ', 1)[1]}: 23 rows written to {target}, closing liability 29.60 "
        "EUR, difference 0.00\n"
    )
    text = target.read_bytes().decode()
    assert text.startswith("tenant,currency,since,until,section,line,transfers,amount_minor,amount\r\n")
    records = list(csv.DictReader(io.StringIO(text)))
    assert len(records) == 23 and records[-3] == {**records[-3], "section": "check", "amount_minor": "0"}
    assert [r["amount"] for r in records if r["line"] in ("purchase", "fee")] == ["50.00", "-0.40"]
    code, out, err = cli("wallet", "settlement", "demo-shop", "--day", "today", "--csv", "-")
    assert (code, err) == (0, "") and len(list(csv.DictReader(io.StringIO(out)))) == 23
    assert out.splitlines()[0] == text.splitlines()[0] and out.count("\n") == 24

    # A range; a day before anything happened.
    day = first.split()[5]
    ranged = cli.json("wallet", "settlement", "demo-shop", "--since", day, "--until", "2262-01-01")
    assert (ranged["closing_liability"], ranged["movements"]) == (2960, 2960)
    code, out, _ = cli("wallet", "settlement", "demo-shop", "--day", "2020-01-01")
    assert code == 0 and out.splitlines()[0] == (
        "settlement of demo-shop (EUR) from 2020-01-01T00:00:00.000000000Z to 2020-01-02T00:00:00.000000000Z"
    )
    assert {row[3] for row in columns(out.split("\n", 1)[1])} == {"0.00"}

    code, out, _ = cli("wallet", "settlement", "no-shop", "--day", "today")
    assert (code, out) == (1, "settlement of no-shop: TENANT_NOT_FOUND (tenant: no tenant 'no-shop')\n")
    for argv, said in [
        (["--day", "2026-13-01"], "argument --day: '2026-13-01' is not a day in UTC"),
        (["--day", "today", "--since", "2026-01-01"], "argument --since: not allowed with argument --day"),
        ([], "one of the arguments --day --since is required"),
        (["--day", "today", "--until", "2026-01-01"], "argument --until: goes with --since"),
        (["--since", "2026-02-01", "--until", "2026-01-01"], "argument --until: must be after --since"),
        (["--day", "today", "--csv", str(tmp_path / "missing" / "s.csv")], "no directory"),
    ]:
        code, out, err = cli("wallet", "settlement", "demo-shop", *argv)
        assert (code, out) == (2, "") and said in err, (argv, err)


def test_the_event_feed_until_caught_up_and_from_a_cursor(cli: Cli) -> None:
    assert cli("wallet", "tenant", "create", "demo-shop", "--currency", "EUR", "--low-balance", "5.00")[0] == 0
    assert cli("wallet", "open", "demo-shop", "anna")[0] == 0
    top_up = cli.json("wallet", "top-up", "demo-shop", "anna", "20.00", "--source", "gift", "--key", "t-1")
    paid = cli.json("wallet", "pay", "demo-shop", "anna", "16.00", "--order", "4711", "--key", "p-1")
    assert cli("wallet", "pay", "demo-shop", "anna", "16.00", "--order", "4712", "--key", "p-2")[0] == 1

    code, out, err = cli("wallet", "events", "demo-shop", "--idle", "0.5")
    lines = out.splitlines()
    assert code == 0 and [line.split("  ")[2] for line in lines] == [
        "tenant.created", "wallet.opened", "wallet.balance_below", "wallet.topped_up", "payment.succeeded",
        "wallet.balance_below", "payment.declined",
    ]  # fmt: skip
    assert lines[3].split("  ")[3:] == ["20.00 EUR", f"wallet {top_up['wallet_id']}",
                                        f"operation {top_up['operation_id']}"]  # fmt: skip
    assert lines[4].endswith(f"16.00 EUR  wallet {paid['wallet_id']}  operation {paid['payment_id']}  order 4711")
    assert lines[6].endswith("result INSUFFICIENT_FUNDS")
    assert all(re.fullmatch(r"[0-9]+\.[0-9]+(\.below)?  \S+Z  .*", line) for line in lines)
    last = lines[-1].split()[0]
    assert err == f"ledger wallet events: caught up (no event for 0.5 s) after 7 events; resume with --after {last}\n"

    # From the cursor it printed: nothing, then only what came after.
    code, out, err = cli("wallet", "events", "demo-shop", "--after", last, "--idle", "0.5")
    assert (code, out) == (0, "") and err.endswith(f"after 0 events; resume with --after {last}\n")
    assert cli("wallet", "freeze", "demo-shop", "anna", "--reason", "card lost")[0] == 0
    code, out, err = cli("wallet", "events", "demo-shop", "--after", last, "--idle", "0.5")
    assert code == 0 and [line.split("  ")[2] for line in out.splitlines()] == ["wallet.frozen"]
    assert err.endswith(f"after 1 event; resume with --after {out.split()[0]}\n")
    code, out, _ = cli("wallet", "events", "demo-shop", "--types", "payment.declined,wallet.frozen", "--idle", "0.5")
    assert [line.split("  ")[2] for line in out.splitlines()] == ["payment.declined", "wallet.frozen"]
    code, out, _ = cli("wallet", "events", "demo-shop", "--types", "payment.succeeded", "--json", "--idle", "0.5")
    [event] = [json.loads(line) for line in out.splitlines()]
    assert (event["type"], event["amount"], event["operation_id"]) == ("payment.succeeded", 1600, paid["payment_id"])
    assert event["data"] == {**event["data"], "order": "4711", "fee": 0, "paid": 1600, "requested": 1600}

    code, out, _ = cli("wallet", "events", "no-shop", "--idle", "0.5")
    assert (code, out) == (1, "tenant no-shop: TENANT_NOT_FOUND (tenant: no tenant 'no-shop')\n")
    for argv, said in [
        (["--after", "seven"], "argument --after: 'seven' is not a cursor of the event feed"),
        (["--types", "payment.made"], "argument --types: 'payment.made' is not an event type"),
        (["--idle", "0"], "argument --idle: '0' is not a number of seconds"),
        (["--after", "1.0", "--from-now"], "argument --from-now: not allowed with argument --after"),
    ]:
        code, out, err = cli("wallet", "events", "demo-shop", *argv)
        assert (code, out) == (2, "") and said in err, (argv, err)


def test_the_event_feed_followed_live_until_ctrl_c(cli: Cli) -> None:
    """--follow streams until SIGINT, then prints the cursor to resume from; resuming there repeats nothing."""
    assert cli("wallet", "tenant", "create", "demo-shop", "--currency", "EUR")[0] == 0
    assert cli("wallet", "open", "demo-shop", "anna")[0] == 0
    root = str(Path(__file__).resolve().parents[2])
    paths = os.environ.get("PYTHONPATH")
    follower = subprocess.Popen(
        [sys.executable, "-m", "ledger", "wallet", "events", "demo-shop", "--follow", "--server", cli.server],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": root + (os.pathsep + paths if paths else "")},
    )
    printed: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [printed.put(text.rstrip("\n")) for text in follower.stdout or ()])
    reader.start()
    try:
        assert [printed.get(timeout=60).split("  ")[2] for _ in range(2)] == ["tenant.created", "wallet.opened"]
        top_up = cli.json("wallet", "top-up", "demo-shop", "anna", "5.00", "--source", "gift", "--key", "t-1")
        live = printed.get(timeout=30)
        assert live.split("  ")[2] == "wallet.topped_up" and f"operation {top_up['operation_id']}" in live
        time.sleep(1.0)  # quiet for a moment: the cursor printed is the last event's
        follower.send_signal(signal.SIGINT)
        _, err = follower.communicate(timeout=30)
    finally:
        follower.kill()
        follower.wait()
    reader.join(10)
    assert follower.returncode == 0 and printed.empty()
    cursor = live.split()[0]
    assert err == f"ledger wallet events: stopped after 3 events; resume with --after {cursor}\n"
    code, out, err = cli("wallet", "events", "demo-shop", "--after", cursor, "--idle", "0.5")
    assert (code, out) == (0, "") and "after 0 events" in err

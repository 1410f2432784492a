"""`ledger wallet …` against a served ledger (the Ledger and Wallet services, over both stores): every command's
line, its exit code and its JSON; keys drawn and printed when not given, retries that replay, refusals named,
bad input refused before anything is sent."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.cli import _grant as grant_module
from ledger.cli._wallet import KEY_PREFIX

from .test_cli_ops import Cli, Served, _startswith

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

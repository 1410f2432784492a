"""The operator commands and CSV import/export against the Ledger service in process (over both stores):
what they print, their exit codes, and a CSV round trip (import, import again -> EXISTS, export equals input)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger import __version__
from ledger.auth import Authenticator, open_key_store
from ledger.cli import main
from ledger.cli._demo import DEMO_TENANT, _demo
from ledger.client import Client, ClientConfig
from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.engine import IMPLEMENTATION
from ledger.journal._postgres import describe
from ledger.server import ledger_service, start_server, sweep_expiries, wallet_service
from ledger.wallet import Wallets

LEDGER = "978"


class Served:
    """The ledger behind gRPC on its own event loop in a thread, so the commands can block on it: the Ledger and
    the Wallet service, with the wallet's expiry sweep, as `ledger serve` serves them.

    With `keys` (who -> (tenant, role, ledgers)), those keys are created first and the server requires one;
    `tokens` then holds each key's token."""

    def __init__(self, store_url: str, keys: dict[str, tuple[str, str, list[int]]] | None = None) -> None:
        self.config = LedgerConfig(
            store=store_url, accounts_max=2_000, transfers_max=100_000, pending_transfers_max=100
        )
        self.tokens: dict[str, str] = {}
        if keys:
            store = open_key_store(store_url)
            try:
                for who, (tenant, role, ledgers) in keys.items():
                    self.tokens[who] = store.create_key(tenant=tenant, role=role, ledgers=ledgers, name=who)[1]
            finally:
                store.close()
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="served-ledger")

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        wallets = Wallets()
        async with await Ledger.open(self.config, domain=wallets) as ledger:
            auth = await Authenticator.open(self.config) if self.tokens else None
            sweeps = asyncio.get_running_loop().create_task(sweep_expiries(ledger, wallets))
            try:
                services = [ledger_service(ledger), wallet_service(ledger, wallets)]
                server, self.port, _ = await start_server(ledger, auth=auth, services=services)
                self._ready.set()
                await self._stop.wait()
                await server.stop(None)
            finally:
                sweeps.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeps
                if auth is not None:
                    await auth.close()

    def __enter__(self) -> Served:
        self._thread.start()
        self._ready.wait(60)
        if self._failure is not None:
            raise self._failure
        return self

    def __exit__(self, *_: Any) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


@pytest.fixture
def served(store_url: str) -> Iterator[Served]:
    with Served(store_url) as s:
        yield s


class Cli:
    def __init__(self, served: Served, capsys: pytest.CaptureFixture[str]) -> None:
        self.server = f"127.0.0.1:{served.port}"
        self.capsys = capsys

    def __call__(self, *argv: str, server: bool = True) -> tuple[int, str, str]:
        """Run `ledger argv…`: exit code, stdout, stderr."""
        self.capsys.readouterr()
        try:
            code = main([*argv, *(["--server", self.server] if server else [])])
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *argv: str, exit_code: int = 0) -> Any:
        code, out, err = self(*argv, "--json")
        assert code == exit_code, err
        return json.loads(out)


@pytest.fixture
def cli(served: Served, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(served, capsys)


def columns(out: str) -> list[list[str]]:
    """The rows of a table printed for people (after its header), split into its columns (two spaces apart,
    empty cells kept as '')."""
    lines = out.splitlines()
    starts = [m.start() for m in re.finditer(r"(?:^|(?<=  ))\S", lines[0])]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    return [[line[a:b].strip() for a, b in bounds] for line in lines[1:]]


def test_operator_commands(cli: Cli) -> None:
    assert cli("accounts", "create", "--id", "1", "--ledger", LEDGER, "--code", "1")[:2] == (
        0,
        _startswith("account 1: OK at "),
    )
    wallet = str(uuid.UUID(int=2))
    code, out, _ = cli("accounts", "create", "--id", wallet, "--ledger", LEDGER, "--code", "2",
                       "--flags", "debits_must_not_exceed_credits,HISTORY")  # fmt: skip
    assert code == 0 and out.startswith("account 2: OK")
    assert cli("accounts", "create", "--id", "0x3", "--ledger", LEDGER, "--code", "3")[0] == 0
    # The same account again is fine; a different one under the same id is a failed item, named.
    assert cli("accounts", "create", "--id", "1", "--ledger", LEDGER, "--code", "1")[1].startswith("account 1: EXISTS")
    assert cli.json("accounts", "create", "--id", "3", "--ledger", LEDGER, "--code", "3")["result"] == "EXISTS"
    code, out, _ = cli("accounts", "create", "--id", "3", "--ledger", LEDGER, "--code", "4")
    assert (code, out) == (1, "account 3: EXISTS_WITH_DIFFERENT_CODE\n")

    move = ["--ledger", LEDGER, "--code", "1"]
    assert cli("transfer", "--id", "10", "--debit", "1", "--credit", "2", "--amount", "5000", *move)[:2] == (
        0, _startswith("transfer 10: OK, 5000 moved at "),
    )  # fmt: skip
    retried = cli.json("transfer", "--id", "10", "--debit", "1", "--credit", "2", "--amount", "5000", *move)
    assert (retried["result"], retried["amount"]) == ("EXISTS", 5000)
    code, out, _ = cli("transfer", "--id", "11", "--debit", "2", "--credit", "3", "--amount", "9000", *move)
    assert (code, out) == (1, "transfer 11: EXCEEDS_CREDITS (the debit account may not go below zero; "
                           "--balancing-debit moves what it has)\n")  # fmt: skip
    hold = cli.json("transfer", "--id", "12", "--debit", "2", "--credit", "3", "--amount", "1500", *move,
                    "--pending", "--timeout", "600")  # fmt: skip
    assert (hold["result"], hold["amount"]) == ("OK", 1500)
    # A hold, its capture and its void each say what they did: reserved, captured (and released), released.
    assert cli("transfer", "--id", "13", "--post", "12", "--amount", "1000")[:2] == (
        0,
        _startswith("transfer 13: OK, 1000 captured from hold 12, 500 released at "),
    )
    code, out, _ = cli("transfer", "--id", "14", "--debit", "2", "--credit", "3", "--amount", "1", *move, "--pending")
    assert code == 0 and out.startswith("transfer 14: OK, 1 reserved at ") and "held until captured or voided" in out
    code, out, _ = cli("transfer", "--id", "15", "--void", "14")
    assert code == 0 and out.startswith("transfer 15: OK, 1 released: hold 14 voided at ")
    assert cli.json("transfer", "--id", "15", "--void", "14")["what"] == "released"
    paid = cli.json("transfer", "--id", "16", "--debit", "2", "--credit", "3", "--amount", "100000", *move,
                    "--balancing-debit")  # fmt: skip
    assert (paid["result"], paid["amount"]) == ("OK", 4000)  # at most what the wallet has

    code, out, _ = cli("lookup", "account", "1", "2", "99")
    lines = out.splitlines()
    assert code == 1 and lines[2] == "account 99: not found"
    assert lines[1].startswith(
        "account 2 ledger 978 code 2 flags DEBITS_MUST_NOT_EXCEED_CREDITS|HISTORY debits_pending 0 debits_posted 5000 "
        "credits_pending 0 credits_posted 5000 "
    )
    transfers = cli.json("lookup", "transfer", "12", "13")
    assert [(t["id"], t["amount"], t["flags"], t["pending_id"]) for t in transfers] == [
        (12, 1500, 2, 0),
        (13, 1000, 4, 12),
    ]

    assert cli.json("balance", "2") == {
        "id": 2, "ledger": 978, "debits_pending": 0, "debits_posted": 5000, "credits_pending": 0,
        "credits_posted": 5000, "net": 0, "available": 0,
    }  # fmt: skip
    code, out, _ = cli("balance", "3")
    assert code == 0 and "credits   posted 5000  pending 0" in out and "net       5000" in out
    assert cli("balance", "404")[:2] == (1, "account 404: not found\n")

    # History: a hold and its capture are not two debits: the hold reserves (pending), the capture posts and
    # ends the reservation, a void ends it; each hold says what became of it.
    code, out, _ = cli("history", "2")
    assert code == 0 and out.split()[:8] == ["TIME", "TRANSFER", "WHAT", "POSTED", "PENDING", "WITH", "CODE", "NOTE"]
    assert [row[1:] for row in columns(out)] == [
        ["10", "moved", "+5000", "", "from 1", "1", ""],
        ["12", "reserved", "", "-1500", "to 3", "1", "captured by 13"],
        ["13", "captured", "-1000", "+1500", "to 3", "1", "hold 12: 500 released"],
        ["14", "reserved", "", "-1", "to 3", "1", "voided by 15"],
        ["15", "released", "", "+1", "to 3", "1", "hold 14 voided"],
        ["16", "moved", "-4000", "", "to 3", "1", ""],
    ]
    assert [row[1:6] for row in columns(cli("history", "3", "--currency", "EUR")[1])] == [
        ["12", "reserved", "", "+15.00", "from 2"],
        ["13", "captured", "+10.00", "-15.00", "from 2"],
        ["14", "reserved", "", "+0.01", "from 2"],
        ["15", "released", "", "-0.01", "from 2"],
        ["16", "moved", "+40.00", "", "from 2"],
    ]
    rows = cli.json("history", "2")
    assert [(r["what"], r["posted"], r["pending"]) for r in rows] == [
        ("moved", 5000, 0), ("reserved", 0, -1500), ("captured", -1000, 1500), ("reserved", 0, -1),
        ("released", 0, 1), ("moved", -4000, 0),
    ]  # fmt: skip
    assert rows[1]["hold"] == {"status": "captured", "by": 13} and rows[2]["released"] == 500
    newest = cli.json("history", "2", "--reversed", "--limit", "2", "--debits-only")
    assert [t["id"] for t in newest] == [16, 15]
    everything = cli.json("history", "2", "--limit", "0")
    first, last = everything[0]["timestamp"], everything[-1]["timestamp"]
    assert [t["id"] for t in cli.json("history", "2", "--from", str(first + 1), "--to", str(last - 1))] == [
        12,
        13,
        14,
        15,
    ]
    assert cli.json("history", "2", "--from", "2001-01-01", "--to", "2001-01-02T00:00:00+02:00") == []
    balances = cli.json("history", "2", "--balances")
    assert [(b["credits_posted"], b["debits_posted"], b["debits_pending"]) for b in balances] == [
        (5000, 0, 0), (5000, 0, 1500), (5000, 1000, 0), (5000, 1000, 1), (5000, 1000, 0), (5000, 5000, 0),
    ]  # fmt: skip


class _startswith(str):
    """Compares equal to any string that starts with it."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.startswith(str(self))

    __hash__ = str.__hash__


def test_failed_calls_and_bad_usage(cli: Cli, tmp_path: Path) -> None:
    code, out, err = cli("history", "0")
    assert (code, out) == (2, "") and "argument ID: '0' is reserved" in err
    code, _, err = cli("balance", "1", "--server", "127.0.0.1:1", "--call-timeout", "0.3", server=False)
    assert code == 3 and "ledger balance: error: cannot reach 127.0.0.1:1" in err
    code, _, err = cli("transfer", "--id", "1", "--debit", "2")
    assert code == 2 and "required: --credit, --amount, --ledger, --code" in err
    code, _, err = cli("accounts", "create", "--id", "1", "--ledger", LEDGER, "--code", "1", "--flags", "overdraft")
    assert code == 2 and "'overdraft' is not a flag" in err
    code, _, err = cli("lookup", "account", "not-an-id")
    assert code == 2 and "'not-an-id' is not an id" in err
    code, _, err = cli("balance", "1", "--tls-cert", str(tmp_path / "c.pem"))
    assert code == 2 and "tls_cert and tls_key go together" in err


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


ACCOUNT_HEADER = ["id", "ledger", "code", "flags", "user_data_128", "user_data_64", "user_data_32"]
TRANSFER_HEADER = ["id", "debit_account_id", "credit_account_id", "amount", "pending_id", "user_data_128",
                   "user_data_64", "user_data_32", "timeout", "ledger", "code", "flags"]  # fmt: skip


def test_csv_round_trip(cli: Cli, served: Served, tmp_path: Path) -> None:
    wallets = range(100, 400)
    accounts = [[1, 978, 1, 0, 0, 0, 0]] + [[w, 978, 2, 2 if w % 2 else 0, w * 7, w, 1] for w in wallets]
    write_csv(tmp_path / "accounts.csv", ACCOUNT_HEADER, accounts)
    transfers: list[list[Any]] = []
    for i in range(17_000):  # past two requests of 8190
        wallet = wallets[i % len(wallets)]
        flags = 1 if i % 50 == 0 else 0  # linked pairs here and there
        transfers.append([1_000_000 + i, 1, wallet, 1 + i % 9, 0, uuid.uuid4().int, i, 0, 0, 978, 1, flags])
    # Payments the odd wallets (no overdraft) cannot cover: they fail, and nothing else does.
    transfers += [[2_000_000 + w, w, 1, 10**9, 0, 0, 0, 0, 0, 978, 2, 0] for w in wallets]
    write_csv(tmp_path / "transfers.csv", TRANSFER_HEADER, transfers)

    code, out, err = cli("import", "accounts", str(tmp_path / "accounts.csv"))
    assert code == 0 and out.splitlines()[0].startswith("imported ") and "OK" in out and "301" in out, err
    code, out, err = cli("import", "transfers", str(tmp_path / "transfers.csv"), "--progress",
                         "--failures", str(tmp_path / "failures.csv"))  # fmt: skip
    assert code == 1
    assert "rows/s" in err  # the progress bar
    assert out.splitlines()[1].split() == ["OK", str(17_000 + 150)]
    assert out.splitlines()[2].split() == ["EXCEEDS_CREDITS", "150"]
    failures = read_csv(tmp_path / "failures.csv")
    assert [(int(f["row"]), f["result"], int(f["id"])) for f in failures] == [
        (17_001 + i, "EXCEEDS_CREDITS", 2_000_000 + w) for i, w in enumerate(wallets) if w % 2
    ]
    assert list(failures[0]) == ["row", "result", *TRANSFER_HEADER]
    balance_before = cli.json("balance", "1")

    # Again (requests side by side this time): every row that was applied answers EXISTS; nothing is booked twice.
    report = cli.json("import", "transfers", str(tmp_path / "transfers.csv"), "--in-flight", "3", exit_code=1)
    assert report["results"] == {"EXISTS": 17_150, "EXCEEDS_CREDITS": 150}
    assert report["rows"] == 17_300 and len(report["failures"]) == 150
    assert cli.json("balance", "1") == balance_before

    # Export: the accounts by ids, the transfers of every account; each equals its input.
    (tmp_path / "ids.txt").write_text("# every account\n" + "\n".join(str(a[0]) for a in accounts) + "\n\n")
    code, _, err = cli("export", "accounts", str(tmp_path / "accounts-out.csv"), "--ids", str(tmp_path / "ids.txt"))
    assert code == 0 and err == "exported 301 accounts to " + str(tmp_path / "accounts-out.csv") + "\n"
    exported = read_csv(tmp_path / "accounts-out.csv")
    assert [[int(row[c]) for c in ACCOUNT_HEADER] for row in exported] == accounts
    assert int(exported[0]["debits_posted"]) == balance_before["debits_posted"]

    (tmp_path / "wallets.txt").write_text("\n".join(map(str, wallets)))
    summary = cli.json("export", "transfers", str(tmp_path / "transfers-out.csv"),
                       "--accounts-file", str(tmp_path / "wallets.txt"))  # fmt: skip
    applied = [t for t in transfers if t[0] < 2_000_000 or t[1] % 2 == 0]
    assert summary == {"kind": "transfers", "file": str(tmp_path / "transfers-out.csv"), "rows": len(applied)}
    exported = read_csv(tmp_path / "transfers-out.csv")
    assert [[int(row[c]) for c in TRANSFER_HEADER] for row in exported] == applied
    timestamps = [int(row["timestamp"]) for row in exported]
    assert timestamps == sorted(timestamps)
    # What export writes imports as it is (the ledger's own columns are ignored): all EXISTS.
    report = cli.json("import", "transfers", str(tmp_path / "transfers-out.csv"))
    assert report["results"] == {"EXISTS": len(applied)}
    # By id range, to standard output.
    code, out, err = cli("export", "transfers", "-", "--id-range", "1000000:1000002")
    assert code == 0 and [r["id"] for r in csv.DictReader(out.splitlines())] == ["1000000", "1000001", "1000002"]
    assert "exported 3 transfers to -" in err


def test_import_checks_the_whole_file_before_sending_anything(cli: Cli, served: Served, tmp_path: Path) -> None:
    cases = {
        "bad-cell.csv": (
            ["id", "amount"],
            [[1, 5], [2, "5.00"]],
            "row 2, column amount: '5.00' has decimals: amounts are integers in minor units (e.g. 500)",
        ),
        "bad-id.csv": (
            ["id", "debit_account_id"],
            [[1, "nope"]],
            "row 1, column debit_account_id: 'nope' is not an id",
        ),
        "unknown.csv": (["id", "amount", "colour"], [[1, 5, "red"]], "unknown column 'colour'"),
        "no-id.csv": (["amount"], [[5]], "no 'id' column"),
        "short-row.csv": (["id", "amount"], [[1, 5], [2]], "row 2: 1 cells, the header names 2"),
        "wide.csv": (["id", "code"], [[1, 65_536]], "row 1, column code: '65536' is out of range (0 to 2**16 - 1)"),
        "bad-flag.csv": (["id", "flags"], [[1, "linked|sometimes"]], "'sometimes' is not a flag"),
    }
    for name, (header, rows, message) in cases.items():
        write_csv(tmp_path / name, header, rows)
        code, out, err = cli("import", "transfers", str(tmp_path / name))
        assert code == 2 and out == "" and message in err and "nothing was sent" in err, (name, err)
    # A linked chain longer than one request cannot be all-or-nothing.
    chain = [[i, 1, 2, 1, 978, 1, "linked"] for i in range(1, 8_200)]
    header = ["id", "debit_account_id", "credit_account_id", "amount", "ledger", "code", "flags"]
    write_csv(tmp_path / "chain.csv", header, [*chain, [9_000, 1, 2, 1, 978, 1, ""]])
    code, _, err = cli("import", "transfers", str(tmp_path / "chain.csv"))
    assert code == 2 and "rows (from 0) 0 to 8189 are one linked chain" in err
    code, _, err = cli("import", "accounts", str(tmp_path / "missing.csv"))
    assert code == 2 and "No such file" in err
    with Client(ClientConfig(server=cli.server)) as client:
        assert client.lookup_transfers([1, 2, 9_000]) == []


def test_an_empty_file_and_a_header_only(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    code, _, err = cli("import", "accounts", str(tmp_path / "empty.csv"))
    assert code == 2 and "empty, expected a header row" in err
    (tmp_path / "header.csv").write_text("id,ledger,code\n")
    report = cli.json("import", "accounts", str(tmp_path / "header.csv"))
    assert (report["rows"], report["results"], report["failures"]) == (0, {}, [])


def tour_accounts(cli: Cli) -> None:
    """The README tour's accounts: funding 1, a wallet 2 that keeps its history and may not go negative, a shop 3."""
    for account, code, flags in (
        ("1", "1", "0"),
        ("2", "2", "debits_must_not_exceed_credits,history"),
        ("3", "3", "0"),
    ):
        assert cli("accounts", "create", "--id", account, "--ledger", LEDGER, "--code", code, "--flags", flags)[0] == 0


def test_amounts_in_major_units_with_the_currency(cli: Cli) -> None:
    tour_accounts(cli)
    move = ["--ledger", LEDGER, "--code", "1", "--currency", "EUR"]
    code, out, _ = cli("transfer", "--id", "10", "--debit", "1", "--credit", "2", "--amount", "50", *move)
    assert code == 0 and out.startswith("transfer 10: OK, 50.00 EUR moved at ")
    assert (
        cli.json("transfer", "--id", "11", "--debit", "2", "--credit", "3", "--amount", "12.5", *move)["amount"] == 1250
    )
    # The same transfer in minor units is the same transfer: EXISTS.
    assert cli.json("transfer", "--id", "11", "--debit", "2", "--credit", "3", "--amount", "1250", "--ledger", LEDGER,
                    "--code", "1")["result"] == "EXISTS"  # fmt: skip
    code, out, _ = cli("balance", "2", "--currency", "EUR")
    assert code == 0 and "net       37.50 EUR" in out and "available 37.50 EUR" in out
    code, out, _ = cli("lookup", "transfer", "11", "--scale", "2")
    assert code == 0 and " amount 12.50 ledger 978 " in out


def test_history_tells_what_became_of_each_hold(cli: Cli) -> None:
    tour_accounts(cli)
    move = ["--ledger", LEDGER, "--code", "1"]
    assert cli("transfer", "--id", "10", "--debit", "1", "--credit", "2", "--amount", "5000", *move)[0] == 0
    # A hold that expires in a second, one that never expires, one captured in full (amount omitted).
    code, out, _ = cli("transfer", "--id", "20", "--debit", "2", "--credit", "3", "--amount", "100", *move,
                       "--pending", "--timeout", "1")  # fmt: skip
    assert code == 0 and "100 reserved at " in out and ", held until " in out
    assert cli("transfer", "--id", "21", "--debit", "2", "--credit", "3", "--amount", "200", *move, "--pending")[0] == 0
    assert cli("transfer", "--id", "22", "--debit", "2", "--credit", "3", "--amount", "300", *move, "--pending")[0] == 0
    code, out, _ = cli("transfer", "--id", "23", "--post", "22")
    assert code == 0 and out.startswith("transfer 23: OK, 300 captured from hold 22 at ")  # nothing left to release
    time.sleep(2.2)  # the first hold's second passes (holds expire within LEDGER_EXPIRE_INTERVAL_SECONDS)
    code, out, _ = cli("transfer", "--id", "24", "--post", "20")
    assert (code, out) == (1, "transfer 24: PENDING_TRANSFER_EXPIRED (the hold expired before this: its amount was "
                              "released, nothing moved)\n")  # fmt: skip
    code, out, _ = cli("history", "2")
    rows = columns(out)
    assert [row[1:5] for row in rows] == [
        ["10", "moved", "+5000", ""], ["20", "reserved", "", "-100"], ["21", "reserved", "", "-200"],
        ["22", "reserved", "", "-300"], ["23", "captured", "-300", "+300"],
    ]  # fmt: skip
    assert rows[1][7].startswith("expired at ") and rows[2][7] == "open, no expiry" and rows[3][7] == "captured by 23"
    # Rows cut before a hold's end cannot tell it: they say so rather than guess.
    assert columns(cli("history", "2", "--limit", "3")[1])[2][7] == "open or ended after the rows shown"
    # Newest first, the capture's hold is older than the rows shown: it is looked up for what it reserved.
    assert columns(cli("history", "2", "--reversed", "--limit", "1")[1]) == [
        [_startswith("20"), "23", "captured", "-300", "+300", "to 3", "1", "hold 22"],
    ]
    assert cli.json("history", "2")[1]["hold"] == {"status": "expired", "at": _any_int()}
    # The balance shows what is reserved apart from what is posted.
    assert cli.json("balance", "2") == {
        "id": 2, "ledger": 978, "debits_pending": 200, "debits_posted": 300, "credits_pending": 0,
        "credits_posted": 5000, "net": 4700, "available": 4500,
    }  # fmt: skip


class _any_int(int):
    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int)

    __hash__ = int.__hash__


def test_history_of_an_unknown_account_says_not_found(cli: Cli) -> None:
    """Before: `history` of an unknown account printed nothing and exited 0, while `balance` said "not found"."""
    tour_accounts(cli)
    assert cli("history", "404")[:2] == (1, "account 404: not found\n")
    assert cli.json("history", "404", exit_code=1) == {"id": 404, "found": False}
    assert cli("history", "1")[:2] == (0, "account 1: no transfers\n")
    assert cli("history", "1", "--from", "2020-01-01")[:2] == (0, "account 1: no transfers in this range\n")
    assert cli.json("history", "1") == []
    code, out, err = cli("history", "1", "--balances")
    assert (code, out) == (1, "") and "account 1 keeps no balance history" in err


def test_export_takes_dates_and_accounts_either_way(cli: Cli, tmp_path: Path) -> None:
    """Before: --from/--to of export took nanoseconds only, and `--account 1 2` (as the README wrote it) failed."""
    tour_accounts(cli)
    move = ["--ledger", LEDGER, "--code", "1"]
    for transfer_id in range(10, 14):
        assert (
            cli("transfer", "--id", str(transfer_id), "--debit", "1", "--credit", "2", "--amount", "5", *move)[0] == 0
        )
    assert cli("transfer", "--id", "14", "--debit", "2", "--credit", "3", "--amount", "5", *move)[0] == 0
    spaced = cli.json("export", "transfers", str(tmp_path / "a.csv"), "--account", "1", "3")
    repeated = cli.json("export", "transfers", str(tmp_path / "b.csv"), "--account", "1", "--account", "3")
    assert spaced["rows"] == repeated["rows"] == 5
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    code, _, err = cli("export", "transfers", str(tmp_path / "c.csv"), "--account", "1", "3", "--from", "2001-01-01",
                       "--to", "2001-12-31T23:59:59Z")  # fmt: skip
    assert code == 0 and err == f"exported 0 transfers to {tmp_path / 'c.csv'}\n"
    rows = read_csv(tmp_path / "a.csv")
    middle = int(rows[2]["timestamp"])
    code, out, _ = cli("export", "transfers", "-", "--account", "2", "--from", str(middle))
    assert code == 0 and [row["id"] for row in csv.DictReader(out.splitlines())] == ["12", "13", "14"]


def test_files_that_cannot_be_written_are_refused_before_anything_is_sent(cli: Cli, tmp_path: Path) -> None:
    """Before: export to a missing directory ended in a traceback."""
    tour_accounts(cli)
    code, out, err = cli("export", "accounts", str(tmp_path / "missing" / "a.csv"), "--id-range", "1:3")
    assert (code, out) == (2, "") and "Traceback" not in err
    assert err == f"ledger export: error: argument FILE: '{tmp_path / 'missing' / 'a.csv'}': no directory " \
                  f"'{tmp_path / 'missing'}' to write it in\n"  # fmt: skip
    code, _, err = cli("export", "accounts", str(tmp_path), "--id-range", "1:3")
    assert code == 2 and "is a directory" in err
    write_csv(tmp_path / "t.csv", ["id", "debit_account_id", "credit_account_id", "amount", "ledger", "code"],
              [[50, 1, 2, 5, 978, 1]])  # fmt: skip
    code, _, err = cli("import", "transfers", str(tmp_path / "t.csv"), "--failures", str(tmp_path / "no" / "f.csv"))
    assert code == 2 and "no directory" in err and "nothing was sent" in err
    assert cli("lookup", "transfer", "50")[0] == 1  # not sent
    assert not (tmp_path / "missing").exists()


def with_password(store_url: str) -> str:
    """A PostgreSQL DSN with a password in it (trust authentication ignores it); SQLite as it is."""
    return store_url.replace("postgresql://postgres@", "postgresql://postgres:hunter2@", 1)


def test_info_of_a_running_server(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with Served(with_password(store_url)) as served:
        cli = Cli(served, capsys)
        tour_accounts(cli)
        code, out, _ = cli("info")
        assert code == 0 and "hunter2" not in out
        lines = dict(line.split(None, 1) for line in out.splitlines())
        assert (
            lines["reachable"] == "yes" and lines["health"] == "SERVING" and lines["auth"] == "off: calls need no key"
        )
        assert lines["holds"] == "3 accounts, 0 transfers, 0 open holds"
        info = cli.json("info")
        assert info == {
            "server": cli.server, "tls": False, "reachable": True, "health": "SERVING", "version": __version__,
            "engine": IMPLEMENTATION, "auth_required": False, "store": _startswith(store_url[:6]),
            "store_available": True, "accounts_count": 3, "transfers_count": 0, "pending_transfers_count": 0,
            "capacity_warnings": [],
        }  # fmt: skip
        assert "hunter2" not in info["store"] and (info["store"] == served_description(store_url))


def served_description(store_url: str) -> str:
    if store_url.startswith("postgresql://"):
        return describe(store_url)
    return "sqlite:" + store_url.removeprefix("sqlite:///")


def test_info_tells_a_key_only_what_it_may_know(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    keys = {"ops": ("ops", "admin", []), "shop": ("shop-7", "read", [978, 840])}
    with Served(store_url, keys) as served:
        cli = Cli(served, capsys)
        code, out, err = cli("info")
        lines = dict(line.split(None, 1) for line in out.splitlines())
        assert code == 3 and (lines["reachable"], lines["health"], lines["auth"]) == (
            "yes",
            "SERVING",
            "on: a key is needed",
        )
        assert "ledger info: error: the server requires an API key (--api-key or LEDGER_API_KEY)" in err
        code, _, err = cli("info", "--api-key", "lk_0123456789abcdef_" + "0" * 64)
        assert code == 3 and "ledger info: error: the server refused the API key: " in err
        shop = cli.json("info", "--api-key", served.tokens["shop"])
        key_id = served.tokens["shop"].split("_")[1]
        assert shop["key"] == {"id": key_id, "tenant": "shop-7", "role": "read", "ledgers": [840, 978]}
        assert "store" not in shop and "accounts_count" not in shop  # not a tenant's business
        code, out, _ = cli("info", "--api-key", served.tokens["shop"])
        assert "store      (told to admin keys only)" in out
        ops = cli.json("info", "--api-key", served.tokens["ops"])
        assert ops["key"]["role"] == "admin" and ops["key"]["ledgers"] == [] and ops["accounts_count"] == 0
        everything = json.dumps([shop, ops]) + out
        assert all(token.split("_")[2] not in everything for token in served.tokens.values())  # never a secret


def test_demo_beside_a_running_server_books_as_a_tenant_of_its_own(cli: Cli) -> None:
    """Before: `ledger demo` opened the journal itself (StoreLocked beside a running server) and, in the tour's
    directory, used the tour's ids 1 to 4 and moved money out of its wallet. Now it is a tenant of the Wallet
    service: the tour's books are not touched, and no ledger number is its own choice."""
    tour_accounts(cli)
    assert cli("transfer", "--id", "10", "--debit", "1", "--credit", "2", "--amount", "5000", "--ledger", LEDGER,
               "--code", "1")[0] == 0  # fmt: skip
    before = [cli.json("balance", account) for account in ("1", "2", "3")]
    code, out, err = cli("demo")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"The ledger at {cli.server} (")
    assert lines[1] == (
        "  tenant demo-shop: EUR in ledger 2147483648: self top-up 5.00 to 200.00 EUR, partial payment, "
        "fee 0.10 EUR + 15‰, credit expires after 365d"
    )
    steps = [re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in lines[3:12]]
    assert [title for title, _ in steps] == [
        "anna buys 50.00 EUR of credit", "ben is given 10.00 EUR (a gift)", "anna pays order 1001, 12.00 EUR, in full",
        "anna pays order 1002, 80.00 EUR, in part", "the terminal retries that payment (same key)",
        "5.00 EUR of order 1001 is refunded", "a hold of 6.00 EUR on ben's wallet (table 7)",
        "4.50 EUR of it is captured", "ben pays order 1003, 20.00 EUR, in full",
    ]  # fmt: skip
    said = [text for _, text in steps]
    assert said[0] == "OK, 50.00 EUR credited, never expires → anna: 50.00 EUR to spend"
    assert said[1].startswith("OK, 10.00 EUR credited, expires 20") and said[1].endswith("→ ben: 10.00 EUR to spend")
    assert said[2] == "OK, 12.00 EUR paid, fee 0.28 EUR → anna: 37.72 EUR to spend"
    assert said[3] == "OK, 37.06 EUR paid, 42.94 EUR left to pay another way, fee 0.66 EUR → anna: 0.00 EUR to spend"
    assert said[4].startswith("OK, the first reply again: payment ") and said[4].endswith(
        "37.06 EUR paid → anna: 0.00 EUR to spend"
    )
    assert said[5] == "OK, 5.00 EUR back, 7.00 EUR left to refund → anna: 5.00 EUR to spend"
    assert said[6].endswith("→ ben: 4.00 EUR to spend, 6.00 EUR held")
    assert said[7] == "OK, 4.50 EUR captured, 1.50 EUR released → ben: 5.50 EUR to spend"
    assert said[8].startswith("INSUFFICIENT_FUNDS (amount: the wallet has 5.50 EUR to spend, the payment needs 20.00")
    assert "Run it again: every step answers its first reply" in out
    code, again, _ = cli("demo")
    assert code == 0 and "A retry: every step answered its first reply, the decline too, and nothing moved twice" in (
        again
    )
    # Each step said what it said the first time (the same replies); only the wallets after it differ.
    assert [line.split(" → ")[0] for line in again.splitlines()[3:12]] == [line.split(" → ")[0] for line in lines[3:12]]
    # The tour's accounts are as they were; the demo's wallets are the tenant's.
    assert [cli.json("balance", account) for account in ("1", "2", "3")] == before
    anna = cli.json("wallet", "balance", "demo-shop", "anna")
    ben = cli.json("wallet", "balance", "demo-shop", "ben")
    assert (anna["available"], ben["available"], ben["held"]) == (500, 550, 0)


def test_demo_with_a_key_of_a_tenant(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    keys = {"ops": ("fair-2025", "operator", []), "till": ("fair-2025", "shop", [])}
    with Served(store_url, keys) as served:
        cli = Cli(served, capsys)
        ops, till = (["--api-key", served.tokens[who]] for who in ("ops", "till"))
        code, _, err = cli("demo", *ops)
        assert code == 3 and "PERMISSION_DENIED" in err and "or --tenant T for your key's tenant" in err
        code, _, err = cli("demo", *till, "--tenant", "fair-2025")  # a shop key may not create its tenant
        assert code == 3 and "wallet.tenant" in err
        assert cli("demo", *ops, "--tenant", "fair-2025")[0] == 0
        code, out, _ = cli("demo", *till, "--tenant", "fair-2025")  # and books once it exists
        assert code == 0 and "A retry: every step answered its first reply" in out
        # A tenant with other settings is not the demo's to book as.
        assert cli("wallet", "tenant", "configure", "fair-2025", "--no-partial-payment", *ops)[0] == 0
        code, out, _ = cli("demo", *ops, "--tenant", "fair-2025")
        assert code == 1 and "tenant fair-2025 exists with other settings (EUR: self top-up 5.00 to 200.00 EUR" in out


def test_demo_without_a_server_runs_on_a_temporary_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing serves at the default address: the demo runs on a ledger of its own, restarts it from its
    journal, retries every step (each answers its first reply) and deletes it; nothing is left in the
    directory it ran in."""
    monkeypatch.chdir(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nobody = f"127.0.0.1:{s.getsockname()[1]}"
    assert asyncio.run(_demo(ClientConfig(server=nobody), DEMO_TENANT, named=False)) == 0
    out = capsys.readouterr().out
    assert f"cannot reach {nobody}" in out and "Running on a temporary ledger of its own instead" in out
    first, _, second = out.partition("Restarting that ledger from its journal, and retrying the same steps:")
    assert "OK, 50.00 EUR credited, never expires" in first
    assert re.search(r"\(recovered 1 wallet tenant, \d+ accounts and \d+ transfers from its journal\)", second)
    assert "A retry: every step answered its first reply, the decline too, and nothing moved twice" in second
    assert list(tmp_path.iterdir()) == []
    directory = re.search(r"instead \((\S+), deleted afterwards\)", out)
    assert directory is not None and not Path(directory[1]).exists()

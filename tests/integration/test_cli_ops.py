"""The operator commands and CSV import/export against the Ledger service in process (over both stores):
what they print, their exit codes, and a CSV round trip (import, import again -> EXISTS, export equals input)."""

from __future__ import annotations

import asyncio
import csv
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.cli import main
from ledger.client import Client, ClientConfig
from ledger.config import LedgerConfig
from ledger.core import Ledger
from ledger.server import start_server

LEDGER = "978"


class Served:
    """The ledger behind gRPC on its own event loop in a thread, so the commands can block on it."""

    def __init__(self, store_url: str) -> None:
        self.config = LedgerConfig(
            store=store_url, accounts_max=2_000, transfers_max=100_000, pending_transfers_max=100
        )
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
        async with await Ledger.open(self.config) as ledger:
            server, self.port, _ = await start_server(ledger)
            self._ready.set()
            await self._stop.wait()
            await server.stop(None)

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
    assert (code, out) == (1, "transfer 11: EXCEEDS_CREDITS\n")
    hold = cli.json("transfer", "--id", "12", "--debit", "2", "--credit", "3", "--amount", "1500", *move,
                    "--pending", "--timeout", "600")  # fmt: skip
    assert (hold["result"], hold["amount"]) == ("OK", 1500)
    assert cli("transfer", "--id", "13", "--post", "12", "--amount", "1000")[:2] == (
        0,
        _startswith("transfer 13: OK, 1000 moved"),
    )
    assert (
        cli.json("transfer", "--id", "14", "--debit", "2", "--credit", "3", "--amount", "1", *move, "--pending")[
            "result"
        ]
        == "OK"
    )
    assert cli("transfer", "--id", "15", "--void", "14")[0] == 0
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
    assert code == 0 and "credits  posted 5000  pending 0" in out and "net      5000" in out
    assert cli("balance", "404")[:2] == (1, "account 404: not found\n")

    code, out, _ = cli("history", "2")
    assert code == 0
    assert [line.split("  ")[1:3] for line in out.splitlines()] == [
        ["10", "+5000"], ["12", "-1500"], ["13", "-1000"], ["14", "-1"], ["15", "-1"], ["16", "-4000"],
    ]  # fmt: skip
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
    assert (code, out) == (3, "") and "INVALID_ARGUMENT: GetAccountTransfers: account_id" in err
    code, _, err = cli("balance", "1", "--server", "127.0.0.1:1", "--call-timeout", "0.3", server=False)
    assert code == 3 and "no answer within 0.3 s" in err and "UNAVAILABLE" in err
    code, _, err = cli("transfer", "--id", "1", "--debit", "2")
    assert code == 2 and "--credit, --amount, --ledger, --code required" in err
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
        "bad-cell.csv": (["id", "amount"], [[1, 5], [2, "5.00"]], "row 2, column amount: '5.00' is not an integer"),
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

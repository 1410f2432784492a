"""`ledger audit` and the journal export on both stores: clean journals, damaged ones, beside a running ledger.

Every test here runs against SQLite and the real PostgreSQL (a fresh schema
each); under CI=true the PostgreSQL runs cannot be skipped.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ledger.audit import Books, StoredCommit, Verdict, audit, open_journal
from ledger.cli import main
from ledger.cli._audit import verdict_document, verdict_lines
from ledger.core import Ledger
from ledger.engine import Account, Transfer, TransferFlags, pack_transfers, unpack_accounts, unpack_transfers
from ledger.journal import open_store
from tests.integration.test_journal import FUNDING, LEDGER, REVENUE, WALLETS, config, move, open_books
from tests.journals import latest_checkpoint, rich_journal, stored_commit, write_checkpoint, write_commit
from tests.stores import execute, fetch
from tests.support import ManualClock

TF = TransferFlags


def run_audit(url: str, **hooks: Any) -> Verdict:
    journal = open_journal(url)
    try:
        return audit(journal, **hooks)
    finally:
        journal.close()


# --- clean journals --------------------------------------------------------------------------------


def test_a_clean_journal_gets_a_clean_verdict_and_the_engines_balances(store_url: str) -> None:
    engine_accounts, stats = rich_journal(store_url)
    books: list[Books] = []
    verdict = run_audit(store_url, on_commit=lambda commit, state: books.__setitem__(slice(None), [state]))

    assert verdict.clean, verdict.problem
    tally = verdict.tally
    assert (tally.accounts, tally.transfers) == (stats.accounts_count, stats.transfers_count)
    assert tally.resolved["posted"] >= 4 and tally.resolved["voided"] >= 2 and tally.resolved["expired"] >= 4
    assert tally.holds - sum(tally.resolved.values()) == stats.pending_transfers_count == 1
    assert tally.balancing > 0 and tally.linked > 0 and tally.closing == 4 and tally.balance_entries > 0
    # The checkpoint taken in the middle and the one at shutdown both agree with the journal.
    assert len(verdict.checkpoints) == 2 and verdict.checkpoints[-1] == verdict.seq_last
    # The auditor's own model ends with the engine's balances and flags, byte for byte.
    assert b"".join(account.record() for account in books[0].account_order) == engine_accounts
    totals = verdict.ledgers[LEDGER]
    assert totals.debits_posted == totals.credits_posted > 0
    assert totals.debits_pending == totals.credits_pending == totals.holds_open == 77


def test_the_reader_decodes_what_the_ledger_wrote(store_url: str) -> None:
    """The reader is written from the README alone: it must find exactly the commits the ledger's own code reads."""
    rich_journal(store_url)
    store = open_store(store_url)
    store.connect()
    try:
        theirs = list(store.commits())
        checkpoint = store.latest_checkpoint()
    finally:
        store.close()
    journal = open_journal(store_url)
    try:
        ours = list(journal.commits())
        heads = journal.checkpoints()
        stored = journal.checkpoint(heads[-1])
        extent = journal.extent()
    finally:
        journal.close()
    assert [c.seq for c in ours] == [c.seq for c in theirs]
    for mine, real in zip(ours, theirs, strict=True):
        assert (mine.timestamp_last, mine.accounts_first, mine.transfers_first) == (
            real.timestamp_last, real.accounts_first, real.transfers_first,
        )  # fmt: skip
        assert (mine.accounts, mine.transfers, mine.expired, mine.balances) == tuple(
            bytes(blob) for blob in (real.accounts, real.transfers, real.expired, real.balances)
        )
    assert checkpoint is not None and heads[-1].seq == checkpoint.seq
    assert (stored.accounts, stored.transfer_status) == (checkpoint.accounts, checkpoint.transfer_status)
    assert extent.seq_last == theirs[-1].seq
    assert extent.transfers_count == theirs[-1].transfers_first + theirs[-1].transfers_count


def test_an_empty_journal_is_clean(store_url: str) -> None:
    async def nothing() -> None:
        async with await Ledger.open(config(store_url), clock=ManualClock()):
            pass

    asyncio.run(nothing())
    verdict = run_audit(store_url)
    assert verdict.clean and verdict.seq_last == 0 and verdict.tally.transfers == 0


# --- beside a running ledger ----------------------------------------------------------------------


def test_the_audit_runs_beside_a_running_ledger_on_one_snapshot(store_url: str) -> None:
    """The ledger holds the journal's lock and keeps committing while the audit reads: neither waits for the other."""
    clock = ManualClock()

    async def body() -> None:
        async with await Ledger.open(config(store_url), clock=clock) as ledger:
            await open_books(ledger)
            for i, wallet in enumerate(WALLETS):
                await ledger.create_transfers(pack_transfers([move(10 + i, FUNDING, wallet, 1_000)]))
            seq_before = ledger.stats().writer.seq_last
            halfway = threading.Event()
            go_on = threading.Event()

            def progress(done: int, total: int) -> None:
                if not halfway.is_set():
                    halfway.set()
                    assert go_on.wait(30)

            reading = asyncio.create_task(asyncio.to_thread(run_audit, store_url, progress=progress))
            assert await asyncio.to_thread(halfway.wait, 30)
            # The audit is inside its read transaction: the ledger still commits (and is not refused).
            for i, wallet in enumerate(WALLETS):
                await ledger.create_transfers(pack_transfers([move(100 + i, wallet, REVENUE, 10)]))
            assert ledger.stats().writer.seq_last > seq_before
            go_on.set()
            verdict = await reading
            assert verdict.clean, verdict.problem
            assert verdict.seq_last == seq_before  # one snapshot: what was durable when the audit began
            # A second audit, still beside the ledger, sees everything.
            verdict = await asyncio.to_thread(run_audit, store_url)
            assert verdict.clean and verdict.seq_last == ledger.stats().writer.seq_last

    asyncio.run(body())


def test_the_audit_writes_nothing_and_takes_no_lock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    rich_journal(url)
    lock = tmp_path / "journal.sqlite3.lock"
    lock.unlink()
    before = (tmp_path / "journal.sqlite3").read_bytes()
    assert run_audit(url).clean
    assert (tmp_path / "journal.sqlite3").read_bytes() == before
    assert not lock.exists()


def test_the_postgresql_audit_reads_in_a_read_only_snapshot() -> None:
    from tests.stores import postgres_schema

    with postgres_schema() as url:
        rich_journal(url)
        journal = open_journal(url)
        try:
            connection = journal._connection  # type: ignore[attr-defined]
            settings = connection.execute(
                "SELECT current_setting('transaction_read_only'), current_setting('transaction_isolation')"
            ).fetchone()
            held = connection.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = "
                                      "pg_backend_pid()").fetchone()  # fmt: skip
        finally:
            journal.close()
    assert settings == ("on", "repeatable read")
    assert held == (0,)


# --- damage, each reported where it is ---------------------------------------------------------------


def middle_commit(url: str) -> StoredCommit:
    """A commit of the first day's trading with several transfers (a linked chain of two, a wallet's payment)."""
    journal = open_journal(url)
    try:
        return next(c for c in journal.commits() if c.seq > 5 and c.transfers_count >= 2 and not c.expired)
    finally:
        journal.close()


def test_a_flipped_bit_is_reported_at_its_commit(store_url: str) -> None:
    rich_journal(store_url)
    seq = middle_commit(store_url).seq
    # A bit of the stored (compressed) transfers.
    stored = fetch(store_url, "SELECT transfers FROM ledger_journal WHERE seq = %s", seq)[0][0]
    execute(store_url, "UPDATE ledger_journal SET transfers = %s WHERE seq = %s", flipped(stored, 20), seq)
    problem = run_audit(store_url).problem
    assert problem is not None and (problem.what, problem.seq) == ("journal commit", seq)
    assert "checksum" in problem.message or "block" in problem.message


def flipped(blob: bytes | bytearray, index: int) -> bytes:
    damaged = bytearray(blob)
    damaged[index] ^= 0x10
    return bytes(damaged)


def test_a_missing_commit_is_reported_by_its_seq(store_url: str) -> None:
    rich_journal(store_url)
    seq = middle_commit(store_url).seq
    execute(store_url, "DELETE FROM ledger_journal WHERE seq = %s", seq)
    problem = run_audit(store_url).problem
    assert problem is not None and (problem.what, problem.seq) == ("journal commit", seq)
    assert f"is missing (the next stored is seq={seq + 1})" in problem.message


def test_a_wrong_ordinal_with_a_right_checksum_is_reported(store_url: str) -> None:
    rich_journal(store_url)
    commit = stored_commit(store_url, middle_commit(store_url).seq)
    write_commit(store_url, replace(commit, transfers_first=commit.transfers_first + 1))
    problem = run_audit(store_url).problem
    assert problem is not None and (problem.what, problem.seq) == ("journal commit", commit.seq)
    assert f"transfer ordinal {commit.transfers_first + 1}" in problem.message
    assert f"hold {commit.accounts_first} accounts and {commit.transfers_first} transfers" in problem.message


def test_a_checkpoint_that_disagrees_is_reported_at_the_account(store_url: str) -> None:
    rich_journal(store_url)
    checkpoint = latest_checkpoint(store_url)
    accounts = unpack_accounts(checkpoint.accounts)
    index = next(i for i, a in enumerate(accounts) if a.id == REVENUE)
    accounts[index] = replace(accounts[index], credits_posted=accounts[index].credits_posted + 1)
    write_checkpoint(store_url, checkpoint, b"".join(a.pack() for a in accounts))
    problem = run_audit(store_url).problem
    assert problem is not None and (problem.what, problem.seq) == ("checkpoint", checkpoint.seq)
    assert problem.record == f"account {index} (id {REVENUE})"
    assert problem.message.startswith(f"credits_posted is {accounts[index].credits_posted}, the journal gives")


def test_an_altered_payment_is_caught_by_the_wallets_limit(store_url: str) -> None:
    """The record is re-sealed: checksum, sequence and ordinals are right, only the money is wrong."""
    rich_journal(store_url)
    seq, index = altered_transfer(store_url, lambda t: t.debit_account_id in WALLETS and t.flags == TF.LINKED,
                                  lambda t: replace(t, amount=t.amount + 10**9))  # fmt: skip
    problem = run_audit(store_url).problem
    assert problem is not None and (problem.what, problem.seq) == ("journal commit", seq)
    assert problem.record.startswith(f"transfer {index} (ordinal ")
    assert "debits_must_not_exceed_credits" in problem.message


def test_an_altered_amount_between_unlimited_accounts_is_caught_by_the_checkpoint(store_url: str) -> None:
    """Funding and revenue have no limits: the altered amount books without a rule broken, until the balances."""
    rich_journal(store_url)
    checkpoint = latest_checkpoint(store_url)
    seq, _ = altered_transfer(store_url, lambda t: t.debit_account_id == FUNDING and t.credit_account_id == REVENUE
                              and not t.flags, lambda t: replace(t, amount=t.amount + 1))  # fmt: skip
    problem = run_audit(store_url).problem
    assert problem is not None and problem.what == "checkpoint" and problem.seq >= seq
    assert problem.seq in (checkpoint.seq, first_checkpoint_after(store_url, seq))
    assert "debits_posted is" in problem.message and "the journal gives" in problem.message


def first_checkpoint_after(url: str, seq: int) -> int:
    journal = open_journal(url)
    try:
        return min(head.seq for head in journal.checkpoints() if head.seq >= seq)
    finally:
        journal.close()


def altered_transfer(url: str, pick: Any, change: Any) -> tuple[int, int]:
    """Change the first transfer `pick` chooses, and re-seal its commit; (seq, index in the commit)."""
    journal = open_journal(url)
    try:
        seq, index = next(
            (c.seq, i) for c in journal.commits() for i, t in enumerate(unpack_transfers(c.transfers)) if pick(t)
        )
    finally:
        journal.close()
    commit = stored_commit(url, seq)
    records = unpack_transfers(commit.transfers)
    records[index] = change(records[index])
    write_commit(url, replace(commit, transfers=b"".join(t.pack() for t in records)))
    return seq, index


def test_an_expiry_left_out_is_caught(store_url: str) -> None:
    rich_journal(store_url)
    journal = open_journal(store_url)
    try:
        seq = next(c.seq for c in journal.commits() if c.expired)
    finally:
        journal.close()
    commit = stored_commit(store_url, seq)
    write_commit(store_url, replace(commit, expired=b""))
    problem = run_audit(store_url).problem
    # The hold stays pending in the auditor's books: a later record or the checkpoint disagrees.
    assert problem is not None and problem.seq >= seq
    assert problem.what in ("checkpoint", "journal commit", "journal")


# --- the commands ----------------------------------------------------------------------------------


def test_ledger_audit_prints_a_verdict_and_exits_0_when_clean(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rich_journal(store_url)
    assert main(["audit", "--store", store_url, "--progress"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0].endswith(": clean")
    assert f"ledger {LEDGER}: 21 accounts, debits = credits: posted" in out
    assert "audit" in err and "transfers" in err  # the progress bar
    assert main(["audit", "--store", store_url, "--json", "--no-progress"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["clean"] is True and document["problem"] is None
    assert document["holds"]["open"] == 1 and document["ledgers"][str(LEDGER)]["holds_open"] == 77


def test_ledger_audit_names_the_first_problem_and_exits_1(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    rich_journal(store_url)
    seq = middle_commit(store_url).seq
    execute(store_url, "DELETE FROM ledger_journal WHERE seq = %s", seq)
    assert main(["audit", "--store", store_url]) == 1
    out = capsys.readouterr().out
    assert f"FAILED at journal commit seq={seq}: is missing" in out.splitlines()[0]
    assert main(["audit", "--store", store_url, "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["problem"]["seq"] == seq


def test_ledger_audit_of_no_journal_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--store", f"sqlite:///{tmp_path / 'nothing.sqlite3'}"]) == 3
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "nothing.sqlite3").exists()


def test_export_from_the_journal_writes_csv_and_parquet(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine_accounts, stats = rich_journal(store_url)
    assert main(["export", "transfers", str(tmp_path / "t.csv"), "--store", store_url]) == 0
    assert main(["export", "accounts", str(tmp_path / "a.parquet"), "--store", store_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["rows"] == stats.accounts_count

    with (tmp_path / "t.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == stats.transfers_count
    journal = open_journal(store_url)
    try:
        stored = [t for c in journal.commits() for t in unpack_transfers(c.transfers)]
    finally:
        journal.close()
    assert [Transfer(**{k: int(v) for k, v in row.items()}) for row in rows] == stored

    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "a.parquet").to_pylist()
    exported = [Account(**{k: int(v) for k, v in row.items()}) for row in table]
    assert exported == [replace(a, reserved=0) for a in unpack_accounts(engine_accounts)]


def test_export_from_a_damaged_journal_is_refused(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rich_journal(store_url)
    seq = middle_commit(store_url).seq
    execute(store_url, "DELETE FROM ledger_journal WHERE seq = %s", seq)
    out = tmp_path / "t.csv"
    assert main(["export", "transfers", str(out), "--store", store_url]) == 1
    assert f"fails its audit at journal commit seq={seq}" in capsys.readouterr().err
    assert not out.exists() and not Path(f"{out}.partial").exists()


def test_export_to_parquet_without_pyarrow_says_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    assert main(["export", "transfers", str(tmp_path / "t.parquet"), "--store", url]) == 2
    assert "pip install 'wallet-ledger[export]'" in capsys.readouterr().err
    assert main(["export", "transfers", "-", "--store", url, "--format", "parquet"]) == 2


def test_the_readmes_reader_reads_a_real_journal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The byte format's section of the README is enough to read a journal: its example runs as printed."""
    path = tmp_path / "ledger.sqlite3"
    rich_journal(f"sqlite:///{path}")
    asyncio.run(domain_operation(f"sqlite:///{path}"))  # the reader's checksum covers domain records as well
    run_readme_reader(path)
    journal = open_journal(f"sqlite:///{path}")
    try:
        records = [t for c in journal.commits() for t in unpack_transfers(c.transfers)]
    finally:
        journal.close()
    moved = sum(t.amount for t in records if not t.flags & (TF.PENDING | TF.VOID_PENDING_TRANSFER))
    assert capsys.readouterr().out == (
        f"{len(records)} transfers in 21 accounts, {moved} moved; checksums, seqs, ordinals agree\n"
    )
    verdict = run_audit(f"sqlite:///{path}")
    assert verdict.clean and (verdict.tally.domain_commits, verdict.tally.domain_bytes) == (1, len(b"paid 9500"))
    assert "  domain records: 9 bytes in 1 commits (checksums only: the journal does not read them)" in (
        verdict_lines(verdict)
    )
    assert verdict_document(verdict)["domain"] == {"commits": 1, "bytes": 9}


def run_readme_reader(path: Path) -> None:
    """The example reader of the README's byte format section, run as printed on the SQLite journal at `path`."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("### The journal's byte format") :]
    code = section[
        section.index("```python\n") + len("```python\n") : section.index("```\n", section.index("```python"))
    ]
    exec(compile(code.replace("data/ledger.sqlite3", str(path)), "README.md", "exec"), {})


async def domain_operation(url: str) -> None:
    """One domain operation on a journal: a transfer and its domain record, in one commit."""
    async with await Ledger.open(config(url), clock=ManualClock()) as ledger:
        operation = ledger.operation()
        operation.create_transfers(pack_transfers([move(9500, FUNDING, REVENUE, 3)]))
        operation.record(b"paid 9500")
        await ledger.until_durable(operation.finish())


def test_beside_a_serving_ledger_the_journal_and_the_server_export_the_same(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ledger audit` and `ledger export --store` run while the server holds the journal, and agree with it."""
    from ledger.client import Client, ClientConfig
    from tests.integration.test_cli_ops import Served

    with Served(store_url) as served:
        server = f"127.0.0.1:{served.port}"
        with Client(ClientConfig(server=server)) as client:
            client.create_accounts([Account(id=i, ledger=LEDGER, code=1, flags=2 * (i > 1)) for i in range(1, 6)])
            client.create_transfers([Transfer(id=10 + i, debit_account_id=1, credit_account_id=i, amount=100 * i,
                                              ledger=LEDGER, code=1) for i in range(2, 6)])  # fmt: skip
            hold = Transfer(id=20, debit_account_id=2, credit_account_id=3, amount=50, ledger=LEDGER, code=1,
                            flags=TF.PENDING)  # fmt: skip
            client.create_transfers([hold, Transfer(id=21, pending_id=20, amount=30, ledger=LEDGER,
                                                    flags=TF.POST_PENDING_TRANSFER)])  # fmt: skip
        assert main(["audit", "--store", store_url]) == 0
        assert capsys.readouterr().out.splitlines()[0].endswith(": clean")
        by_server = tmp_path / "server.parquet"
        by_journal = tmp_path / "journal.parquet"
        assert main(["export", "accounts", str(by_server), "--id-range", "1:5", "--server", server]) == 0
        assert main(["export", "accounts", str(by_journal), "--store", store_url]) == 0
        assert (
            main(["export", "transfers", str(tmp_path / "server.csv"), "--id-range", "10:21", "--server", server]) == 0
        )
        assert main(["export", "transfers", str(tmp_path / "journal.csv"), "--store", store_url]) == 0

    import pyarrow.parquet as pq

    server_rows = pq.read_table(by_server).to_pylist()
    assert server_rows == pq.read_table(by_journal).to_pylist()
    assert [row["debits_posted"] for row in server_rows] == [1400, 30, 0, 0, 0]
    assert server_rows[1]["id"] == "2"  # 128-bit columns as their decimal text
    assert (tmp_path / "server.csv").read_text() == (tmp_path / "journal.csv").read_text()

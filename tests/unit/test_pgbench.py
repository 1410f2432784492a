"""The plain ledger's pgbench driver from fixed text: its script, its command line, its output and log files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import require_compare_extra

require_compare_extra("numpy")

from bench import _pgbench, compare, plain_pg  # noqa: E402
from bench._pgbench import Books  # noqa: E402

UNIFORM_SCRIPT = """\
-- One transfer of the plain PostgreSQL ledger (bench/_pgbench.py); the CHECK on accounts guards the debit.
\\set debit random(1001, 1100)
\\set credit 1001 + (:debit - 1001 + random(1, 99)) % 100
\\set amount random(1, 1000)
BEGIN;
INSERT INTO transfers (debit_account_id, credit_account_id, amount) VALUES (:debit, :credit, :amount);
UPDATE accounts SET balance = balance - :amount WHERE id = :debit;
UPDATE accounts SET balance = balance + :amount WHERE id = :credit;
COMMIT;
"""

# What pgbench 15 prints for a -T run with --max-tries and --failures-detailed.
OUTPUT = """\
pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: /tmp/bench-pgbench-x/transfer.sql
scaling factor: 1
query mode: prepared
number of clients: 32
number of threads: 2
maximum number of tries: 10
duration: 2 s
number of transactions actually processed: 8551
number of failed transactions: 2 (0.023%)
number of serialization failures: 0 (0.000%)
number of deadlock failures: 2 (0.023%)
number of transactions retried: 3 (0.035%)
total number of retries: 4
latency average = 7.426 ms
initial connection time = 59.411 ms
tps = 4309.243531 (without initial connection time)
"""

# pgbench 14 and older: no tries, no failures; a -t run prints processed/requested.
OUTPUT_14 = """\
pgbench (14.11)
transaction type: transfer.sql
scaling factor: 1
query mode: prepared
number of clients: 4
number of threads: 2
number of transactions per client: 10
number of transactions actually processed: 40/40
latency average = 0.812 ms
initial connection time = 5.120 ms
tps = 4925.000000 (without initial connection time)
"""


def test_the_uniform_script_draws_two_different_customers_and_runs_the_transaction() -> None:
    text = _pgbench.script(customers=100, customer_first_id=1001, amount_max=1000, credit_account_id=None)
    assert text == UNIFORM_SCRIPT
    # The credit formula never gives the debit back and stays among the customers.
    for debit in range(1001, 1101):
        credits = {1001 + (debit - 1001 + step) % 100 for step in range(1, 100)}
        assert debit not in credits and credits == set(range(1001, 1101)) - {debit}


def test_the_hot_merchant_script_credits_one_account() -> None:
    text = _pgbench.script(customers=100_000, customer_first_id=1001, amount_max=1000, credit_account_id=2)
    assert "\\set debit random(1001, 101000)\n\\set credit 2\n\\set amount random(1, 1000)\nBEGIN;\n" in text
    assert text.endswith(_pgbench.TRANSACTION)
    # The debit has no WHERE guard: the CHECK constraint refuses an overdraft and fails the whole transaction.
    assert "UPDATE accounts SET balance = balance - :amount WHERE id = :debit;\n" in text


def test_the_one_statement_script_is_the_psycopg_drivers_statement() -> None:
    text = _pgbench.script(customers=100, customer_first_id=1001, amount_max=1000, credit_account_id=2,
                           statement="one")  # fmt: skip
    assert text.startswith("-- One transfer of the plain PostgreSQL ledger as one statement")
    assert "\\set credit 2\n" in text and "BEGIN" not in text and "COMMIT" not in text
    statement = text.splitlines()[-1]
    assert statement == (
        "WITH debit AS (UPDATE accounts SET balance = balance - :amount WHERE id = :debit AND (NOT guarded OR "
        "balance >= :amount) RETURNING id), credit AS (UPDATE accounts SET balance = balance + :amount WHERE id = "
        ":credit AND EXISTS (SELECT FROM debit) RETURNING id) INSERT INTO transfers (debit_account_id, "
        "credit_account_id, amount) SELECT :debit, :credit, :amount FROM debit RETURNING id;"
    )
    # The same statement psycopg sends, but for the id, which pgbench leaves to the identity column.
    assert plain_pg.ONE_STATEMENT.replace("%(", ":").replace(")s", "").replace("id, debit_account_id", (
        "debit_account_id")).replace(":id, ", "") + ";" == statement  # fmt: skip


def test_the_script_refuses_impossible_workloads() -> None:
    with pytest.raises(ValueError, match="customers: 1 is fewer than the 2"):
        _pgbench.script(customers=1, customer_first_id=1001, amount_max=1000, credit_account_id=None)
    with pytest.raises(ValueError, match="amount_max: 0"):
        _pgbench.script(customers=10, customer_first_id=1001, amount_max=0, credit_account_id=2)
    with pytest.raises(ValueError, match="statement: 'two' is not one of five, one"):
        _pgbench.script(customers=10, customer_first_id=1001, amount_max=1, credit_account_id=2, statement="two")


def test_the_command_line() -> None:
    line = _pgbench.command("/usr/bin/pgbench", "postgresql://x/test", Path("/t/s.sql"), Path("/t/log"),
                            clients=32, seconds=5, seed=7)  # fmt: skip
    assert line == [
        "/usr/bin/pgbench", "-n", "-M", "prepared", "-f", "/t/s.sql", "-c", "32", "-j", "2", "-T", "5",
        "--random-seed", "7", "--log", "--log-prefix", "/t/log", "--max-tries", "10", "--failures-detailed",
        "postgresql://x/test",
    ]  # fmt: skip
    one = _pgbench.command("pgbench", "d", Path("s"), Path("l"), clients=1, seconds=1, seed=7, retries=False)
    assert one[one.index("-j") + 1] == "1" and "--max-tries" not in one
    with pytest.raises(ValueError, match="clients: 0"):
        _pgbench.command("pgbench", "d", Path("s"), Path("l"), clients=0, seconds=1, seed=7)
    with pytest.raises(ValueError, match="seconds: 0"):
        _pgbench.command("pgbench", "d", Path("s"), Path("l"), clients=1, seconds=0, seed=7)


def test_whole_seconds_round_up() -> None:
    assert [_pgbench.whole_seconds(s) for s in (0.05, 1.0, 1.2, 5.0)] == [1, 1, 2, 5]


def test_the_output_is_read() -> None:
    assert _pgbench.parse_output(OUTPUT) == {
        "version": "15.20", "query_mode": "prepared", "clients": 32, "threads": 2, "transactions": 8551,
        "failed": 2, "retried": 3, "retries": 4, "latency_average_ms": 7.426, "tps": 4309.243531,
    }  # fmt: skip
    older = _pgbench.parse_output(OUTPUT_14)
    assert older["transactions"] == 40 and older["failed"] == 0 and older["tps"] == 4925.0
    with pytest.raises(ValueError, match="tps = "):
        _pgbench.parse_output(OUTPUT.replace("tps = ", "tps: "))
    with pytest.raises(ValueError, match="actually processed"):
        _pgbench.parse_output("pgbench: error: connection to server failed\n")


def test_log_lines_give_latencies_ends_and_failures() -> None:
    lines = [
        "0 1 2074 0 1795470406 708891 0\n",
        "0 2 429 0 1795470406 709331 0\n",
        "3 7 deadlock 0 1795470406 709784 9\n",  # failed after its tries (--failures-detailed)
        "\n",
        "1 1 38393 0 1795470408 831045\n",  # without --max-tries: no retries field
        "2 4 failed 0 1795470408 831046 0\n",
    ]
    log = _pgbench.parse_log(lines)
    assert log.latencies == [0.002074, 0.000429, 0.038393]
    assert log.ends == [1795470406.708891, 1795470406.709331, 1795470408.831045]
    assert log.failed == 2
    with pytest.raises(ValueError, match="line 2: not `client transaction latency script s us`"):
        _pgbench.parse_log(["0 1 2074 0 1795470406 708891 0", "0 1 2074"])
    with pytest.raises(ValueError, match="line 1"):
        _pgbench.parse_log(["0 1 2074 0 1795470406.5 708891 0"])


def test_the_measured_window_starts_after_the_warm_up() -> None:
    # The first transaction began at 100.000 s and took 0.2 s; one transaction ends every 0.1 s after it.
    lines = ["0 1 200000 0 100 200000 0"]
    lines += [f"0 {n} 1000 0 {100 + (2 + n) // 10} {(2 + n) % 10 * 100000} 0" for n in range(2, 30)]
    log = _pgbench.parse_log(lines)
    assert min(log.ends) == 100.2 and max(log.ends) == 103.1
    # Ended in [100.5, 102.5): 100.5, 100.6 ... 102.4, 20 transactions.
    assert len(log.window(0.5, 2.0)) == 20
    assert log.window(0.0, 0.25) == [0.2]  # the first ended at 0.2 s after the start
    assert log.window(5.0, 1.0) == []
    assert _pgbench.Log(ends=[], latencies=[], failed=0).window(0.3, 1.0) == []


def test_the_logs_of_every_thread_are_read(tmp_path: Path) -> None:
    (tmp_path / "pgbench_log.4242").write_text("0 1 1000 0 1 1 0\n0 2 3000 0 1 2 0\n")
    (tmp_path / "pgbench_log.4242.1").write_text("1 1 2000 0 1 1 0\n1 2 failed 0 1 3 0\n")
    (tmp_path / "transfer.sql").write_text(UNIFORM_SCRIPT)
    log = _pgbench.read_logs(tmp_path)
    assert sorted(log.latencies) == [0.001, 0.002, 0.003] and log.failed == 1 and len(log.ends) == 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no log file"):
        _pgbench.read_logs(tmp_path / "empty")


def test_conservation_is_checked() -> None:
    before = Books(balance_sum=0, overdrawn=0, transfers=100)
    _pgbench.check_conserved(before, Books(balance_sum=0, overdrawn=0, transfers=150), committed=50)
    with pytest.raises(RuntimeError, match="the balances sum to 7, not 0"):
        _pgbench.check_conserved(before, Books(balance_sum=7, overdrawn=0, transfers=150), committed=50)
    with pytest.raises(RuntimeError, match="1 guarded accounts are below zero"):
        _pgbench.check_conserved(before, Books(balance_sum=0, overdrawn=1, transfers=150), committed=50)
    with pytest.raises(RuntimeError, match="51 transfers were written, pgbench committed 50"):
        _pgbench.check_conserved(before, Books(balance_sum=0, overdrawn=0, transfers=151), committed=50)
    with pytest.raises(
        RuntimeError, match=r"^plain_postgresql_one run: 49 transfers were written, plain_postgresql_one"
    ):
        _pgbench.check_conserved(before, Books(balance_sum=0, overdrawn=0, transfers=149), committed=50,
                                 driver="plain_postgresql_one")  # fmt: skip


def test_pgbench_is_found_or_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="--pgbench: /nowhere/pgbench"):
        _pgbench.find_pgbench("/nowhere/pgbench")
    monkeypatch.setattr(_pgbench.shutil, "which", lambda name: None)
    for major in ("9.6", "15", "16"):
        binary = tmp_path / "postgresql" / major / "bin" / "pgbench"
        binary.parent.mkdir(parents=True)
        binary.touch()
    monkeypatch.setattr(_pgbench, "PGBENCH_GLOB", str(tmp_path / "postgresql" / "*" / "bin" / "pgbench"))
    assert _pgbench.find_pgbench() == str(tmp_path / "postgresql" / "16" / "bin" / "pgbench")


def test_without_pgbench_the_comparison_runs_without_it_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pgbench, "find_pgbench", lambda path=None: None)
    args = compare.parse_args([])
    assert args.pgbench_path is None
    assert args.skipped["plain_postgresql_pgbench"] == "pgbench not found (give `--pgbench PATH`)"
    assert args.skipped["plain_postgresql_pgbench_one"] == "pgbench not found (give `--pgbench PATH`)"
    for key in ("plain_postgresql_pgbench", "plain_postgresql_pgbench_one"):
        with pytest.raises(SystemExit):
            compare.parse_args(["--systems", key])

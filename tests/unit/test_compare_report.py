"""bench.compare's report from a fixed result (targets, Markdown, charts, the README section) and its workloads."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support import require_compare_extra

require_compare_extra("numpy", "matplotlib")

from bench import _report  # noqa: E402
from bench._tigerbeetle import parse_benchmark  # noqa: E402
from bench.compare import CUSTOMER_FIRST_ID, MERCHANT_ID, Sampler  # noqa: E402

README = Path(__file__).resolve().parents[2] / "README.md"


def scenario(transfers_per_s: int, calls: int = 10) -> dict[str, Any]:
    return {"callers": 1, "transfers_per_s": transfers_per_s, "p50_ms": 1.5, "p99_ms": 9.25, "p999_ms": 12.0,
            "calls": calls, "client_cpu_us_per_transfer": 10.0}  # fmt: skip


def system(label: str, single: dict[int, int], batch: int, batch_transfers: int = 8190) -> dict[str, Any]:
    workload = {f"single_{n}": scenario(tps) for n, tps in single.items()}
    workload["batch"] = {**scenario(batch), "callers": 4, "batch_transfers": batch_transfers}
    return {"label": label, "notes": [f"{label} note"], "info": {},
            "workloads": {"uniform": workload, "hot_merchant": copy.deepcopy(workload)}}  # fmt: skip


def fixed_report() -> dict[str, Any]:
    report: dict[str, Any] = {
        "benchmark": "compare",
        "mode": "quick",
        "machine": {
            "cpu": "Test CPU 9000",
            "cores": 2,
            "memory_gib": 24.0,
            "os": "Debian, kernel 6",
            "python": "3.11.7",
            "sqlite": "3.40.1",
            "postgresql": "15.20",
            "engine": "cython",
        },
        "settings": {
            "accounts": 100_000,
            "balance": 1_000_000_000,
            "amount_max": 1_000,
            "callers": [1, 8, 32, 256],
            "batch_in_flight": 4,
            "seconds_per_scenario": 1.0,
            "batch_seconds": 2.0,
            "warmup_seconds": 0.3,
        },
        "systems": {
            "ledger_postgresql": system(
                "this ledger (PostgreSQL)", {1: 500, 8: 4_000, 32: 12_000, 256: 40_000}, 700_000
            ),
            "plain_postgresql": system("plain PostgreSQL ledger", {1: 1_000, 8: 3_000, 32: 3_000, 256: 2_500}, 20_000),
            "tigerbeetle": system("TigerBeetle", {1: 800, 8: 5_000, 32: 6_000, 256: 6_000}, 200_000, 8189),
        },
        "tigerbeetle_benchmark": {"command": "tigerbeetle benchmark", "transfers_per_s": 350_000, "batch_p99_ms": 60},
        "elapsed_seconds": 100.0,
    }
    report["systems"]["plain_postgresql"]["workloads"]["hot_merchant"]["single_32"]["transfers_per_s"] = 1_500
    report["targets"] = _report.targets(report)
    return report


def test_targets_are_ratios_of_this_run() -> None:
    targets = fixed_report()["targets"]
    assert targets["hot_merchant_32_callers_vs_plain_postgresql"] == {
        "ours": 12_000, "theirs": 1_500, "against": "plain_postgresql", "ratio": 8.0, "target": 5.0, "met": True,
    }  # fmt: skip
    assert targets["uniform_32_callers_vs_plain_postgresql"]["ratio"] == 4.0
    assert targets["uniform_32_callers_vs_plain_postgresql"]["met"] is True
    assert targets["batches_vs_tigerbeetle_python_client"]["ratio"] == 3.5
    assert targets["batches_vs_tigerbeetle_benchmark"] == {
        "ours": 700_000, "theirs": 350_000, "against": "tigerbeetle_benchmark", "ratio": 2.0, "target": 1.0,
        "met": True,
    }  # fmt: skip


def test_a_target_not_measured_is_neither_met_nor_missed() -> None:
    report = fixed_report()
    del report["systems"]["tigerbeetle"]
    report["tigerbeetle_benchmark"] = None
    report["systems"]["ledger_postgresql"]["workloads"]["uniform"]["single_32"]["transfers_per_s"] = 5_000
    targets = _report.targets(report)
    assert targets["batches_vs_tigerbeetle_python_client"]["met"] is None
    assert targets["batches_vs_tigerbeetle_benchmark"]["ratio"] is None
    assert targets["uniform_32_callers_vs_plain_postgresql"] == {
        "ours": 5_000, "theirs": 3_000, "against": "plain_postgresql", "ratio": 1.67, "target": 2.0, "met": False,
    }  # fmt: skip
    markdown = _report.render_markdown({**report, "targets": targets})
    assert "| uniform, 32 callers, over the plain PostgreSQL ledger | 1.67x (5,000 vs 3,000/s) | ≥ 2.0x | **no** |" in (
        markdown
    )
    assert "TigerBeetle: not run" in markdown


def with_pgbench(report: dict[str, Any]) -> dict[str, Any]:
    """The fixed report with the plain ledger's pgbench driver too: faster uniformly, slower on the hot merchant."""
    pgbench = system("plain PostgreSQL ledger (pgbench, C client)", {8: 5_000, 32: 6_000, 256: 5_500}, 0)
    for workload in pgbench["workloads"].values():
        del workload["batch"]
    pgbench["workloads"]["hot_merchant"]["single_32"]["transfers_per_s"] = 1_200
    pgbench["workloads"]["hot_merchant"]["single_256"]["note"] = "256 callers: 64 connections, the cap"
    report["systems"]["plain_postgresql"]["label"] = "plain PostgreSQL ledger (psycopg, Python client)"
    report["systems"]["plain_postgresql_pgbench"] = pgbench
    report["targets"] = _report.targets(report)
    return report


def test_targets_over_the_plain_ledger_are_judged_against_its_faster_driver() -> None:
    report = with_pgbench(fixed_report())
    targets = report["targets"]
    assert targets["uniform_32_callers_vs_plain_postgresql"] == {
        "ours": 12_000, "theirs": 6_000, "against": "plain_postgresql_pgbench", "ratio": 2.0, "target": 2.0,
        "met": True,
    }  # fmt: skip
    assert targets["hot_merchant_32_callers_vs_plain_postgresql"]["against"] == "plain_postgresql"
    assert targets["hot_merchant_32_callers_vs_plain_postgresql"]["ratio"] == 8.0
    markdown = _report.render_markdown(report)
    assert (
        "| uniform, 32 callers, over the plain PostgreSQL ledger, against its faster driver here: pgbench, C client "
        "| 2.0x (12,000 vs 6,000/s) | ≥ 2.0x | yes |" in markdown
    )
    assert (
        "| hot merchant, 32 callers, over the plain PostgreSQL ledger, against its faster driver here: psycopg, "
        "Python client | 8.0x (12,000 vs 1,500/s) | ≥ 5.0x | yes |" in markdown
    )
    assert "judged against whichever was faster at that scenario" in markdown
    header = (
        "| callers | this ledger (PostgreSQL) | plain PostgreSQL ledger (psycopg, Python client) "
        "| plain PostgreSQL ledger (pgbench, C client) | TigerBeetle |"
    )
    assert markdown.count(header) == 2
    assert "| 1 | **500**/s" in markdown and " | - | **800**/s" in markdown  # pgbench did not run 1 caller
    assert "(256 callers: 64 connections, the cap)" in markdown


def test_a_driver_not_run_is_said(tmp_path: Path) -> None:
    report = fixed_report()
    report["not_run"] = {"plain_postgresql_pgbench": "pgbench not found (give `--pgbench PATH`)"}
    markdown = _report.render_markdown(report)
    assert "- plain PostgreSQL ledger (pgbench, C client): not run: pgbench not found (give `--pgbench PATH`)" in (
        markdown
    )
    assert "judged against whichever was faster" not in markdown  # one driver: nothing to choose
    paths = _report.write(with_pgbench(report), tmp_path)  # charts with a system that has no batches
    assert paths["throughput"].stat().st_size > 10_000


def test_markdown_states_the_machine_and_every_figure() -> None:
    markdown = _report.render_markdown(fixed_report())
    assert "Test CPU 9000, 2 cores; 24.0 GiB memory; Debian, kernel 6; Python 3.11.7; PostgreSQL 15.20" in markdown
    header = "| callers | this ledger (PostgreSQL) | plain PostgreSQL ledger | TigerBeetle |"
    assert markdown.count(header) == 2  # one table per workload
    assert "| 32 | **12,000**/s<br>p50 1.5 ms, p99 9.25 ms, p99.9 12.0 ms |" in markdown
    assert "batches of 8,189" in markdown and "batches of 8,190" in markdown
    assert (
        "| hot merchant, 32 callers, over the plain PostgreSQL ledger | 8.0x (12,000 vs 1,500/s) | ≥ 5.0x | yes |"
        in (markdown)
    )
    assert "`tigerbeetle benchmark` (its own load generator in Zig, no Python): 350,000 transfers/s" in markdown
    assert "- plain PostgreSQL ledger: plain PostgreSQL ledger note" in markdown


def test_write_makes_json_markdown_and_png_charts(tmp_path: Path) -> None:
    report = fixed_report()
    report["systems"]["plain_postgresql"]["workloads"]["hot_merchant"]["batch"].update(
        transfers_per_s=0, calls=0, p50_ms=None, p99_ms=None, p999_ms=None
    )
    paths = _report.write(report, tmp_path)
    assert json.loads(paths["json"].read_text())["targets"] == report["targets"]
    assert "no call finished within the measured window" in paths["markdown"].read_text()
    for name in ("throughput", "latency"):
        assert paths[name] == tmp_path / f"{name}.png"
        assert paths[name].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert paths[name].stat().st_size > 10_000


def test_the_readme_section_is_replaced_and_nothing_else() -> None:
    text = f"# Title\n\nbefore\n\n{_report.README_BEGIN}\nold figures\n{_report.README_END}\n\nafter\n"
    replaced = _report.replace_section(text, "new figures\n")
    assert replaced == f"# Title\n\nbefore\n\n{_report.README_BEGIN}\nnew figures\n{_report.README_END}\n\nafter\n"
    assert _report.replace_section(replaced, "new figures") == replaced
    with pytest.raises(ValueError, match="exactly one"):
        _report.replace_section("# no markers\n", "figures")
    with pytest.raises(ValueError, match="found 2"):
        _report.replace_section(text + text, "figures")


def test_the_readme_performance_section_is_a_generated_report() -> None:
    text = README.read_text()
    section = re.search(re.escape(_report.README_BEGIN) + r"\n(.*)" + re.escape(_report.README_END), text, re.DOTALL)
    assert section is not None, "README.md lacks the performance markers"
    body = section.group(1)
    assert _report.replace_section(text, body) == text
    # What render_markdown writes, line for line in its fixed parts: the machine, both tables, the targets.
    assert re.match(r"Measured by `python -m bench\.compare[^`]*` in one run of [\d.]+ s on: .+, \d+ cores;", body)
    for line in ("#### Uniform: ", "#### Hot merchant: ", "#### Targets (this ledger on PostgreSQL",
                 "| batches, 4 in flight |", "#### How each system was driven"):  # fmt: skip
        assert line in body
    assert text.index("## Performance") < text.index(_report.README_BEGIN)


def test_tigerbeetle_benchmark_output_is_read() -> None:
    output = (
        "2026-11-23 21:17:37.050Z info(main): release=65535.0.0\n"
        "2026-11-23 21:17:37.050Z info(main): release_client_min=0.16.4\n"
        "2026-11-23 21:17:37.050Z info(main): git_commit=1e2826ecdee2f6ba617c1ee10903dfa01974d437\n"
        "123 batches in 2.49 s\ntransfer batch size = 8189 txs\nload accepted = 401358 tx/s\n"
        "batch latency p1   = 5 ms\nbatch latency p50  = 18 ms\n"
        "batch latency p99  = 35 ms\nbatch latency p100 = 37 ms\n"
    )
    assert parse_benchmark(output) == {
        "transfers_per_s": 401_358, "batch_p50_ms": 18, "batch_p99_ms": 35, "batch_p100_ms": 37,
        "release": "65535.0.0", "git_commit": "1e2826ecdee2",
    }  # fmt: skip
    with pytest.raises(ValueError, match="load accepted"):
        parse_benchmark("error: something else\n")


@pytest.mark.parametrize("workload", ["uniform", "hot_merchant"])
def test_workloads_draw_the_same_transfers_for_every_system(workload: str) -> None:
    first, second = Sampler(workload, 50), Sampler(workload, 50)
    singles = [first.one() for _ in range(2_000)]
    assert singles == [second.one() for _ in range(2_000)]
    customers = range(CUSTOMER_FIRST_ID, CUSTOMER_FIRST_ID + 50)
    for debit, credit, amount in singles:
        assert debit in customers and debit != credit and 1 <= amount <= 1_000
        assert credit == MERCHANT_ID if workload == "hot_merchant" else credit in customers
    debits, credits, amounts = first.many(8190)
    again = second.many(8190)
    assert all((a == b).all() for a, b in zip((debits, credits, amounts), again, strict=True))
    assert set(debits.tolist()) == set(customers)
    assert (debits != credits).all() and amounts.min() >= 1 and amounts.max() <= 1_000
    if workload == "hot_merchant":
        assert set(credits.tolist()) == {MERCHANT_ID}
    else:
        assert set(credits.tolist()) == set(customers)

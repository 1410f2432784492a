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
from bench._systems import CUSTOMER_FIRST_ID, MERCHANT_ID, Sampler  # noqa: E402
from bench._tigerbeetle import parse_benchmark  # noqa: E402

README = Path(__file__).resolve().parents[2] / "README.md"


def scenario(transfers_per_s: int, calls: int = 10, p50_ms: float = 1.5) -> dict[str, Any]:
    return {"callers": 1, "transfers_per_s": transfers_per_s, "p50_ms": p50_ms, "p99_ms": 9.25, "p999_ms": 12.0,
            "calls": calls, "client_cpu_us_per_transfer": 10.0, "server_cpu_us_per_transfer": 20.0,
            "server_cpu_share": 0.5}  # fmt: skip


def system(label: str, single: dict[int, int], batch: int | None, batch_typed: int | None = None,
           batch_transfers: int = 8190) -> dict[str, Any]:  # fmt: skip
    workload = {f"single_{n}": scenario(tps) for n, tps in single.items()}
    if batch is not None:
        workload["batch"] = {**scenario(batch), "callers": 4, "batch_transfers": batch_transfers}
    if batch_typed is not None:
        workload["batch_typed"] = {**scenario(batch_typed), "callers": 4, "batch_transfers": batch_transfers}
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
            "calls_min": 300,
            "batch_calls_min": 8,
            "seconds_max": 8.0,
            "batch_seconds_max": 12.0,
            "warmup_seconds": 0.3,
            "settled": ["a CHECKPOINT", "a pause of 2 s"],
            "order": "rotated",
        },
        "systems": {
            "ledger_postgresql": system(
                "this ledger (PostgreSQL)", {1: 500, 8: 4_000, 32: 12_000, 256: 40_000}, 700_000, 200_000
            ),
            "plain_postgresql": system(
                "plain PostgreSQL ledger (psycopg, 5 round trips)",
                {1: 1_000, 8: 3_000, 32: 3_000, 256: 2_500},
                None,
                20_000,
            ),
            "tigerbeetle": system("TigerBeetle", {1: 800, 8: 5_000, 32: 6_000, 256: 6_000}, 200_000, 50_000, 8189),
        },
        "tigerbeetle_benchmark": {
            "command": "tigerbeetle benchmark",
            "clients": 4,
            "transfers_per_s": 350_000,
            "batch_p99_ms": 60,
        },
        "elapsed_seconds": 100.0,
    }
    report["systems"]["plain_postgresql"]["workloads"]["hot_merchant"]["single_32"]["transfers_per_s"] = 1_500
    report["systems"]["ledger_postgresql"]["workloads"]["uniform"]["single_32"]["store_cpu_us_per_transfer"] = 3.5
    report["systems"]["ledger_postgresql"]["workloads"]["uniform"]["single_32"]["store_cpu_share"] = 0.1
    report["targets"] = _report.targets(report)
    return report


def test_targets_are_ratios_of_this_run() -> None:
    targets = fixed_report()["targets"]
    assert targets["hot_merchant_32_callers_vs_plain_postgresql"] == {
        "ours": 12_000, "theirs": 1_500, "against": "plain_postgresql", "metric": "transfers_per_s", "ratio": 8.0,
        "target": 5.0, "met": True,
    }  # fmt: skip
    assert targets["uniform_32_callers_vs_plain_postgresql"]["ratio"] == 4.0
    assert targets["uniform_32_callers_vs_plain_postgresql"]["target"] == 3.0
    assert targets["uniform_32_callers_vs_plain_postgresql"]["met"] is True
    assert targets["batches_vs_tigerbeetle_benchmark"] == {
        "ours": 700_000, "theirs": 350_000, "against": "tigerbeetle_benchmark", "metric": "transfers_per_s",
        "ratio": 2.0, "target": 1.0, "met": True,
    }  # fmt: skip


def test_batches_are_compared_packed_with_packed_and_typed_with_typed() -> None:
    report = fixed_report()
    targets = report["targets"]
    assert targets["batches_packed_vs_tigerbeetle_packed"] == {
        "ours": 700_000, "theirs": 200_000, "against": "tigerbeetle", "metric": "transfers_per_s", "ratio": 3.5,
        "target": 2.0, "met": True,
    }  # fmt: skip
    typed = targets["batches_typed_vs_tigerbeetle_typed"]
    assert (typed["ours"], typed["theirs"], typed["ratio"]) == (200_000, 50_000, 4.0)
    assert typed["target"] is None and typed["met"] is None  # reported, no goal
    markdown = _report.render_markdown(report)
    assert (
        "| batches (uniform), packed vs packed: numpy records through each one's client | 3.5x (700,000 vs 200,000/s) "
        "| ≥ 2.0x | yes |" in markdown
    )
    assert "typed vs typed: Python transfer objects through each one's client | 4.0x (200,000 vs 50,000/s) | " in (
        markdown
    )
    assert "| reported | - |" in markdown
    assert "| batches, packed (numpy records), 4 in flight | **700,000**/s" in markdown
    assert "| batches, typed (Python objects), 4 in flight | **200,000**/s" in markdown
    # The plain ledger has no packed batches: its cell is empty, not its typed figure.
    packed_row = next(line for line in markdown.splitlines() if line.startswith("| batches, packed"))
    assert packed_row.split(" | ")[2] == "-"


def test_the_single_caller_target_is_a_latency_against_the_lowest_plain_p50() -> None:
    report = with_drivers(fixed_report())
    uniform = report["systems"]
    uniform["ledger_postgresql"]["workloads"]["uniform"]["single_1"]["p50_ms"] = 1.2
    uniform["plain_postgresql"]["workloads"]["uniform"]["single_1"]["p50_ms"] = 0.9
    uniform["plain_postgresql_one"]["workloads"]["uniform"]["single_1"]["p50_ms"] = 0.8
    verdict = _report.targets(report)["single_caller_p50_vs_plain_postgresql"]
    assert verdict == {"ours": 1.2, "theirs": 0.8, "against": "plain_postgresql_one", "metric": "p50_ms",
                       "ratio": 0.67, "target": 1.0, "met": False}  # fmt: skip
    markdown = _report.render_markdown({**report, "targets": _report.targets(report)})
    assert "0.67x (p50 1.2 vs 0.8 ms) | ≥ 1.0x | **no** |" in markdown


def test_a_target_not_measured_is_neither_met_nor_missed() -> None:
    report = fixed_report()
    del report["systems"]["tigerbeetle"]
    report["tigerbeetle_benchmark"] = None
    report["not_run"] = {"tigerbeetle": "give `--tigerbeetle-binary PATH` (or `--tigerbeetle ADDRESS`)"}
    report["systems"]["ledger_postgresql"]["workloads"]["uniform"]["single_32"]["transfers_per_s"] = 5_000
    targets = _report.targets(report)
    assert targets["batches_packed_vs_tigerbeetle_packed"]["met"] is None
    assert targets["batches_vs_tigerbeetle_benchmark"]["ratio"] is None
    assert targets["uniform_32_callers_vs_plain_postgresql"] == {
        "ours": 5_000, "theirs": 3_000, "against": "plain_postgresql", "metric": "transfers_per_s", "ratio": 1.67,
        "target": 3.0, "met": False,
    }  # fmt: skip
    markdown = _report.render_markdown({**report, "targets": targets})
    assert "| uniform, 32 callers, over the plain PostgreSQL ledger | 1.67x (5,000 vs 3,000/s) | ≥ 3.0x | **no** |" in (
        markdown
    )
    assert "- TigerBeetle: not run: give `--tigerbeetle-binary PATH`" in markdown
    assert "- `tigerbeetle benchmark`: not run" in markdown


def with_drivers(report: dict[str, Any]) -> dict[str, Any]:
    """The fixed report with the plain ledger's other three drivers: pgbench five round trips is fastest
    uniformly, the psycopg one statement on the hot merchant."""
    drivers = {
        "plain_postgresql_one": ("plain PostgreSQL ledger (psycopg, one statement)", {1: 1_100, 8: 3_500, 32: 4_000,
                                                                                        256: 3_000}),
        "plain_postgresql_pgbench": ("plain PostgreSQL ledger (pgbench, 5 round trips)", {8: 5_000, 32: 6_000,
                                                                                          256: 5_500}),
        "plain_postgresql_pgbench_one": ("plain PostgreSQL ledger (pgbench, one statement)", {8: 4_000, 32: 5_000,
                                                                                              256: 5_000}),
    }  # fmt: skip
    for key, (label, single) in drivers.items():
        report["systems"][key] = system(label, single, None)
    for key in drivers:
        report["systems"][key]["workloads"]["hot_merchant"]["single_32"]["transfers_per_s"] = 1_000
    report["systems"]["plain_postgresql_one"]["workloads"]["hot_merchant"]["single_32"]["transfers_per_s"] = 2_000
    report["systems"]["plain_postgresql_pgbench"]["workloads"]["hot_merchant"]["single_256"]["note"] = (
        "256 callers: 64 connections, the cap"
    )
    report["targets"] = _report.targets(report)
    return report


def test_targets_over_the_plain_ledger_are_judged_against_its_best_driver() -> None:
    report = with_drivers(fixed_report())
    targets = report["targets"]
    assert targets["uniform_32_callers_vs_plain_postgresql"] == {
        "ours": 12_000, "theirs": 6_000, "against": "plain_postgresql_pgbench", "metric": "transfers_per_s",
        "ratio": 2.0, "target": 3.0, "met": False,
    }  # fmt: skip
    assert targets["hot_merchant_32_callers_vs_plain_postgresql"]["against"] == "plain_postgresql_one"
    assert targets["hot_merchant_32_callers_vs_plain_postgresql"]["ratio"] == 6.0
    markdown = _report.render_markdown(report)
    assert (
        "| uniform, 32 callers, over the plain PostgreSQL ledger, against its best driver here: pgbench, 5 round "
        "trips | 2.0x (12,000 vs 6,000/s) | ≥ 3.0x | **no** |" in markdown
    )
    assert (
        "| hot merchant, 32 callers, over the plain PostgreSQL ledger, against its best driver here: psycopg, "
        "one statement | 6.0x (12,000 vs 2,000/s) | ≥ 5.0x | yes |" in markdown
    )
    assert "ran with 4 drivers" in markdown and "judged against whichever was best at that scenario" in markdown
    header = (
        "| callers | this ledger (PostgreSQL) | plain PostgreSQL ledger (psycopg, 5 round trips) | plain PostgreSQL "
        "ledger (psycopg, one statement) | plain PostgreSQL ledger (pgbench, 5 round trips) | plain PostgreSQL ledger "
        "(pgbench, one statement) | TigerBeetle |"
    )
    assert markdown.count(header) == 2
    assert "| 1 | **500**/s" in markdown and " | - | - | **800**/s" in markdown  # pgbench did not run 1 caller
    assert "(256 callers: 64 connections, the cap)" in markdown


def test_a_failed_system_keeps_its_figures_and_its_error_is_said(tmp_path: Path) -> None:
    report = fixed_report()
    del report["systems"]["tigerbeetle"]["workloads"]["uniform"]["batch_typed"]
    report["systems"]["tigerbeetle"]["error"] = "uniform batch_typed: RuntimeError: TigerBeetle refused transfers"
    report["not_run"] = {"plain_postgresql_pgbench": "pgbench not found (give `--pgbench PATH`)"}
    report["tigerbeetle_benchmark"] = {"error": "RuntimeError: tigerbeetle benchmark exited 1"}
    report["targets"] = _report.targets(report)
    assert report["targets"]["batches_typed_vs_tigerbeetle_typed"]["ratio"] is None
    assert report["targets"]["batches_packed_vs_tigerbeetle_packed"]["ratio"] == 3.5  # kept
    markdown = _report.render_markdown(report)
    assert (
        "- TigerBeetle: **failed**, its other figures kept: uniform batch_typed: RuntimeError: TigerBeetle refused "
        "transfers" in markdown
    )
    assert "- plain PostgreSQL ledger (pgbench, 5 round trips): not run: pgbench not found" in markdown
    assert "- `tigerbeetle benchmark`: **failed**: RuntimeError: tigerbeetle benchmark exited 1" in markdown
    assert "judged against whichever" not in markdown  # one driver: nothing to choose
    paths = _report.write(with_drivers(report), tmp_path)  # charts with systems that have no batches
    assert paths["throughput"].stat().st_size > 10_000


def test_markdown_states_the_machine_the_method_and_every_figure() -> None:
    markdown = _report.render_markdown(fixed_report())
    assert "Test CPU 9000, 2 cores; 24.0 GiB memory; Debian, kernel 6; Python 3.11.7; PostgreSQL 15.20" in markdown
    assert (
        "Each scenario's window lasted at least 1.0 s (batches 2.0 s) and until 300 calls ended in it (batches 8), "
        "at most 8.0 s (batches 12.0 s), after 0.3 s of warm-up" in markdown
    )
    assert "After loading, before any scenario: a CHECKPOINT, a pause of 2 s. Order: rotated." in markdown
    header = "| callers | this ledger (PostgreSQL) | plain PostgreSQL ledger (psycopg, 5 round trips) | TigerBeetle |"
    assert markdown.count(header) == 2  # one table per workload
    assert "| 32 | **12,000**/s<br>p50 1.5 ms, p99 9.25 ms, p99.9 12.0 ms |" in markdown
    assert "batches of 8,189" in markdown and "batches of 8,190" in markdown
    assert (
        "| hot merchant, 32 callers, over the plain PostgreSQL ledger | 8.0x (12,000 vs 1,500/s) | ≥ 5.0x | yes |"
        in (markdown)
    )
    assert "`tigerbeetle benchmark` (its own load generator in Zig, no Python, 4 clients): 350,000 transfers/s" in (
        markdown
    )
    assert (
        "- plain PostgreSQL ledger (psycopg, 5 round trips): plain PostgreSQL ledger (psycopg, 5 round trips) note"
        in (markdown)
    )


def test_markdown_has_each_servers_cpu() -> None:
    markdown = _report.render_markdown(fixed_report())
    assert "#### Server CPU (uniform): per transfer, and share of one core" in markdown
    assert "| 1 caller | 20.0 us, 0.5 core | 20.0 us, 0.5 core | 20.0 us, 0.5 core |" in markdown
    assert "| 32 callers | 20.0 us, 0.5 core<br>+ store 3.5 us, 0.1 core | 20.0 us, 0.5 core |" in markdown
    assert "| batches, packed | 20.0 us, 0.5 core | - | 20.0 us, 0.5 core |" in markdown


def test_a_scenario_short_of_its_calls_says_so() -> None:
    report = fixed_report()
    report["systems"]["plain_postgresql"]["workloads"]["uniform"]["batch_typed"]["calls_short"] = (
        "5 calls in 12.0 s, fewer than the 8 wanted"
    )
    assert "(5 calls in 12.0 s, fewer than the 8 wanted)" in _report.render_markdown(report)


def test_write_makes_json_markdown_and_png_charts(tmp_path: Path) -> None:
    report = fixed_report()
    report["systems"]["plain_postgresql"]["workloads"]["hot_merchant"]["batch_typed"].update(
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
                 "| batches, packed (numpy records), 4 in flight |", "| batches, typed (Python objects), 4 in flight |",
                 "#### Server CPU (uniform)", "packed vs packed", "typed vs typed",
                 "#### How each system was driven"):  # fmt: skip
        assert line in body
    assert text.index("## Performance") < text.index(_report.README_BEGIN)


def test_tigerbeetle_benchmark_output_is_read() -> None:
    output = (
        "2026-11-23 21:17:37.050Z info(main): release=0.17.8\n"
        "2026-11-23 21:17:37.050Z info(main): release_client_min=0.16.4\n"
        "2026-11-23 21:17:37.050Z info(main): git_commit=1e2826ecdee2f6ba617c1ee10903dfa01974d437\n"
        "123 batches in 2.49 s\ntransfer batch size = 8189 txs\nload accepted = 401358 tx/s\n"
        "batch latency p1   = 5 ms\nbatch latency p50  = 18 ms\n"
        "batch latency p99  = 35 ms\nbatch latency p100 = 37 ms\n"
    )
    assert parse_benchmark(output) == {
        "transfers_per_s": 401_358, "batch_p50_ms": 18, "batch_p99_ms": 35, "batch_p100_ms": 37,
        "release": "0.17.8", "git_commit": "1e2826ecdee2",
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

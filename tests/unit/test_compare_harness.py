"""bench.compare's method without a database: count-based windows, CPU meters, the rotated order of systems,
a failing system kept apart from the others, TigerBeetle's packed records and batch probe, and what its
`compare` extra must install."""

from __future__ import annotations

import ast
import asyncio
import ctypes
import os
import socket
import subprocess
import sys
import time
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tigerbeetle as tb
from tigerbeetle import bindings

from bench import _tigerbeetle, compare
from bench._harness import Processes, Window, cpu_between, measure, socket_ports
from bench._systems import BATCH_KINDS
from tests.support import ProgressBar

ROOT = Path(__file__).resolve().parents[2]


def slow_caller(pause_seconds: float) -> Any:
    async def caller(index: int, window: Window) -> None:
        while not window.stopped:
            started = time.perf_counter()
            await asyncio.sleep(pause_seconds)
            window.record(time.perf_counter() - started, 2)

    return caller


def test_a_window_lasts_until_its_least_calls_ended_in_it() -> None:
    lines: list[str] = []
    result = asyncio.run(measure("slow", 1, slow_caller(0.05), 0.05, 0.0, calls_min=6, seconds_max=5.0,
                                 report=lines.append))  # fmt: skip
    assert result["calls"] >= 6 and result["seconds"] >= 0.25  # six calls of 50 ms, not the 50 ms asked
    assert "calls_short" not in result
    assert result["transfers_per_s"] == pytest.approx(2 * result["calls"] / result["seconds"], rel=0.2)
    assert "calls in" in lines[0]


def test_a_window_stops_at_its_longest_and_says_it_was_short() -> None:
    result = asyncio.run(measure("slower", 1, slow_caller(0.2), 0.05, 0.0, calls_min=100, seconds_max=0.5,
                                 report=lambda _: None))  # fmt: skip
    assert 0.5 <= result["seconds"] < 1.0 and result["calls"] < 100
    assert result["calls_short"].endswith("fewer than the 100 wanted")


def test_a_time_window_is_unchanged_without_a_least_count() -> None:
    result = asyncio.run(measure("plain", 2, slow_caller(0.01), 0.2, 0.05, report=lambda _: None))
    assert 0.2 <= result["seconds"] < 0.4 and result["calls"] > 5


class SpinningMeter:
    """A meter over this process, which spins during the window: its CPU is reported per transfer and per core."""

    def cpu_sample(self) -> dict[int, float]:
        return Processes((os.getpid(),)).cpu_sample()


def test_meters_report_cpu_per_transfer_and_share_of_a_core() -> None:
    async def spinning(index: int, window: Window) -> None:
        while not window.stopped:
            started = time.perf_counter()
            while time.perf_counter() - started < 0.01:
                pass
            window.record(time.perf_counter() - started, 1)
            await asyncio.sleep(0)

    result = asyncio.run(measure("spin", 1, spinning, 0.3, 0.0, meters={"server": SpinningMeter()},
                                 report=lambda _: None))  # fmt: skip
    # The meter reads this very process from /proc: it must agree with the client CPU read by process_time().
    assert 0 < result["server_cpu_share"] <= 1.2
    assert result["server_cpu_us_per_transfer"] == pytest.approx(result["client_cpu_us_per_transfer"], rel=0.35)
    assert result["server_cpu_us_per_transfer"] <= 15_000  # at most the 10 ms a transfer spun, and its overhead


def test_cpu_between_samples_counts_new_processes_from_their_start_and_leaves_out_ended_ones() -> None:
    assert cpu_between({1: 1.0, 2: 5.0}, {1: 1.5, 3: 0.25}) == 0.75
    assert Processes((os.getpid(), 2**22 + 1)).cpu_sample().keys() == {os.getpid()}  # the second does not exist


def test_socket_ports_are_the_local_ports_a_process_holds() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        with socket.create_connection(listening.getsockname()) as client:
            ports = socket_ports(os.getpid())
            assert {listening.getsockname()[1], client.getsockname()[1]} <= ports
    assert socket_ports(2**22 + 1) == set()


class FakeSystem:
    """A system that records when it ran what; it may fail at start or at one scenario."""

    postgres = False
    batch_kinds = BATCH_KINDS
    batch_transfers = 10

    def __init__(self, key: str, log: list[tuple[str, str]], *, fail_at: str | None = None) -> None:
        self.key = key
        self.label = key
        self.log = log
        self.fail_at = fail_at
        self.meters: dict[str, Any] = {}
        self.notes = [f"{key} note"]
        self.info: dict[str, Any] = {}
        self.scenario = ""
        self.stopped = False

    async def start(self, customers: int) -> None:
        if self.fail_at == "start":
            raise RuntimeError("cannot start")

    async def settle(self) -> None:
        self.log.append((self.key, "settle"))

    async def prepare(self, callers: int) -> str | None:
        return None

    async def finish(self) -> None:
        pass

    async def transfer(self, caller: int, debit: int, credit: int, amount: int) -> None:
        await self._call("single")

    async def batch(self, caller: int, debits: Any, credits: Any, amounts: Any, kind: str) -> None:
        await self._call(kind)

    async def _call(self, kind: str) -> None:
        if not self.log or self.log[-1] != (self.key, kind):
            self.log.append((self.key, kind))
        if self.fail_at == kind:
            raise RuntimeError(f"refused a {kind} call")
        await asyncio.sleep(0.001)

    async def stop(self) -> None:
        self.log.append((self.key, "stop"))
        self.stopped = True


def tiny_plan(**overrides: Any) -> compare.Plan:
    settings: dict[str, Any] = {"customers": 10, "callers": (1, 2), "seconds": 0.02, "warmup_seconds": 0.0,
                                "batch_seconds": 0.02, "workloads": ("uniform",)}  # fmt: skip
    return compare.Plan(**{**settings, **overrides})


def test_every_system_is_loaded_and_settled_first_then_the_order_rotates_per_scenario() -> None:
    log: list[tuple[str, str]] = []
    systems = [FakeSystem(key, log) for key in ("a", "b", "c")]
    bar = ProgressBar()
    results, settled = asyncio.run(compare.run_all(systems, tiny_plan(settle_seconds=0.01), compare.Progress(bar)))
    assert log[:3] == [("a", "settle"), ("b", "settle"), ("c", "settle")]
    calls = [key for key, what in log[3:] if what != "stop"]
    # Four scenarios (1 caller, 2 callers, packed batches, typed batches), each on a, b, c rotated by one.
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    assert settled == ["a pause of 0.01 s"]
    assert bar.steps == 12
    assert set(results["a"]["workloads"]["uniform"]) == {"single_1", "single_2", "batch", "batch_typed"}
    assert all(system.stopped for system in systems)


def test_a_failing_system_keeps_what_it_measured_and_the_others_go_on() -> None:
    log: list[tuple[str, str]] = []
    systems = [FakeSystem("ok", log), FakeSystem("fails", log, fail_at="packed"),
               FakeSystem("never", log, fail_at="start")]  # fmt: skip
    bar = ProgressBar()
    results, _ = asyncio.run(compare.run_all(systems, tiny_plan(), compare.Progress(bar)))
    assert set(results["ok"]["workloads"]["uniform"]) == {"single_1", "single_2", "batch", "batch_typed"}
    assert set(results["fails"]["workloads"]["uniform"]) == {"single_1", "single_2"}
    assert results["fails"]["error"] == "uniform batch: RuntimeError: refused a packed call"
    assert ("fails", "typed") not in log  # left out after it failed, and stopped at once (its resources freed)
    assert log.index(("fails", "stop")) < log.index(("ok", "typed")) < log.index(("ok", "stop"))
    assert log.count(("fails", "stop")) == 1 and log.count(("never", "stop")) == 1
    assert results["never"]["error"] == "start: RuntimeError: cannot start" and not results["never"]["workloads"][
        "uniform"]  # fmt: skip
    assert "error" not in results["ok"]
    assert any("fails failed (uniform batch)" in line and "the other systems go on" in line for line in bar.lines)
    assert bar.steps == 12 and all(system.stopped for system in systems)


def test_the_engine_capacity_covers_the_least_windows_not_the_longest() -> None:
    quick = compare.plan_for(compare.parse_args(["--quick", "--systems", "ledger_sqlite"]))
    assert quick.seconds_max == 8.0 and quick.calls_min == 300 and quick.settle_seconds == 2.0
    assert 10_000_000 < compare.transfers_max_for(quick) < 25_000_000  # a server with tables of 60M starts 20 s


def test_packed_transfers_are_tigerbeetles_own_layout() -> None:
    records = _tigerbeetle.packed_transfers(
        np.array([5, 6], dtype=np.uint64), np.array([1001, 1002], dtype=np.uint64),
        np.array([1002, 2], dtype=np.uint64), np.array([7, 999], dtype=np.uint64), id_high=3, ledger=978, code=2,
    )  # fmt: skip
    assert records.nbytes == 2 * ctypes.sizeof(bindings.CTransfer)
    second = bindings.CTransfer.from_buffer_copy(records[1].tobytes()).to_python()
    base = 3 << 64
    assert second == tb.Transfer(id=base + 6, debit_account_id=base + 1002, credit_account_id=base + 2, amount=999,
                                 ledger=978, code=2)  # fmt: skip


def packed_results(statuses: list[int]) -> bytes:
    results = (bindings.CCreateTransferResult * len(statuses))()
    for result, status in zip(results, statuses, strict=True):
        result.timestamp, result.status = 1, status
    return bytes(results)


def test_packed_results_name_what_was_refused() -> None:
    created = bindings.CreateTransferStatus.CREATED
    assert _tigerbeetle.refused(packed_results([created, created]), 2) == []
    exceeds = bindings.CreateTransferStatus.EXCEEDS_CREDITS
    assert _tigerbeetle.refused(packed_results([created, exceeds, exceeds]), 3) == ["EXCEEDS_CREDITS"]
    with pytest.raises(RuntimeError, match="1 results for 2 transfers"):
        _tigerbeetle.refused(packed_results([created]), 2)


class LimitedPackedClient:
    """Stands in for TigerBeetle's C client on a server whose request limit takes `limit` transfers."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sizes: list[int] = []

    async def create_transfers(self, records: np.ndarray) -> bytes:
        self.sizes.append(len(records))
        assert not records.any()  # every probe transfer is zero: id 0, refused one by one
        if len(records) > self.limit:
            raise _tigerbeetle.PackedResultsError(bindings.PacketStatus.TOO_MUCH_DATA, "TOO_MUCH_DATA")
        return packed_results([bindings.CreateTransferStatus.ID_MUST_NOT_BE_ZERO] * len(records))


@pytest.mark.parametrize("limit", [1, 253, 1000, 8189, 100_000])
def test_the_batch_limit_is_probed_before_any_batch(limit: int) -> None:
    client = LimitedPackedClient(limit)
    found = asyncio.run(_tigerbeetle.probe_batch_limit(client))
    assert found == min(limit, _tigerbeetle.TIGERBEETLE_BATCH_MAX)
    assert client.sizes[0] == _tigerbeetle.TIGERBEETLE_BATCH_MAX and len(client.sizes) <= 14


def test_a_probe_that_creates_something_is_an_error() -> None:
    class Creating(LimitedPackedClient):
        async def create_transfers(self, records: np.ndarray) -> bytes:
            return packed_results([bindings.CreateTransferStatus.CREATED] * len(records))

    with pytest.raises(RuntimeError, match="answered a probe of transfers with id 0 with"):
        asyncio.run(_tigerbeetle.probe_batch_limit(Creating(10)))


def test_the_client_must_be_the_servers_release() -> None:
    assert _tigerbeetle.version_mismatch("0.17.8", "0.17.8") is None
    assert _tigerbeetle.version_mismatch("0.17.9", "0.17.8") == (
        "TigerBeetle's Python client is 0.17.9 but the server is 0.17.8: pip install tigerbeetle==0.17.8 "
        "(or build the server of release 0.17.9)"
    )
    assert "is not installed: pip install tigerbeetle==0.17.8" in str(_tigerbeetle.version_mismatch(None, "0.17.8"))


def fake_tigerbeetle(tmp_path: Path, release: str = "0.17.8", *, start: str = "listen") -> str:
    """An executable that answers `version`, `format` and `start --addresses=0` as TigerBeetle does."""
    script = tmp_path / "tigerbeetle"
    script.write_text(f"""#!{sys.executable}
import socket, sys
command = sys.argv[1]
if command == "version":
    print("TigerBeetle version {release}+1e2826e")
elif command == "format":
    open(sys.argv[-1], "w").write("formatted")
elif command == "start" and {start!r} == "listen":
    assert "--addresses=0" in sys.argv and open(sys.argv[-1]).read() == "formatted"
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    print(listener.getsockname()[1], flush=True)
    sys.stdin.read()  # it exits when its stdin closes
else:
    print("error: cannot start", file=sys.stderr)
    sys.exit(1)
""")
    script.chmod(0o755)
    return str(script)


def test_a_tigerbeetle_server_is_started_on_a_free_port_and_ends_with_the_run(tmp_path: Path) -> None:
    binary = fake_tigerbeetle(tmp_path)
    assert _tigerbeetle.server_version(binary) == "0.17.8"
    with _tigerbeetle.server(binary, directory=str(tmp_path)) as started:
        assert started.release == "0.17.8"
        socket.create_connection(("127.0.0.1", int(started.address.rsplit(":", 1)[1])), timeout=5).close()
        assert set(started.cpu_sample()) == {started.pid}
    assert not Path(f"/proc/{started.pid}").exists() or "Z" in Path(f"/proc/{started.pid}/stat").read_text()
    assert not list(tmp_path.glob("bench-tigerbeetle-*"))  # the data file is gone


def test_a_tigerbeetle_that_does_not_start_says_why(tmp_path: Path) -> None:
    binary = fake_tigerbeetle(tmp_path, start="fail")
    with (
        pytest.raises(RuntimeError, match="did not print its port:\nerror: cannot start"),
        _tigerbeetle.server(binary, directory=str(tmp_path)),
    ):
        pass


def test_the_comparison_refuses_a_client_of_another_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    binary = fake_tigerbeetle(tmp_path, release="0.17.8")
    monkeypatch.setattr(_tigerbeetle, "client_version", lambda: "0.17.9")
    with pytest.raises(SystemExit):
        compare.parse_args(["--tigerbeetle-binary", binary])
    assert "--tigerbeetle-binary: TigerBeetle's Python client is 0.17.9 but the server is 0.17.8" in (
        capsys.readouterr().err
    )
    monkeypatch.setattr(_tigerbeetle, "client_version", lambda: "0.17.8")
    assert compare.parse_args(["--tigerbeetle-binary", binary]).tigerbeetle_release == "0.17.8"


def test_without_tigerbeetle_it_is_said_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    args = compare.parse_args([])
    assert args.skipped["tigerbeetle"] == "give `--tigerbeetle-binary PATH` (or `--tigerbeetle ADDRESS`)"
    with pytest.raises(SystemExit):
        compare.parse_args(["--systems", "tigerbeetle"])


def test_the_benchmark_runs_four_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[list[str]] = []

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        ran.append(command)
        return subprocess.CompletedProcess(command, 0, "load accepted = 450000 tx/s\nbatch latency p99  = 30 ms\n", "")

    monkeypatch.setattr(_tigerbeetle.subprocess, "run", run)
    figures = _tigerbeetle.run_benchmark("tb", account_count=100_000, transfer_count=10_000_000, clients=4,
                                         timeout_seconds=60)  # fmt: skip
    assert ran == [["tb", "benchmark", "--account-count=100000", "--transfer-count=10000000", "--clients=4"]]
    assert figures["clients"] == 4 and figures["transfers_per_s"] == 450_000 and figures["batch_p99_ms"] == 30


def third_party_imports(module: Path, seen: set[Path]) -> set[str]:
    """Top-level modules that `module` and the bench modules it imports import, outside this repository."""
    if module in seen:
        return set()
    seen.add(module)
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            top = name.split(".")[0]
            if top == "bench":
                path = ROOT / (name.replace(".", "/") + ".py")
                if path.exists():
                    found |= third_party_imports(path, seen)
            elif top not in ("ledger", "tests") and top not in sys.stdlib_module_names:
                found.add(top)
    return found


def test_the_compare_extra_installs_all_that_the_comparison_imports() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        requirement.split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()
        for requirement in project["dependencies"] + project["optional-dependencies"]["compare"]
    }
    imported = third_party_imports(ROOT / "bench" / "compare.py", set())
    assert {"numpy", "psycopg", "tqdm", "matplotlib", "tigerbeetle"} <= imported
    distributions = packages_distributions()
    missing = {name for name in imported if not {d.lower() for d in distributions.get(name, [name])} & declared}
    assert not missing, f"bench.compare imports {missing}, which neither the package nor its compare extra installs"
    assert "tigerbeetle==" in " ".join(project["optional-dependencies"]["compare"])  # pinned to the server's release


def test_the_comparison_needs_nothing_from_tests_nor_pytest() -> None:
    code = (
        "import sys; sys.modules['pytest'] = None; sys.modules['tests'] = None; "
        "import bench.compare, bench._systems, bench._report, bench._tigerbeetle, bench._pgbench, bench.plain_pg; "
        "bench.compare.parse_args(['--no-run', '--readme', 'README.md'])"
    )
    completed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                               check=False)  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]


def test_each_run_starts_on_a_quiet_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages another system left dirty are flushed before a run: the wait ends once the kernel's dirty and
    writeback pages are under the bound, or at the latest after QUIET_SECONDS_MAX."""
    dirty = compare.dirty_bytes()
    assert dirty is None or dirty >= 0
    (tmp_path / "written").write_bytes(os.urandom(1 << 20))
    asyncio.run(compare.quiet_disk())
    monkeypatch.setattr(compare, "dirty_bytes", lambda: compare.QUIET_DIRTY_BYTES_MAX + 1)
    monkeypatch.setattr(compare, "QUIET_SECONDS_MAX", 0.2)
    started = time.perf_counter()
    asyncio.run(compare.quiet_disk())
    assert 0.2 <= time.perf_counter() - started < 5

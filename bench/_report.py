"""The comparison's report: the targets judged, the machine described, JSON, Markdown, PNG charts, README section."""

from __future__ import annotations

import json
import os
import platform
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

README_BEGIN = "<!-- performance:begin -->"
README_END = "<!-- performance:end -->"

OURS = "ledger_postgresql"
PLAIN = ("plain_postgresql", "plain_postgresql_one", "plain_postgresql_pgbench", "plain_postgresql_pgbench_one")
"""The plain PostgreSQL ledger's drivers (psycopg from Python, pgbench from C; five round trips or one
statement per transfer): a target over it is judged against whichever was best at that scenario."""
TIGERBEETLE = "tigerbeetle"
SYSTEM_ORDER = ("ledger_postgresql", "ledger_sqlite", *PLAIN, TIGERBEETLE)
LABELS = {
    "ledger_postgresql": "this ledger (PostgreSQL)",
    "ledger_sqlite": "this ledger (SQLite)",
    "plain_postgresql": "plain PostgreSQL ledger (psycopg, 5 round trips)",
    "plain_postgresql_one": "plain PostgreSQL ledger (psycopg, one statement)",
    "plain_postgresql_pgbench": "plain PostgreSQL ledger (pgbench, 5 round trips)",
    "plain_postgresql_pgbench_one": "plain PostgreSQL ledger (pgbench, one statement)",
    TIGERBEETLE: "TigerBeetle",
}
"""Names for systems that did not run (those that ran carry their own label)."""
WORKLOAD_TITLES = {"uniform": "Uniform", "hot_merchant": "Hot merchant"}
BATCH_ROWS = {"batch": "packed (numpy records)", "batch_typed": "typed (Python objects)"}
"""The batch scenarios: the same transfers as packed records, or as typed objects, each through the system's client."""


@dataclass(frozen=True)
class Target:
    """Our figure over the best of `others` at one scenario, measured in the same run."""

    name: str
    description: str
    workload: str
    scenario: str
    others: tuple[str, ...]
    goal: float | None
    """The ratio wanted, or None: the ratio is reported, no goal is set."""
    metric: str = "transfers_per_s"
    """transfers_per_s (higher is better: ratio = ours / theirs) or p50_ms (lower: ratio = theirs / ours)."""


TARGETS = (
    Target("uniform_32_callers_vs_plain_postgresql", "uniform, 32 callers, over the plain PostgreSQL ledger",
           "uniform", "single_32", PLAIN, 3.0),
    Target("hot_merchant_32_callers_vs_plain_postgresql", "hot merchant, 32 callers, over the plain PostgreSQL ledger",
           "hot_merchant", "single_32", PLAIN, 5.0),
    Target("batches_packed_vs_tigerbeetle_packed",
           "batches (uniform), packed vs packed: numpy records through each one's client", "uniform", "batch",
           (TIGERBEETLE,), 2.0),
    Target("batches_typed_vs_tigerbeetle_typed",
           "batches (uniform), typed vs typed: Python transfer objects through each one's client", "uniform",
           "batch_typed", (TIGERBEETLE,), None),
    Target("single_caller_p50_vs_plain_postgresql",
           "one caller (uniform): p50 latency at most the plain PostgreSQL ledger's", "uniform", "single_1", PLAIN,
           1.0, metric="p50_ms"),
)  # fmt: skip
BENCHMARK_TARGET = "batches_vs_tigerbeetle_benchmark"


def machine(postgres_dsn: str | None) -> dict[str, Any]:
    """What the figures were measured on: CPU, cores, memory, OS, Python, and the stores' versions."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": _os_name(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    if postgres_dsn is not None:
        import psycopg

        with psycopg.connect(postgres_dsn) as connection:
            row = connection.execute("SHOW server_version").fetchone()
        info["postgresql"] = str(row[0]).split(" ")[0] if row else None
    from ledger.engine import IMPLEMENTATION

    info["engine"] = IMPLEMENTATION
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _os_name() -> str:
    try:
        release = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
        name = release.get("PRETTY_NAME", "").strip('"')
    except OSError:
        name = ""
    return f"{name or platform.system()}, kernel {platform.release()}"


def _figure(report: dict[str, Any], system: str, workload: str, scenario: str, metric: str) -> float | None:
    try:
        value = report["systems"][system]["workloads"][workload][scenario][metric]
    except KeyError:
        return None
    return value if value else None


def _verdict(ours: float | None, theirs: float | None, against: str | None, goal: float | None,
             metric: str) -> dict[str, Any]:  # fmt: skip
    ratio = None
    if ours is not None and theirs is not None:
        ratio = round(ours / theirs if metric == "transfers_per_s" else theirs / ours, 2)
    return {
        "ours": ours,
        "theirs": theirs,
        "against": against,
        "metric": metric,
        "ratio": ratio,
        "target": goal,
        "met": None if ratio is None or goal is None else ratio >= goal,
    }


def targets(report: dict[str, Any]) -> dict[str, Any]:
    """Each target: our figure over the other system's, measured in this run; met is None if not measured
    (or if no goal is set).

    Where the other system has several drivers, the best at that scenario is the one measured against
    (`against` names it): the most transfers/s, or the lowest latency.
    """
    out: dict[str, Any] = {}
    for target in TARGETS:
        ours = _figure(report, OURS, target.workload, target.scenario, target.metric)
        measured = [(figure, key) for key in target.others
                    if (figure := _figure(report, key, target.workload, target.scenario, target.metric))]  # fmt: skip
        best = max if target.metric == "transfers_per_s" else min
        theirs, against = best(measured) if measured else (None, None)
        out[target.name] = _verdict(ours, theirs, against, target.goal, target.metric)
    benchmark = report.get("tigerbeetle_benchmark") or {}
    theirs = benchmark.get("transfers_per_s")
    out[BENCHMARK_TARGET] = _verdict(
        _figure(report, OURS, "uniform", "batch", "transfers_per_s"), theirs,
        "tigerbeetle_benchmark" if theirs else None, 1.0, "transfers_per_s",
    )  # fmt: skip
    return out


def _systems(report: dict[str, Any]) -> list[str]:
    present = report["systems"]
    return [key for key in SYSTEM_ORDER if key in present] + [key for key in present if key not in SYSTEM_ORDER]


def _cell(result: dict[str, Any] | None) -> str:
    if result is None:
        return "-"
    if not result.get("calls"):
        return "no call finished within the measured window"
    text = f"**{result['transfers_per_s']:,}**/s<br>p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms"
    if result.get("p999_ms") is not None:
        text += f", p99.9 {result['p999_ms']} ms"
    if result.get("note"):
        text += f"<br>({result['note']})"
    if result.get("calls_short"):
        text += f"<br>({result['calls_short']})"
    return text


def _cpu_cell(result: dict[str, Any] | None) -> str:
    """Server CPU per transfer and share of a core (and, for this ledger on PostgreSQL, its store's backends)."""
    if not result or result.get("server_cpu_us_per_transfer") is None:
        return "-"
    text = f"{result['server_cpu_us_per_transfer']} us, {result['server_cpu_share']} core"
    if result.get("store_cpu_us_per_transfer") is not None:
        text += f"<br>+ store {result['store_cpu_us_per_transfer']} us, {result['store_cpu_share']} core"
    return text


def _machine_line(info: dict[str, Any]) -> str:
    parts = [
        f"{info.get('cpu')}, {info.get('cores')} cores",
        f"{info.get('memory_gib')} GiB memory",
        str(info.get("os")),
        f"Python {info.get('python')}",
    ]
    if info.get("postgresql"):
        parts.append(f"PostgreSQL {info['postgresql']}")
    parts.append(f"SQLite {info.get('sqlite')}")
    if info.get("engine"):
        parts.append(f"{info['engine']} engine")
    return "; ".join(parts)


def _ratio_text(verdict: dict[str, Any]) -> str:
    if verdict["ratio"] is None:
        return "not measured"
    if verdict.get("metric") == "p50_ms":
        return f"{verdict['ratio']}x (p50 {verdict['ours']} vs {verdict['theirs']} ms)"
    return f"{verdict['ratio']}x ({verdict['ours']:,} vs {verdict['theirs']:,}/s)"


def _goal_text(verdict: dict[str, Any]) -> str:
    return "reported" if verdict["target"] is None else f"≥ {verdict['target']}x"


def _met_text(met: bool | None) -> str:
    return "-" if met is None else ("yes" if met else "**no**")


def _driver(label: str) -> str:
    """The driver named at the end of a system's label, in parentheses: `pgbench, one statement`."""
    match = re.search(r"\(([^)]*)\)$", label)
    return match.group(1) if match else label


def _window_text(settings: dict[str, Any]) -> str:
    text = (
        f"Each scenario's window lasted at least {settings['seconds_per_scenario']} s "
        f"(batches {settings.get('batch_seconds', settings['seconds_per_scenario'])} s)"
    )
    if settings.get("calls_min"):
        text += (
            f" and until {settings['calls_min']:,} calls ended in it (batches {settings.get('batch_calls_min', 0)}), "
            f"at most {settings.get('seconds_max')} s (batches {settings.get('batch_seconds_max')} s)"
        )
    text += f", after {settings['warmup_seconds']} s of warm-up; latency is per call (one transfer, or one batch)."
    if settings.get("settled"):
        text += f" After loading, before any scenario: {', '.join(settings['settled'])}."
    if settings.get("order"):
        text += f" Order: {settings['order']}."
    return text


def render_markdown(report: dict[str, Any]) -> str:
    """The run as Markdown: the machine, a table per workload, server CPU, the targets, how each system was driven."""
    settings = report["settings"]
    systems = _systems(report)
    labels = {key: report["systems"][key]["label"] for key in systems}
    lines = [
        f"Measured by `{report.get('command') or 'python -m bench.compare'}` "
        f"in one run of {report['elapsed_seconds']} s on: {_machine_line(report['machine'])}.",
        "",
        f"{settings['accounts']:,} customer accounts, each funded with {settings['balance']:,} minor units and "
        f"guarded (never below zero); amounts of 1 to {settings['amount_max']:,}. Every transfer is durable "
        f"before it is answered. {_window_text(settings)} The machine is shared, so compare the ratios of one "
        "run rather than the absolute figures.",
    ]
    for workload in ("uniform", "hot_merchant"):
        if not any(workload in report["systems"][key]["workloads"] for key in systems):
            continue
        title = WORKLOAD_TITLES[workload]
        what = (
            "debit and credit drawn at random among all customers"
            if workload == "uniform"
            else "a random customer pays, and the same merchant account is credited every time"
        )
        lines += ["", f"#### {title}: {what}", ""]
        lines.append("| callers | " + " | ".join(labels[key] for key in systems) + " |")
        lines.append("|---" * (len(systems) + 1) + "|")
        scenarios = [(f"single_{n}", str(n)) for n in settings["callers"]]
        scenarios += [(key, f"batches, {kind}, {settings['batch_in_flight']} in flight")
                      for key, kind in BATCH_ROWS.items()]  # fmt: skip
        for scenario, title in scenarios:
            cells = []
            for key in systems:
                result = report["systems"][key]["workloads"].get(workload, {}).get(scenario)
                cell = _cell(result)
                if result and result.get("batch_transfers"):
                    cell += f"<br>batches of {result['batch_transfers']:,}"
                cells.append(cell)
            if scenario.startswith("batch") and all(cell == "-" for cell in cells):
                continue
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += _cpu_table(report, systems, labels)
    lines += ["", "#### Targets (this ledger on PostgreSQL, ratios within this run)", ""]
    lines += ["| target | measured | goal | met |", "|---|---|---|---|"]
    descriptions = {target.name: target.description for target in TARGETS}
    descriptions[BENCHMARK_TARGET] = "batches (uniform, packed) over `tigerbeetle benchmark`, its own load generator"
    plain_run = sum(key in report["systems"] for key in PLAIN)
    for name, verdict in report["targets"].items():
        description = descriptions.get(name, name)
        if verdict.get("against") in PLAIN and plain_run > 1:
            description += f", against its best driver here: {_driver(labels[verdict['against']])}"
        lines.append(
            f"| {description} | {_ratio_text(verdict)} | {_goal_text(verdict)} | {_met_text(verdict['met'])} |"
        )
    if plain_run > 1:
        lines += [
            "",
            f"The plain PostgreSQL ledger ran with {plain_run} drivers (psycopg from Python, pgbench from C; five "
            "round trips or one statement per transfer); each target over it is judged against whichever was best "
            "at that scenario.",
        ]
    lines += ["", "#### How each system was driven", ""]
    for key in systems:
        for note in report["systems"][key]["notes"]:
            lines.append(f"- {labels[key]}: {note}")
    for key in systems:
        if report["systems"][key].get("error"):
            lines.append(f"- {labels[key]}: **failed**, its other figures kept: {report['systems'][key]['error']}")
    for key, reason in report.get("not_run", {}).items():
        lines.append(f"- {LABELS.get(key, key)}: not run: {reason}")
    if TIGERBEETLE not in report["systems"] and TIGERBEETLE not in report.get("not_run", {}):
        lines.append("- TigerBeetle: not run (give `--tigerbeetle-binary PATH`)")
    lines.append(_benchmark_line(report.get("tigerbeetle_benchmark")))
    return "\n".join(lines) + "\n"


def _cpu_table(report: dict[str, Any], systems: list[str], labels: dict[str, str]) -> list[str]:
    """Server CPU per transfer and share of one core, uniform workload: where each system's server time goes."""
    rows = []
    callers = report["settings"]["callers"]
    scenarios = [(f"single_{n}", f"{n} caller{'s' if n != 1 else ''}") for n in callers]
    scenarios += [(key, f"batches, {kind.split(' ')[0]}") for key, kind in BATCH_ROWS.items()]
    for scenario, title in scenarios:
        cells = [_cpu_cell(report["systems"][key]["workloads"].get("uniform", {}).get(scenario)) for key in systems]
        if any(cell != "-" for cell in cells):
            rows.append(f"| {title} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return [
        "",
        "#### Server CPU (uniform): per transfer, and share of one core",
        "",
        "This ledger: its server process (and, on PostgreSQL, the backends of its store connections); the plain "
        "ledger: the PostgreSQL backends of its connections; TigerBeetle: its server process.",
        "",
        "| scenario | " + " | ".join(labels[key] for key in systems) + " |",
        "|---" * (len(systems) + 1) + "|",
        *rows,
    ]


def _benchmark_line(benchmark: dict[str, Any] | None) -> str:
    if not benchmark:
        return "- `tigerbeetle benchmark`: not run (give `--tigerbeetle-binary PATH`)"
    if benchmark.get("error"):
        return f"- `tigerbeetle benchmark`: **failed**: {benchmark['error']}"
    latency = ", ".join(f"{k.removeprefix('batch_').removesuffix('_ms')} {v} ms" for k, v in benchmark.items()
                        if k.startswith("batch_p"))  # fmt: skip
    return (
        f"- `tigerbeetle benchmark` (its own load generator in Zig, no Python, "
        f"{benchmark.get('clients', 1)} clients): {benchmark['transfers_per_s']:,} transfers/s"
        + (f", batch latency {latency}" if latency else "")
        + f" (`{benchmark['command']}`"
        + (f", release {benchmark['release']}" if benchmark.get("release") else "")
        + (f" built from {benchmark['git_commit']}" if benchmark.get("git_commit") else "") + ")"
    )  # fmt: skip


def charts(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """throughput.png (transfers/s against callers, and batches) and latency.png (p50, p99, p99.9 against callers)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    systems = _systems(report)
    callers = report["settings"]["callers"]
    workloads = [w for w in ("uniform", "hot_merchant") if any(w in report["systems"][k]["workloads"] for k in systems)]
    colors = {key: f"C{index}" for index, key in enumerate(SYSTEM_ORDER)}

    def series(key: str, workload: str, field: str) -> list[float]:
        scenarios = report["systems"][key]["workloads"].get(workload, {})
        return [scenarios.get(f"single_{n}", {}).get(field) or float("nan") for n in callers]

    figure, axes = pyplot.subplots(1, len(workloads) + 1, figsize=(5 * (len(workloads) + 1), 4.2), squeeze=False)
    for axis, workload in zip(axes[0], workloads, strict=False):
        for key in systems:
            axis.plot(callers, series(key, workload, "transfers_per_s"), marker="o", color=colors.get(key),
                      label=report["systems"][key]["label"])  # fmt: skip
        axis.set(xscale="log", yscale="log", xlabel="concurrent callers", ylabel="transfers/s",
                 title=f"{WORKLOAD_TITLES[workload]}: single transfers")  # fmt: skip
        axis.set_xticks(callers, [str(n) for n in callers])
        axis.grid(True, which="both", alpha=0.3)
    bars = axes[0][-1]
    batched = [(key, scenario) for key in systems for scenario in BATCH_ROWS
               if any(scenario in w for w in report["systems"][key]["workloads"].values())]  # fmt: skip
    width = 0.8 / max(1, len(batched))
    for index, (key, scenario) in enumerate(batched):
        values = [report["systems"][key]["workloads"].get(w, {}).get(scenario, {}).get("transfers_per_s", 0)
                  for w in workloads]  # fmt: skip
        bars.bar([i + index * width for i in range(len(workloads))], values, width, color=colors.get(key),
                 hatch="//" if scenario == "batch_typed" else None,
                 label=f"{report['systems'][key]['label']}, {BATCH_ROWS[scenario].split(' ')[0]}")  # fmt: skip
    bars.set_xticks([i + width * (len(batched) - 1) / 2 for i in range(len(workloads))],
                    [WORKLOAD_TITLES[w] for w in workloads])  # fmt: skip
    bars.set(ylabel="transfers/s", yscale="log", title="Batches (hatched: typed objects)")
    bars.grid(True, axis="y", alpha=0.3)
    throughput = _save(pyplot, figure, axes, out / "throughput.png")

    figure, axes = pyplot.subplots(1, len(workloads), figsize=(5.5 * len(workloads), 4.2), squeeze=False)
    for axis, workload in zip(axes[0], workloads, strict=False):
        for key in systems:
            for field, style in (("p50_ms", "-"), ("p99_ms", "--"), ("p999_ms", ":")):
                label = report["systems"][key]["label"] if field == "p50_ms" else "_nolegend_"
                axis.plot(callers, series(key, workload, field), style, marker="o", markersize=3,
                          color=colors.get(key), label=label)  # fmt: skip
        axis.set(xscale="log", yscale="log", xlabel="concurrent callers", ylabel="latency per transfer, ms",
                 title=f"{WORKLOAD_TITLES[workload]}: p50 —, p99 --, p99.9 ··")  # fmt: skip
        axis.set_xticks(callers, [str(n) for n in callers])
        axis.grid(True, which="both", alpha=0.3)
    latency = _save(pyplot, figure, axes, out / "latency.png")
    return throughput, latency


def _save(pyplot: Any, figure: Any, axes: Any, path: Path) -> Path:
    """Legend on the first chart, laid out, written as PNG, and the figure closed."""
    axes[0][0].legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path


def write(report: dict[str, Any], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "compare.json", "markdown": out / "compare.md"}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n")
    paths["markdown"].write_text(render_markdown(report))
    paths["throughput"], paths["latency"] = charts(report, out)
    return paths


def replace_section(text: str, markdown: str) -> str:
    """`text` with what lies between the performance markers replaced by `markdown`; nothing else changes."""
    pattern = re.compile(re.escape(README_BEGIN) + r"\n.*?" + re.escape(README_END), re.DOTALL)
    found = pattern.findall(text)
    if len(found) != 1:
        raise ValueError(
            f"the README must hold exactly one {README_BEGIN} ... {README_END} section; found {len(found)}"
        )
    return pattern.sub(lambda _: f"{README_BEGIN}\n{markdown.rstrip()}\n{README_END}", text)


def update_readme(path: Path, markdown: str) -> None:
    path.write_text(replace_section(path.read_text(), markdown))

"""The comparison's report: the targets judged, the machine described, JSON, Markdown, PNG charts, README section."""

from __future__ import annotations

import json
import os
import platform
import re
import sqlite3
from pathlib import Path
from typing import Any

README_BEGIN = "<!-- performance:begin -->"
README_END = "<!-- performance:end -->"

OURS = "ledger_postgresql"
PLAIN = ("plain_postgresql", "plain_postgresql_pgbench")
"""The plain PostgreSQL ledger's two drivers (psycopg from Python, pgbench from C): a target over it is
judged against whichever was faster at that scenario."""
TIGERBEETLE = "tigerbeetle"
TARGETS: tuple[tuple[str, str, str, tuple[str, ...], float], ...] = (
    # name, workload, scenario, the other system (the fastest of these), goal (our transfers/s over theirs)
    ("hot_merchant_32_callers_vs_plain_postgresql", "hot_merchant", "single_32", PLAIN, 5.0),
    ("uniform_32_callers_vs_plain_postgresql", "uniform", "single_32", PLAIN, 2.0),
    ("batches_vs_tigerbeetle_python_client", "uniform", "batch", (TIGERBEETLE,), 3.0),
)
WORKLOAD_TITLES = {"uniform": "Uniform", "hot_merchant": "Hot merchant"}
SYSTEM_ORDER = ("ledger_postgresql", "ledger_sqlite", "plain_postgresql", "plain_postgresql_pgbench", "tigerbeetle")


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


def _figure(report: dict[str, Any], system: str, workload: str, scenario: str) -> int | None:
    try:
        value = report["systems"][system]["workloads"][workload][scenario]["transfers_per_s"]
    except KeyError:
        return None
    return int(value)


def targets(report: dict[str, Any]) -> dict[str, Any]:
    """Each target: our transfers/s over the other system's, measured in this run; met is None if not measured.

    Where the other system has several drivers, the fastest at that scenario is the one measured against
    (`against` names it).
    """
    out: dict[str, Any] = {}
    for name, workload, scenario, others, goal in TARGETS:
        ours = _figure(report, OURS, workload, scenario)
        measured = [(figure, key) for key in others if (figure := _figure(report, key, workload, scenario))]
        theirs, against = max(measured) if measured else (None, None)
        ratio = round(ours / theirs, 2) if ours is not None and theirs else None
        out[name] = {
            "ours": ours,
            "theirs": theirs,
            "against": against,
            "ratio": ratio,
            "target": goal,
            "met": None if ratio is None else ratio >= goal,
        }
    benchmark = report.get("tigerbeetle_benchmark")
    ours = _figure(report, OURS, "uniform", "batch")
    theirs = benchmark["transfers_per_s"] if benchmark else None
    ratio = round(ours / theirs, 2) if ours is not None and theirs else None
    out["batches_vs_tigerbeetle_benchmark"] = {
        "ours": ours,
        "theirs": theirs,
        "against": "tigerbeetle_benchmark" if theirs else None,
        "ratio": ratio,
        "target": 1.0,
        "met": None if ratio is None else ratio >= 1.0,
    }
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
    return f"{verdict['ratio']}x ({verdict['ours']:,} vs {verdict['theirs']:,}/s)"


def _met_text(met: bool | None) -> str:
    return "-" if met is None else ("yes" if met else "**no**")


_NOT_RUN_LABELS = {"plain_postgresql_pgbench": "plain PostgreSQL ledger (pgbench, C client)"}


def _driver(label: str) -> str:
    """The driver named at the end of a system's label, in parentheses: `pgbench, C client`."""
    match = re.search(r"\(([^)]*)\)$", label)
    return match.group(1) if match else label


def _cpu_lines(system: dict[str, Any]) -> list[str]:
    """Where the time went at 32 callers: CPU per transfer of the benchmark process, and of the server's."""
    single = system["workloads"].get("uniform", {}).get("single_32")
    if not single or single.get("client_cpu_us_per_transfer") is None:
        return []
    text = f"CPU per transfer at 32 callers (uniform): {single['client_cpu_us_per_transfer']} us in the client process"
    if single.get("server_cpu_us_per_transfer") is not None:
        text += f", {single['server_cpu_us_per_transfer']} us in the server process"
    return [text]


def render_markdown(report: dict[str, Any]) -> str:
    """The run as Markdown: the machine, a table per workload, the targets, how each system was driven."""
    settings = report["settings"]
    systems = _systems(report)
    labels = {key: report["systems"][key]["label"] for key in systems}
    lines = [
        f"Measured by `{report.get('command') or 'python -m bench.compare'}` "
        f"in one run of {report['elapsed_seconds']} s on: {_machine_line(report['machine'])}.",
        "",
        f"{settings['accounts']:,} customer accounts, each funded with {settings['balance']:,} minor units and "
        f"guarded (never below zero); amounts of 1 to {settings['amount_max']:,}. Every transfer is durable "
        f"before it is answered. Each scenario ran {settings['seconds_per_scenario']} s "
        f"(batches {settings.get('batch_seconds', settings['seconds_per_scenario'])} s) after "
        f"{settings['warmup_seconds']} s of warm-up; latency is per call (one transfer, or one batch). "
        "The machine is shared, so compare the ratios of one run rather than the absolute figures.",
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
        for callers in settings["callers"]:
            cells = [_cell(report["systems"][key]["workloads"].get(workload, {}).get(f"single_{callers}"))
                     for key in systems]  # fmt: skip
            lines.append(f"| {callers} | " + " | ".join(cells) + " |")
        batch_cells = []
        for key in systems:
            batch = report["systems"][key]["workloads"].get(workload, {}).get("batch")
            batch_cells.append(_cell(batch) + (f"<br>batches of {batch['batch_transfers']:,}" if batch else ""))
        lines.append(f"| batches, {settings['batch_in_flight']} in flight | " + " | ".join(batch_cells) + " |")
    lines += ["", "#### Targets (this ledger on PostgreSQL, ratios within this run)", ""]
    lines += ["| target | measured | goal | met |", "|---|---|---|---|"]
    descriptions = {
        "hot_merchant_32_callers_vs_plain_postgresql": "hot merchant, 32 callers, over the plain PostgreSQL ledger",
        "uniform_32_callers_vs_plain_postgresql": "uniform, 32 callers, over the plain PostgreSQL ledger",
        "batches_vs_tigerbeetle_python_client": "batches (uniform) over TigerBeetle through its Python client",
        "batches_vs_tigerbeetle_benchmark": "batches (uniform) over `tigerbeetle benchmark`, its own load generator",
    }
    for name, verdict in report["targets"].items():
        description = descriptions.get(name, name)
        if verdict.get("against") in PLAIN and sum(key in report["systems"] for key in PLAIN) > 1:
            description += f", against its faster driver here: {_driver(labels[verdict['against']])}"
        lines.append(
            f"| {description} | {_ratio_text(verdict)} | ≥ {verdict['target']}x | {_met_text(verdict['met'])} |"
        )
    if sum(key in report["systems"] for key in PLAIN) > 1:
        lines += [
            "",
            "The plain PostgreSQL ledger ran twice, from Python (psycopg) and from C (pgbench); each target over it "
            "is judged against whichever was faster at that scenario.",
        ]
    benchmark = report.get("tigerbeetle_benchmark")
    lines += ["", "#### How each system was driven", ""]
    for key in systems:
        for note in report["systems"][key]["notes"]:
            lines.append(f"- {labels[key]}: {note}")
        lines.extend(f"- {labels[key]}: {line}" for line in _cpu_lines(report["systems"][key]))
    for key, reason in report.get("not_run", {}).items():
        lines.append(f"- {_NOT_RUN_LABELS.get(key, key)}: not run: {reason}")
    if TIGERBEETLE not in report["systems"]:
        lines.append("- TigerBeetle: not run (give `--tigerbeetle ADDRESS` with a cluster started)")
    if benchmark:
        latency = ", ".join(f"{k.removeprefix('batch_').removesuffix('_ms')} {v} ms" for k, v in benchmark.items()
                            if k.startswith("batch_p"))  # fmt: skip
        lines.append(
            f"- `tigerbeetle benchmark` (its own load generator in Zig, no Python): "
            f"{benchmark['transfers_per_s']:,} transfers/s" + (f", batch latency {latency}" if latency else "")
            + f" (`{benchmark['command']}`"
            + (f", server release {benchmark['release']}" if benchmark.get("release") else "")
            + (f" built from {benchmark['git_commit']}" if benchmark.get("git_commit") else "") + ")"
        )  # fmt: skip
    else:
        lines.append("- `tigerbeetle benchmark`: not run (give `--tigerbeetle-binary PATH`)")
    return "\n".join(lines) + "\n"


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
    batched = [key for key in systems if any("batch" in w for w in report["systems"][key]["workloads"].values())]
    width = 0.8 / max(1, len(batched))
    for index, key in enumerate(batched):
        values = [report["systems"][key]["workloads"].get(w, {}).get("batch", {}).get("transfers_per_s", 0)
                  for w in workloads]  # fmt: skip
        bars.bar([i + index * width for i in range(len(workloads))], values, width, color=colors.get(key),
                 label=report["systems"][key]["label"])  # fmt: skip
    bars.set_xticks([i + width * (len(batched) - 1) / 2 for i in range(len(workloads))],
                    [WORKLOAD_TITLES[w] for w in workloads])  # fmt: skip
    bars.set(ylabel="transfers/s", title="Batches")
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

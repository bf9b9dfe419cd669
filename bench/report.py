"""What ``python -m bench`` reports: the runs of each figure, their statistics, the JSON file and
the generated section of BENCHMARKS.md (between the markers; the hand-written text around it
stays as it is)."""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"

#: Every name ``--json`` writes at the top level (the median of the figure, a number; null
#: when the figure could not be measured, with the reason under ``missing``).
REQUIRED_NAMES = (
    "worker_telemetry_events_per_s",
    "worker_loops_events_per_s",
    "raw_passthrough_events_per_s",
    "faust_textbook_events_per_s",
    "quixstreams_events_per_s",
    "mirror_events_per_s",
    "raw_copy_events_per_s",
    "sdk_events_per_s",
    "raw_produce_events_per_s",
    "latency_p50_ms",
    "latency_p99_ms",
    "recovery_1m_batteries_s",
    "peak_rss_1m_batteries_mb",
)


@dataclass(frozen=True)
class Stats:
    low: float
    median: float
    high: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Stats:
        ordered = sorted(values)
        if not ordered:
            raise ValueError("no runs to summarise")
        return cls(ordered[0], statistics.median(ordered), ordered[-1])


@dataclass
class Measure:
    """One measured quantity (``name`` as in the JSON file), one value per run, or the reason
    it could not be measured."""

    name: str
    label: str
    unit: str
    runs: list[float] = field(default_factory=list)
    missing: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def stats(self) -> Stats | None:
        return Stats.of(self.runs) if self.runs and self.missing is None else None


@dataclass(frozen=True)
class Target:
    """``measure`` compared with ``value``: at least it (``higher_is_better``) or at most."""

    measure: str
    value: float
    higher_is_better: bool
    source: str

    def met(self, stats: Stats) -> bool:
        if self.higher_is_better:
            return stats.median >= self.value
        return stats.median <= self.value


@dataclass
class Figure:
    """One table of the report: the figure's measures (the first is the subject, the others
    its references measured in the same run), sizes and method."""

    key: str
    title: str
    method: str
    measures: list[Measure]
    sizes: dict[str, Any] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    ratio_to: str | None = None  # ratios are shown against this measure's median


@dataclass
class Report:
    figures: list[Figure]
    machine: dict[str, str]
    quick: bool
    backend: str
    repeat: int
    wall_seconds: float = 0.0

    def measure(self, name: str) -> Measure | None:
        for figure in self.figures:
            for m in figure.measures:
                if m.name == name:
                    return m
        return None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        details: dict[str, Any] = {}
        missing: dict[str, str] = {}
        for name in REQUIRED_NAMES:
            m = self.measure(name)
            stats = m.stats if m is not None else None
            out[name] = stats.median if stats is not None else None
            if m is None:
                missing[name] = "not run (left out by --only)"
            elif stats is None:
                missing[name] = m.missing or "no runs"
        for figure in self.figures:
            for m in figure.measures:
                stats = m.stats
                details[m.name] = {
                    "unit": m.unit,
                    "runs": m.runs,
                    "min": stats.low if stats else None,
                    "median": stats.median if stats else None,
                    "max": stats.high if stats else None,
                    "missing": m.missing,
                    "sizes": figure.sizes,
                }
        out["details"] = details
        out["missing"] = missing
        out["machine"] = self.machine
        out["quick"] = self.quick
        out["backend"] = self.backend
        out["repeat"] = self.repeat
        out["wall_seconds"] = round(self.wall_seconds, 1)
        return out


def write_json(report: Report, path: Path) -> None:
    path.write_text(json.dumps(report.as_json(), indent=2) + "\n")


def machine() -> dict[str, str]:
    """CPU model, cores, RAM, Python, the versions of the packages measured, today's date."""
    cpu = platform.processor() or platform.machine()
    memory = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    packages = []
    for name in ("confluent-kafka", "faust-streaming", "fastavro", "msgspec", "pydantic"):
        try:
            packages.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            packages.append(f"{name} (not installed)")
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "python": platform.python_version(),
        "packages": ", ".join(packages),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _number(value: float, unit: str) -> str:
    if unit == "events/s":
        return f"{value:,.0f}"
    if unit in ("MB", "s"):
        return f"{value:,.1f}"
    return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


def render_figure(figure: Figure) -> list[str]:
    lines = [f"### {figure.title}", "", figure.method, ""]
    if figure.sizes:
        lines += [
            "Sizes: "
            + ", ".join(
                f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in figure.sizes.items()
            ),
            "",
        ]
    base = next((m for m in figure.measures if m.name == figure.ratio_to), None)
    base_stats = base.stats if base is not None else None
    ratio = f" | / {base.label}" if base is not None else ""
    lines += [f"| measure | unit | runs | min | median | max{ratio} |"]
    lines += ["|---|---|---:|---:|---:|---:" + ("|---:|" if base is not None else "|")]
    for m in figure.measures:
        stats = m.stats
        if stats is None:
            cells = f"| {m.label} | {m.unit} | 0 | - | missing: {m.missing} | -"
            lines.append(cells + (" | - |" if base is not None else " |"))
            continue
        row = (
            f"| {m.label} | {m.unit} | {len(m.runs)} | {_number(stats.low, m.unit)} | "
            f"**{_number(stats.median, m.unit)}** | {_number(stats.high, m.unit)}"
        )
        if base is not None:
            share = f"{stats.median / base_stats.median:.2f}" if base_stats else "-"
            row += f" | {share}"
        lines.append(row + " |")
    notes = [n for m in figure.measures for n in m.notes]
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    for target in figure.targets:
        measure = next(m for m in figure.measures if m.name == target.measure)
        stats = measure.stats
        bound = ">=" if target.higher_is_better else "<="
        wanted = f"{measure.label} {bound} {_number(target.value, measure.unit)} {measure.unit}"
        if stats is None:
            verdict = "not measured"
        else:
            verdict = "**met**" if target.met(stats) else "**not met**"
            verdict += f" (median {_number(stats.median, measure.unit)})"
        lines += ["", f"Target ({target.source}): {wanted}: {verdict}."]
    return lines + [""]


def render(report: Report) -> str:
    m = report.machine
    mode = "quick (smaller sizes)" if report.quick else "full"
    lines = [
        BEGIN,
        "<!-- generated by `python -m bench`; edit outside the markers only -->",
        "",
        "## Generated by `python -m bench`",
        "",
        f"Run of {m['date']}, {mode}, backend **{report.backend}**, each measure run "
        f"{report.repeat} times (min / median / max), {report.wall_seconds:,.0f} s in all.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']} RAM, Python {m['python']}; "
        f"{m['packages']}.",
        "",
        "Method: every figure is measured from outside, through the `batteryloop` command and "
        "the topics, on embedded brokers on loopback (a fresh broker per run). The references "
        "of a figure run the same job on the same encoded events in the same invocation; compare "
        "the ratios, not the absolute numbers across runs (the machine is shared and noisy).",
        "",
    ]
    for figure in report.figures:
        lines += render_figure(figure)
    lines.append(END)
    return "\n".join(lines)


def rewrite(text: str, section: str) -> str:
    """``text`` with the part between the markers (markers included) replaced by ``section``
    (which carries its own markers); appended at the end when the markers are absent."""
    start, end = text.find(BEGIN), text.find(END)
    if start == -1 or end == -1 or end < start:
        if start != -1 or end != -1:
            raise ValueError(f"BENCHMARKS.md has an unmatched {BEGIN!r} / {END!r} marker")
        return text.rstrip("\n") + "\n\n" + section + "\n"
    return text[:start] + section + text[end + len(END) :]


def rewrite_file(path: Path, report: Report) -> None:
    path.write_text(rewrite(path.read_text() if path.exists() else "", render(report)))


def describe_missing(measures: Mapping[str, Measure]) -> list[str]:
    return [f"{m.label}: {m.missing}" for m in measures.values() if m.missing]

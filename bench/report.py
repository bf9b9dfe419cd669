"""What ``python -m bench`` reports: the runs of each figure, their statistics, the JSON file and
the generated section of BENCHMARKS.md (between the markers; the hand-written text around it
stays as it is)."""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

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


Bound = Literal[">=", ">", "<=", "<"]
_HOLDS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
}


@dataclass(frozen=True)
class Target:
    """``measure``'s median against ``value`` under ``bound``; with ``relative_to``, the ratio
    of ``measure``'s median to that measure's median is compared instead (``value`` a
    fraction: 0.35 = 35 % of it)."""

    measure: str
    bound: Bound
    value: float
    source: str
    relative_to: str | None = None


@dataclass(frozen=True)
class Verdict:
    """A target judged: ``met`` None when a measure it needs is missing."""

    target: Target
    met: bool | None
    observed: float | None  # the median, or the ratio for a relative target
    wanted: str  # e.g. "batteryloop worker >= 35% of raw passthrough"
    text: str  # e.g. "batteryloop worker >= 35% of raw passthrough: not met (0.21 of it)"

    def as_json(self) -> dict[str, Any]:
        t = self.target
        return {
            "measure": t.measure,
            "bound": t.bound,
            "value": t.value,
            "relative_to": t.relative_to,
            "observed": self.observed,
            "met": self.met,
            "source": t.source,
            "text": self.text,
        }


def judge(target: Target, find: Callable[[str], Measure | None]) -> Verdict:
    measure = find(target.measure)
    base = find(target.relative_to) if target.relative_to is not None else None
    label = measure.label if measure is not None else target.measure
    if target.relative_to is None:
        unit = measure.unit if measure is not None else ""
        wanted = f"{label} {target.bound} {_number(target.value, unit)} {unit}".rstrip()
    else:
        other = base.label if base is not None else target.relative_to
        wanted = f"{label} {target.bound} {target.value:.0%} of {other}"
        if target.value == 1.0:
            wanted = f"{label} {target.bound} {other}"
    stats = measure.stats if measure is not None else None
    base_stats = base.stats if base is not None else None
    if stats is None or (target.relative_to is not None and not base_stats):
        return Verdict(target, None, None, wanted, f"{wanted}: not measured")
    if base_stats is None:
        observed, shown = stats.median, _number(stats.median, measure.unit)  # type: ignore[union-attr]
    else:
        observed = stats.median / base_stats.median
        shown = f"{observed:.2f} of it"
    met = _HOLDS[target.bound](observed, target.value)
    verdict = "met" if met else "not met"
    return Verdict(target, met, observed, wanted, f"{wanted}: {verdict} ({shown})")


@dataclass(frozen=True)
class Hotspot:
    """A function and its share of the profiler's samples of a process (own time: samples in
    which it was the innermost frame)."""

    function: str
    share: float


@dataclass
class Profile:
    """Where a process spent its time during a figure's profiled run."""

    tool: str  # how it was sampled
    samples: int
    hotspots: list[Hotspot] = field(default_factory=list)
    missing: str | None = None


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
    profile: Profile | None = None
    seconds: float = 0.0  # wall time of the figure, set-up included


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

    def verdicts(self) -> list[Verdict]:
        return [judge(t, self.measure) for f in self.figures for t in f.targets]

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
        out["targets"] = [v.as_json() for v in self.verdicts()]
        out["figure_seconds"] = {f.key: round(f.seconds, 1) for f in self.figures}
        out["profiles"] = {
            f.key: {
                "tool": f.profile.tool,
                "samples": f.profile.samples,
                "missing": f.profile.missing,
                "own_time": [
                    {"function": h.function, "share": h.share} for h in f.profile.hotspots
                ],
            }
            for f in self.figures
            if f.profile is not None
        }
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


def render_profile(profile: Profile) -> list[str]:
    if profile.missing is not None:
        return [f"Profile ({profile.tool}): missing: {profile.missing}"]
    lines = [
        f"Profile of the worker process ({profile.tool}, {profile.samples:,} samples), top "
        "functions by own time (share of the samples in which it was the innermost frame):",
        "",
        "| function | own time |",
        "|---|---:|",
    ]
    lines += [f"| `{h.function}` | {h.share:.1%} |" for h in profile.hotspots]
    return lines


def render_figure(figure: Figure, find: Callable[[str], Measure | None] | None = None) -> list[str]:
    own = {m.name: m for m in figure.measures}
    find = find or own.get
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
        verdict = judge(target, find)
        shown = verdict.text.replace(": met (", ": **met** (").replace(
            ": not met (", ": **not met** ("
        )
        lines += ["", f"Target ({target.source}): {shown}."]
    if figure.profile is not None:
        lines += ["", *render_profile(figure.profile)]
    return lines + [""]


def render_targets(report: Report) -> list[str]:
    verdicts = report.verdicts()
    if not verdicts:
        return []
    lines = ["### Targets", "", "| target | verdict | observed | source |", "|---|---|---:|---|"]
    for v in verdicts:
        wanted = v.wanted
        verdict = "not measured" if v.met is None else ("**met**" if v.met else "**not met**")
        if v.observed is None:
            observed = "-"
        elif v.target.relative_to is not None:
            observed = f"{v.observed:.2f}"
        else:
            unit = m.unit if (m := report.measure(v.target.measure)) is not None else ""
            observed = f"{_number(v.observed, unit)} {unit}".rstrip()
        lines.append(f"| {wanted} | {verdict} | {observed} | {v.target.source} |")
    met = sum(v.met is True for v in verdicts)
    return lines + ["", f"{met} of {len(verdicts)} targets met.", ""]


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
        f"{report.repeat} times (min / median / max), {report.wall_seconds:,.0f} s in all ("
        + ", ".join(f"{f.key} {f.seconds:,.0f} s" for f in report.figures)
        + ").",
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
    lines += render_targets(report)
    for figure in report.figures:
        lines += render_figure(figure, report.measure)
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

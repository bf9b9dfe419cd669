"""The benchmark report: statistics, the JSON file, the generated section of BENCHMARKS.md."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from bench.report import (
    BEGIN,
    END,
    REQUIRED_NAMES,
    Figure,
    Hotspot,
    Measure,
    Profile,
    Report,
    Stats,
    Target,
    judge,
    render,
    rewrite,
    write_json,
)

MACHINE = {
    "cpu": "a CPU",
    "cores": "2",
    "memory": "1 GiB",
    "python": "3.11",
    "packages": "x 1",
    "date": "2031-01-01 00:00 UTC",
}


def report(missing: str | None = None) -> Report:
    worker = Measure("worker_telemetry_events_per_s", "worker", "events/s", [3.0, 1.0, 2.0])
    raw = Measure("raw_passthrough_events_per_s", "raw", "events/s", [10.0, 30.0, 20.0])
    recovery = Measure("recovery_1m_batteries_s", "start -> /readyz", "s", missing=missing)
    return Report(
        [
            Figure(
                "t",
                "Telemetry",
                "how",
                [worker, raw],
                {"events": 10},
                [
                    Target(worker.name, ">=", 50_000, "README"),
                    Target(worker.name, ">=", 0.35, "README", relative_to=raw.name),
                ],
                ratio_to=raw.name,
            ),
            Figure(
                "r", "Recovery", "how", [recovery], targets=[Target(recovery.name, "<", 60, "R")]
            ),
        ],
        MACHINE,
        quick=True,
        backend="tansu",
        repeat=3,
    )


@given(st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=1))
def test_stats_are_min_median_max(values: list[float]) -> None:
    stats = Stats.of(values)
    assert (stats.low, stats.median, stats.high) == (
        min(values),
        statistics.median(values),
        max(values),
    )


def test_stats_of_an_even_count_take_the_middle_two() -> None:
    assert Stats.of([4.0, 1.0, 3.0, 2.0]) == Stats(1.0, 2.5, 4.0)


def test_json_holds_every_required_name_as_a_number_or_null_with_the_reason(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.json"
    write_json(report(missing="no /readyz yet"), path)
    written = json.loads(path.read_text())
    assert set(REQUIRED_NAMES) <= set(written)
    assert written["worker_telemetry_events_per_s"] == 2.0
    assert written["raw_passthrough_events_per_s"] == 20.0
    assert written["recovery_1m_batteries_s"] is None
    assert written["missing"]["recovery_1m_batteries_s"] == "no /readyz yet"
    assert "left out" in written["missing"]["mirror_events_per_s"]
    assert written["details"]["worker_telemetry_events_per_s"]["min"] == 1.0
    assert written["details"]["worker_telemetry_events_per_s"]["max"] == 3.0


def test_rewrite_keeps_the_text_outside_the_markers() -> None:
    before = "# Benchmarks\n\nhand-written above\n\n"
    after = "\n\n## Later\nhand-written below\n"
    text = before + BEGIN + "\nold numbers\n" + END + after
    section = render(report())
    new = rewrite(text, section)
    assert new.startswith(before)
    assert new.endswith(after)
    assert "old numbers" not in new
    assert section in new
    assert rewrite(new, section) == new  # a second run changes nothing else


def test_rewrite_appends_the_section_when_there_are_no_markers() -> None:
    new = rewrite("# Benchmarks\n\nprose\n", render(report()))
    assert new.startswith("# Benchmarks\n\nprose\n\n" + BEGIN)
    assert new.rstrip().endswith(END)


def test_the_section_shows_ratios_targets_and_missing_figures() -> None:
    section = render(report(missing="no /readyz yet"))
    assert "| worker | events/s | 3 | 1 | **2** | 3 | 0.10 |" in section
    assert "batteryloop worker" not in section  # labels come from the measures
    assert "worker >= 50,000 events/s: **not met** (2)" in section
    assert "worker >= 35% of raw: **not met** (0.10 of it)" in section
    assert "missing: no /readyz yet" in section
    assert "0 of 3 targets met." in section


def test_every_target_is_judged_in_the_json_with_value_and_target(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    write_json(report(missing="no /readyz yet"), path)
    targets = json.loads(path.read_text())["targets"]
    assert [(t["measure"], t["met"]) for t in targets] == [
        ("worker_telemetry_events_per_s", False),
        ("worker_telemetry_events_per_s", False),
        ("recovery_1m_batteries_s", None),
    ]
    assert targets[0]["observed"] == 2.0 and targets[0]["value"] == 50_000
    assert (
        targets[1]["observed"] == 0.1
        and targets[1]["relative_to"] == "raw_passthrough_events_per_s"
    )


@given(
    st.floats(0.01, 1e6),
    st.floats(0.01, 1e6),
    st.sampled_from([">=", ">", "<=", "<"]),
    st.floats(0.01, 2.0),
)
def test_a_relative_target_compares_the_ratio_of_the_medians(
    subject: float, base: float, bound: str, fraction: float
) -> None:
    a = Measure("a", "a", "events/s", [subject])
    b = Measure("b", "b", "events/s", [base])
    target = Target("a", bound, fraction, "x", relative_to="b")  # type: ignore[arg-type]
    verdict = judge(target, {"a": a, "b": b}.get)
    ratio = subject / base
    expected = {
        ">=": ratio >= fraction,
        ">": ratio > fraction,
        "<=": ratio <= fraction,
        "<": ratio < fraction,
    }[bound]
    assert verdict.met is expected
    assert verdict.observed == ratio


def test_a_target_on_a_missing_measure_is_not_measured_rather_than_met() -> None:
    a = Measure("a", "a", "s", missing="worker exited")
    verdict = judge(Target("a", "<", 60, "x"), {"a": a}.get)
    assert verdict.met is None and verdict.observed is None
    assert verdict.text == "a < 60.0 s: not measured"


def test_the_section_shows_the_profile_of_a_worker_figure() -> None:
    r = report()
    r.figures[0].profile = Profile("py-spy", 200, [Hotspot("handle (streams/x.py)", 0.25)])
    section = render(r)
    assert "py-spy, 200 samples" in section
    assert "| `handle (streams/x.py)` | 25.0% |" in section

"""``python -m bench``: every benchmark figure against its references, measured from outside
(the ``batteryloop`` command, the topics), every target judged, written into BENCHMARKS.md
between the markers.

Figures (each run --repeat times, min / median / max; targets from the README):
  worker_telemetry   `batteryloop worker` (RocksDB store): battery packs, then state-of-health
                     reports; done when every passport shows its battery's last reading.
                     References, same job shape, same backend, same invocation:
                     raw_passthrough (confluent-kafka batch loop, no decoding: the limit),
                     faust_textbook (faust agent, fastavro, Table), quixstreams (Application,
                     RocksDB state; in its own environment, created on first use).
                     Targets: >= 50,000 events/s, >= 35 % of raw passthrough, ahead of Quix.
  worker_loops       random closed supply-chain loops; done when every document the in-memory
                     ledger publishes for the same events is on its topic and equal.
                     Target: >= 10,000 events/s.
  mirror             the mirror agent against a raw consume->produce copy (bench/mirror_rate.py).
                     Target: >= 40 % of the raw copy.
  sdk                EventProducer.publish against raw produce of the same encoded events.
                     Target: >= 50 % of raw produce.
  latency            state-of-health reports at a held 5,000/s after a warm-up that is not
                     counted; produce -> passport, p50/p99. Target: p99 < 200 ms, rate held.
  recovery           fresh workers over 1M batteries' states in batteryloop.internal.state:
                     start -> /readyz (all 6 state partitions, passports served), peak RSS.
                     Targets: < 60 s, < 1.5 GB.

With --profile (the default of the full run) each worker figure gets one more run, not
counted, during which py-spy samples the worker process; its top functions by own time go
into the report.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import processors, quixenv, recovery
from bench.harness import Progress
from bench.report import (
    Figure,
    Measure,
    Profile,
    Report,
    Target,
    machine,
    rewrite_file,
    write_json,
)
from connectors.kafka.embedded import BACKENDS, exit_on_sigterm

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("worker_telemetry", "worker_loops", "mirror", "sdk", "latency", "recovery")


@dataclass(frozen=True)
class Sizes:
    telemetry_events: int  # per run, worker and raw passthrough
    telemetry_batteries: int
    slow_reference_runs: int  # faust textbook and Quix Streams, at a few thousand events/s
    faust_events: int  # per run, same shape (events per battery)
    quix_events: int
    loops_events: int
    mirror_events: int
    sdk_events: int
    latency_seconds: float  # per window, after the warm-up
    latency_warmup_seconds: float  # at the held rate before each window, left out
    latency_batteries: int
    recovery_batteries: int


#: chosen so that each timed worker run lasts >= ~3 s at today's rates (full: the raw references
#: of mirror and sdk >= ~1 s too; in --quick they last ~0.3-0.5 s, their ratios are rougher);
#: --quick runs Quix Streams and the textbook faust agent once, on fewer events
SIZES = {
    True: Sizes(24_000, 2_400, 1, 2_000, 6_000, 2_000, 8_000, 15_000, 2.0, 1.0, 2_000, 50_000),
    False: Sizes(
        60_000, 6_000, 0, 10_000, 30_000, 6_000, 30_000, 50_000, 10.0, 3.0, 5_000, 1_000_000
    ),
}
LATENCY_RATE = 5_000.0
README = "README"


def events_per_s(name: str, label: str) -> Measure:
    return Measure(name, label, "events/s")


def worker_telemetry(
    sizes: Sizes, repeat: int, backend: str, progress: Progress, profile: bool
) -> Figure:
    n, keys = sizes.telemetry_events, sizes.telemetry_batteries
    slow_runs = sizes.slow_reference_runs or repeat
    runs = [processors.telemetry_workload(n, keys, run) for run in range(repeat)]
    per_battery = n // keys

    def slow(events: int) -> list[processors.Workload]:
        return [
            processors.telemetry_workload(events, events // per_battery, run)
            for run in range(slow_runs)
        ]

    faust_runs, quix_runs = slow(sizes.faust_events), slow(sizes.quix_events)
    worker = events_per_s("worker_telemetry_events_per_s", "batteryloop worker")
    raw = events_per_s("raw_passthrough_events_per_s", "raw passthrough")
    faust = events_per_s("faust_textbook_events_per_s", "faust textbook")
    quix = events_per_s("quixstreams_events_per_s", "Quix Streams")
    expected = [
        {(processors.PASSPORTS, k.encode()): v for k, v in processors.final_health(w).items()}
        for w in runs
    ]
    profiled = None
    if profile:
        extra = processors.telemetry_workload(n, keys, repeat)
        health = processors.final_health(extra).items()
        profiled = (extra, {(processors.PASSPORTS, k.encode()): v for k, v in health})
    timeout = 60 + n / 200
    sampled: list[Profile | None] = [None]

    def run_worker() -> list[float]:
        rates, sampled[0] = processors.run_worker(
            list(zip(runs, expected, strict=True)), backend, progress, timeout, profiled
        )
        return rates

    attempt(worker, progress, run_worker)
    references = [
        (raw, processors.passthrough(), runs),
        (faust, processors.faust_textbook(), faust_runs),
    ]
    for measure, reference, workloads in references:
        attempt(
            measure,
            progress,
            lambda r=reference, w=workloads: processors.run_reference(  # type: ignore[misc]
                r, w, backend, progress, timeout
            ),
        )
    attempt(
        quix,
        progress,
        lambda: processors.run_reference(
            processors.quixstreams(quixenv.ensure(progress.done)),
            quix_runs,
            backend,
            progress,
            timeout,
        ),
    )
    slow_sizes = (
        f"{slow_runs} run(s) of {sizes.faust_events:,} events (faust textbook) and "
        f"{sizes.quix_events:,} (Quix Streams), {per_battery} events per battery as above"
        if sizes.faust_events
        else f"{slow_runs} run of {sizes.quix_events:,} events (Quix Streams), "
        f"{per_battery} events per battery as above"
    )
    return Figure(
        "worker_telemetry",
        "Worker, telemetry job, against its references",
        "Packs manufactured, then state-of-health reports spread over them (pre-encoded Avro). "
        "Each job is started and ready (worker: `/readyz`; references: a probe record's "
        "output seen), then the events are produced at raw speed; the rate is events / "
        "(first produce -> every battery's final document on the output topic). Each run uses "
        "new battery ids on the same running job. The raw passthrough runs the worker's "
        "events; the two slow references run fewer events (below) so that the benchmark ends "
        "in time: their rates are steady well before that size.",
        [worker, raw, faust, quix],
        {
            "events per run": len(runs[0].records),
            "batteries": keys,
            "slow references": slow_sizes,
        },
        [
            Target(worker.name, ">=", 50_000, README),
            Target(worker.name, ">=", 0.35, README, relative_to=raw.name),
            Target(worker.name, ">", 1.0, README, relative_to=quix.name),
        ],
        ratio_to=raw.name,
        profile=sampled[0],
    )


def worker_loops(
    sizes: Sizes, repeat: int, backend: str, progress: Progress, profile: bool
) -> Figure:
    n = sizes.loops_events
    ledger = processors.new_ledger()
    runs = []
    for run in range(repeat + int(profile)):
        workload = processors.loops_workload(n, run)
        runs.append((workload, processors.ledger_documents(workload, ledger)))
    profiled = runs.pop() if profile else None
    worker = events_per_s("worker_loops_events_per_s", "batteryloop worker")
    sampled: list[Profile | None] = [None]

    def run_worker() -> list[float]:
        rates, sampled[0] = processors.run_worker(runs, backend, progress, 120 + n / 20, profiled)
        return rates

    attempt(worker, progress, run_worker)
    return Figure(
        "worker_loops",
        "Worker, closed supply-chain loops",
        "Random closed loops (mines, refining, cells, packs, shredding, recovery, refining, "
        "second-generation cells). Done when every document the in-memory ledger "
        "(`streams.domain.local.LocalLedger`) publishes for the same events is on its topic and "
        "equal to it: a run that never gets there fails loudly with the differing keys.",
        [worker],
        {"events per run": len(runs[0][0].records), "documents after all runs": len(runs[-1][1])},
        [Target(worker.name, ">=", 10_000, README)],
        profile=sampled[0],
    )


def mirror(sizes: Sizes, repeat: int, backend: str, progress: Progress, profile: bool) -> Figure:
    from bench import copying

    n = sizes.mirror_events
    agent = events_per_s("mirror_events_per_s", "mirror agent")
    raw = events_per_s("raw_copy_events_per_s", "raw copy")
    values = copying.mirror_values(n)
    for i in range(repeat):
        progress.show(f"mirror, run {i + 1}/{repeat}")
        try:
            rate, copy = copying.mirror_once(values, backend)
        except Exception as exc:  # reported as missing, with the reason
            agent.missing = raw.missing = f"{type(exc).__name__}: {exc}"
            break
        agent.runs.append(rate)
        raw.runs.append(copy)
    return Figure(
        "mirror",
        "Mirror agent against a raw copy",
        "`bench/mirror_rate.py`'s comparison: manufacture events with confidential fields on "
        "the EU broker; a raw consume->produce copy and the mirror agent, each until the JP "
        "broker acknowledged every record.",
        [agent, raw],
        {"events": n},
        [Target(agent.name, ">=", 0.40, README, relative_to=raw.name)],
        ratio_to=raw.name,
    )


def sdk(sizes: Sizes, repeat: int, backend: str, progress: Progress, profile: bool) -> Figure:
    from bench import copying

    n = sizes.sdk_events
    publish = events_per_s("sdk_events_per_s", "SDK publish(event)")
    raw = events_per_s("raw_produce_events_per_s", "raw produce")
    events, encoded = copying.sdk_events(n)
    for i in range(repeat):
        progress.show(f"sdk, run {i + 1}/{repeat}")
        try:
            rate, copy = copying.sdk_once(events, encoded, backend)
        except Exception as exc:  # reported as missing, with the reason
            publish.missing = raw.missing = f"{type(exc).__name__}: {exc}"
            break
        publish.runs.append(rate)
        raw.runs.append(copy)
    return Figure(
        "sdk",
        "Producer SDK against raw produce",
        "`bench/produce_rate.py`'s events: `EventProducer.publish(event)` (serde, keying, safety "
        "settings) against a raw confluent-kafka producer of the same events encoded beforehand, "
        "same settings, produce + flush timed.",
        [publish, raw],
        {"events": n},
        [Target(publish.name, ">=", 0.50, README, relative_to=raw.name)],
        ratio_to=raw.name,
    )


def latency(sizes: Sizes, repeat: int, backend: str, progress: Progress, profile: bool) -> Figure:
    from bench import latency as timing

    p50 = Measure("latency_p50_ms", "p50, produce -> passport", "ms")
    p99 = Measure("latency_p99_ms", "p99, produce -> passport", "ms")
    achieved = Measure("latency_achieved_events_per_s", "achieved produce rate", "events/s")
    seconds, warmup = sizes.latency_seconds, sizes.latency_warmup_seconds
    try:
        windows = timing.measure(
            sizes.latency_batteries, LATENCY_RATE, seconds, repeat, backend, progress, warmup
        )
    except Exception as exc:  # reported as missing, with the reason
        for m in (p50, p99, achieved):
            m.missing = f"{type(exc).__name__}: {exc}"
        windows = []
    for w in windows:
        p50.runs.append(w.p50_ms)
        p99.runs.append(w.p99_ms)
        achieved.runs.append(w.achieved_per_s)
        if w.unanswered:
            p99.notes.append(f"{w.unanswered:,} of {w.readings:,} readings never shown in time")
    return Figure(
        "latency",
        "Latency, produce -> passport",
        f"With the worker ready and its packs manufactured, state-of-health reports produced at "
        f"a held {LATENCY_RATE:,.0f}/s: per run {warmup:.0f} s of warm-up (not counted), then "
        f"{seconds:.0f} s counted (consecutive runs on one worker, each drained before the "
        "next); each reading timed from its produce call to the first passport record showing "
        "it (or a later reading of the same battery). The rate is held when the producer kept "
        "it and the p99 stays low: a worker that falls behind shows a p99 that grows with the "
        "window.",
        [p50, p99, achieved],
        {
            "counted seconds per run": f"{seconds:.0f}",
            "warm-up seconds per run": f"{warmup:.0f}",
            "batteries": sizes.latency_batteries,
        },
        [
            Target(p99.name, "<", 200, f"{README}, at {LATENCY_RATE:,.0f} events/s held"),
            Target(achieved.name, ">=", LATENCY_RATE * 0.98, "the rate held (98 %)"),
        ],
    )


def recovery_figure(
    sizes: Sizes, repeat: int, backend: str, progress: Progress, profile: bool
) -> Figure:
    n = sizes.recovery_batteries
    seconds = Measure("recovery_1m_batteries_s", "start -> /readyz", "s")
    rss = Measure("peak_rss_1m_batteries_mb", "peak RSS (VmHWM)", "MB")
    for run in recovery.measure(n, backend, progress, repeat):
        if run.seconds is not None:
            progress.done(
                f"recovery: ready after {run.seconds:,.1f} s, peak RSS {run.peak_rss_mb} MB"
            )
        if run.missing is not None or run.seconds is None:
            seconds.missing = rss.missing = run.missing or "no answer"
            break
        seconds.runs.append(run.seconds)
        if run.peak_rss_mb is not None:
            rss.runs.append(run.peak_rss_mb)
    return Figure(
        "recovery",
        "Recovery of a worker with a million batteries",
        f"`{recovery.STATE_TOPIC}` filled once, directly, with {n:,} battery states and their "
        "lots' states (real states from the in-memory ledger, ids varied), then one fresh worker "
        "per run (`--store rocksdb`, empty data dir) timed from process start to `/readyz` 200; "
        "a run counts only if `/readyz` names all 6 state partitions and the passports of the "
        "first and last battery written answer 200. Peak RSS from `/proc/<pid>/status` VmHWM "
        "(MB = 2^20 bytes).",
        [seconds, rss],
        {"batteries": n},
        [
            Target(seconds.name, "<", 60, README),
            Target(rss.name, "<", 1536, f"{README}: 1.5 GB"),
        ],
    )


FIGURES: dict[str, Callable[[Sizes, int, str, Progress, bool], Figure]] = {
    "worker_telemetry": worker_telemetry,
    "worker_loops": worker_loops,
    "mirror": mirror,
    "sdk": sdk,
    "latency": latency,
    "recovery": recovery_figure,
}


def attempt(measure: Measure, progress: Progress, run: Callable[[], list[float]]) -> None:
    """Run ``run``; a failure makes the measure missing with the reason, and is shown."""
    try:
        measure.runs = run()
    except Exception as exc:  # one job failing must not lose the others' numbers
        measure.missing = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        progress.done(f"{measure.label} FAILED: {exc}")
        traceback.print_exc()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller sizes (see the report), under 3 minutes on 2 cores",
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="also write the medians (and runs, sizes) as JSON to FILE",
    )
    parser.add_argument(
        "--backend",
        choices=sorted(BACKENDS),
        default="tansu",
        help="embedded broker (default %(default)s)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (>= 3)")
    parser.add_argument(
        "--only", default=",".join(NAMES), help=f"comma-separated figures, from {', '.join(NAMES)}"
    )
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md as it is")
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one more worker run per worker figure, not counted, sampled with py-spy; its top "
        "functions by own time go into the report (default: on for the full run, off with "
        "--quick)",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only.split(",")) - set(NAMES))
    if unknown:
        parser.error(f"unknown figure(s) {unknown}; choose from {', '.join(NAMES)}")
    if args.repeat < 3:
        parser.error("--repeat must be at least 3 (min / median / max)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    exit_on_sigterm()
    progress = Progress()
    sizes = SIZES[args.quick]
    profile = not args.quick if args.profile is None else args.profile
    began = time.monotonic()
    figures = []
    for name in args.only.split(","):
        progress.prefix = f"[{name}] "
        started = time.monotonic()
        figure = FIGURES[name](sizes, args.repeat, args.backend, progress, profile)
        figure.seconds = time.monotonic() - started
        figures.append(figure)
        for m in figure.measures:
            stats = m.stats
            shown = (
                f"median {stats.median:,.1f} {m.unit} (min {stats.low:,.1f}, max {stats.high:,.1f})"
                if stats
                else f"missing: {m.missing}"
            )
            progress.done(f"{m.label}: {shown}")
        progress.done(f"{figure.seconds:,.0f} s")
    progress.prefix = ""
    report = Report(
        figures, machine(), args.quick, args.backend, args.repeat, time.monotonic() - began
    )
    if args.json is not None:
        write_json(report, args.json)
        progress.done(f"wrote {args.json}")
    if not args.no_write:
        rewrite_file(ROOT / "BENCHMARKS.md", report)
        progress.done("rewrote the generated section of BENCHMARKS.md")
    for verdict in report.verdicts():
        progress.done(f"target {verdict.text}")
    progress.done(f"{report.wall_seconds:,.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())

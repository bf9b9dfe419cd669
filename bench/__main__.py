"""``python -m bench``: every benchmark figure against its references, measured from outside
(the ``batteryloop`` command, the topics), written into BENCHMARKS.md between the markers.

Figures (each run --repeat times, min / median / max):
  worker_telemetry   `batteryloop worker` (RocksDB store): battery packs, then state-of-health
                     reports; done when every passport shows its battery's last reading.
                     References, same encoded events, same backend, same invocation:
                     raw_passthrough (confluent-kafka batch loop, no decoding: the limit),
                     faust_textbook (faust agent, fastavro, Table), quixstreams (Application,
                     RocksDB state; in its own environment, created on first use).
  worker_loops       random closed supply-chain loops; done when every document the in-memory
                     ledger publishes for the same events is on its topic and equal.
  mirror             the mirror agent against a raw consume->produce copy (bench/mirror_rate.py).
  sdk                EventProducer.publish against raw produce of the same encoded events.
  latency            state-of-health reports at a held 5,000/s; produce -> passport, p50/p99.
  recovery           a fresh worker over 1M batteries' states in batteryloop.internal.state:
                     start -> /readyz, and its peak RSS (reported missing until the worker
                     keeps that changelog and answers /readyz).
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
from bench.report import Figure, Measure, Report, Target, machine, rewrite_file, write_json
from connectors.kafka.embedded import BACKENDS, exit_on_sigterm

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("worker_telemetry", "worker_loops", "mirror", "sdk", "latency", "recovery")
#: the throughput target per worker (README, BENCHMARKS.md)
TARGET_PER_WORKER = 50_000.0
TARGET_SOURCE = "README: 50k events/s per worker"


@dataclass(frozen=True)
class Sizes:
    telemetry_events: int
    telemetry_batteries: int
    loops_events: int
    mirror_events: int
    sdk_events: int
    latency_seconds: float  # per run; three runs make the ~10 s (quick) / 30 s (full)
    latency_batteries: int
    recovery_batteries: int


SIZES = {
    True: Sizes(6_000, 600, 1_000, 5_000, 10_000, 10 / 3, 2_000, 100_000),
    False: Sizes(100_000, 20_000, 10_000, 50_000, 100_000, 10.0, 5_000, 1_000_000),
}
LATENCY_RATE = 5_000.0


def events_per_s(name: str, label: str) -> Measure:
    return Measure(name, label, "events/s")


def worker_telemetry(sizes: Sizes, repeat: int, backend: str, progress: Progress) -> Figure:
    n, keys = sizes.telemetry_events, sizes.telemetry_batteries
    runs = [processors.telemetry_workload(n, keys, run) for run in range(repeat)]
    worker = events_per_s("worker_telemetry_events_per_s", "batteryloop worker")
    raw = events_per_s("raw_passthrough_events_per_s", "raw passthrough")
    faust = events_per_s("faust_textbook_events_per_s", "faust textbook")
    quix = events_per_s("quixstreams_events_per_s", "Quix Streams")
    expected = [
        {(processors.PASSPORTS, k.encode()): v for k, v in processors.final_health(w).items()}
        for w in runs
    ]
    timeout = 60 + n / 200
    attempt(
        worker,
        progress,
        lambda: processors.run_worker(
            list(zip(runs, expected, strict=True)), backend, progress, timeout
        ),
    )
    attempt(
        raw,
        progress,
        lambda: processors.run_reference(
            processors.passthrough(), runs, backend, progress, timeout
        ),
    )
    attempt(
        faust,
        progress,
        lambda: processors.run_reference(
            processors.faust_textbook(), runs, backend, progress, timeout
        ),
    )
    attempt(
        quix,
        progress,
        lambda: processors.run_reference(
            processors.quixstreams(quixenv.ensure(progress.done)), runs, backend, progress, timeout
        ),
    )
    return Figure(
        "worker_telemetry",
        "Worker, telemetry job, against its references",
        "Packs manufactured, then state-of-health reports spread over them (pre-encoded Avro). "
        "Each job is started and ready (worker: `/readyz`, or `/healthz` assigned; references: "
        "a probe record's output seen), then the events are produced at raw speed; the rate "
        "is events / (first produce -> every battery's final document on the output topic). "
        "Each run uses new battery ids on the same running job.",
        [worker, raw, faust, quix],
        {"events per run": len(runs[0].records), "batteries": keys},
        [Target(worker.name, TARGET_PER_WORKER, True, TARGET_SOURCE)],
        ratio_to=raw.name,
    )


def worker_loops(sizes: Sizes, repeat: int, backend: str, progress: Progress) -> Figure:
    n = sizes.loops_events
    ledger = processors.new_ledger()
    runs = []
    for run in range(repeat):
        workload = processors.loops_workload(n, run)
        runs.append((workload, processors.ledger_documents(workload, ledger)))
    worker = events_per_s("worker_loops_events_per_s", "batteryloop worker")
    attempt(worker, progress, lambda: processors.run_worker(runs, backend, progress, 120 + n / 20))
    return Figure(
        "worker_loops",
        "Worker, closed supply-chain loops",
        "Random closed loops (mines, refining, cells, packs, shredding, recovery, refining, "
        "second-generation cells). Done when every document the in-memory ledger "
        "(`streams.domain.local.LocalLedger`) publishes for the same events is on its topic and "
        "equal to it: a run that never gets there fails loudly with the differing keys.",
        [worker],
        {"events per run": len(runs[0][0].records), "documents after all runs": len(runs[-1][1])},
        [Target(worker.name, TARGET_PER_WORKER, True, TARGET_SOURCE)],
    )


def mirror(sizes: Sizes, repeat: int, backend: str, progress: Progress) -> Figure:
    from bench import copying

    n = sizes.mirror_events
    agent = events_per_s("mirror_events_per_s", "mirror agent")
    raw = events_per_s("raw_copy_events_per_s", "raw copy")
    for i in range(repeat):
        progress.show(f"mirror, run {i + 1}/{repeat}")
        try:
            rate, copy = copying.mirror_once(n, backend)
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
        [Target(agent.name, TARGET_PER_WORKER, True, TARGET_SOURCE)],
        ratio_to=raw.name,
    )


def sdk(sizes: Sizes, repeat: int, backend: str, progress: Progress) -> Figure:
    from bench import copying

    n = sizes.sdk_events
    publish = events_per_s("sdk_events_per_s", "SDK publish(event)")
    raw = events_per_s("raw_produce_events_per_s", "raw produce")
    for i in range(repeat):
        progress.show(f"sdk, run {i + 1}/{repeat}")
        try:
            rate, copy = copying.sdk_once(n, backend)
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
        ratio_to=raw.name,
    )


def latency(sizes: Sizes, repeat: int, backend: str, progress: Progress) -> Figure:
    from bench import latency as timing

    p50 = Measure("latency_p50_ms", "p50, produce -> passport", "ms")
    p99 = Measure("latency_p99_ms", "p99, produce -> passport", "ms")
    achieved = Measure("latency_achieved_events_per_s", "achieved produce rate", "events/s")
    seconds = sizes.latency_seconds
    try:
        windows = timing.measure(
            sizes.latency_batteries, LATENCY_RATE, seconds, repeat, backend, progress
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
        f"a held {LATENCY_RATE:,.0f}/s for {seconds:.1f} s per run (consecutive runs on one "
        "worker, each drained before the next); each timed from its produce call to the first "
        "passport record showing it (or a later reading of the same battery).",
        [p50, p99, achieved],
        {"seconds per run": f"{seconds:.1f}", "batteries": sizes.latency_batteries},
    )


def recovery_figure(sizes: Sizes, repeat: int, backend: str, progress: Progress) -> Figure:
    n = sizes.recovery_batteries
    seconds = Measure("recovery_1m_batteries_s", "start -> /readyz", "s")
    rss = Measure("peak_rss_1m_batteries_mb", "peak RSS (VmHWM)", "MB")
    for i in range(repeat):
        progress.show(f"recovery, run {i + 1}/{repeat}")
        run = recovery.measure(n, backend, progress)
        if run.missing is not None or run.seconds is None:
            seconds.missing = rss.missing = run.missing or "no answer"
            break
        seconds.runs.append(run.seconds)
        if run.peak_rss_mb is not None:
            rss.runs.append(run.peak_rss_mb)
    return Figure(
        "recovery",
        "Recovery of a worker with a million batteries",
        f"`{recovery.STATE_TOPIC}` filled directly with {n:,} battery states and their lots' "
        "states (real states from the in-memory ledger, ids varied), then a fresh worker "
        "(`--store rocksdb`, empty data dir) timed from process start to `/readyz` 200; peak RSS "
        "from `/proc/<pid>/status` VmHWM.",
        [seconds, rss],
        {"batteries": n},
    )


FIGURES: dict[str, Callable[[Sizes, int, str, Progress], Figure]] = {
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
    began = time.monotonic()
    figures = []
    for name in args.only.split(","):
        progress.prefix = f"[{name}] "
        figure = FIGURES[name](sizes, args.repeat, args.backend, progress)
        figures.append(figure)
        for m in figure.measures:
            stats = m.stats
            shown = (
                f"median {stats.median:,.1f} {m.unit} (min {stats.low:,.1f}, max {stats.high:,.1f})"
                if stats
                else f"missing: {m.missing}"
            )
            progress.done(f"{m.label}: {shown}")
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
    progress.done(f"{report.wall_seconds:,.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())

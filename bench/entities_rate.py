"""In-process cost of the entity stage (:func:`streams.domain.engine.process_batch`), no broker.

    python bench/entities_rate.py [--workload telemetry|loops|both] [--repeat R] [--profile]

What a batch runtime pays per event once the events are routed: apply the messages, recompute
what changed, decide what to publish, and encode every touched state (``encode_state``) for
its changelog. States are kept decoded in memory between batches, as the runtime keeps them;
``--decode`` also round-trips them through MessagePack each batch (a cold cache).

telemetry  K batteries manufactured and their maker certified (not timed), then N
           state-of-health reports over them (the ``processors_rate`` generator), routed in
           batches of 5,000 events; timed: ``process_batch`` per batch plus encoding the
           touched states. Cost per report.
loops      random closed loops (``processors_rate``'s generator), routed in batches of 5,000
           events; every message delivered until none are left (all hops), batches of at most
           5,000 messages. ``--local`` passes ``local=lambda key: True`` so that a batch's
           follow-up messages are applied in the same call. Cost per event.

``--profile`` runs the chosen workload once under cProfile and prints the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' scenario generator

from bench.processors_rate import loops, telemetry  # noqa: E402
from schemas.events import Event  # noqa: E402
from streams.domain.codec import decode_state, encode_state  # noqa: E402
from streams.domain.engine import process_batch  # noqa: E402
from streams.domain.entities import Config  # noqa: E402
from streams.domain.messages import Addressed  # noqa: E402
from streams.domain.routing import route_batch  # noqa: E402
from streams.domain.states import State  # noqa: E402

BATCH = 5_000


def routed(events: list[Event], size: int = BATCH) -> list[list[Addressed]]:
    return [route_batch(events[i : i + size]) for i in range(0, len(events), size)]


class Store:
    """States by key, in memory; with ``decode``, kept as MessagePack bytes instead."""

    def __init__(self, decode: bool) -> None:
        self.decode = decode
        self.states: dict[str, State] = {}
        self.bytes: dict[str, bytes] = {}

    def load(self, key: str) -> State | None:
        if self.decode:
            data = self.bytes.get(key)
            return None if data is None else decode_state(key, data)
        return self.states.get(key)

    def save(self, states: dict[str, State]) -> None:
        for key, state in states.items():
            data = encode_state(state)  # what the changelog gets, paid in either mode
            if self.decode:
                self.bytes[key] = data
            else:
                self.states[key] = state


def drain(
    store: Store, queue: list[Addressed], local: Callable[[str], bool] | None
) -> tuple[int, int]:
    """Deliver ``queue`` and every message it causes; return (calls, documents published)."""
    calls = published = 0
    while queue:
        batch, queue = queue[:BATCH], queue[BATCH:]
        if local is None:
            states, fx = process_batch(batch, store.load, 0, Config())
        else:
            states, fx = process_batch(batch, store.load, 0, Config(), local=local)
        store.save(states)
        queue.extend(fx.messages)
        calls += 1
        published += len(fx.published)
    return calls, published


def run_telemetry(
    keys: int, reports: int, decode: bool, local: bool, profiler: cProfile.Profile | None = None
) -> float:
    """µs per state-of-health report."""
    events = telemetry(keys + 1 + reports, keys)  # +1: the maker's certification
    setup, timed = events[: keys + 1], events[keys + 1 :]
    store = Store(decode)
    everywhere = (lambda key: True) if local else None
    drain(store, route_batch(setup), everywhere)
    batches = routed(timed)
    if profiler is not None:
        profiler.enable()
    start = time.process_time()
    for batch in batches:
        drain(store, batch, everywhere)
    elapsed = time.process_time() - start
    if profiler is not None:
        profiler.disable()
    return elapsed / len(timed) * 1e6


def run_loops(n: int, decode: bool, local: bool, profiler: cProfile.Profile | None = None) -> float:
    """µs per loops event, all hops."""
    events = loops(n)
    batches = routed(events)
    store = Store(decode)
    everywhere = (lambda key: True) if local else None
    if profiler is not None:
        profiler.enable()
    start = time.process_time()
    for batch in batches:
        drain(store, batch, everywhere)
    elapsed = time.process_time() - start
    if profiler is not None:
        profiler.disable()
    return elapsed / len(events) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=["telemetry", "loops", "both"], default="both")
    parser.add_argument("--keys", type=int, default=20_000, help="telemetry: batteries")
    parser.add_argument("--reports", type=int, default=50_000, help="telemetry: health reports")
    parser.add_argument("--events", type=int, default=10_000, help="loops: events")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; all are printed")
    parser.add_argument("--decode", action="store_true", help="decode states from bytes")
    parser.add_argument("--local", action="store_true", help="apply local follow-ups in-call")
    parser.add_argument("--profile", action="store_true", help="cProfile one run")
    args = parser.parse_args()
    chosen = ["telemetry", "loops"] if args.workload == "both" else [args.workload]
    for workload in chosen:

        def once(workload: str = workload, profiler: cProfile.Profile | None = None) -> float:
            if workload == "telemetry":
                return run_telemetry(args.keys, args.reports, args.decode, args.local, profiler)
            return run_loops(args.events, args.decode, args.local, profiler)

        if args.profile:
            profiler = cProfile.Profile()
            once(profiler=profiler)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
            continue
        runs = [once() for _ in range(args.repeat)]
        shown = " / ".join(f"{r:.1f}" for r in runs)
        print(f"{workload:9} {shown} µs per event (best {min(runs):.1f})")


if __name__ == "__main__":
    main()

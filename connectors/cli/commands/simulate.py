"""The ``simulate`` command: a seeded two-region supply chain."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from connectors.cli.options import (
    Subcommands,
    add_simulation_options,
    command,
)
from connectors.settings import Settings, parse_overrides
from schemas.values import Region


def cmd_simulate(args: argparse.Namespace, out: TextIO) -> int:
    from connectors.ingest.simulator import jsonl_lines, publish, simulate

    sim = simulate(args.batteries, args.years, args.seed, args.bad_share)
    if args.publish:
        settings = Settings.from_env()
        overrides = parse_overrides(args.overrides)
        configs = {r: settings.client_config(r, overrides) for r in Region}
        result = publish(sim, configs, err=sys.stderr)
        out.write(
            f"published {sum(result.events.values())} events and "
            f"{sum(result.bad.values())} bad records: "
            + ", ".join(f"{r} {result.events[r]}+{result.bad[r]}" for r in result.events)
            + "\n"
        )
        return 0
    target = sys.stdout if args.out in (None, Path("-")) else args.out.open("w", encoding="utf-8")
    try:
        lines = 0
        for line in jsonl_lines(sim):
            target.write(line + "\n")
            lines += 1
    finally:
        if target is not sys.stdout:
            target.close()
    print(
        f"wrote {lines} lines: {len(sim.events)} events, {lines - len(sim.events)} invalid "
        f"(bad records that are not Avro have no line)",
        file=sys.stderr,
    )
    return 0


def register(sub: Subcommands) -> None:
    simulate = command(
        sub,
        "simulate",
        "generate a realistic two-region supply chain (JSONL, or publish it)",
        cmd_simulate,
        description=(
            "A seeded, deterministic closed loop in each region: certified and uncertified "
            "operators, mines inside and outside the alliance, refining of mined and recovered "
            "material, packs made and shipped, earlier batteries collected and shredded into "
            "black mass (pre- and post-consumer), recovery, and one black-mass lot exported out "
            "of the alliance. And loops across the border both ways: packs made in one region "
            "are sold, collected and recycled in the other; recovered nickel, cobalt and lithium "
            "and a black-mass lot go back (inside the alliance: no outflow) and are refined with "
            "virgin material into new packs of the maker's region (model <region>-PACK-NMC811-X). "
            "A minority of bad records is included. Writes JSON Lines (to "
            "--out or stdout), or with --publish sends every event to its region's cluster "
            "(BATTERYLOOP_EU_BOOTSTRAP, BATTERYLOOP_JP_BOOTSTRAP) and the bad records as they are."
        ),
    )
    add_simulation_options(simulate)
    simulate.add_argument(
        "--bad-share", type=float, default=0.02, help="bad records per event (default 0.02)"
    )
    target = simulate.add_mutually_exclusive_group()
    target.add_argument("--out", type=Path, help="JSONL file to write (default: stdout)")
    target.add_argument("--publish", action="store_true", help="publish to both clusters")
    simulate.add_argument(
        "-X",
        dest="overrides",
        action="append",
        metavar="PROP=VALUE",
        default=[],
        help="librdkafka property for the producers (repeatable)",
    )

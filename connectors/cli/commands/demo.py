"""The ``demo`` command: the embedded two-region system end to end."""

from __future__ import annotations

import argparse
from typing import TextIO

from connectors.cli.options import (
    Subcommands,
    add_simulation_options,
    command,
)


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    from connectors.cli.demo import run_demo
    from connectors.kafka.embedded import exit_on_sigterm

    exit_on_sigterm()
    try:
        return run_demo(
            args.backend,
            out,
            as_json=args.json,
            batteries=args.batteries,
            years=args.years,
            seed=args.seed,
            timeout=args.timeout,
            serve=args.serve,
        )
    except KeyboardInterrupt:
        out.write("\ninterrupted; brokers stopped\n")
        return 130


def register(sub: Subcommands) -> None:
    from connectors.kafka.embedded import BACKENDS, DEFAULT_BACKEND

    demo = command(
        sub,
        "demo",
        "run the embedded two-region system end to end",
        cmd_demo,
        description=(
            "Start an embedded broker for each region, create the topics, run the stream "
            "processors of each region and the mirror in both directions, publish a simulated "
            "supply chain (batteryloop simulate) with its bad records, wait until everything is "
            "processed and print a summary: passports, recycled content against the 2031/2036 "
            "minimums, recovery against the 2027/2031 targets, alerts, dead letters, and what "
            "the mirrors shared, filtered and redacted each way. Progress goes to stderr. "
            "With --serve it then keeps both regions running and prints their dashboard URLs "
            "until Ctrl-C. Leaves no process running when it exits, also on Ctrl-C."
        ),
    )
    add_simulation_options(demo)
    demo.add_argument(
        "--timeout", type=float, default=300.0, help="give up waiting after this many seconds"
    )
    demo.add_argument(
        "--backend",
        choices=sorted(BACKENDS),
        default=DEFAULT_BACKEND,
        help=f"embedded broker (default {DEFAULT_BACKEND})",
    )
    demo.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    demo.add_argument(
        "--serve",
        action="store_true",
        help="after the summary, keep both regions running and print the URL of each region's "
        "dashboard (served by its processors) until Ctrl-C",
    )

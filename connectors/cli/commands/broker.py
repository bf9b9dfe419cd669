"""The ``broker`` command: one embedded Kafka-protocol broker in the foreground."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TextIO

from connectors.cli.options import (
    Subcommands,
    command,
    region_arg,
)


def cmd_broker(args: argparse.Namespace, out: TextIO) -> int:
    from connectors.kafka.embedded import EmbeddedBroker, exit_on_sigterm

    exit_on_sigterm()
    broker = EmbeddedBroker(args.region, args.backend, port=args.port, data_dir=args.data_dir)
    with broker:
        out.write(
            f"{args.backend} broker for {args.region.value} listening on {broker.bootstrap} "
            f"(pid {broker.pid})\n"
            f"  export BATTERYLOOP_{args.region.value}_BOOTSTRAP={broker.bootstrap}\n"
            "Ctrl-C stops it.\n"
        )
        out.flush()
        try:
            while broker.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            out.write("stopping\n")
            return 0
    out.write(f"broker exited unexpectedly:\n{broker.log_tail()}\n")
    return 1


def register(sub: Subcommands) -> None:
    from connectors.kafka.embedded import BACKENDS, DEFAULT_BACKEND

    broker = command(
        sub,
        "broker",
        "run one embedded Kafka-protocol broker in the foreground",
        cmd_broker,
        description=(
            "Run an embedded broker for one region on 127.0.0.1 until Ctrl-C. For development "
            "and tests; production runs Apache Kafka."
        ),
    )
    broker.add_argument("--region", type=region_arg, required=True, help="eu or jp")
    broker.add_argument(
        "--backend",
        choices=sorted(BACKENDS),
        default=DEFAULT_BACKEND,
        help=f"which embedded broker (default {DEFAULT_BACKEND})",
    )
    broker.add_argument("--port", type=int, help="port to listen on (default: a free one)")
    broker.add_argument(
        "--data-dir",
        type=Path,
        help="noida only: keep data here across restarts (default: a temp dir)",
    )

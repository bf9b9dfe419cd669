"""The ``produce`` and ``csv-columns`` commands: publish event files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from connectors.cli.options import (
    Subcommands,
    add_cluster_options,
    command,
    connect_timeout,
)
from connectors.settings import Settings, parse_overrides
from schemas.values import Region


def cmd_produce(args: argparse.Namespace, out: TextIO) -> int:
    from connectors.ingest.publishing import RegionMismatch, publish_file
    from schemas.events import EVENT_MODELS

    settings = Settings.from_env()
    overrides = parse_overrides(args.overrides)

    def config_for(region: Region) -> dict[str, str]:
        if args.region is not None and region != args.region:
            raise RegionMismatch(
                f"event of region {region.value}, but this run publishes to "
                f"{args.region.value} only"
            )
        return settings.client_config(region, overrides, bootstrap=args.bootstrap)

    if args.bootstrap and args.region is None:
        raise ValueError("--bootstrap names one cluster: give --region with it")
    csv = args.format == "csv" or (args.format is None and str(args.file).endswith(".csv"))
    if args.event_type is not None and args.event_type not in EVENT_MODELS:
        raise ValueError(f"--event-type: no such event type (known: {', '.join(EVENT_MODELS)})")
    report = publish_file(
        args.file,
        config_for,
        registry_url=settings.schema_registry_url,
        rejects_path=args.rejects,
        err=sys.stderr,
        csv=csv,
        event_type=args.event_type,
        connect_timeout=connect_timeout(args, settings),
    )
    out.write(report.summary() + "\n")
    return 0 if report.ok else 1


def cmd_csv_columns(args: argparse.Namespace, out: TextIO) -> int:
    from connectors.ingest.files import CSV_RULES, csv_header
    from schemas.events import EVENT_MODELS

    if args.event_type not in EVENT_MODELS:
        raise ValueError(
            f"no such event type {args.event_type!r} (known: {', '.join(EVENT_MODELS)})"
        )
    out.write(CSV_RULES + "\n\n" + ",".join(csv_header(args.event_type, args.items)) + "\n")
    return 0


def register(sub: Subcommands) -> None:
    produce = command(
        sub,
        "produce",
        "publish JSON Lines or CSV events to their topics",
        cmd_produce,
        description=(
            "Publish a JSONL file of events (one pydantic-JSON event per line; '-' reads stdin), "
            "or a CSV file (see csv-columns). "
            "Each event goes to its event type's topic, keyed by its lot or battery id, on the "
            "cluster of its region (or of --region, which then rejects events of the other "
            "region). Invalid lines (not UTF-8, not JSON, not a valid event) are reported with "
            "their line number and reason and the rest are still published; the exit code is 1 "
            "if any line failed, 2 if the file cannot be opened or a cluster is unreachable or "
            "not configured (what was queued by then is delivered and reported first)."
        ),
    )
    add_cluster_options(produce, region_required=False)
    produce.add_argument("file", help="JSONL or CSV file, or - for standard input")
    produce.add_argument(
        "--format",
        choices=["jsonl", "csv"],
        help="input format (default: csv for a .csv file, else jsonl)",
    )
    produce.add_argument(
        "--event-type",
        help="CSV: the event type of every row, when the file has no event_type column; "
        "'batteryloop csv-columns TYPE' lists a type's columns",
    )
    produce.add_argument(
        "--connect-timeout",
        type=float,
        metavar="SECONDS",
        help="report a cluster unreachable (exit 2) if it does not answer within this long "
        "before its first event (default: BATTERYLOOP_CONNECT_TIMEOUT, else 10)",
    )
    produce.add_argument(
        "--rejects",
        type=Path,
        help="also write rejected lines, with the reason, to this JSONL file",
    )

    columns = command(
        sub,
        "csv-columns",
        "print the CSV columns of an event type (for produce FILE.csv)",
        cmd_csv_columns,
    )
    columns.add_argument("event_type", help="extraction, refining, manufacture, ...")
    columns.add_argument(
        "--items", type=int, default=1, help="columns for this many entries of each list"
    )

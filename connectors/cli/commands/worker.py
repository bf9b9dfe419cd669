"""The ``worker`` command: the stream processors of one region."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from connectors.cli.options import (
    Subcommands,
    add_cluster_options,
    client_config,
    command,
    connect_timeout,
    positive_float,
    positive_int,
)
from connectors.settings import Settings


def cmd_worker(args: argparse.Namespace, out: TextIO) -> int:
    import logging

    from connectors.kafka.admin import create_missing
    from schemas.topics import ALL_TOPICS, mirrored_topics
    from streams.worker.app import WorkerOptions, run_worker

    settings = Settings.from_env()
    config = client_config(args, args.region, settings)
    # The partner's mirrored topics too: the worker reads them before any mirror has run.
    partner = args.region.partner.value
    created, states = create_missing(
        config,
        [*ALL_TOPICS, *mirrored_topics(partner)],
        connect_timeout=connect_timeout(args, settings),
    )
    problems = [p for s in states for p in s.problems]
    for problem in problems:
        out.write(f"topic problem: {problem}\n")
    if created:
        out.write(f"created {len(created)} topic(s)\n")
    out.flush()
    logging.basicConfig(
        level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    options = WorkerOptions(
        region=args.region,
        bootstrap=config["bootstrap.servers"],
        store=args.store,
        data_dir=args.data_dir,
        web_port=args.web_port,
        web_host=args.web_host,
        grace_seconds=args.grace_seconds,
        tick_seconds=min(5.0, max(0.5, args.grace_seconds / 4)),
        session_timeout=args.session_timeout,
        rebalance_timeout=args.rebalance_timeout,
        assignment_timeout=args.assignment_timeout,
        instance_id=args.instance_id,
        batch_size=args.batch_size,
        commit_interval=args.commit_interval,
        schema_registry_url=settings.schema_registry_url,
        passport_base_url=args.passport_base_url or settings.passport_base_url,
        kafka={k: v for k, v in config.items() if k != "bootstrap.servers"},
    )
    run_worker(options)
    return 0


def register(sub: Subcommands) -> None:
    worker = command(
        sub,
        "worker",
        "run the stream processors for one region",
        cmd_worker,
        description=(
            "Run the stream processors (a batch loop, one member of the region's consumer "
            "group batteryloop-<region>-worker) against one region's cluster, "
            "over the region's own events and the partner region's events mirrored to it "
            "(<partner>.batteryloop.events.*, created if missing): battery passports, lot "
            "genealogy with mass balance, recycled-content and recovery-efficiency tallies, "
            "and alerts, published to compacted topics. Creates "
            "missing registry topics first. Serves read-only views on --web-port: "
            "/passports/ID, /lots/ID, /operators/ID, /tallies/recycled-content, "
            "/tallies/recovery-efficiency, /tallies/disclosure, /metrics (Prometheus), "
            "/healthz (whether it holds partitions), /readyz (partitions held and their "
            "states restored). Start more workers with the same --region to split the "
            "partitions; each keeps the states of its partitions in its --store and the "
            "changelog topic batteryloop.internal.state. "
            "Stops cleanly on SIGTERM or Ctrl-C, committing its last window."
        ),
    )
    add_cluster_options(worker)
    worker.add_argument(
        "--store",
        choices=["rocksdb", "memory"],
        default="rocksdb",
        help="state store: rocksdb (default, on disk under --data-dir, survives restarts "
        "and kill -9; only the changelog's tail is read back) or memory (rebuilt from the "
        "changelog at every start)",
    )
    worker.add_argument(
        "--instance-id",
        default=None,
        help="static consumer-group member id (group.instance.id), one per worker, stable "
        "across its restarts (a StatefulSet pod name, say): restarted within the session "
        "timeout, the worker takes its partitions back without a rebalance. Default: none, a "
        "dynamic member",
    )
    worker.add_argument(
        "--batch-size",
        type=positive_int,
        default=5000,
        help="records taken per poll (default %(default)s)",
    )
    worker.add_argument(
        "--commit-interval",
        type=positive_float,
        default=0.1,
        help="seconds between commits: changed states to the changelog, documents published, "
        "offsets committed; the bound on how long a change waits before it shows "
        "(default %(default)s)",
    )
    worker.add_argument(
        "--data-dir",
        type=Path,
        default=Path("batteryloop-data"),
        help="where the worker keeps its RocksDB state stores (default %(default)s)",
    )
    worker.add_argument(
        "--web-port", type=int, default=6066, help="HTTP views (default %(default)s)"
    )
    worker.add_argument(
        "--web-host", default="127.0.0.1", help="HTTP bind address (default %(default)s)"
    )
    worker.add_argument(
        "--passport-base-url",
        default=None,
        help="base of the passports' resolvable URLs, as their QR codes hold them "
        "(default: BATTERYLOOP_PASSPORT_BASE_URL, else http://127.0.0.1:6066); the views "
        "answer <base>/passport/ID and, for a passport with a GTIN, <base>/01/GTIN/21/ID",
    )
    worker.add_argument(
        "--grace-seconds",
        type=float,
        default=3600.0,
        help="how long a reference to an unknown lot or battery, or an event from an "
        "uncertified operator, waits for the missing event before it is alerted "
        "(default %(default)s)",
    )
    worker.add_argument(
        "--session-timeout",
        type=float,
        default=10.0,
        help="consumer group session timeout in seconds (default %(default)s)",
    )
    worker.add_argument(
        "--rebalance-timeout",
        type=float,
        default=60.0,
        help="how long a rebalance waits for members to rejoin, in seconds (default %(default)s)",
    )
    worker.add_argument(
        "--assignment-timeout",
        type=float,
        default=30.0,
        help="seconds the worker may wait for its partitions before it logs a warning and "
        "/healthz answers 503 (default %(default)s)",
    )
    worker.add_argument(
        "--loglevel", default="warning", choices=["debug", "info", "warning", "error"]
    )

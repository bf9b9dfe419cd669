"""The ``batteryloop`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from confluent_kafka import KafkaException

from connectors.settings import Settings, parse_overrides
from schemas.values import Region

if TYPE_CHECKING:
    from connectors.kafka.admin import TopicState

EPILOG = """\
Environment: BATTERYLOOP_EU_BOOTSTRAP, BATTERYLOOP_JP_BOOTSTRAP name the two clusters;
BATTERYLOOP_SCHEMA_REGISTRY_URL switches to the Confluent wire format; BATTERYLOOP_KAFKA_<PROP>
(and BATTERYLOOP_EU_KAFKA_<PROP>, BATTERYLOOP_JP_KAFKA_<PROP>) pass librdkafka properties,
dots as underscores. -X property=value on a command overrides them all.
"""


def _region(value: str) -> Region:
    try:
        return Region(value.upper())
    except ValueError:
        raise argparse.ArgumentTypeError(f"region must be eu or jp, not {value!r}") from None


def _add_cluster_options(parser: argparse.ArgumentParser, region_required: bool = True) -> None:
    parser.add_argument(
        "--region",
        type=_region,
        required=region_required,
        help="which region's cluster: eu (Catena-X side) or jp (Ouranos side)",
    )
    parser.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        help="bootstrap servers (default: BATTERYLOOP_<REGION>_BOOTSTRAP)",
    )
    parser.add_argument(
        "-X",
        dest="overrides",
        action="append",
        metavar="PROP=VALUE",
        default=[],
        help="librdkafka property for the client, e.g. -X security.protocol=SASL_SSL (repeatable)",
    )


def _add_simulation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batteries", type=int, default=100, help="new packs per region")
    parser.add_argument("--years", type=int, default=1, help="years of production from 2031")
    parser.add_argument("--seed", type=int, default=2031, help="same seed, same events")


def _client_config(args: argparse.Namespace, region: Region) -> dict[str, str]:
    return Settings.from_env().client_config(
        region, parse_overrides(args.overrides), bootstrap=args.bootstrap
    )


# --- broker ---------------------------------------------------------------------------------


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


# --- topics ---------------------------------------------------------------------------------


def cmd_topics_create(args: argparse.Namespace, out: TextIO) -> int:
    from connectors.kafka.admin import create_missing

    created, states = create_missing(
        _client_config(args, args.region), replication_factor=args.replication_factor
    )
    for name in created:
        out.write(f"created {name}\n")
    return _report_states(states, out, quiet_ok=True)


def cmd_topics_list(args: argparse.Namespace, out: TextIO) -> int:
    from connectors.kafka.admin import describe

    return _report_states(describe(_client_config(args, args.region)), out, quiet_ok=False)


def _report_states(states: Sequence[TopicState], out: TextIO, quiet_ok: bool) -> int:
    bad = 0
    for state in states:
        bad += bool(state.problems)
        if state.problems:
            out.write(f"{state.spec.name}: {'; '.join(state.problems)}\n")
        elif not quiet_ok:
            out.write(
                f"{state.spec.name:42} {state.partitions:3} partitions  "
                f"cleanup.policy={state.cleanup_policy or '?':8} key: {state.spec.key}\n"
            )
    if quiet_ok:
        out.write(f"{len(states) - bad} of {len(states)} registry topics as the registry says\n")
    return 1 if bad else 0


# --- produce --------------------------------------------------------------------------------


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
        raise SystemExit("--bootstrap names one cluster: give --region with it")
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
    )
    out.write(report.summary() + "\n")
    return 0 if report.ok else 1


# --- schemas --------------------------------------------------------------------------------


def cmd_schemas_check(args: argparse.Namespace, out: TextIO) -> int:
    from connectors.mirror.policy import check_shared_committed
    from schemas import catalog, compatibility

    problems = [
        *catalog.check_committed(),
        *map(str, compatibility.check_all()),
        *check_shared_committed(),
    ]
    for problem in problems:
        out.write(problem + "\n")
    out.write("schemas: ok\n" if not problems else f"schemas: {len(problems)} problem(s)\n")
    return 1 if problems else 0


def cmd_schemas_write(args: argparse.Namespace, out: TextIO) -> int:
    from connectors.mirror.policy import write_shared_committed
    from schemas import catalog

    for path in [*catalog.write_committed(), *write_shared_committed()]:
        out.write(f"wrote {path}\n")
    return cmd_schemas_check(args, out)


# --- demo -----------------------------------------------------------------------------------


def cmd_worker(args: argparse.Namespace, out: TextIO) -> int:
    from connectors.kafka.admin import create_missing
    from streams.worker.app import WorkerOptions, run_worker

    config = _client_config(args, args.region)
    created, states = create_missing(config)
    problems = [p for s in states for p in s.problems]
    for problem in problems:
        out.write(f"topic problem: {problem}\n")
    if created:
        out.write(f"created {len(created)} topic(s)\n")
    out.flush()
    options = WorkerOptions(
        region=args.region,
        bootstrap=config["bootstrap.servers"],
        store="memory://" if args.store == "memory" else "rocksdb://",
        data_dir=str(args.data_dir),
        web_port=args.web_port,
        web_host=args.web_host,
        grace_seconds=args.grace_seconds,
        tick_seconds=min(5.0, max(0.5, args.grace_seconds / 4)),
        session_timeout=args.session_timeout,
        rebalance_timeout=args.rebalance_timeout,
        schema_registry_url=Settings.from_env().schema_registry_url,
        kafka={k: v for k, v in config.items() if k != "bootstrap.servers"},
    )
    run_worker(options, loglevel=args.loglevel)
    return 0


def cmd_mirror(args: argparse.Namespace, out: TextIO) -> int:
    import logging

    from connectors.mirror import policy as sharing
    from connectors.mirror.agent import MirrorOptions, run_mirror
    from schemas.serde import Serde, schema_registry_client

    if args.source == args.target:
        raise ValueError("--source and --target must be different regions")
    settings = Settings.from_env()
    if args.secret_file is not None:
        secret: bytes | None = args.secret_file.read_bytes().strip()
    else:
        secret = settings.sharing_secret
    if not secret:
        raise ValueError(
            "no pseudonymisation secret: give --secret-file FILE or set "
            "BATTERYLOOP_SHARING_SECRET (the data-sharing agreement's shared secret)"
        )
    direction = f"{args.source.value.lower()}-to-{args.target.value.lower()}"
    policy = sharing.load(args.policy or sharing.shipped(direction), secret)
    if (policy.source, policy.target) != (args.source, args.target):
        raise ValueError(f"the policy {args.policy} is for {policy.direction}, not {direction}")
    logging.basicConfig(
        level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, addr=args.metrics_host)
    target_registry = (
        Serde(schema_registry_client(args.target_schema_registry))
        if args.target_schema_registry
        else Serde()
    )
    source_serde = (
        Serde(schema_registry_client(settings.schema_registry_url))
        if settings.schema_registry_url
        else Serde()
    )
    options = MirrorOptions(
        policy=policy,
        source=settings.client_config(
            args.source, parse_overrides(args.source_properties), bootstrap=args.source_bootstrap
        ),
        target=settings.client_config(
            args.target, parse_overrides(args.target_properties), bootstrap=args.target_bootstrap
        ),
        grace=args.grace,
        checkpoint_interval=args.checkpoint_interval,
        source_serde=source_serde,
        target_serde=target_registry,
    )
    out.write(
        f"mirroring {args.source.value} -> {args.target.value} under "
        f"{args.policy or sharing.shipped(direction)}; Ctrl-C stops\n"
    )
    out.flush()
    agent = run_mirror(options)
    t = agent.totals
    out.write(
        f"stopped: {t.mirrored} mirrored, {t.filtered} filtered, {t.redacted} fields redacted, "
        f"{t.skipped} found on the target already\n"
    )
    return 0


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


def cmd_gateway(args: argparse.Namespace, out: TextIO) -> int:
    from connectors.ingest.credentials import load_tokens
    from connectors.ingest.gateway import Gateway, run_gateway, tls_context
    from schemas.serde import Serde, schema_registry_client

    if args.tokens is None and args.client_ca is None:
        raise ValueError("give --tokens FILE (bearer tokens) and/or --client-ca (mTLS)")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    if args.client_ca is not None and args.tls_cert is None:
        raise ValueError("--client-ca needs TLS: give --tls-cert and --tls-key")
    tokens = load_tokens(args.tokens) if args.tokens else None
    settings = Settings.from_env()
    serde = (
        Serde(schema_registry_client(settings.schema_registry_url))
        if settings.schema_registry_url
        else Serde()
    )
    gateway = Gateway(
        args.region,
        _client_config(args, args.region),
        tokens,
        serde,
        delivery_timeout=args.delivery_timeout,
        dedup_capacity=args.dedup_capacity,
        grace=args.grace_seconds,
    )
    context = tls_context(args.tls_cert, args.tls_key, args.client_ca) if args.tls_cert else None
    scheme = "https" if context else "http"
    out.write(
        f"gateway for {args.region.value} on {scheme}://{args.host}:{args.port} "
        f"({len(tokens.grants) if tokens else 0} tokens"
        f"{', client certificates' if args.client_ca else ''}); "
        f"OpenAPI at /openapi.json; Ctrl-C stops\n"
    )
    out.flush()
    run_gateway(gateway, args.host, args.port, context)
    return 0


def cmd_csv_columns(args: argparse.Namespace, out: TextIO) -> int:
    from connectors.ingest.files import CSV_RULES, csv_header
    from schemas.events import EVENT_MODELS

    if args.event_type not in EVENT_MODELS:
        raise ValueError(
            f"no such event type {args.event_type!r} (known: {', '.join(EVENT_MODELS)})"
        )
    out.write(CSV_RULES + "\n\n" + ",".join(csv_header(args.event_type, args.items)) + "\n")
    return 0


def cmd_passport(args: argparse.Namespace, out: TextIO) -> int:
    import json
    from datetime import UTC, datetime

    from connectors.kafka.consume import latest_by_key
    from schemas.topics import DOCUMENT_TOPICS
    from streams.domain.entities import operator_certified
    from streams.domain.quantities import micros

    config = _client_config(args, args.region)
    key = args.battery_id.encode()
    found = latest_by_key(config, DOCUMENT_TOPICS["passports"].name, [key], timeout=args.timeout)
    if found.get(key) is None:
        print(
            f"batteryloop: no passport for battery {args.battery_id} in the "
            f"{args.region.value} cluster",
            file=sys.stderr,
        )
        return 1
    passport = json.loads(found[key])
    manufacturer = passport["manufacturer_id"].encode()
    operators = latest_by_key(config, DOCUMENT_TOPICS["operators"].name, [manufacturer])
    operator = operators.get(manufacturer)
    certifications = None if operator is None else json.loads(operator)
    made = micros(datetime.fromisoformat(passport["manufactured_at"]))
    passport["manufacturer_certified"] = operator_certified(
        certifications, micros(datetime.now(UTC))
    )
    passport["manufacturer_certified_at_manufacture"] = operator_certified(certifications, made)
    if args.format == "catenax":
        from connectors.exports.passport import catenax_battery_pass

        out.write(json.dumps(catenax_battery_pass(passport), indent=2) + "\n")
    elif args.format == "ouranos-cfp":
        from connectors.exports.passport import ouranos_cfp

        entries = ouranos_cfp(passport)
        if not entries:
            print(
                f"batteryloop: battery {args.battery_id} has no carbon footprint by lifecycle "
                "stage to express as Ouranos CFP entries",
                file=sys.stderr,
            )
            return 1
        out.write(json.dumps(entries, indent=2) + "\n")
    else:
        out.write(json.dumps(passport, indent=2) + "\n")
    return 0


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
        )
    except KeyboardInterrupt:
        out.write("\ninterrupted; brokers stopped\n")
        return 130


# --- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from connectors.kafka.embedded import BACKENDS, DEFAULT_BACKEND

    parser = argparse.ArgumentParser(
        prog="batteryloop",
        description=(
            "Trace EV-battery materials from mine to battery to recycler and back across the "
            "EU (Catena-X) and Japanese (Ouranos) data platforms."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str,
        help_: str,
        run: Callable[[argparse.Namespace, TextIO], int],
        parent: argparse._SubParsersAction[argparse.ArgumentParser] = sub,
        description: str | None = None,
    ) -> argparse.ArgumentParser:
        p = parent.add_parser(
            name,
            help=help_,
            description=description or help_,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(run=run)
        return p

    demo = command(
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
            "Leaves no process running when it exits, also on Ctrl-C."
        ),
    )
    _add_simulation_options(demo)
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

    broker = command(
        "broker",
        "run one embedded Kafka-protocol broker in the foreground",
        cmd_broker,
        description=(
            "Run an embedded broker for one region on 127.0.0.1 until Ctrl-C. For development "
            "and tests; production runs Apache Kafka."
        ),
    )
    broker.add_argument("--region", type=_region, required=True, help="eu or jp")
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

    topics = sub.add_parser(
        "topics",
        help="provision and inspect the registry's topics",
        description="Provision and inspect the topics of the topic registry.",
    )
    topics_sub = topics.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    create = command(
        "create",
        "create missing registry topics (idempotent)",
        cmd_topics_create,
        topics_sub,
        description=(
            "Create every registry topic the cluster lacks, with the registry's partitions and "
            "cleanup policy. Existing topics are left as they are; differences are reported and "
            "make the exit code 1."
        ),
    )
    _add_cluster_options(create)
    create.add_argument("--replication-factor", type=int, help="default: min(3, number of brokers)")
    listing = command(
        "list", "show the registry's topics as the cluster has them", cmd_topics_list, topics_sub
    )
    _add_cluster_options(listing)

    produce = command(
        "produce",
        "publish JSON Lines events to their topics",
        cmd_produce,
        description=(
            "Publish a JSONL file of events (one pydantic-JSON event per line; '-' reads stdin). "
            "Each event goes to its event type's topic, keyed by its lot or battery id, on the "
            "cluster of its region (or of --region, which then rejects events of the other "
            "region). Invalid lines are reported with their line number and reason and the rest "
            "are still published; the exit code is 1 if any line failed."
        ),
    )
    _add_cluster_options(produce, region_required=False)
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
        "--rejects",
        type=Path,
        help="also write rejected lines, with the reason, to this JSONL file",
    )

    worker = command(
        "worker",
        "run the stream processors for one region",
        cmd_worker,
        description=(
            "Run the stream processors (a faust-streaming worker) against one region's cluster: "
            "battery passports, lot genealogy with mass balance, recycled-content and "
            "recovery-efficiency tallies, and alerts, published to compacted topics. Creates "
            "missing registry topics first. Serves read-only views on --web-port: "
            "/passports/ID, /lots/ID, /operators/ID, /tallies/recycled-content, "
            "/tallies/recovery-efficiency, /metrics (Prometheus). Stops cleanly on SIGTERM."
        ),
    )
    _add_cluster_options(worker)
    worker.add_argument(
        "--store",
        choices=["rocksdb", "memory"],
        default="rocksdb",
        help="table store: rocksdb (default, on disk) or memory (rebuilt from changelogs)",
    )
    worker.add_argument(
        "--data-dir",
        type=Path,
        default=Path("batteryloop-data"),
        help="where the worker keeps its RocksDB tables (default ./batteryloop-data)",
    )
    worker.add_argument("--web-port", type=int, default=6066, help="HTTP views (default 6066)")
    worker.add_argument("--web-host", default="127.0.0.1", help="HTTP bind address")
    worker.add_argument(
        "--grace-seconds",
        type=float,
        default=3600.0,
        help="how long a reference to an unknown lot or battery, or an event from an "
        "uncertified operator, waits for the missing event before it is alerted (default 3600)",
    )
    worker.add_argument(
        "--session-timeout",
        type=float,
        default=10.0,
        help="consumer group session timeout in seconds (default 10)",
    )
    worker.add_argument(
        "--rebalance-timeout",
        type=float,
        default=60.0,
        help="how long a rebalance waits for members to rejoin, in seconds (default 60)",
    )
    worker.add_argument(
        "--loglevel", default="warning", choices=["debug", "info", "warning", "error"]
    )

    mirror = command(
        "mirror",
        "republish one region's events to the partner region, filtered and redacted",
        cmd_mirror,
        description=(
            "Mirror the source region's event topics to the target region's cluster under a "
            "data-sharing policy (default: the shipped one for the direction, see "
            "connectors/mirror/policies). Only event types and fields the policy shares cross, "
            "confidential fields never; only events of operators certified in the source "
            "region cross, marked as recognised. Target topics are prefixed with the source "
            "region (eu.batteryloop.events.*) and records carry provenance headers. Exactly "
            "once without broker transactions: the position is recovered from what landed on "
            "the target. Runs until Ctrl-C or SIGTERM; keeps retrying while a cluster is "
            "unreachable."
        ),
    )
    mirror.add_argument("--source", type=_region, required=True, help="region read: eu or jp")
    mirror.add_argument("--target", type=_region, required=True, help="region written: eu or jp")
    mirror.add_argument(
        "--policy", type=Path, help="policy file (TOML; default: the shipped eu-to-jp/jp-to-eu)"
    )
    mirror.add_argument(
        "--secret-file",
        type=Path,
        help="file holding the agreement's pseudonymisation secret, at least 16 bytes "
        "(default: BATTERYLOOP_SHARING_SECRET)",
    )
    mirror.add_argument("--source-bootstrap", metavar="HOST:PORT", help="source cluster")
    mirror.add_argument("--target-bootstrap", metavar="HOST:PORT", help="target cluster")
    mirror.add_argument(
        "-S",
        dest="source_properties",
        action="append",
        default=[],
        metavar="PROP=VALUE",
        help="librdkafka property for the source consumer (repeatable; SASL, TLS, tuning)",
    )
    mirror.add_argument(
        "-T",
        dest="target_properties",
        action="append",
        default=[],
        metavar="PROP=VALUE",
        help="librdkafka property for the target clients (repeatable)",
    )
    mirror.add_argument(
        "--target-schema-registry",
        metavar="URL",
        help="the partner's schema registry: shared schemas are registered there and records "
        "written in the Confluent wire format (default: single-object encoding)",
    )
    mirror.add_argument(
        "--grace",
        type=float,
        default=10.0,
        help="seconds an event of an operator with no known certification waits for one "
        "before it is filtered as uncertified (default 10)",
    )
    mirror.add_argument(
        "--checkpoint-interval",
        type=float,
        default=1.0,
        help="seconds between checkpoints on the target (default 1)",
    )
    mirror.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    mirror.add_argument("--metrics-host", default="127.0.0.1", help="metrics bind address")
    mirror.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])

    simulate = command(
        "simulate",
        "generate a realistic two-region supply chain (JSONL, or publish it)",
        cmd_simulate,
        description=(
            "A seeded, deterministic closed loop in each region: certified and uncertified "
            "operators, mines inside and outside the alliance, refining of mined and recovered "
            "material, packs made and shipped, earlier batteries collected and shredded into "
            "black mass (pre- and post-consumer), recovery, and one black-mass lot exported out "
            "of the alliance. A minority of bad records is included. Writes JSON Lines (to "
            "--out or stdout), or with --publish sends every event to its region's cluster "
            "(BATTERYLOOP_EU_BOOTSTRAP, BATTERYLOOP_JP_BOOTSTRAP) and the bad records as they are."
        ),
    )
    _add_simulation_options(simulate)
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

    gateway = command(
        "gateway",
        "HTTP ingestion: operators POST events as JSON",
        cmd_gateway,
        description=(
            "Serve POST /events and POST /events/batch for one region's cluster. Each operator "
            "authenticates with a bearer token (--tokens: a TOML file with a [tokens] table of "
            '"<token>" = "<operator id>") or a client certificate whose common name is its '
            "operator id (--client-ca, with --tls-cert/--tls-key), and may publish only events "
            "with its own operator_id (403 otherwise, 401 without credentials). Invalid events "
            "get 422 with the validation errors; accepted ones 202 only after the cluster "
            "acknowledged them, 503 with Retry-After if it did not within --delivery-timeout. "
            "Bodies: application/json (an event or an array) or JSON Lines "
            "(application/x-ndjson, application/jsonl), 415 otherwise; batches are answered per "
            "item. Idempotent by event_id: a repeated event is answered 202 from memory "
            "(--dedup-capacity ids) and not published again. SIGTERM stops it within "
            "--grace-seconds. GET /openapi.json describes the API."
        ),
    )
    _add_cluster_options(gateway)
    gateway.add_argument("--tokens", type=Path, help="bearer tokens file (TOML)")
    gateway.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    gateway.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    gateway.add_argument("--tls-cert", type=Path, help="server certificate (PEM) for HTTPS")
    gateway.add_argument("--tls-key", type=Path, help="server private key (PEM)")
    gateway.add_argument(
        "--client-ca", type=Path, help="CA (PEM) whose client certificates authenticate operators"
    )
    gateway.add_argument(
        "--delivery-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="answer 503 if the cluster has not acknowledged an event by then; also the "
        "producer's message.timeout.ms, so an unacknowledged event is never sent later "
        "(default 10)",
    )
    gateway.add_argument(
        "--dedup-capacity",
        type=int,
        default=100_000,
        metavar="EVENT_IDS",
        help="how many recent event ids are remembered to answer repeats idempotently "
        "(default 100000)",
    )
    gateway.add_argument(
        "--grace-seconds",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, wait this long for deliveries in flight, then answer 503 and "
        "exit (default 10)",
    )

    columns = command(
        "csv-columns",
        "print the CSV columns of an event type (for produce FILE.csv)",
        cmd_csv_columns,
    )
    columns.add_argument("event_type", help="extraction, refining, manufacture, ...")
    columns.add_argument(
        "--items", type=int, default=1, help="columns for this many entries of each list"
    )

    passport = command(
        "passport",
        "print a battery's passport as JSON",
        cmd_passport,
        description=(
            "Print the latest passport of a battery from the compacted passports topic, with "
            "whether its manufacturer is certified now (either region's scheme counts). "
            "Exit code 1 if the battery has no passport."
        ),
    )
    _add_cluster_options(passport)
    passport.add_argument("battery_id", help="the battery's id (ISO/IEC 15459 serial)")
    passport.add_argument(
        "--format",
        choices=["json", "catenax", "ouranos-cfp"],
        default="json",
        help="json: batteryloop's passport (default); catenax: shaped after the Catena-X "
        "Battery Pass aspect urn:samm:io.catenax.battery.battery_pass:6.1.0 (only what there "
        "is data for); ouranos-cfp: the carbon footprint as Ouranos CFP entries",
    )
    passport.add_argument(
        "--timeout", type=float, default=60.0, help="give up reading after this many seconds"
    )

    schemas = sub.add_parser(
        "schemas",
        help="check or rewrite the committed Avro schemas",
        description="The Avro contracts under schemas/avro.",
    )
    schemas_sub = schemas.add_subparsers(dest="schemas_command", required=True, metavar="ACTION")
    command(
        "check",
        "models and .avsc files agree; every schema is backward-transitive "
        "compatible with its history",
        cmd_schemas_check,
        schemas_sub,
    )
    command(
        "write",
        "rewrite the .avsc files from the models (never a published version), and the "
        "shipped policies' shared schemas",
        cmd_schemas_write,
        schemas_sub,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args, sys.stdout)
    except (ValueError, RuntimeError) as exc:
        print(f"batteryloop: error: {exc}", file=sys.stderr)
        return 2
    except KafkaException as exc:
        print(f"batteryloop: error: Kafka: {exc.args[0].str()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a command without its own handling: no traceback for Ctrl-C
        print("batteryloop: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())

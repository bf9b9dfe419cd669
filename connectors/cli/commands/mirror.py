"""The ``mirror`` command: republish one region's events to the partner, redacted."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from connectors.cli.options import (
    Subcommands,
    command,
    region_arg,
)
from connectors.settings import Settings, parse_overrides

if TYPE_CHECKING:
    from connectors.mirror.agent import MirrorAgent
    from connectors.telemetry import TelemetryServer


def cmd_mirror(args: argparse.Namespace, out: TextIO) -> int:
    import logging

    from connectors.mirror import policy as sharing
    from connectors.mirror.agent import MirrorAgent, run_mirror
    from connectors.mirror.options import MirrorOptions, parse_partitions
    from schemas.serde import Serde

    partitions = None if args.partitions is None else parse_partitions(args.partitions)
    if args.source == args.target:
        raise ValueError("--source and --target must be different regions")
    settings = Settings.from_env()
    if args.secret_file is not None:
        try:
            secret: bytes | None = args.secret_file.read_bytes().strip()
        except OSError as exc:
            raise ValueError(f"--secret-file {args.secret_file}: {exc.strerror}") from None
    else:
        secret = settings.sharing_secret_bytes()
    if not secret:
        raise ValueError(
            "no pseudonymisation secret: give --secret-file FILE or set "
            "BATTERYLOOP_SHARING_SECRET (the data-sharing agreement's shared secret)"
        )
    direction = sharing.direction(args.source.value, args.target.value)
    policy = sharing.load(args.policy or sharing.shipped(direction), secret)
    if (policy.source, policy.target) != (args.source, args.target):
        raise ValueError(f"the policy {args.policy} is for {policy.direction}, not {direction}")
    logging.basicConfig(
        level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    target_serde = Serde.for_registry(args.target_schema_registry)
    source_serde = Serde.for_registry(settings.schema_registry_url)
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
        target_serde=target_serde,
        partitions=partitions,
    )
    share = "" if partitions is None else f", partitions {','.join(map(str, sorted(partitions)))}"
    out.write(
        f"mirroring {args.source.value} -> {args.target.value}{share} under "
        f"{args.policy or sharing.shipped(direction)}; Ctrl-C stops\n"
    )
    out.flush()
    agent = MirrorAgent(options)
    server = None
    if args.metrics_port is not None:
        server = serve_telemetry(agent, args.metrics_host, args.metrics_port)
    try:
        run_mirror(options, agent=agent)
    finally:
        if server is not None:
            server.stop()
    t = agent.totals
    out.write(
        f"stopped: {t.mirrored} mirrored, {t.filtered} filtered, {t.redacted} fields redacted, "
        f"{t.skipped} found on the target already\n"
    )
    return 0


def serve_telemetry(agent: MirrorAgent, host: str, port: int) -> TelemetryServer:
    """``/metrics``, ``/healthz`` (live while the process runs, whether or not the target is
    reachable: a restart would not reach it sooner) and ``/readyz`` (200 once the position
    is recovered from the target and the source is being read)."""
    from prometheus_client import REGISTRY

    from connectors.telemetry import TelemetryServer

    def live() -> tuple[bool, dict[str, Any]]:
        return True, {"direction": agent.direction, "ready": agent.ready.is_set()}

    def ready() -> tuple[bool, dict[str, Any]]:
        is_ready = agent.ready.is_set()
        return is_ready, {"direction": agent.direction, "ready": is_ready}

    return TelemetryServer(REGISTRY, live, ready, host, port).start()


def register(sub: Subcommands) -> None:
    from connectors.mirror.options import MirrorOptions

    mirror = command(
        sub,
        "mirror",
        "republish one region's events to the partner region, filtered and redacted",
        cmd_mirror,
        description=(
            "Mirror the source region's event topics to the target region's cluster under a "
            "data-sharing policy (default: the shipped one for the direction, see "
            "connectors/mirror/policies). Only event types and fields the policy shares cross, "
            "confidential fields never; only events of operators certified under either "
            "region's scheme cross (mutual recognition), marked with the certificate that "
            "recognised them. Target topics are prefixed with the source "
            "region (eu.batteryloop.events.*) and records carry provenance headers. Exactly "
            "once without broker transactions: the position is recovered from what landed on "
            "the target. Runs until Ctrl-C or SIGTERM; keeps retrying while a cluster is "
            "unreachable."
        ),
    )
    mirror.add_argument("--source", type=region_arg, required=True, help="region read: eu or jp")
    mirror.add_argument("--target", type=region_arg, required=True, help="region written: eu or jp")
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
        default=MirrorOptions.grace,
        help="seconds an event of an operator with no known certification waits for one "
        "before it is filtered as uncertified (default %(default)s)",
    )
    mirror.add_argument(
        "--checkpoint-interval",
        type=float,
        default=MirrorOptions.checkpoint_interval,
        help="seconds between checkpoints on the target (default %(default)s)",
    )
    mirror.add_argument(
        "--partitions",
        metavar="LIST",
        help="mirror only these source partitions, e.g. 0,2,4 or 0-2 (default: all), so that "
        "several processes of one direction share the work; each partition's position is "
        "its own checkpoint. Every process still reads all certification partitions for the "
        "gate. Give each process a disjoint share and together all partitions: an overlap or "
        "a gap is not detected (the operator's business); a partition no mirrored topic has "
        "is refused",
    )
    mirror.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus /metrics, /healthz and /readyz (200 once the position is "
        "recovered from the target and the source is read) on this port",
    )
    mirror.add_argument("--metrics-host", default="127.0.0.1", help="metrics bind address")
    mirror.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])

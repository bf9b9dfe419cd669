"""The ``topics`` commands: provision and inspect the registry's topics."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from connectors.cli.options import (
    Subcommands,
    add_cluster_options,
    client_config,
    command,
    connect_timeout,
)
from connectors.settings import Settings

if TYPE_CHECKING:
    from connectors.kafka.admin import TopicState


def cmd_topics_create(args: argparse.Namespace, out: TextIO) -> int:
    from connectors.kafka.admin import create_missing

    settings = Settings.from_env()
    created, states = create_missing(
        client_config(args, args.region, settings),
        replication_factor=args.replication_factor,
        connect_timeout=connect_timeout(args, settings),
    )
    for name in created:
        out.write(f"created {name}\n")
    return report_states(states, out, quiet_ok=True)


def cmd_topics_list(args: argparse.Namespace, out: TextIO) -> int:
    from connectors.kafka.admin import describe

    settings = Settings.from_env()
    config = client_config(args, args.region, settings)
    states = describe(config, connect_timeout=connect_timeout(args, settings))
    return report_states(states, out, quiet_ok=False)


def report_states(states: Sequence[TopicState], out: TextIO, quiet_ok: bool) -> int:
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


def register(sub: Subcommands) -> None:
    topics = sub.add_parser(
        "topics",
        help="provision and inspect the registry's topics",
        description="Provision and inspect the topics of the topic registry.",
    )
    topics_sub = topics.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    create = command(
        topics_sub,
        "create",
        "create missing registry topics (idempotent)",
        cmd_topics_create,
        description=(
            "Create every registry topic the cluster lacks, with the registry's partitions and "
            "cleanup policy. Existing topics are left as they are; differences are reported and "
            "make the exit code 1."
        ),
    )
    add_cluster_options(create)
    create.add_argument("--replication-factor", type=int, help="default: min(3, number of brokers)")
    create.add_argument(
        "--connect-timeout",
        type=float,
        metavar="SECONDS",
        help="report the cluster unreachable (exit 2) after this long "
        "(default: BATTERYLOOP_CONNECT_TIMEOUT, else 10)",
    )
    listing = command(
        topics_sub, "list", "show the registry's topics as the cluster has them", cmd_topics_list
    )
    add_cluster_options(listing)
    listing.add_argument(
        "--connect-timeout",
        type=float,
        metavar="SECONDS",
        help="report the cluster unreachable (exit 2) after this long "
        "(default: BATTERYLOOP_CONNECT_TIMEOUT, else 10)",
    )

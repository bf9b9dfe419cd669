"""The ``passport`` command: one battery's passport, in our or a partner's shape."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from connectors.cli.options import (
    Subcommands,
    add_cluster_options,
    client_config,
    command,
    connect_timeout,
)
from connectors.kafka import clients
from connectors.settings import Settings


def cmd_passport(args: argparse.Namespace, out: TextIO) -> int:
    import json
    from datetime import UTC, datetime

    from connectors.kafka.consume import latest_by_key
    from schemas.topics import DOCUMENT_TOPICS
    from streams.domain.entities import with_certification
    from streams.domain.entities.upstream import describe_missing
    from streams.domain.quantities import micros

    settings = Settings.from_env()
    config = client_config(args, args.region, settings)
    clients.check_reachable(config, connect_timeout(args, settings))
    key = args.battery_id.encode()
    found = latest_by_key(config, DOCUMENT_TOPICS["passports"].name, [key], timeout=args.timeout)
    document = found.get(key)
    if document is None:
        print(
            f"batteryloop: no passport for battery {args.battery_id} in the "
            f"{args.region.value} cluster",
            file=sys.stderr,
        )
        return 1
    passport = json.loads(document)
    # Why a passport is incomplete goes to stderr, so stdout stays the document alone.
    for line in describe_missing(passport):
        print(f"batteryloop: {line}", file=sys.stderr)
    manufacturer = passport["manufacturer_id"].encode()
    operators = latest_by_key(config, DOCUMENT_TOPICS["operators"].name, [manufacturer])
    operator = operators.get(manufacturer)
    manufacturer = None if operator is None else json.loads(operator)
    passport = with_certification(passport, manufacturer, micros(datetime.now(UTC)))
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


def register(sub: Subcommands) -> None:
    passport = command(
        sub,
        "passport",
        "print a battery's passport as JSON",
        cmd_passport,
        description=(
            "Print the latest passport of a battery from the compacted passports topic, with "
            "whether its manufacturer is certified now (either region's scheme counts). "
            "An incomplete passport is explained on stderr: each lot or battery upstream "
            "that never arrived in this cluster, how many hops up, and which region is "
            "expected to supply it. Exit code 1 if the battery has no passport."
        ),
    )
    add_cluster_options(passport)
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

"""The ``passport`` command: one battery's passport, in our or a partner's shape."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from connectors.cli.options import (
    Subcommands,
    add_cluster_options,
    client_config,
    command,
    connect_timeout,
)
from connectors.exports.passport_page import QR_FORMATS
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
    if args.qr is not None and args.qr.suffix.lower() not in QR_FORMATS:
        print(f"batteryloop: --qr {args.qr}: write a .png or an .svg file", file=sys.stderr)
        return 2
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
    if args.qr is not None:
        _write_qr(passport, args.battery_id, settings, args.qr)
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


def _write_qr(passport: dict[str, object], battery_id: str, settings: Settings, path: Path) -> None:
    from connectors.exports.passport_page import write_qr
    from streams.domain.links import passport_url

    # The URL the processors put in the passport; one published before passports carried a
    # URL gets the one the settings give.
    url = passport.get("url")
    if not isinstance(url, str):
        url = passport_url(settings.passport_base_url, battery_id)
    write_qr(url, path)
    print(f"batteryloop: wrote the QR code of {url} to {path}", file=sys.stderr)


def register(sub: Subcommands) -> None:
    passport = command(
        sub,
        "passport",
        "print a battery's passport as JSON, or write its QR code",
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
        "--qr",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write the QR code of the passport's URL to FILE, PNG or SVG by its "
        "extension (.png, .svg); the URL's base is BATTERYLOOP_PASSPORT_BASE_URL",
    )
    passport.add_argument(
        "--timeout", type=float, default=60.0, help="give up reading after this many seconds"
    )

"""What the commands share: the region and cluster options, the simulation options, and how a
command is declared (name, help, the function that runs it)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TextIO, TypeAlias

from connectors.settings import Settings, parse_overrides
from schemas.values import Region

EPILOG = """\
Environment: BATTERYLOOP_EU_BOOTSTRAP, BATTERYLOOP_JP_BOOTSTRAP name the two clusters;
BATTERYLOOP_SCHEMA_REGISTRY_URL switches to the Confluent wire format; BATTERYLOOP_KAFKA_<PROP>
(and BATTERYLOOP_EU_KAFKA_<PROP>, BATTERYLOOP_JP_KAFKA_<PROP>) pass librdkafka properties,
dots as underscores. A command's own librdkafka options (-X property=value; -S and -T for the
mirror's source and target) override them all.
"""

# argparse exposes no public name for the object add_subparsers() returns
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Run = Callable[[argparse.Namespace, TextIO], int]


def command(
    parent: Subcommands, name: str, help_: str, run: Run, description: str | None = None
) -> argparse.ArgumentParser:
    """Declare a (sub)command whose ``run(args, out)`` returns the exit code."""
    parser: argparse.ArgumentParser = parent.add_parser(
        name,
        help=help_,
        description=description or help_,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(run=run)
    return parser


def positive_int(value: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return number


def positive_float(value: str) -> float:
    """An argparse type: a number of seconds (or other quantity) above 0."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"{value} is not a number above 0")
    return number


def region_arg(value: str) -> Region:
    try:
        return Region(value.upper())
    except ValueError:
        raise argparse.ArgumentTypeError(f"region must be eu or jp, not {value!r}") from None


def add_cluster_options(parser: argparse.ArgumentParser, region_required: bool = True) -> None:
    parser.add_argument(
        "--region",
        type=region_arg,
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


def add_simulation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--batteries",
        type=int,
        default=100,
        help="new packs per region (the cross-border loops scale with it)",
    )
    parser.add_argument("--years", type=int, default=1, help="years of production from 2031")
    parser.add_argument("--seed", type=int, default=2031, help="same seed, same events")


def client_config(
    args: argparse.Namespace, region: Region, settings: Settings | None = None
) -> dict[str, str]:
    """librdkafka configuration for ``region`` from the settings (the environment, unless the
    command read them already), --bootstrap and -X."""
    return (settings or Settings.from_env()).client_config(
        region, parse_overrides(args.overrides), bootstrap=args.bootstrap
    )


def connect_timeout(args: argparse.Namespace, settings: Settings) -> float:
    """--connect-timeout where the command has it, else BATTERYLOOP_CONNECT_TIMEOUT."""
    return getattr(args, "connect_timeout", None) or settings.connect_timeout

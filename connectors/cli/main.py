"""The ``batteryloop`` command line: the parser, assembled from one module per command
(``connectors/cli/commands/``), and the error handling every command shares."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException

from connectors.cli.commands import (
    broker,
    contracts,
    demo,
    gateway,
    mirror,
    passport,
    produce,
    simulate,
    topics,
    worker,
)
from connectors.cli.options import EPILOG

#: in the order ``--help`` lists them
COMMANDS = (demo, broker, topics, produce, worker, mirror, simulate, gateway, passport, contracts)


def build_parser() -> argparse.ArgumentParser:
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
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args, sys.stdout)
    except (ValueError, RuntimeError) as exc:
        print(f"batteryloop: error: {exc}", file=sys.stderr)
        return 2
    except KafkaException as exc:
        error = exc.args[0] if exc.args else exc
        reason = error.str() if isinstance(error, KafkaError) else str(error)
        print(f"batteryloop: error: Kafka: {reason}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a command without its own handling: no traceback for Ctrl-C
        print("batteryloop: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())

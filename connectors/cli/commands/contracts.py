"""The ``schemas`` commands: check or rewrite the committed Avro contracts."""

from __future__ import annotations

import argparse
from typing import TextIO

from connectors.cli.options import (
    Subcommands,
    command,
)


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


def register(sub: Subcommands) -> None:
    schemas = sub.add_parser(
        "schemas",
        help="check or rewrite the committed Avro schemas",
        description="The Avro contracts under schemas/avro.",
    )
    schemas_sub = schemas.add_subparsers(dest="schemas_command", required=True, metavar="ACTION")
    command(
        schemas_sub,
        "check",
        "models and .avsc files agree; every schema is backward-transitive "
        "compatible with its history",
        cmd_schemas_check,
    )
    command(
        schemas_sub,
        "write",
        "rewrite the .avsc files from the models (never a published version), and the "
        "shipped policies' shared schemas",
        cmd_schemas_write,
    )

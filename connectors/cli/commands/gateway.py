"""The ``gateway`` command: HTTP ingestion."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from connectors.cli.options import (
    Subcommands,
    add_cluster_options,
    client_config,
    command,
)
from connectors.settings import Settings


def cmd_gateway(args: argparse.Namespace, out: TextIO) -> int:
    from connectors.ingest.gateway import Gateway, run_gateway, tls_context
    from connectors.ingest.tokens import load_tokens
    from schemas.serde import Serde

    if args.tokens is None and args.client_ca is None:
        raise ValueError("give --tokens FILE (bearer tokens) and/or --client-ca (mTLS)")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    if args.client_ca is not None and args.tls_cert is None:
        raise ValueError("--client-ca needs TLS: give --tls-cert and --tls-key")
    tokens = load_tokens(args.tokens) if args.tokens else None
    settings = Settings.from_env()
    serde = Serde.for_registry(settings.schema_registry_url)
    gateway = Gateway(
        args.region,
        client_config(args, args.region, settings),
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


def register(sub: Subcommands) -> None:
    gateway = command(
        sub,
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
    add_cluster_options(gateway)
    gateway.add_argument("--tokens", type=Path, help="bearer tokens file (TOML)")
    gateway.add_argument("--host", default="127.0.0.1", help="bind address (default %(default)s)")
    gateway.add_argument("--port", type=int, default=8080, help="port (default %(default)s)")
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
        "(default %(default)s)",
    )
    gateway.add_argument(
        "--dedup-capacity",
        type=int,
        default=100_000,
        metavar="EVENT_IDS",
        help="how many recent event ids are remembered to answer repeats idempotently "
        "(default %(default)s)",
    )
    gateway.add_argument(
        "--grace-seconds",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, wait this long for deliveries in flight, then answer 503 and "
        "exit (default %(default)s)",
    )

"""What the deployment files ask of the ``batteryloop`` command line, read with its real parser:
which command a container runs, the port that command serves HTTP on, and the tools the
offline validations need."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import pytest

from connectors.cli.main import build_parser

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"

# The metric names agreed for the worker, the mirror and the gateway (README, "Stream
# processors", "Mirror agent" and "HTTP ingestion gateway"): the only ones a dashboard may query.
AGREED_METRICS = frozenset(
    {
        "batteryloop_events_processed_total",
        "batteryloop_events_failed_total",
        "batteryloop_dead_letters_total",
        "batteryloop_consumer_lag_records",
        "batteryloop_event_latency_seconds",
        "batteryloop_alerts_raised_total",
        "batteryloop_documents_published_total",
        "batteryloop_entity_messages_total",
        "batteryloop_batch_seconds",
        "batteryloop_state_records_restored_total",
        "batteryloop_state_partitions",
        "batteryloop_mirror_records_total",
        "batteryloop_mirror_filtered_total",
        "batteryloop_mirror_fields_redacted_total",
        "batteryloop_mirror_replication_latency_seconds",
        "batteryloop_mirror_source_lag_records",
        "batteryloop_mirror_target_available",
        "batteryloop_gateway_requests_total",
        "batteryloop_gateway_events_total",
        "batteryloop_gateway_request_seconds",
    }
)
_HISTOGRAM_SERIES = re.compile(r"_(bucket|sum|count)$")
_METRIC = re.compile(r"\bbatteryloop_[a-z0-9_]+")


def parse(argv: Sequence[str], where: str) -> argparse.Namespace:
    """``batteryloop ARGV`` as the real parser reads it; an AssertionError naming ``where`` and
    argparse's own message if it refuses the line."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            return build_parser().parse_args(list(argv))
        except SystemExit:
            pass
    raise AssertionError(f"{where}: batteryloop {' '.join(argv)}: {err.getvalue().strip()}")


def http_endpoint(args: argparse.Namespace) -> tuple[str, int] | None:
    """(bind address, port) of the HTTP server a command serves /metrics on, None if none."""
    match args.command:
        case "worker":
            return args.web_host, args.web_port
        case "mirror":
            return (args.metrics_host, args.metrics_port) if args.metrics_port else None
        case "gateway":
            return args.host, args.port
    return None


def queried_metrics(expr: str) -> set[str]:
    """The batteryloop metric families a PromQL expression reads (histogram series folded)."""
    return {_HISTOGRAM_SERIES.sub("", name) for name in _METRIC.findall(expr)}


def tool(name: str, why: str) -> str:
    """The path of an external validator; in CI (which installs it) its absence fails the
    test, on a developer's machine it skips it, saying what to install."""
    path = shutil.which(name)
    if path:
        return path
    missing(f"{name} not found: {why}")


def missing(message: str) -> NoReturn:
    """A validator is not installed: a failure in CI, a skip saying so elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)

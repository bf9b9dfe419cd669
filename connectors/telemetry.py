"""What every long-running process shows its operators: Prometheus metrics and health.

:class:`BatchHistogram` is a histogram fed a batch of observations at a time: the worker's hot
path handles tens of thousands of events a second, and ``Histogram.observe`` per event (a
lock and a bucket search in Python each) would cost more than the rest of its bookkeeping.

:class:`TelemetryServer` serves ``/metrics``, ``/healthz`` (live) and ``/readyz`` (ready) on one
port from a thread, for a process without a web application of its own (the mirror).
"""

from __future__ import annotations

import json
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

#: Latency buckets (seconds) shared by the worker's and the mirror's latency histograms.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

#: An answer to a health probe: healthy (200) or not (503), and a JSON body saying why.
Probe = Callable[[], tuple[bool, dict[str, Any]]]


def bucket_counts(values: Iterable[float], bounds: Sequence[float]) -> list[int]:
    """How many of ``values`` fall in each bucket, not cumulated: bucket *i* holds the values
    ``bounds[i-1] < v <= bounds[i]``, and one more bucket the values beyond the last bound
    (``prometheus_client.Histogram.observe`` places a value the same way)."""
    ordered = sorted(values)
    # cumulative counts by bisecting the sorted batch at each bound: no Python loop per value
    at_or_below = [bisect_right(ordered, bound) for bound in bounds] + [len(ordered)]
    return [n - (at_or_below[i - 1] if i else 0) for i, n in enumerate(at_or_below)]


class BatchHistogram(Collector):
    """A label-less Prometheus histogram to which a batch of observations is added at once.

    :meth:`add` sorts the batch in C and places it with one pass; the counts are kept as
    ``Histogram`` keeps them, so a scrape reads the same as had every value been observed.
    Register it with ``registry.register(histogram)``.
    """

    def __init__(
        self, name: str, documentation: str, buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> None:
        bounds = [float(b) for b in buckets]
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise ValueError(f"{name}: bucket bounds must increase, not {list(buckets)}")
        self.name, self.documentation = name, documentation
        self.bounds = bounds
        self._counts = [0] * (len(bounds) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()  # add() in the loop's thread, collect() in the server's

    def add(self, values: Sequence[float]) -> None:
        if not values:
            return
        counts = bucket_counts(values, self.bounds)
        total = sum(values)
        with self._lock:
            for i, n in enumerate(counts):
                if n:
                    self._counts[i] += n
            self._sum += total

    def add_ages(self, now_ms: int, stamps_ms: Sequence[int]) -> None:
        """Add the ages in seconds at ``now_ms`` of the millisecond timestamps ``stamps_ms``
        (``add([(now_ms - t) / 1000 for t in stamps_ms])``, without building that list): an
        age is within a bound where its stamp is at or after ``now_ms - bound * 1000``."""
        if not stamps_ms:
            return
        ordered = sorted(stamps_ms)
        n = len(ordered)
        within = [n - bisect_left(ordered, now_ms - bound * 1000) for bound in self.bounds]
        within.append(n)
        total = (n * now_ms - sum(ordered)) / 1000
        with self._lock:
            for i, cumulative in enumerate(within):
                self._counts[i] += cumulative - (within[i - 1] if i else 0)
            self._sum += total

    def count(self) -> int:
        with self._lock:
            return sum(self._counts)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, buckets = 0, []
        for bound, n in zip([*self.bounds, float("inf")], counts, strict=True):
            cumulative += n
            buckets.append((_bound(bound), cumulative))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=total)


def _bound(bound: float) -> str:
    """A bucket's ``le`` as prometheus_client writes it (``0.005``, ``1.0``, ``+Inf``)."""
    return "+Inf" if bound == float("inf") else repr(float(bound))


class TelemetryServer:
    """``/metrics`` of ``registry``, ``/healthz`` and ``/readyz`` answered by ``live`` and
    ``ready``, on ``host:port`` from a daemon thread; anything else is 404."""

    def __init__(
        self, registry: CollectorRegistry, live: Probe, ready: Probe, host: str, port: int
    ) -> None:
        probes = {"/healthz": live, "/readyz": ready}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._answer(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif path in probes:
                    ok, answer = probes[path]()
                    text = json.dumps(answer).encode()
                    self._answer(200 if ok else 503, text, "application/json")
                else:
                    text = json.dumps({"error": f"no such path {path}"}).encode()
                    self._answer(404, text, "application/json")

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # scrapes every few seconds would flood the log

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise RuntimeError(f"cannot serve metrics on {host}:{port}: {exc.strerror}") from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="telemetry", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> TelemetryServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

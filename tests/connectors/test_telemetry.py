"""The batch histogram reads as ``Histogram.observe`` one by one would; the telemetry server
answers its three paths."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from connectors.telemetry import LATENCY_BUCKETS, BatchHistogram, TelemetryServer, bucket_counts

values = st.floats(min_value=-10.0, max_value=1e4, allow_nan=False, allow_infinity=False)
#: bounds that hit the buckets' edges exactly, where < and <= differ
edges = st.sampled_from([float(b) for b in LATENCY_BUCKETS])


def samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, str], float]:
    from prometheus_client import generate_latest

    text = generate_latest(registry).decode()
    return {
        (s.name, s.labels.get("le", "")): s.value
        for family in text_string_to_metric_families(text)
        if family.name == name
        for s in family.samples
    }


@given(st.lists(st.lists(st.one_of(values, edges), max_size=50), max_size=5))
def test_batches_read_as_observing_each_value(batches: list[list[float]]) -> None:
    one_by_one, batched = CollectorRegistry(), CollectorRegistry()
    histogram = Histogram("latency_seconds", "x", buckets=LATENCY_BUCKETS, registry=one_by_one)
    added = BatchHistogram("latency_seconds", "x")
    batched.register(added)
    for batch in batches:
        for value in batch:
            histogram.observe(value)
        added.add(batch)
    expected = samples(one_by_one, "latency_seconds")
    got = samples(batched, "latency_seconds")
    total = ("latency_seconds_sum", "")
    assert math.isclose(got.pop(total), expected.pop(total), rel_tol=1e-9, abs_tol=1e-6)
    assert got == expected
    assert added.count() == sum(len(b) for b in batches)


@given(
    st.integers(min_value=0, max_value=2**42),
    st.lists(st.lists(st.integers(min_value=-1000, max_value=400_000), max_size=50), max_size=4),
)
def test_ages_of_timestamps_read_as_observing_each_age(now: int, batches: list[list[int]]) -> None:
    one_by_one, batched = CollectorRegistry(), CollectorRegistry()
    histogram = Histogram("age_seconds", "x", buckets=LATENCY_BUCKETS, registry=one_by_one)
    added = BatchHistogram("age_seconds", "x")
    batched.register(added)
    for ages in batches:
        stamps = [now - age for age in ages]
        for stamp in stamps:
            histogram.observe((now - stamp) / 1000)
        added.add_ages(now, stamps)
    expected = samples(one_by_one, "age_seconds")
    got = samples(batched, "age_seconds")
    total = ("age_seconds_sum", "")
    assert math.isclose(got.pop(total), expected.pop(total), rel_tol=1e-9, abs_tol=1e-6)
    assert got == expected


@given(st.lists(values), st.lists(values, min_size=1, unique=True).map(sorted))
def test_bucket_counts_place_each_value_in_its_first_bound_at_or_above(
    observed: list[float], bounds: list[float]
) -> None:
    counts = bucket_counts(observed, bounds)
    assert sum(counts) == len(observed)
    for i, n in enumerate(counts):
        low = -math.inf if i == 0 else bounds[i - 1]
        high = bounds[i] if i < len(bounds) else math.inf
        assert n == sum(1 for v in observed if low < v <= high)


def test_bounds_must_increase() -> None:
    with pytest.raises(ValueError, match="must increase"):
        BatchHistogram("x_seconds", "x", buckets=(1, 0.5))


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_server_answers_metrics_health_and_readiness() -> None:
    registry = CollectorRegistry()
    histogram = BatchHistogram("batteryloop_test_seconds", "x")
    registry.register(histogram)
    histogram.add([0.2, 7.0])
    ready: dict[str, Any] = {"ready": False}
    server = TelemetryServer(
        registry, lambda: (True, {"live": True}), lambda: (ready["ready"], ready), "127.0.0.1", 0
    ).start()
    try:
        status, text = _get(server.port, "/metrics")
        assert status == 200
        assert 'batteryloop_test_seconds_bucket{le="0.25"} 1.0' in text
        assert "batteryloop_test_seconds_count 2.0" in text
        assert _get(server.port, "/healthz") == (200, json.dumps({"live": True}))
        assert _get(server.port, "/readyz")[0] == 503
        ready["ready"] = True
        assert _get(server.port, "/readyz") == (200, json.dumps({"ready": True}))
        status, text = _get(server.port, "/elsewhere")
        assert status == 404 and "/elsewhere" in text
    finally:
        server.stop()

"""Integration fixtures: a real embedded broker per backend, started by the same launcher the
CLI uses. Every test using ``broker`` runs once per backend; ``requires`` skips a test on a
backend that lacks a capability, naming it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.kafka.admin import create_missing
from connectors.kafka.embedded import BACKENDS, EmbeddedBroker
from schemas.values import Region


@pytest.fixture(params=sorted(BACKENDS), scope="module")
def broker(request: pytest.FixtureRequest) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(Region.EU, request.param) as running:
        create_missing({"bootstrap.servers": running.bootstrap})
        yield running


@pytest.fixture(params=sorted(BACKENDS))
def regions(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[dict[Region, EmbeddedBroker]]:
    """A broker per region (EU, JP) of one backend, with the registry's topics."""
    with contextlib.ExitStack() as stack:
        brokers = {
            r: stack.enter_context(EmbeddedBroker(r, request.param, data_dir=tmp_path / r.value))
            for r in Region
        }
        for broker in brokers.values():
            create_missing({"bootstrap.servers": broker.bootstrap})
        yield brokers


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder starts a broker: mark it, so that `pytest -m "not integration"`
    is the fast lane whatever a module declares."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.integration)


def requires(broker: EmbeddedBroker, capability: str) -> None:
    if not getattr(broker.capabilities, capability):
        pytest.skip(f"the {broker.backend} broker lacks the capability {capability!r}")


def config(broker: EmbeddedBroker) -> dict[str, str]:
    return {"bootstrap.servers": broker.bootstrap}

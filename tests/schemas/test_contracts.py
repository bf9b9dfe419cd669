"""Models and Avro schemas agree, for every event type."""

from __future__ import annotations

import io

import fastavro
import pytest
from hypothesis import given, settings

from schemas import catalog
from schemas.events import EVENT_MODELS, EVENT_TYPES, Event
from schemas.serde import Serde, schema_registry_client
from tests.strategies import events

ENVELOPE = list(Event.model_fields)


def test_committed_schemas_are_derived_from_the_models() -> None:
    assert catalog.check_committed() == []


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_schema_starts_with_the_common_envelope(event_type: str) -> None:
    names = [f["name"] for f in catalog.current(event_type).raw["fields"]]
    assert names[: len(ENVELOPE)] == ENVELOPE
    assert names == list(EVENT_MODELS[event_type].model_fields)


def test_confidential_fields_are_tagged_in_the_schemas() -> None:
    tagged = {t: catalog.current(t).confidential_fields for t in EVENT_TYPES}
    assert tagged["manufacture"] == {
        "inputs[].supplier_id": "supplier_identity",
        "inputs[].unit_price": "price",
        "inputs[].contract_volume_kg": "procurement_amount",
    }
    assert tagged["refining"] == tagged["manufacture"]
    assert tagged["shipment"] == {"consignee_id": "supplier_identity", "invoice_value": "price"}
    assert tagged["extraction"] == {"offtake_price": "price"}
    assert tagged["certification"] == {}
    kinds = {kind for fields in tagged.values() for kind in fields.values()}
    assert kinds == {"supplier_identity", "procurement_amount", "price"}


def test_masses_are_exact_decimals_in_the_schema() -> None:
    field = {f["name"]: f for f in catalog.current("extraction").raw["fields"]}["mass_kg"]
    assert field["type"] == {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 3}


@settings(max_examples=300, deadline=None)
@given(events())
def test_any_event_round_trips_through_avro_single_object(event: Event) -> None:
    serde = Serde()
    data = serde.encode(event, "t")
    assert data[:2] == b"\xc3\x01"
    assert serde.decode_event(data) == event
    # and the body alone is valid Avro under the committed schema
    schema = catalog.current(event.event_type).parsed
    assert fastavro.validate(event.model_dump(), schema, raise_errors=True)
    body = fastavro.schemaless_reader(io.BytesIO(data[10:]), schema, None)
    assert EVENT_MODELS[event.event_type].model_validate(body) == event


@settings(max_examples=100, deadline=None)
@given(events())
def test_any_event_round_trips_through_the_confluent_wire_format(event: Event) -> None:
    serde = Serde(schema_registry_client("mock://contracts"))
    data = serde.encode(event, "batteryloop.events.x")
    assert data[0] == 0
    assert serde.decode_event(data) == event
    # a reader without the registry cache learns the schema from the registry by id
    fresh = Serde(serde.registry)
    assert fresh.decode_event(data) == event


@settings(max_examples=100, deadline=None)
@given(events())
def test_json_round_trip_matches_what_produce_reads(event: Event) -> None:
    from schemas.events import parse_event_json

    assert parse_event_json(event.model_dump_json()) == event

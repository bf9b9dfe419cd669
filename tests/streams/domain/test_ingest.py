"""The processors' ingest (records -> entity messages without pydantic) against the reference:
decode, validate into the models, ``route_batch``. For generated events of every type, own and
mirrored, both must send the same messages; what ingest rejects, it rejects with a reason."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.mirror import policy as sharing
from connectors.mirror.replication import sharing_headers
from schemas import catalog
from schemas.events import EVENT_MODELS, Event, ExtractionEvent
from schemas.serde import Serde, schema_registry_client
from schemas.topics import event_topic_name, mirrored_topic_name
from streams.domain.ingest import UNNAMED_AGREEMENT, EventIngest, IngestRecord
from streams.domain.messages import LotCreated, Manufactured, SharedUnder
from streams.domain.routing import Received, route_batch
from tests import scenarios
from tests.strategies import events

SECRET = b"an agreement secret for the tests"
POLICY = sharing.load(sharing.shipped("jp-to-eu"), SECRET)
SERDE = Serde(shared=POLICY.shared_schemas.values())
MIRRORED = {mirrored_topic_name("JP", t): t for t in EVENT_MODELS}
INGEST = EventIngest(SERDE, MIRRORED, POLICY.direction)
ONE = Decimal(1)
SLOW = settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)


def own(event: Event, serde: Serde = SERDE) -> IngestRecord:
    topic = event_topic_name(event.event_type)
    return topic, serde.encode(event, topic), None


def reference(records: list[IngestRecord], serde: Serde = SERDE) -> list[Any]:
    """What the worker did before: decode, validate into the model, route_batch."""
    arrivals: list[Event | Received] = []
    for topic, value, headers in records:
        event = serde.decode_event(value, topic=topic)
        if topic in MIRRORED:
            found = dict(headers or [])
            agreement = found.get("batteryloop-agreement", b"").decode() or UNNAMED_AGREEMENT
            redacted = found.get("batteryloop-redacted", b"").decode()
            paths = tuple(p for p in redacted.split(",") if p)
            arrivals.append(Received(event, SharedUnder(agreement, POLICY.direction), paths))
        else:
            arrivals.append(event)
    return route_batch(arrivals)


@SLOW
@given(st.lists(events(), min_size=1, max_size=6))
def test_ingest_sends_what_decode_validate_route_sends(generated: list[Event]) -> None:
    records = [own(e) for e in generated]
    ingested = INGEST.ingest(records)
    assert ingested.rejected == []
    assert ingested.messages == reference(records)
    assert sum(ingested.routed.values()) == len(generated)


@SLOW
@given(st.lists(events(), min_size=1, max_size=6))
def test_mirrored_records_carry_the_agreement_and_the_redacted_paths(
    generated: list[Event],
) -> None:
    records: list[IngestRecord] = []
    for event in generated:
        detailed = POLICY.redact_detailed(event.event_type, event.model_dump())
        if detailed is None:  # not shared under the policy: never on a mirrored topic
            records.append(own(event))
            continue
        record, paths = detailed
        topic = mirrored_topic_name("JP", event.event_type)
        value = SERDE.encode_as(POLICY.shared_schemas[event.event_type], record, topic)
        records.append((topic, value, sharing_headers(POLICY.name, paths)))
    ingested = INGEST.ingest(records)
    assert ingested.rejected == []
    assert ingested.messages == reference(records)


def test_a_mirrored_record_without_an_agreement_header_is_unnamed() -> None:
    event = scenarios.reference()[0]
    record = POLICY.redact(event.event_type, event.model_dump())
    assert record is not None
    topic = mirrored_topic_name("JP", event.event_type)
    value = SERDE.encode_as(POLICY.shared_schemas[event.event_type], record, topic)
    (_, message), *_ = INGEST.ingest([(topic, value, None)]).messages
    assert message.shared == SharedUnder(UNNAMED_AGREEMENT, "jp-to-eu")  # type: ignore[union-attr]


@SLOW
@given(st.lists(events(), min_size=1, max_size=4))
def test_confluent_wire_format_reads_the_same(generated: list[Event]) -> None:
    serde = Serde(schema_registry_client("mock://ingest"))
    records = [own(e, serde) for e in generated]
    ingested = EventIngest(serde).ingest(records)
    assert ingested.rejected == []
    assert ingested.messages == reference(records, serde)


@given(events("shredding"))
def test_an_older_schema_version_is_resolved_like_the_reference(event: Event) -> None:
    v1 = catalog.history("shredding")[0]
    record = event.model_dump()
    for item in record["inputs"]:
        del item["waste_origin"]  # v1 has none: reads as post_consumer
    record["schema_version"] = 1
    topic = event_topic_name("shredding")
    records: list[IngestRecord] = [(topic, SERDE.encode_as(v1, record, topic), None)]
    ingested = INGEST.ingest(records)
    assert ingested.rejected == []
    assert ingested.messages == reference(records)


def _extraction_record(sample_event: ExtractionEvent, **changes: Any) -> IngestRecord:
    record = {**sample_event.model_dump(), **changes}
    topic = event_topic_name("extraction")
    return topic, SERDE.encode_record("extraction", record, topic), None


def test_bad_records_are_rejected_with_the_reason_and_the_rest_routed(
    sample_event: ExtractionEvent,
) -> None:
    good = own(sample_event)
    topic, value, _ = good
    assert value is not None
    cases: list[tuple[IngestRecord, str]] = [
        ((topic, None, None), "empty value"),
        ((topic, b"{json}", None), "not framed Avro"),
        ((topic, b"\xc3\x01" + b"\x00" * 8 + value[10:], None), "unknown writer schema"),
        ((topic, value[:-5], None), "does not match the extraction schema"),
        ((topic, value + b"\x00", None), "1 bytes after the record"),
        ((event_topic_name("shipment"), value, None), "a extraction event on the shipment topic"),
        (_extraction_record(sample_event, mass_kg=Decimal(-1)), "mass of -1000 g is negative"),
        (
            _extraction_record(sample_event, composition={"nickel": ONE, "cobalt": ONE / 2}),
            "composition shares sum to 1.5, more than 1",
        ),
        (_extraction_record(sample_event, composition={"gold": ONE}), "'gold' is not a metal"),
        (_extraction_record(sample_event, event_type="shipment"), "event_type 'shipment'"),
        (_extraction_record(sample_event, event_id="not-a-uuid"), "is not a UUID"),
        (_extraction_record(sample_event, site_id="BPNS-BROKEN"), "starts like a Catena-X BPNS"),
        (
            _extraction_record(sample_event, operator_id="BPNL00000000000X", region="JP"),
            "an event of region JP is published by",
        ),
        (
            _extraction_record(sample_event, operator_id="2010001008827", region="JP"),
            "check digit",
        ),
    ]
    batch = [good, *(record for record, _ in cases), good]
    ingested = INGEST.ingest(batch)
    assert [r.index for r in ingested.rejected] == list(range(1, len(cases) + 1))
    for rejected, (_, expected) in zip(ingested.rejected, cases, strict=True):
        assert expected in rejected.reason, (expected, rejected.reason)
    # the bounded categories metrics label them with, and the type when one was decoded
    assert [(r.event_type, r.category) for r in ingested.rejected] == [
        *[("unknown", "undecodable")] * 5,
        ("extraction", "wrong_topic"),
        *[("extraction", "invalid")] * 4,
        ("unknown", "undecodable"),  # a malformed UUID fails the Avro logical type
        *[("extraction", "invalid_publisher")] * 3,
    ]
    created = [m for _, m in ingested.messages if isinstance(m, LotCreated)]
    assert len(created) == 2 and ingested.routed == {"extraction": 2}


def test_a_uuid_in_another_spelling_is_read_in_canonical_form(
    sample_event: ExtractionEvent,
) -> None:
    spelled = str(sample_event.event_id).upper().replace("-", "")
    record = _extraction_record(sample_event, event_id=spelled)
    (_, message), _check = INGEST.ingest([record]).messages
    assert message.event_id == str(sample_event.event_id)  # type: ignore[union-attr]


@given(st.binary(max_size=200), st.sampled_from(sorted(EVENT_MODELS)))
def test_arbitrary_bytes_are_rejected_or_routed_never_raised(data: bytes, event_type: str) -> None:
    for value in (data, catalog.current(event_type).fingerprint.join([b"\xc3\x01", data])):
        ingested = INGEST.ingest([(event_topic_name(event_type), value, None)])
        assert len(ingested.rejected) + sum(ingested.routed.values()) == 1


@given(events("shredding"))
def test_a_version_2_shredding_reads_as_unclassified_like_the_reference(event: Event) -> None:
    v2 = catalog.history("shredding")[1]
    record = {**event.model_dump(), "schema_version": 2}
    topic = event_topic_name("shredding")
    records: list[IngestRecord] = [(topic, SERDE.encode_as(v2, record, topic), None)]
    ingested = INGEST.ingest(records)
    assert ingested.rejected == []
    assert ingested.messages == reference(records)
    created = [m for _, m in ingested.messages if isinstance(m, LotCreated)]
    assert [c.classification for c in created] == [None]


def test_a_classification_whose_mark_disagrees_with_its_code_is_rejected() -> None:
    """The models refuse it; a record that bypassed them is rejected here, not routed."""
    shredding = next(e for e in scenarios.reference() if e.event_type == "shredding")
    record = shredding.model_dump()
    record["classification"] = {
        "waste_code": "19 12 11*",
        "hazardous": False,
        "basel_entry": "A1170",
        "hs_code": "38249996",
        "chemistry_family": "nmc",
        "meets_gb_t_45203": False,
    }
    topic = event_topic_name("shredding")
    ingested = INGEST.ingest([(topic, SERDE.encode_record("shredding", record, topic), None)])
    assert ingested.messages == [] and len(ingested.rejected) == 1
    assert "hazardous=False disagree" in ingested.rejected[0].reason


def test_a_gtin_that_bypassed_the_model_is_written_as_14_digits_or_rejected() -> None:
    """The passport's URL is built from the GTIN: a record carrying one the model would refuse
    is rejected, one in a shorter form is written as the model writes it."""
    made = next(e for e in scenarios.reference() if e.event_type == "manufacture")
    topic = event_topic_name("manufacture")

    def record(gtin: str) -> IngestRecord:
        raw = {**made.model_dump(), "gtin": gtin}
        return topic, SERDE.encode_record("manufacture", raw, topic), None

    short, wrong = record("6291041500213"), record("6291041500214")
    ingested = INGEST.ingest([short, wrong])
    assert [r.index for r in ingested.rejected] == [1]
    assert "gtin: '6291041500214': the GTIN's check digit is wrong" in ingested.rejected[0].reason
    (_, manufactured), *_ = ingested.messages
    assert isinstance(manufactured, Manufactured) and manufactured.gtin == "06291041500213"
    assert ingested.messages == reference([short])

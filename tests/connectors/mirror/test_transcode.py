"""The shared body written from the private bytes is what encoding the redacted record wrote."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.mirror import policy as sharing
from connectors.mirror.transcode import SharedWriter, read_long, write_long, writers
from schemas.events import EVENT_TYPES, Event
from schemas.plain import PlainDecodeError
from schemas.serde import Serde
from schemas.topics import event_topic_name
from tests import scenarios
from tests.strategies import events

SECRET = b"a-shared-secret-of-the-agreement"
POLICIES = {d: sharing.load(sharing.shipped(d), SECRET) for d in sharing.SHIPPED}
WRITERS = {d: writers(p) for d, p in POLICIES.items()}
SERDE = Serde()


def _every_type() -> st.SearchStrategy[Event]:
    return st.sampled_from(EVENT_TYPES).flatmap(events)


def both_ways(direction: str, event: Event) -> tuple[bytes, bytes, Any, Any] | None:
    """(written by the encoder, written from the private bytes, the two tallies)."""
    policy = POLICIES[direction]
    if not policy.shares(event.event_type):
        return None
    topic = event_topic_name(event.event_type)
    private = SERDE.encode(event, topic)
    _, record = SERDE.decode(private)
    tallied = policy.redact_tallied(event.event_type, record)
    assert tallied is not None
    shared, tally = tallied
    schema = policy.shared_schemas[event.event_type]
    encoded = SERDE.encode_as(schema, shared, "x")
    _, again = SERDE.decode(private)
    fast_shared, fast_tally = policy.redact_tallied(event.event_type, again) or ({}, None)
    body = WRITERS[direction][event.event_type].body(private, 10, fast_shared)
    return encoded, SERDE.header(schema, "x") + body, tally, fast_tally


@settings(max_examples=400, deadline=None)
@given(event=_every_type(), direction=st.sampled_from(sharing.SHIPPED))
def test_the_same_bytes_and_tally_as_encoding_the_redacted_record(
    event: Event, direction: str
) -> None:
    found = both_ways(direction, event)
    if found is None:
        return
    encoded, written, tally, fast_tally = found
    assert written == encoded
    assert fast_tally == tally and fast_tally.paths == tally.paths


def _rules(event_type: str, mode: int) -> dict[str, Any]:
    """Rules for every leaf of ``event_type``: confidential ones dropped, the envelope kept, the
    others (by ``mode`` and position) transformed where they can be, kept or dropped."""
    fields: dict[str, str] = {}
    sites = sharing.SITE_COUNTRY.get(event_type, {})
    found = sharing.leaves(event_type)
    containers = {p.split(".")[0].removesuffix("[]") for p in found if "." in p}
    for i, (path, leaf) in enumerate(found.items()):
        if path in containers:
            continue  # its fields are named one by one
        if leaf.confidential or path.split(".")[0].removesuffix("[]") in _confidential(found):
            fields[path] = "drop"
        elif path in sharing.REQUIRED:
            fields[path] = "keep"
        elif (i + mode) % 3 == 0:
            fields[path] = "drop"
        elif path in sites:
            fields[path] = "country"
        elif sharing._is_decimal(leaf.avro_type):
            fields[path] = "band"
        elif sharing._is_string(leaf.avro_type):
            fields[path] = "pseudonymise"
        else:
            fields[path] = "keep"
    return {"share": True, "fields": fields}


def _confidential(found: dict[str, sharing.Leaf]) -> set[str]:
    return {p for p, leaf in found.items() if leaf.confidential}


POLICY_VARIANTS = [
    sharing.parse(
        {
            "agreement": {"source": "EU", "target": "JP"},
            "events": {t: _rules(t, mode) for t in EVENT_TYPES},
        },
        SECRET,
    )
    for mode in range(3)
]


@settings(max_examples=300, deadline=None)
@given(event=_every_type(), mode=st.sampled_from(range(3)))
def test_policies_that_transform_and_drop_fields_everywhere(event: Event, mode: int) -> None:
    policy = POLICY_VARIANTS[mode]
    writer = SharedWriter(policy, event.event_type)
    topic = event_topic_name(event.event_type)
    private = SERDE.encode(event, topic)
    tallied = policy.redact_tallied(event.event_type, SERDE.decode(private)[1])
    assert tallied is not None
    shared, tally = tallied
    encoded = SERDE.encode_as(policy.shared_schemas[event.event_type], shared, "x")
    assert encoded[10:] == writer.body(private, 10, shared)


def test_the_variants_transform_something() -> None:
    actions = {a for p in POLICY_VARIANTS for r in p.events.values() for a in r.actions.values()}
    assert actions == {"keep", "drop", "pseudonymise", "band", "country"}


@given(st.integers(-(2**63), 2**63 - 1))
def test_varints_read_back(n: int) -> None:
    data = write_long(n)
    assert read_long(data + b"\x01", 0) == (n, len(data))


# --- the fast path: plain record in, redacted in the same walk ---------------------------------


def _reference(policy: sharing.SharingPolicy, event: Event) -> tuple[bytes, bytes, Any]:
    """(private bytes, the shared body the reference path writes, its tally): fastavro decode,
    redact_tallied, fastavro encode under the shared schema."""
    private = SERDE.encode(event, event_topic_name(event.event_type))
    tallied = policy.redact_tallied(event.event_type, SERDE.decode(private)[1])
    assert tallied is not None
    shared, tally = tallied
    encoded = SERDE.encode_as(policy.shared_schemas[event.event_type], shared, "x")
    return private, encoded[10:], tally


def _fused(policy: sharing.SharingPolicy, private: bytes) -> tuple[bytes, Any]:
    """The fast path's (shared body, tally); its record is the plain reader's, field for field."""
    event_type, plain, _ = SERDE.decode_plain(private)
    record, body, tally = SharedWriter(policy, event_type).read_and_transcode(private, 10)
    assert record == plain
    return body, tally


@settings(max_examples=400, deadline=None)
@given(event=_every_type(), direction=st.sampled_from(sharing.SHIPPED))
def test_transcoding_the_plain_record_writes_the_reference_bytes_and_tally(
    event: Event, direction: str
) -> None:
    policy = POLICIES[direction]
    if not policy.shares(event.event_type):
        return
    private, expected, tally = _reference(policy, event)
    body, fused_tally = _fused(policy, private)
    assert body == expected
    assert fused_tally == tally and fused_tally.paths == tally.paths


@settings(max_examples=300, deadline=None)
@given(event=_every_type(), mode=st.sampled_from(range(3)))
def test_transcoding_under_policies_that_transform_and_drop_everywhere(
    event: Event, mode: int
) -> None:
    policy = POLICY_VARIANTS[mode]
    private, expected, tally = _reference(policy, event)
    body, fused_tally = _fused(policy, private)
    assert body == expected
    assert fused_tally == tally and fused_tally.paths == tally.paths


def test_a_body_that_does_not_match_its_schema_is_refused() -> None:
    """Truncated or padded: the transcoder fails like the plain reader, writing nothing."""
    policy = POLICIES["eu-to-jp"]
    event = next(e for e in scenarios.reference() if e.event_type == "manufacture")
    private = SERDE.encode(event, event_topic_name("manufacture"))
    writer = SharedWriter(policy, "manufacture")
    for broken in (private[:-3], private + b"\x00"):
        with pytest.raises(PlainDecodeError):
            writer.read_and_transcode(broken, 10)

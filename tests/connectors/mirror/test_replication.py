"""The mirror's decisions without a broker: provenance, eligibility, positions."""

from __future__ import annotations

import tomllib
from collections import deque
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.mirror import policy as sharing
from connectors.mirror.replication import (
    Action,
    Checkpoint,
    Flows,
    KnownCertifications,
    Lane,
    Provenance,
    Reason,
    Waiting,
    checkpoint_key,
    checkpoint_value,
    judge,
    parse_checkpoint,
    read_checkpoint,
)
from schemas.events import CertificationEvent, Event, envelope
from schemas.serde import Serde
from schemas.values import Region
from tests.strategies import events

POLICY = sharing.load(sharing.shipped("eu-to-jp"), b"a-shared-secret-of-the-agreement")
MAKER = "BPNL0000000PCK01"


def at(year: int) -> datetime:
    return datetime(year, 1, 1, tzinfo=UTC)


def certification(
    subject: str, when: datetime, action: str = "certified", scheme_region: str = "EU", **more: Any
) -> dict[str, Any]:
    return {
        "event_id": f"cert-{subject}-{when.year}-{action}",
        "occurred_at": when,
        "region": "EU",
        "subject_operator_id": subject,
        "action": action,
        "scheme_region": scheme_region,
        "scheme": "Catena-X conformity assessment",
        "certificate_id": f"CX-{when.year}",
        "valid_until": more.get("valid_until"),
    }


IN_2031 = datetime(2031, 1, 1, tzinfo=UTC)


def event(operator: str = MAKER, when: datetime = IN_2031, region: str = "EU") -> dict[str, Any]:
    return {"operator_id": operator, "occurred_at": when, "region": region}


@given(
    st.sampled_from(["EU", "JP"]),
    st.text(min_size=1, max_size=60),
    st.integers(0, 10_000),
    st.integers(0, 2**62),
    st.integers(0, 50),
)
def test_provenance_round_trips_through_headers(
    region: str, topic: str, partition: int, offset: int, hops: int
) -> None:
    origin = Provenance(region, topic, partition, offset, hops)
    assert Provenance.read([("other", b"x"), *origin.headers()]) == origin


def test_provenance_absent_or_malformed() -> None:
    assert Provenance.read(None) is None
    assert Provenance.read([("traceparent", b"00-ab")]) is None
    with pytest.raises(ValueError, match="malformed provenance"):
        Provenance.read([("batteryloop-origin-region", b"EU"), ("batteryloop-hops", b"x")])


def test_an_event_crosses_when_its_operator_is_certified_in_the_source_region() -> None:
    certs = KnownCertifications()
    certs.add(certification(MAKER, at(2030)))
    verdict = judge(POLICY, certs, "manufacture", event(), None, 0.0, 10.0)
    assert verdict.action is Action.mirror
    assert verdict.recognised == "EU:CX-2030"
    # before the certificate: known operator, not covered, decided at once
    early = judge(POLICY, certs, "manufacture", event(when=at(2029)), None, 0.0, 10.0)
    assert (early.action, early.reason) == (Action.filter, Reason.uncertified)


def test_revoked_expired_and_other_scheme_certificates_do_not_count() -> None:
    certs = KnownCertifications()
    certs.add(certification(MAKER, at(2030)))
    certs.add(certification(MAKER, at(2032), action="revoked"))
    assert judge(POLICY, certs, "manufacture", event(when=at(2033)), None, 0, 10).action == "filter"
    expiring = KnownCertifications()
    expiring.add(certification(MAKER, at(2030), valid_until=at(2031)))
    assert judge(POLICY, expiring, "manufacture", event(when=at(2032)), None, 0, 10).reason == (
        Reason.uncertified
    )


def test_an_unknown_operator_waits_for_the_grace_period_then_is_filtered() -> None:
    certs = KnownCertifications()
    assert judge(POLICY, certs, "manufacture", event(), None, 3.0, 10.0).action is Action.hold
    late = judge(POLICY, certs, "manufacture", event(), None, 10.0, 10.0)
    assert (late.action, late.reason) == (Action.filter, Reason.uncertified)


def test_nothing_goes_back_to_where_it_came_from() -> None:
    certs = KnownCertifications()
    certs.add(certification(MAKER, at(2030)))
    from_jp = judge(POLICY, certs, "manufacture", event(region="JP"), None, 0, 10)
    assert from_jp.reason is Reason.from_target_region
    crossed = Provenance("JP", "batteryloop.events.manufacture", 0, 1, 1)
    assert judge(POLICY, certs, "manufacture", event(), crossed, 0, 10).reason == (
        Reason.from_target_region
    )


def ouranos(subject: str, when: datetime, action: str = "certified", **more: Any) -> dict[str, Any]:
    """A certification under the JP scheme, as the JP certifying body publishes it."""
    return {
        **certification(subject, when, action, scheme_region="JP", **more),
        "event_id": f"oe-{subject}-{when.year}-{action}",
        "region": "JP",
        "scheme": "Ouranos Ecosystem certification",
        "certificate_id": f"OE-{when.year}",
    }


def test_an_operator_certified_under_the_partners_scheme_crosses_too() -> None:
    """Mutual recognition: a JP-certified operator publishing in the EU region is recognised,
    and the header names the JP certificate."""
    certs = KnownCertifications()
    certs.add(ouranos(MAKER, at(2030)))
    verdict = judge(POLICY, certs, "manufacture", event(), None, 0.0, 10.0)
    assert (verdict.action, verdict.recognised) == (Action.mirror, "JP:OE-2030")
    early = judge(POLICY, certs, "manufacture", event(when=at(2029)), None, 0.0, 10.0)
    assert (early.action, early.reason) == (Action.filter, Reason.uncertified)


def test_a_revocation_under_one_scheme_leaves_the_other_schemes_certification() -> None:
    certs = KnownCertifications()
    certs.add(certification(MAKER, at(2030)))
    certs.add(ouranos(MAKER, at(2030)))
    certs.add(certification(MAKER, at(2031), action="revoked"))
    after = judge(POLICY, certs, "manufacture", event(when=at(2032)), None, 0, 10)
    assert (after.action, after.recognised) == (Action.mirror, "JP:OE-2030")
    certs.add(ouranos(MAKER, at(2031), action="revoked"))
    revoked = judge(POLICY, certs, "manufacture", event(when=at(2032)), None, 0, 10)
    assert (revoked.action, revoked.reason) == (Action.filter, Reason.uncertified)
    before = judge(POLICY, certs, "manufacture", event(when=at(2030)), None, 0, 10)
    assert before.action is Action.mirror  # events before the revocation stay valid


def test_a_revocation_under_the_source_scheme_crosses_like_the_certification() -> None:
    certs = KnownCertifications()
    revocation = certification(MAKER, at(2032), action="revoked")
    verdict = judge(POLICY, certs, "certification", revocation, None, 0, 10)
    assert (verdict.action, verdict.recognised) == (Action.mirror, None)
    # one under the JP scheme published in the EU region: the JP side has it from its own body
    theirs = certification(MAKER, at(2032), action="revoked", scheme_region="JP")
    assert judge(POLICY, certs, "certification", theirs, None, 0, 10).reason == (
        Reason.foreign_scheme
    )


def test_the_partners_mirrored_certifications_decode_with_the_committed_reverse_schema() -> None:
    """What the JP -> EU mirror writes into the EU cluster, the EU -> JP gate can read."""
    reverse = sharing.load(sharing.shipped("jp-to-eu"), b"a-shared-secret-of-the-agreement")
    topic = "jp.batteryloop.events.certification"
    issued = CertificationEvent(
        **envelope("7120001077358", "OURANOS-CERT-1", at(2030)),
        subject_operator_id=MAKER,
        action="certified",
        scheme_region="JP",
        scheme="Ouranos Ecosystem certification",
        certificate_id="OE-2030",
    )
    private = Serde()
    shared = reverse.redact("certification", private.decode(private.encode(issued, topic))[1])
    assert shared is not None
    blob = Serde().encode_as(reverse.shared_schemas["certification"], shared, topic)
    schema = sharing.partner_shared_schema(POLICY, "certification")
    assert schema is not None
    event_type, decoded = Serde(shared=[schema]).decode(blob)
    assert event_type == "certification"
    certs = KnownCertifications()
    certs.add(decoded)
    assert judge(POLICY, certs, "manufacture", event(), None, 0, 10).recognised == "JP:OE-2030"
    with pytest.raises(ValueError, match="shared schema this reader was not given"):
        Serde().decode(blob)  # the source serde alone cannot read it


def test_certifications_cross_when_they_are_the_source_regions() -> None:
    certs = KnownCertifications()
    own = judge(POLICY, certs, "certification", certification(MAKER, at(2030)), None, 0, 10)
    assert (own.action, own.recognised) == (Action.mirror, "EU:CX-2030")
    other = certification(MAKER, at(2030), scheme_region="JP")
    assert judge(POLICY, certs, "certification", other, None, 0, 10).reason == (
        Reason.foreign_scheme
    )


def _without_certification_sharing() -> sharing.SharingPolicy:
    """The shipped EU -> JP policy, with ``share = false`` for certification."""
    data = tomllib.loads(sharing.shipped("eu-to-jp").read_text())
    data["events"]["certification"] = {"share": False}
    return sharing.parse(data, b"a-shared-secret-of-the-agreement", "no-certs.toml")


def test_an_unshared_certification_type_is_filtered_yet_still_certifies() -> None:
    """With certification ``share = false`` a source certification used to get a mirror
    verdict with no redaction to go with it (the agent asserted on it and crashed)."""
    policy = _without_certification_sharing()
    assert not policy.shares("certification")
    certs = KnownCertifications()
    cert = certification(MAKER, at(2030))
    certs.add(cert)  # the gate reads it all the same
    verdict = judge(policy, certs, "certification", cert, None, 0, 10)
    assert (verdict.action, verdict.reason) == (Action.filter, Reason.not_shared)
    event_verdict = judge(policy, certs, "manufacture", event(), None, 0, 10)
    assert (event_verdict.action, event_verdict.recognised) == (Action.mirror, "EU:CX-2030")
    assert policy.redact_counted("manufacture", {}) is not None


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["extraction", "refining", "manufacture", "shipment", "certification"]),
    st.sampled_from(["EU", "JP"]),
    st.sampled_from(["certified", "revoked"]),
)
def test_every_mirror_verdict_has_a_redaction(event_type: str, region: str, action: str) -> None:
    """Whatever the policy shares, a record judged ``mirror`` can be redacted under it."""
    policies = [POLICY, _without_certification_sharing()]
    certs = KnownCertifications()
    certs.add(certification(MAKER, at(2030)))
    if event_type == "certification":
        record = certification(MAKER, at(2031), action=action, scheme_region=region)
    else:
        record = event(region=region)
    for policy in policies:
        verdict = judge(policy, certs, event_type, record, None, 0, 10)
        if verdict.action is Action.mirror:
            assert policy.shares(event_type)
        elif not policy.shares(event_type):
            assert verdict.reason is Reason.not_shared


class _Message:
    def __init__(self, offset: int) -> None:
        self._offset = offset

    def offset(self) -> int:
        return self._offset


def test_a_lane_keeps_its_recovered_target_offset_until_the_landed_records_are_passed() -> None:
    lane = Lane("manufacture", "batteryloop.events.manufacture", 0, "eu.x", start=10)
    lane.target_from, lane.landed, lane.next_offset = 40, {10, 11}, 10
    assert lane.checkpoint(target_end=42) == (10, 40)
    lane.next_offset = 11
    lane.landed.discard(10)
    assert lane.checkpoint(target_end=42) == (11, 40)
    lane.landed.discard(11)
    lane.next_offset = 12
    assert lane.checkpoint(target_end=42) == (12, 42)
    lane.waiting = deque([Waiting(_Message(12), 0.0), Waiting(_Message(13), 0.0)])
    lane.next_offset = 14
    assert lane.position() == 12  # a waiting record holds the position back


def test_checkpoints_round_trip_and_bad_ones_are_ignored() -> None:
    key = checkpoint_key(Region.EU, "batteryloop.events.refining", 3)
    assert read_checkpoint(Region.EU, key, checkpoint_value(17, 99)) == Checkpoint(
        "batteryloop.events.refining", 3, 17, 99
    )
    assert read_checkpoint(Region.JP, key, checkpoint_value(17, 99)) is None  # another mirror's
    assert read_checkpoint(Region.EU, key, b"{not json") is None
    assert read_checkpoint(Region.EU, b"EU/only-two", checkpoint_value(1, 1)) is None
    assert read_checkpoint(Region.EU, key, None) is None


REASONS = st.sampled_from([r.value for r in Reason])
FLOWS = st.builds(
    Flows,
    st.integers(0, 2**53),
    st.dictionaries(REASONS, st.integers(0, 2**53)),
    st.integers(0, 2**53),
)


@given(FLOWS, st.integers(0, 2**40), st.integers(0, 2**40))
def test_flows_round_trip_with_their_checkpoint(flows: Flows, position: int, target: int) -> None:
    key = checkpoint_key(Region.JP, "batteryloop.events.shipment", 5)
    value = checkpoint_value(position, target, flows)
    point = read_checkpoint(Region.JP, key, value)
    assert point == Checkpoint("batteryloop.events.shipment", 5, position, target, flows)
    # whichever mirror wrote it, the dashboard reads the source region with it
    assert parse_checkpoint(key, value) == ("JP", point)


def test_a_checkpoint_without_flows_counts_zero_and_malformed_flows_are_ignored() -> None:
    key = checkpoint_key(Region.EU, "batteryloop.events.refining", 0)
    old = b'{"position": 4, "target_offset": 2}'  # written before flows were kept
    point = read_checkpoint(Region.EU, key, old)
    assert point is not None and point.flows == Flows()
    for bad in (
        b'{"position": 4, "target_offset": 2, "flows": {"version": 99}}',
        b'{"position": 4, "target_offset": 2, "flows": {"version": 1, "shared": -1, '
        b'"filtered": {}, "redacted": 0}}',
        b'{"position": 4, "target_offset": 2, "flows": {"version": 1, "shared": 1, '
        b'"filtered": [], "redacted": 0}}',
        b'{"position": 4, "target_offset": 2, "flows": []}',
    ):
        assert read_checkpoint(Region.EU, key, bad) is None, bad


@given(FLOWS, FLOWS)
def test_flows_add_up_per_count(a: Flows, b: Flows) -> None:
    total = Flows(a.shared, dict(a.filtered), a.redacted)
    total.add(b)
    assert total.shared == a.shared + b.shared
    assert total.redacted == a.redacted + b.redacted
    for reason in {*a.filtered, *b.filtered}:
        assert total.filtered[reason] == a.filtered.get(reason, 0) + b.filtered.get(reason, 0)


@settings(max_examples=25, deadline=None)
@given(events("refining"))
def test_a_partner_decodes_shared_records_with_the_shared_schemas_alone(sample: Event) -> None:
    private = Serde()
    topic = "batteryloop.events.refining"
    record = private.decode(private.encode(sample, topic))[1]
    shared = POLICY.redact("refining", record)
    assert shared is not None
    blob = private.encode_as(POLICY.shared_schemas["refining"], shared, "eu." + topic)
    partner = Serde(shared=POLICY.shared_schemas.values())
    assert partner.decode(blob) == ("refining", shared)
    with pytest.raises(ValueError, match="shared schema this reader was not given"):
        Serde().decode(blob)

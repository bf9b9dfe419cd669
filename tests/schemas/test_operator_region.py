"""Operator ids tied to the region: an event is published by a participant of its region's
platform; operators it only names may be of either region."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from connectors.ingest.files import RejectedLine, read_jsonl
from schemas.events import ANY_EVENT, EVENT_TYPES, Event, ExtractionEvent, envelope
from schemas.values import Region, operator_id_platform
from tests.strategies import events, operator_ids_of

JP_CORPORATE = "7120001077358"
EU_BPNL = "BPNL0000000MIN01"


def rejection(data: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ValidationError) as caught:
        ANY_EVENT.validate_python(data)
    [error] = caught.value.errors()
    return dict(error)


def test_an_eu_event_with_a_japanese_corporate_number_is_refused(
    sample_event: ExtractionEvent,
) -> None:
    error = rejection({**sample_event.model_dump(), "operator_id": JP_CORPORATE})
    assert error["type"] == "operator_region" and error["loc"] == ("extraction", "region")
    assert error["msg"] == (
        "operator_id 7120001077358 is a 13-digit Japanese corporate number, but an event of "
        "region EU is published by a Catena-X BPNL ('BPNL' + 12 letters or digits): an event's "
        "region is the platform it is published under"
    )


def test_a_jp_event_with_a_bpnl_is_refused(sample_event: ExtractionEvent) -> None:
    error = rejection({**sample_event.model_dump(), "region": "JP"})
    assert error["type"] == "operator_region"
    assert "BPNL0000000MIN01 is a Catena-X BPNL" in error["msg"]
    assert "region JP is published by a 13-digit Japanese corporate number" in error["msg"]


def test_the_event_is_accepted_under_its_own_region(sample_event: ExtractionEvent) -> None:
    jp = ANY_EVENT.validate_python(
        {**sample_event.model_dump(), "region": "JP", "operator_id": JP_CORPORATE}
    )
    assert (jp.region, jp.operator_id) == (Region.JP, JP_CORPORATE)


@pytest.mark.parametrize(
    ("region", "operator", "subject"),
    [("EU", EU_BPNL, JP_CORPORATE), ("JP", JP_CORPORATE, EU_BPNL)],
)
def test_a_certification_may_concern_an_operator_of_either_region(
    region: str, operator: str, subject: str
) -> None:
    # mutual recognition: each region's scheme certifies operators of the other
    event = ANY_EVENT.validate_python(
        {
            "event_type": "certification",
            "occurred_at": "2031-01-01T00:00:00Z",
            "operator_id": operator,
            "site_id": "CERT-BODY",
            "region": region,
            "subject_operator_id": subject,
            "action": "certified",
            "scheme_region": region,
            "scheme": "mutual recognition",
            "certificate_id": "C-1",
        }
    )
    assert event.subject_operator_id == subject  # type: ignore[attr-defined]


@given(st.sampled_from(EVENT_TYPES).flatmap(events), st.data())
def test_any_event_moved_to_the_other_region_is_refused(event: Event, data: st.DataObject) -> None:
    other = Region.JP if event.region is Region.EU else Region.EU
    if operator_id_platform(event.operator_id) is None:
        # an operator outside the alliance publishes into its acting member's region, any
        moved_as_is = ANY_EVENT.validate_python({**event.model_dump(), "region": other})
        assert moved_as_is.region is other
    else:
        error = rejection({**event.model_dump(), "region": other})
        assert error["type"] == "operator_region" and f"region {other.value}" in error["msg"]
    fitting = data.draw(operator_ids_of[other])
    moved = ANY_EVENT.validate_python(
        {**event.model_dump(), "region": other, "operator_id": fitting}
    )
    assert moved.region is other


def test_a_file_line_breaking_the_rule_is_rejected_with_the_rule(
    sample_event: ExtractionEvent,
) -> None:
    line = sample_event.model_copy(update={"operator_id": JP_CORPORATE}).model_dump_json()
    [(number, rejected)] = read_jsonl([line.encode()])
    assert isinstance(rejected, RejectedLine)
    assert str(rejected).startswith(
        "line 1: extraction.region: operator_id 7120001077358 is a 13-digit Japanese corporate "
        "number, but an event of region EU is published by a Catena-X BPNL"
    )


def test_the_envelope_takes_the_region_from_the_operator(sample_event: ExtractionEvent) -> None:
    at = sample_event.occurred_at
    assert envelope(EU_BPNL, "SITE", at)["region"] is Region.EU
    assert envelope(JP_CORPORATE, "SITE", at)["region"] is Region.JP
    assert "event_id" not in envelope(EU_BPNL, "SITE", at)  # the model derives it
    given_id = sample_event.event_id
    assert envelope(EU_BPNL, "SITE", at, given_id)["event_id"] == given_id
    body = sample_event.model_dump(exclude={"event_id", "occurred_at", "operator_id", "region"})
    del body["site_id"]
    rebuilt = ExtractionEvent(**envelope(JP_CORPORATE, "JP-MINE", at), **body)
    assert (rebuilt.region, rebuilt.operator_id) == (Region.JP, JP_CORPORATE)


LEI_GLEIF = "506700GE1G29325QX363"  # GLEIF's own LEI
USCC_EXAMPLE = "91350100M000100Y43"  # a widely cited valid code


@pytest.mark.parametrize("operator", [LEI_GLEIF, USCC_EXAMPLE])
@pytest.mark.parametrize("region", ["EU", "JP"])
def test_an_operator_outside_the_alliance_publishes_into_either_region(
    sample_event: ExtractionEvent, operator: str, region: str
) -> None:
    event = ANY_EVENT.validate_python(
        {**sample_event.model_dump(), "region": region, "operator_id": operator}
    )
    assert (event.operator_id, event.region.value) == (operator, region)


def test_the_envelope_of_an_operator_outside_the_alliance_needs_its_members_region() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="outside the alliance: name the region"):
        envelope(USCC_EXAMPLE, "CN-SITE-1", when)
    assert envelope(USCC_EXAMPLE, "CN-SITE-1", when, region=Region.JP)["region"] is Region.JP

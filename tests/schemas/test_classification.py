"""Black mass classification: shredding schema version 3, its rules, and its evolution (v1 and
v2 data read as unclassified; a v3 reader without it would be refused)."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from pydantic import ValidationError

from schemas import catalog, compatibility
from schemas.events import BlackMassClassification, ShreddingEvent, envelope
from schemas.serde import Serde
from schemas.topics import event_topic_name
from tests import scenarios
from tests.strategies import classifications, events

CLASSIFICATION: dict[str, Any] = {
    "waste_code": "19 12 11*",
    "hazardous": True,
    "basel_entry": "A1170",
    "hs_code": "38249996",
    "chemistry_family": "nmc",
    "meets_gb_t_45203": False,
}


def _shredding(**extra: Any) -> ShreddingEvent:
    return ShreddingEvent(
        **envelope(scenarios.RECYCLER, "JP-REC-PLANT-1", scenarios.T0),
        black_mass_lot_id="BM-9",
        inputs=[{"battery_id": "OLD-9", "mass_kg": Decimal("60")}],
        mass_kg=Decimal("50"),
        composition={"nickel": Decimal("0.08")},
        **extra,
    )


def test_version_3_carries_the_classification() -> None:
    event = _shredding(classification=CLASSIFICATION)
    assert event.schema_version == 3
    assert event.classification is not None and event.classification.hazardous
    fields = {f["name"] for f in catalog.current("shredding").raw["fields"]}
    assert "classification" in fields
    assert [v.version for v in catalog.history("shredding")] == [1, 2, 3]


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"hazardous": False}, "disagree"),  # an asterisked code is hazardous
        ({"waste_code": "19 12 12"}, "disagree"),  # and only an asterisked one
        ({"waste_code": "191211*"}, "pattern"),  # three pairs of digits
        ({"basel_entry": "X1170"}, "pattern"),  # Annex II (Y), VIII (A) or IX (B)
        ({"hs_code": "3824"}, "pattern"),  # at least an HS subheading (6 digits)
        ({"chemistry_family": "nmc811"}, "chemistry_family"),
    ],
)
def test_a_classification_breaking_a_rule_is_refused(changes: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        _shredding(classification={**CLASSIFICATION, **changes})


def test_a_non_hazardous_classification_is_accepted() -> None:
    event = _shredding(
        classification={**CLASSIFICATION, "waste_code": "19 12 12", "hazardous": False}
    )
    assert event.classification is not None and not event.classification.hazardous


@given(classifications())
def test_a_classification_survives_avro_both_ways(classification: BlackMassClassification) -> None:
    event = _shredding(classification=classification)
    topic = event_topic_name("shredding")
    assert Serde().decode_event(Serde().encode(event, topic), topic=topic) == event


@pytest.mark.parametrize("version", [1, 2])
def test_older_versions_read_as_unclassified(version: int) -> None:
    event = _shredding()
    record = event.model_dump()
    if version == 1:
        for item in record["inputs"]:
            del item["waste_origin"]
    record["schema_version"] = version
    written = catalog.history("shredding")[version - 1]
    assert all(f["name"] != "classification" for f in written.raw["fields"])
    topic = event_topic_name("shredding")
    serde = Serde()
    read = serde.decode_event(serde.encode_as(written, record, topic), topic=topic)
    assert isinstance(read, ShreddingEvent) and read.classification is None


def test_the_classification_could_not_be_added_without_a_default() -> None:
    """The check that keeps v3 BACKWARD_TRANSITIVE fails for a required classification."""
    current = catalog.current("shredding").raw
    assert compatibility.check_backward_transitive("shredding") == []
    required = copy.deepcopy(current)
    for f in required["fields"]:
        if f["name"] == "classification":
            f["type"] = f["type"][1]  # the record, not null or the record
            del f["default"]
    problems = compatibility.reader_can_read(required, catalog.history("shredding")[1].raw)
    assert problems and "classification" in problems[0]


@given(events("shredding"))
def test_generated_shredding_events_round_trip(event: ShreddingEvent) -> None:
    topic = event_topic_name("shredding")
    assert Serde().decode_event(Serde().encode(event, topic), topic=topic) == event

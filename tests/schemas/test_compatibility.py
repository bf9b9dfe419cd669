"""Every schema is BACKWARD_TRANSITIVE compatible with its history, and the check can fail."""

from __future__ import annotations

import copy

import pytest

from schemas import catalog, compatibility
from schemas.events import EVENT_TYPES


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_current_schema_reads_every_published_version(event_type: str) -> None:
    history = catalog.history(event_type)
    assert history, f"{event_type} has no published version"
    assert history[-1].raw == catalog.current(event_type).raw
    assert compatibility.check_backward_transitive(event_type) == []


def _with_field(schema: dict, field: dict) -> dict:
    out = copy.deepcopy(schema)
    out["fields"].append(field)
    return out


def test_a_new_required_field_is_refused() -> None:
    old = catalog.current("shipment").raw
    new = _with_field(old, {"name": "carrier", "type": "string"})
    problems = compatibility.reader_can_read(new, old)
    assert problems and "reader_field_missing_default_value" in problems[0]
    assert "carrier" in problems[0]


def test_a_new_optional_field_with_default_is_accepted() -> None:
    old = catalog.current("shipment").raw
    new = _with_field(old, {"name": "carrier", "type": ["null", "string"], "default": None})
    assert compatibility.reader_can_read(new, old) == []


def test_removing_an_enum_symbol_is_refused() -> None:
    old = catalog.current("certification").raw
    new = copy.deepcopy(old)
    action = next(f for f in new["fields"] if f["name"] == "action")
    action["type"]["symbols"] = ["certified"]
    assert compatibility.reader_can_read(new, old)

"""Every schema is BACKWARD_TRANSITIVE compatible with its history, and the check can fail."""

from __future__ import annotations

import copy
import json

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_each_problem_is_reported_once_with_its_own_field() -> None:
    """Two fields that became numbers give the same reason text; a new required field another.
    Paired by sorted sets, one of the twins vanished and reasons landed on other fields."""
    old = catalog.current("shipment").raw
    new = _with_field(old, {"name": "carrier", "type": "string"})
    for f in new["fields"]:
        if f["name"] in ("hs_code", "from_country"):
            f["type"] = "int"
    problems = compatibility.reader_can_read(new, old)
    assert len(problems) == 3, problems
    by_field = {p.split(" at ", 1)[1].split(":", 1)[0]: p for p in problems}
    assert set(by_field) == {"carrier", "hs_code", "from_country"}
    assert by_field["carrier"].startswith("reader_field_missing_default_value at carrier:")
    assert "no default" in by_field["carrier"]
    for name in ("hs_code", "from_country"):
        assert by_field[name].startswith(f"type_mismatch at {name}: reader type int")


def test_a_decimal_whose_scale_changed_is_refused() -> None:
    """The same bytes at another scale are another number: 1234.500 kg would read as 123.45."""
    old = catalog.current("extraction").raw
    new = copy.deepcopy(old)
    mass = next(f for f in new["fields"] if f["name"] == "mass_kg")
    mass["type"]["scale"] += 1
    problems = compatibility.reader_can_read(new, old)
    assert problems == [
        f"type_mismatch at mass_kg: reader decimal({mass['type']['precision']}, "
        f"{mass['type']['scale']}) does not read the writer's decimal("
        f"{mass['type']['precision']}, {mass['type']['scale'] - 1})"
    ]


def test_problems_inside_arrays_and_unions_name_the_nested_field() -> None:
    old = catalog.current("refining").raw
    new = copy.deepcopy(old)
    inputs = next(f for f in new["fields"] if f["name"] == "inputs")
    items = inputs["type"]["items"]
    lot = next(f for f in items["fields"] if f["name"] == "lot_id")
    lot["type"] = "long"
    problems = compatibility.reader_can_read(new, old)
    assert problems == [
        "type_mismatch at inputs[].lot_id: reader type long cannot read the writer's string"
    ]


_MUTATIONS = ("drop", "required", "optional", "retype", "nullable", "enum_shrink", "enum_grow")


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(EVENT_TYPES),
    st.lists(st.tuples(st.sampled_from(_MUTATIONS), st.integers(0, 40)), min_size=1, max_size=4),
)
def test_the_verdict_agrees_with_the_avro_package(
    event_type: str, edits: list[tuple[str, int]]
) -> None:
    """Where the ``avro`` package's checker is right (no decimal shapes changed), a schema
    passes here exactly when it passes there."""
    old = catalog.current(event_type).raw
    new = copy.deepcopy(old)
    for mutation, index in edits:
        fields = new["fields"]
        f = fields[index % len(fields)]
        if mutation == "drop" and isinstance(f["type"], str):  # not one defining a named type
            fields.remove(f)
        elif mutation == "required":
            fields.append({"name": f"extra_{index}", "type": "string"})
        elif mutation == "optional":
            fields.append({"name": f"extra_{index}", "type": ["null", "long"], "default": None})
        elif mutation == "retype" and f["type"] in ("string", "int", "long"):
            f["type"] = {"string": "long", "int": "string", "long": "int"}[f["type"]]
        elif mutation == "nullable" and not isinstance(f["type"], list):
            f["type"] = ["null", f["type"]]
            f["default"] = None
        elif mutation.startswith("enum") and isinstance(f["type"], dict) and "symbols" in f["type"]:
            symbols = f["type"]["symbols"]
            if mutation == "enum_shrink":
                f["type"]["symbols"] = symbols[:-1]
            elif "x" not in symbols:
                f["type"]["symbols"] = [*symbols, "x"]
        names = [g["name"] for g in fields]
        if len(names) != len(set(names)):
            fields.pop()
    ours = compatibility.reader_can_read(new, old) == []
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        avro.schema.parse(json.dumps(new)), avro.schema.parse(json.dumps(old))
    )
    assert ours == (result.compatibility is SchemaCompatibilityType.compatible)

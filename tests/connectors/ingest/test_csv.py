"""CSV source: any event written under its documented columns reads back as the same event."""

from __future__ import annotations

import csv
import io
import re
import typing
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.ingest.files import RejectedLine, csv_header, read_csv
from schemas.events import EVENT_TYPES, Event
from tests.strategies import events

README = Path(__file__).parents[3] / "README.md"


def flatten(value: Any, path: str, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            flatten(inner, f"{path}.{key}" if path else str(key), out)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            flatten(inner, f"{path}.{i}", out)
    elif value is not None:
        out[path] = str(value)


def longest_list(event: Event) -> int:
    sizes = [1]

    def walk(value: Any) -> None:
        if isinstance(value, list):
            sizes.append(len(value))
            for v in value:
                walk(v)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)

    walk(event.model_dump(mode="json"))
    return max(sizes)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(EVENT_TYPES).flatmap(events), st.booleans())
def test_every_event_round_trips_through_its_csv_columns(event: Event, typed: bool) -> None:
    header = csv_header(event.event_type, longest_list(event))
    row: dict[str, str] = {}
    flatten(event.model_dump(mode="json"), "", row)
    assert set(row) <= set(header), set(row) - set(header)
    if not typed:  # the type comes from the command line instead of a column
        header.remove("event_type")
        row.pop("event_type")
    text = io.StringIO()
    writer = csv.DictWriter(text, header)
    writer.writeheader()
    writer.writerow(row)
    [(number, read)] = list(read_csv(io.StringIO(text.getvalue()), event.event_type))
    assert number == 2
    # An optional list given empty has no cells to say so: CSV reads it as not given (README).
    unsayable = {
        name: None
        for name, info in type(event).model_fields.items()
        if getattr(event, name) == [] and type(None) in typing.get_args(info.annotation)
    }
    assert read == event.model_copy(update=unsayable)


def test_bad_rows_are_rejected_by_line_with_the_reason() -> None:
    text = (
        "event_type,occurred_at,operator_id,site_id,region,lot_id,form,material,mass_kg,"
        "composition.nickel,country\n"
        "extraction,2031-01-01T00:00:00Z,BPNL0000000MIN01,BPNS0000000MIN01,EU,L1,ore,ni,5,"
        "0.1,FI\n"
        "extraction,2031-01-01T00:00:00Z,BPNL0000000MIN01,BPNS0000000MIN01,EU,L2,ore,ni,-5,"
        "0.1,XX\n"
        "extraction,2031-01-01,BPNL0000000MIN01\n"
        "extraction,2031-01-01T00:00:00Z,BPNL0000000MIN01,BPNS0000000MIN01,EU,L3,ore,ni,5,"
        "0.1,FI,extra\n"
    )
    results = list(read_csv(io.StringIO(text)))
    assert [n for n, _ in results] == [2, 3, 4, 5]
    assert not isinstance(results[0][1], RejectedLine)
    bad = [r for _, r in results[1:]]
    assert all(isinstance(r, RejectedLine) for r in bad)
    assert "mass_kg" in str(bad[0]) and "country" in str(bad[0])
    assert "more cells than the header" in str(bad[2])


def test_the_readme_documents_the_columns_of_every_event_type() -> None:
    documented = dict(re.findall(r"^\| `(\w+)` \| `([^`]+)` \|$", README.read_text(), re.M))
    assert set(documented) == set(EVENT_TYPES)
    for event_type, columns in documented.items():
        assert columns.split(",") == csv_header(event_type), event_type

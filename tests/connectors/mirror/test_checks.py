"""The mirror's plain checks of shared fields: every valid event passes, what breaks a kept
field's contract is refused naming the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.mirror import policy as sharing
from connectors.mirror.checks import SharedCheck, checks
from schemas.events import EVENT_TYPES, Event
from schemas.serde import Serde
from schemas.topics import event_topic_name
from tests import scenarios
from tests.strategies import events

SECRET = b"a-shared-secret-of-the-agreement"
POLICIES = {d: sharing.load(sharing.shipped(d), SECRET) for d in sharing.SHIPPED}
CHECKS = {d: checks(p) for d, p in POLICIES.items()}
SERDE = Serde()


def plain(event: Event) -> dict[str, Any]:
    return SERDE.decode_plain(SERDE.encode(event, event_topic_name(event.event_type)))[1]


@settings(max_examples=400, deadline=None)
@given(
    event=st.sampled_from(EVENT_TYPES).flatmap(events), direction=st.sampled_from(sharing.SHIPPED)
)
def test_every_valid_event_passes(event: Event, direction: str) -> None:
    check = CHECKS[direction].get(event.event_type)
    if check is not None:
        check(plain(event))


def _manufacture() -> tuple[SharedCheck, dict[str, Any]]:
    """A manufacture event the EU -> JP policy shares, as its plain record."""
    event = [e for e in scenarios.reference_with_gtin() if e.event_type == "manufacture"][-1]
    assert event.region == "EU" and event.gtin is not None and event.inputs
    return SharedCheck(POLICIES["eu-to-jp"], "manufacture"), plain(event)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda r: r.update(mass_kg=-1), "mass_kg"),
        (lambda r: r.update(mass_kg=10**18), "mass_kg"),
        (lambda r: r.update(battery_id=""), "battery_id"),
        (lambda r: r.update(battery_id="with space"), "battery_id"),
        (lambda r: r.update(operator_id="not an operator id"), "publisher"),
        (lambda r: r.update(region="JP"), "publisher"),
        (lambda r: r.update(event_type="extraction"), "event_type"),
        (lambda r: r.update(gtin="6291041500213"), "gtin"),  # valid, but not as 14 digits
        (lambda r: r.update(gtin="06291041500214"), "gtin"),  # check digit wrong
        (lambda r: r["inputs"].append({**r["inputs"][0], "mass_kg": -5}), "inputs[].mass_kg"),
    ],
)
def test_a_broken_shared_field_is_refused_by_name(change: Any, named: str) -> None:
    check, record = _manufacture()
    check(copy.deepcopy(record))  # valid as it is
    change(record)
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("]", r"\]")):
        check(record)

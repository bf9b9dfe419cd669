"""The recovery benchmark's changelog: real states that decode, with the ids varied."""

from __future__ import annotations

from bench.recovery import BATTERIES_PER_LOT, BATTERY, LOT, changelog_records, templates
from streams.domain.codec import decode_state, encode_state
from streams.domain.states import BatteryState


def test_every_record_decodes_and_names_its_own_lot() -> None:
    shapes = templates()
    count = 2 * BATTERIES_PER_LOT + 5
    records = list(changelog_records(count, shapes))
    keys = [k.decode() for k, _ in records]
    assert len(keys) == len(set(keys))
    assert sum(k.startswith("battery/") for k in keys) == count
    assert sum(k.startswith("lot/") for k in keys) == 3
    for key, value in records:
        state = decode_state(key.decode(), value)
        assert encode_state(state) == value  # a valid state, in canonical form
    last = dict(records)[f"battery/{BATTERY.format(count - 1)}".encode()]
    battery = decode_state("battery", last)
    assert isinstance(battery, BatteryState)
    assert LOT.format((count - 1) // BATTERIES_PER_LOT).encode() in last
    assert LOT.format(0).encode() not in last

"""The dashboard's state, fed records as its reader gets them (no broker): latest value per
key, tombstones and resolved alerts dropped, lots trimmed, flows summed per direction."""

from __future__ import annotations

import json

from connectors.mirror.replication import Flows, checkpoint_key, checkpoint_value
from schemas.values import Region
from streams.worker.dashboard import ALERTS, CHECKPOINTS, LOTS, DashboardState


def _alert(kind: str, status: str) -> bytes:
    return json.dumps({"kind": kind, "status": status, "subject": "lot/X", "message": "m"}).encode()


def test_alerts_keep_the_open_ones_latest_by_key() -> None:
    state = DashboardState("EU")
    state.apply(ALERTS, b"outflow/a", _alert("outflow", "open"), 1)
    state.apply(ALERTS, b"outflow/b", _alert("outflow", "open"), 2)
    state.apply(ALERTS, b"mass_balance/c", _alert("mass_balance", "open"), 3)
    state.apply(ALERTS, b"outflow/a", _alert("outflow", "resolved"), 4)
    state.apply(ALERTS, b"mass_balance/c", None, 5)  # tombstone
    state.apply(ALERTS, b"bad", b"{not json", 6)  # logged, left out
    view = state.view()
    assert view["open_alerts"] == {"outflow": 1}
    assert view["updated_ms"] == 6 and view["records_read"] == 6


def test_only_loop_lots_are_kept_and_only_what_the_loops_read() -> None:
    state = DashboardState("JP")
    ore = {"kind": "extracted", "mass_kg": "1.000", "composition": {}}
    recovered = {
        "kind": "recovered",
        "home_region": "EU",
        "location": {"country": "JP"},
        "mass_kg": "15.000",
        "composition": {"nickel": "0.200000"},
        "inputs": {},
        "origin": {"big": "x" * 1000},
    }
    state.apply(LOTS, b"ORE-1", json.dumps(ore).encode(), 1)
    state.apply(LOTS, b"REC-1", json.dumps(recovered).encode(), 2)
    assert list(state.lots) == ["REC-1"]
    assert "origin" not in state.lots["REC-1"]
    assert state.view()["loops"]["recovered_crossing"]["EU->JP"] == {"nickel": "3.000000000"}


def test_flows_into_the_region_sum_the_latest_checkpoint_per_partition() -> None:
    state = DashboardState("EU")
    topic = "batteryloop.events.shipment"
    key0, key1 = (checkpoint_key(Region.JP, topic, p) for p in (0, 1))
    state.apply(CHECKPOINTS, key0, checkpoint_value(5, 5, Flows(5, {}, 7)), 1)
    state.apply(CHECKPOINTS, key0, checkpoint_value(9, 8, Flows(8, {"uncertified": 1}, 9)), 2)
    state.apply(CHECKPOINTS, key1, checkpoint_value(3, 0, None), 3)  # before flows were kept
    state.apply(CHECKPOINTS, b"JP/x/1", b"{not json", 4)
    flows = state.view()["flows"]
    summed = {"shared": 8, "filtered": {"uncertified": 1}, "redacted": 9, "filtered_total": 1}
    assert flows == {"jp-to-eu": {"total": summed, "by_event_type": {"shipment": summed}}}

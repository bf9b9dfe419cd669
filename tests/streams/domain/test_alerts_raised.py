"""Alerts counted as raised when they become open: new, or open again after being resolved;
a change to an open alert is published but raises nothing."""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.domain.entities.alerts import ALERTS, alert, publish_alerts
from streams.domain.entities.effects import Effects
from streams.domain.states import AlertMemory


@dataclass
class Alerted:
    alerts: dict[str, AlertMemory] = field(default_factory=dict)


def _publish(state: Alerted, current: dict[str, dict[str, object]]) -> Effects:
    fx = Effects()
    publish_alerts(state, fx, current)
    return fx


def test_raised_counts_alerts_that_open_by_kind() -> None:
    state = Alerted()
    outflow = alert("outflow", "lot/L-1", "shipped out", event_ids=["e1"])
    unresolved = alert("unresolved_reference", "lot/L-2", "never created", event_ids=["e2"])
    fx = _publish(state, {"outflow/lot/L-1": outflow, "unresolved/lot/L-2": unresolved})
    assert fx.raised == {"outflow": 1, "unresolved_reference": 1}
    # the same alerts again: nothing published, nothing raised
    fx = _publish(state, {"outflow/lot/L-1": outflow, "unresolved/lot/L-2": unresolved})
    assert fx.published == [] and fx.raised == {}
    # an open alert that changes is published, not raised again
    changed = alert("unresolved_reference", "lot/L-2", "never created", event_ids=["e2", "e3"])
    fx = _publish(state, {"outflow/lot/L-1": outflow, "unresolved/lot/L-2": changed})
    assert [key for _, key, _ in fx.published] == ["unresolved/lot/L-2"] and fx.raised == {}
    # resolved, then open again: raised once more
    fx = _publish(state, {"unresolved/lot/L-2": changed})
    assert [(o, doc["status"]) for o, _, doc in fx.published] == [(ALERTS, "resolved")]
    assert fx.raised == {}
    fx = _publish(state, {"outflow/lot/L-1": outflow, "unresolved/lot/L-2": changed})
    assert fx.raised == {"outflow": 1}

"""Mutual recognition of certified operators and revocations, in the in-memory ledger.

An operator certified under either region's scheme (Catena-X in the EU, Ouranos in Japan) is
certified in both; a revocation ends that from its effective time, whichever order it and the
events it concerns arrive in.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import CertificationEvent, Event, envelope
from schemas.values import corporate_number_check_digit
from streams.domain.entities import ACCEPTED_DETAIL, Config, with_certification
from streams.domain.local import LocalLedger
from streams.domain.quantities import micros
from streams.domain.routing import operator_key
from streams.domain.states import OperatorState
from tests import scenarios
from tests.scenarios import CERTIFIER, MAKER, MINER, RECYCLER, REFINER, T0, uid

GRACE_MS = 60_000
JP_CERTIFIER = f"{corporate_number_check_digit('000000000042')}000000000042"
OPERATORS = (MINER, REFINER, MAKER, RECYCLER)


def certification(
    subject: str,
    scheme_region: str,
    n: int,
    at: datetime = T0,
    action: str = "certified",
) -> CertificationEvent:
    """A certification event as the scheme's own certifying body publishes it, in its region."""
    certifier, site, scheme, prefix = (
        (CERTIFIER, "BPNS00000000CERT", "Catena-X conformity assessment", "CX")
        if scheme_region == "EU"
        else (JP_CERTIFIER, "OURANOS-CERT-1", "Ouranos Ecosystem certification", "OE")
    )
    return CertificationEvent(
        **envelope(certifier, site, at, uid(5000 + n)),
        subject_operator_id=subject,
        action=action,
        scheme_region=scheme_region,
        scheme=scheme,
        certificate_id=f"{prefix}-{subject[-4:]}",
    )


def chain() -> list[Event]:
    """The reference chain without its certifications."""
    return [e for e in scenarios.reference() if e.event_type != "certification"]


def settled(events: list[Event], rng: random.Random | None = None, batch: int = 1) -> LocalLedger:
    ledger = LocalLedger(Config(grace_ms=GRACE_MS))
    ledger.submit(events)
    ledger.run(rng=rng, batch=batch)
    ledger.advance(GRACE_MS)
    return ledger


def uncertified(ledger: LocalLedger) -> dict[str, dict[str, Any]]:
    return {
        k: a
        for k, a in ledger.output("alerts").items()
        if a["kind"] == "uncertified_operator" and a["status"] == "open"
    }


@settings(max_examples=16, deadline=None)
@given(st.lists(st.sampled_from(["EU", "JP"]), min_size=4, max_size=4))
def test_a_certification_under_either_scheme_counts_in_one_ledger(schemes: list[str]) -> None:
    """EU- and JP-certified operators side by side: every one's events are accepted, and the
    passport says the maker is certified whichever scheme certified it."""
    pairs = enumerate(zip(OPERATORS, schemes, strict=True))
    certs = [certification(op, s, i) for i, (op, s) in pairs]
    ledger = settled([*certs, *chain()])
    assert uncertified(ledger) == {}
    passport = ledger.output("passports")["PACK-1"]
    maker = ledger.output("operators")[MAKER]
    read = with_certification(passport, maker, micros(T0 + timedelta(days=30)))
    assert read["manufacturer_certified"] is True
    assert read["manufacturer_certified_at_manufacture"] is True
    assert {c["scheme_region"] for c in maker["certifications"]} == {schemes[2]}


def test_an_operator_certified_under_neither_scheme_is_alerted() -> None:
    certs = [certification(MINER, "EU", 0), certification(REFINER, "JP", 1)]
    certs += [certification(RECYCLER, "JP", 3)]  # the maker is certified by nobody
    alerts = uncertified(settled([*certs, *chain()]))
    assert set(alerts) == {f"uncertified/{operator_key(MAKER)}"}
    assert alerts[f"uncertified/{operator_key(MAKER)}"]["details"]["events"] == 5
    assert "revocations" not in alerts[f"uncertified/{operator_key(MAKER)}"]["details"]


REVOKED_AT = T0 + timedelta(days=15)  # the maker's events: days 11, 12 before; 16, 17, 18 after


def revocation_chain(maker_scheme: str = "EU") -> list[Event]:
    certs = [certification(op, "EU", i) for i, op in enumerate(OPERATORS) if op != MAKER]
    return [
        *certs,
        certification(MAKER, maker_scheme, 2),
        certification(MAKER, maker_scheme, 9, REVOKED_AT, "revoked"),
        *chain(),
    ]


def test_events_after_a_revocation_are_alerted_and_those_before_stay_valid() -> None:
    ledger = settled(revocation_chain())
    alert = uncertified(ledger)[f"uncertified/{operator_key(MAKER)}"]
    details = alert["details"]
    assert details["events"] == 3
    assert [e["event_id"] for e in details["latest"]] == [str(uid(n)) for n in (7, 8, 9)]
    assert {e["reason"] for e in details["latest"]} == {"revoked"}
    assert details["latest"][0]["certificate"] == "EU:CX-CK01"
    assert details["latest"][0]["revoked_at"] == "2031-01-16T00:00:00Z"
    assert details["revocations"] == [
        {"certificate": "EU:CX-CK01", "revoked_at": "2031-01-16T00:00:00Z"}
    ]
    passport = ledger.output("passports")["PACK-1"]  # made on day 17: after the revocation
    read = with_certification(passport, ledger.output("operators")[MAKER], micros(T0))
    assert read["manufacturer_certified_at_manufacture"] is False
    old = ledger.output("passports")["OLD-PACK-1"]  # made on day 12: before it, still valid
    read = with_certification(old, ledger.output("operators")[MAKER], micros(T0))
    assert read["manufacturer_certified_at_manufacture"] is True


def test_a_revocation_under_one_scheme_leaves_the_other_schemes_certification() -> None:
    events = [*revocation_chain(), certification(MAKER, "JP", 20)]  # also Ouranos-certified
    assert uncertified(settled(events)) == {}


def test_a_revocation_read_long_after_the_events_still_flags_them() -> None:
    """Accepted, settled past the grace period, then revoked with an earlier effective time."""
    events = revocation_chain()
    revocation = next(e for e in events if getattr(e, "action", None) == "revoked")
    ledger = settled([e for e in events if e is not revocation])
    assert uncertified(ledger) == {}
    ledger.advance(10 * GRACE_MS)
    ledger.submit([revocation])
    ledger.run()
    ledger.advance(GRACE_MS // 2)
    assert uncertified(ledger) == {}  # the events wait the grace period again, like new ones
    ledger.advance(GRACE_MS // 2)
    assert uncertified(ledger) == uncertified(settled(events))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scheme=st.sampled_from(["EU", "JP"]),
    order_seed=st.integers(0, 2**32),
    batch=st.integers(1, 8),
    duplicates=st.floats(0, 0.5),
)
def test_a_revocation_gives_the_same_alerts_whether_it_arrives_before_or_after_the_events(
    scheme: str, order_seed: int, batch: int, duplicates: float
) -> None:
    events = revocation_chain(scheme)
    expected = settled(events)  # the revocation first, then the events, one at a time
    assert uncertified(expected)  # the rule applies: there is something to compare

    order = random.Random(order_seed)
    shuffled = events + [e for e in events if order.random() < duplicates]
    order.shuffle(shuffled)
    ledger = LocalLedger(Config(grace_ms=GRACE_MS))
    for start in range(0, len(shuffled), batch):
        ledger.submit(shuffled[start : start + batch])
        for _ in range(order.randint(0, 3)):
            ledger.deliver(order.randint(1, batch), order)
    ledger.run(rng=order, batch=batch)
    ledger.advance(GRACE_MS)
    assert ledger.output("alerts") == expected.output("alerts")
    assert ledger.output("operators") == expected.output("operators")


def test_a_burst_of_accepted_events_keeps_the_operator_state_small_and_is_judged_again() -> None:
    use = next(e for e in chain() if e.event_type == "use_collection")
    burst = [
        use.model_copy(
            update={"event_id": uid(100_000 + i), "occurred_at": T0 + timedelta(minutes=i + 1)}
        )
        for i in range(3 * ACCEPTED_DETAIL)
    ]
    ledger = settled([certification(MAKER, "JP", 0), *burst], batch=500)
    state = ledger.states[operator_key(MAKER)]
    assert isinstance(state, OperatorState)
    assert len(state.accepted) == ACCEPTED_DETAIL
    assert sum(h.count for h in state.accepted_by_hour.values()) == 2 * ACCEPTED_DETAIL
    assert uncertified(ledger) == {}
    # Revoked from the start: every accepted event, detailed or counted, is flagged.
    ledger.submit([certification(MAKER, "JP", 1, T0, "revoked")])
    ledger.run()
    ledger.advance(GRACE_MS)
    alert = uncertified(ledger)[f"uncertified/{operator_key(MAKER)}"]
    assert alert["details"]["events"] == 3 * ACCEPTED_DETAIL
    state = ledger.states[operator_key(MAKER)]
    assert isinstance(state, OperatorState)
    assert not state.accepted and not state.accepted_by_hour and not state.pending

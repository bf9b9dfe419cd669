"""The export rule: hazardous waste from the EU to outside the OECD raises ``illegal_export``
(apart from ``outflow``), each case with an example that meets it and one that does not."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.events import BlackMassClassification, Event, ShipmentEvent, ShreddingEvent, envelope
from schemas.rules.countries import alliance, oecd
from schemas.values import ISO_3166_ALPHA2
from streams.domain.entities.effects import Config
from streams.domain.entities.legality import EU_NON_OECD_EXPORT_BAN, export_banned
from streams.domain.local import LocalLedger
from streams.domain.messages import Shipped
from tests import scenarios
from tests.scenarios import MAKER, uid

HAZARDOUS = BlackMassClassification(
    waste_code="19 12 11*",
    hazardous=True,
    basel_entry="A1170",
    hs_code="38249996",
    chemistry_family="nmc",
    meets_gb_t_45203=False,
)
NOT_HAZARDOUS = HAZARDOUS.model_copy(update={"waste_code": "19 12 12", "hazardous": False})


def _shipment(n: int, subject: str, subject_id: str, from_: str, to: str) -> ShipmentEvent:
    return ShipmentEvent(
        **envelope(MAKER, "BPNS0000000PCK01", scenarios.T0.replace(month=12)),
        event_id=uid(n),
        subject=subject,
        subject_id=subject_id,
        mass_kg=1,
        from_site_id="BPNS0000000PCK01",
        from_country=from_,
        to_site_id="SITE-ABROAD",
        to_country=to,
        hs_code="262099",
    )


def _classified(events: list[Event], classification: BlackMassClassification | None) -> list[Event]:
    return [
        e.model_copy(update={"classification": classification})
        if isinstance(e, ShreddingEvent)
        else e
        for e in events
    ]


def _alerts(events: list[Event]) -> dict[str, Any]:
    ledger = LocalLedger(Config(grace_ms=60_000))
    ledger.submit(events)
    ledger.run()
    return {k: a for k, a in ledger.output("alerts").items() if a["status"] == "open"}


def _kinds(alerts: dict[str, Any]) -> dict[str, str]:
    return {k: a["kind"] for k, a in alerts.items() if a["kind"] in ("outflow", "illegal_export")}


@pytest.mark.parametrize(
    ("classification", "to", "illegal"),
    [
        (HAZARDOUS, "IN", True),  # hazardous, to a non-OECD country: prohibited
        (HAZARDOUS, "KR", False),  # hazardous, to an OECD member outside the alliance: allowed
        (NOT_HAZARDOUS, "IN", False),  # classed non-hazardous: the rule does not apply
        (None, "IN", True),  # unclassified black mass: presumed hazardous
    ],
    ids=["hazardous-to-non-oecd", "hazardous-to-oecd", "not-hazardous", "unclassified"],
)
def test_black_mass_export(
    classification: BlackMassClassification | None, to: str, illegal: bool
) -> None:
    events = [*_classified(scenarios.reference(), classification)]
    events.append(_shipment(70, "lot", "BM-1", "DE", to))
    kinds = _kinds(_alerts(events))
    expected = {f"outflow/{uid(70)}": "outflow"}  # outside the alliance, whatever the verdict
    if illegal:
        expected[f"illegal_export/{uid(70)}"] = "illegal_export"
    assert kinds == expected


def test_an_illegal_export_alert_names_its_rule_data_versions_and_basis() -> None:
    events = [
        *_classified(scenarios.reference(), HAZARDOUS),
        _shipment(70, "lot", "BM-1", "FR", "IN"),
    ]
    alert = _alerts(events)[f"illegal_export/{uid(70)}"]
    details = alert["details"]
    assert alert["subject"] == "lot/BM-1"
    assert details["rule"] == EU_NON_OECD_EXPORT_BAN
    assert "2024/1157" in details["legal_source"]
    assert details["data"] == [oecd().cite(), alliance().cite()]
    assert details["data"][0]["version"] == "2021-05-25"
    assert "19 12 11*" in details["basis"] and "A1170" in details["basis"]
    assert details["classification"]["waste_code"] == "19 12 11*"
    assert (details["from_country"], details["to_country"]) == ("FR", "IN")


def test_china_s_gb_t_45203_does_not_make_an_eu_export_legal() -> None:
    meets = HAZARDOUS.model_copy(update={"meets_gb_t_45203": True, "hs_code": "3824999996"})
    events = [*_classified(scenarios.reference(), meets), _shipment(70, "lot", "BM-1", "DE", "CN")]
    assert f"illegal_export/{uid(70)}" in _alerts(events)


def test_exports_from_japan_are_not_judged_by_the_eu_rule() -> None:
    events = [
        *_classified(scenarios.reference(), HAZARDOUS),
        _shipment(70, "lot", "BM-1", "JP", "CN"),
    ]
    assert _kinds(_alerts(events)) == {f"outflow/{uid(70)}": "outflow"}


@pytest.mark.parametrize(
    ("battery", "illegal"),
    [("OLD-PACK-1", True), ("PACK-1", False)],
    ids=["waste-battery", "battery-in-use"],
)
def test_battery_export(battery: str, illegal: bool) -> None:
    events = [*scenarios.reference(), _shipment(71, "battery", battery, "DE", "NG")]
    kinds = _kinds(_alerts(events))
    expected = (
        {f"outflow/{uid(71)}": "outflow", f"illegal_export/{uid(71)}": "illegal_export"}
        if illegal
        else {}
    )
    assert kinds == expected


def test_recovered_material_is_not_waste() -> None:
    events = [*scenarios.reference(), _shipment(72, "lot", "REC-NI-1", "DE", "IN")]
    assert _kinds(_alerts(events)) == {f"outflow/{uid(72)}": "outflow"}


def test_an_alert_resolves_when_the_classification_turns_out_non_hazardous() -> None:
    """Order-independent: the verdict follows the facts, not their arrival."""
    ship = _shipment(70, "lot", "BM-1", "DE", "IN")
    before = _alerts([*_classified(scenarios.reference(), None), ship])
    assert f"illegal_export/{uid(70)}" in before
    after = _alerts([*_classified(scenarios.reference(), NOT_HAZARDOUS), ship])
    assert f"illegal_export/{uid(70)}" not in after


def _shipped(from_: str, to: str) -> Shipped:
    return Shipped(
        event_id="e",
        event_type="shipment",
        occurred_at=0,
        operator_id=MAKER,
        site_id="s",
        region="EU",
        grams=1,
        from_site_id="a",
        from_country=from_,
        to_site_id="b",
        to_country=to,
        hs_code="262099",
    )


def test_a_shipment_between_member_states_is_no_export() -> None:
    """Bulgaria is in the Union but not in the OECD: shipping there from Germany is allowed."""
    events = [
        *_classified(scenarios.reference(), HAZARDOUS),
        _shipment(70, "lot", "BM-1", "DE", "BG"),
    ]
    assert _kinds(_alerts(events)) == {}
    assert not export_banned(_shipped("DE", "BG")) and export_banned(_shipped("BG", "RS"))


EU = sorted(alliance().sides["EU"])


@given(
    st.sampled_from(sorted(ISO_3166_ALPHA2)) | st.sampled_from(EU),
    st.sampled_from(sorted(ISO_3166_ALPHA2)) | st.sampled_from(EU),
)
def test_the_ban_is_exactly_an_export_from_the_union_to_a_non_oecd_country(
    from_: str, to: str
) -> None:
    eu = alliance().sides["EU"]
    banned = from_ in eu and to not in eu and to not in oecd().countries
    assert export_banned(_shipped(from_, to)) is banned
    if banned:  # every such export is an outflow too: the alliance is inside the OECD
        assert to not in alliance().countries

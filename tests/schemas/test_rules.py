"""The versioned country lists the rules read: committed, sourced, and checked when loaded."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.rules.countries import alliance, oecd, parse_country_list
from schemas.values import ALLIANCE_COUNTRIES, EU_MEMBER_STATES, ISO_3166_ALPHA2


def test_the_alliance_is_the_27_member_states_and_japan() -> None:
    a = alliance()
    assert len(a.sides["EU"]) == 27 and a.sides["JP"] == {"JP"}
    assert a.countries == ALLIANCE_COUNTRIES and a.sides["EU"] == EU_MEMBER_STATES
    assert "GB" not in a and "DE" in a


def test_the_oecd_has_38_members_since_costa_rica_joined() -> None:
    o = oecd()
    assert len(o.countries) == 38 and "CR" in o and "CO" in o
    assert o.version == "2021-05-25" and "oecd.org" in o.source
    # every alliance member is an OECD member but five EU member states
    assert alliance().sides["EU"] - o.countries == {"BG", "CY", "HR", "MT", "RO"}


def test_every_listed_code_is_an_iso_country() -> None:
    assert alliance().countries <= ISO_3166_ALPHA2
    assert oecd().countries <= ISO_3166_ALPHA2


def test_a_citation_names_the_list_its_version_and_source() -> None:
    assert oecd().cite() == {
        "name": "oecd_members",
        "version": "2021-05-25",
        "source": oecd().source,
    }


GOOD: dict[str, Any] = {
    "name": "x",
    "version": "2025-01-01",
    "valid_from": "2025-01-01",
    "source": "a source",
    "countries": ["DE", "JP"],
}


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"source": ""}, "'source' missing or empty"),
        ({"version": "2025"}, "not a YYYY-MM-DD date"),
        ({"countries": ["DE", "de"]}, "not ISO 3166-1 alpha-2"),
        ({"countries": ["DE", "DE"]}, "listed twice"),
        ({"countries": []}, "non-empty list"),
        ({"sides": {"A": ["DE"], "B": ["DE"]}}, "on two sides"),
    ],
)
def test_a_broken_list_is_refused_naming_the_file_and_reason(
    changes: dict[str, Any], why: str
) -> None:
    with pytest.raises(ValueError, match=why) as raised:
        parse_country_list({**GOOD, **changes}, "rules/x.json")
    assert "rules/x.json" in str(raised.value)

"""Passport URLs: GS1 Digital Link shape with a GTIN, ``/passport/<battery id>`` without."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.domain.entities.effects import Config
from streams.domain.links import gtin14, gtin_check_digit, passport_url
from streams.domain.local import LocalLedger
from tests import scenarios

BASE = "https://passports.example/eu/"


def test_without_a_gtin_the_path_names_the_battery() -> None:
    assert passport_url(BASE, "PACK-1") == "https://passports.example/eu/passport/PACK-1"


def test_with_a_gtin_the_path_is_gs1_digital_link() -> None:
    # 4006381333931: a GTIN-13 from GS1's check digit examples, written as 14 digits
    url = passport_url(BASE, "SN 7/1", gtin="4006381333931")
    assert url == "https://passports.example/eu/01/04006381333931/21/SN%207%2F1"


@pytest.mark.parametrize("gtin", ["4006381333932", "12345", "40063813339a1"])
def test_a_gtin_with_a_wrong_check_digit_or_form_is_refused(gtin: str) -> None:
    with pytest.raises(ValueError, match="GTIN"):
        passport_url(BASE, "PACK-1", gtin=gtin)


@pytest.mark.parametrize("base", ["passports.example", "ftp://x", "https://x/?q=1", ""])
def test_a_base_that_is_not_an_http_url_is_refused(base: str) -> None:
    with pytest.raises(ValueError, match="base URL"):
        passport_url(base, "PACK-1")


@given(st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=30))
def test_any_battery_id_gives_one_path_segment(battery_id: str) -> None:
    url = passport_url(BASE, battery_id)
    segment = url.removeprefix("https://passports.example/eu/passport/")
    assert "/" not in segment and "?" not in segment and "#" not in segment


@given(st.text("0123456789", min_size=7, max_size=13))
def test_a_gtin_with_its_computed_check_digit_is_accepted(body: str) -> None:
    gtin = body + str(gtin_check_digit(body))
    if len(gtin) in (8, 12, 13, 14):
        assert gtin14(gtin) == gtin.zfill(14)


def test_the_passport_document_carries_its_url() -> None:
    ledger = LocalLedger(Config(grace_ms=60_000, passport_base_url="https://dpp.example"))
    ledger.submit(scenarios.reference())
    ledger.run()
    passport = ledger.output("passports")["PACK-1"]
    assert passport["url"] == "https://dpp.example/passport/PACK-1"
    assert passport["gtin"] is None


def test_a_passport_with_a_gtin_carries_its_gs1_digital_link_url() -> None:
    ledger = LocalLedger(Config(grace_ms=60_000, passport_base_url="https://dpp.example/"))
    ledger.submit(scenarios.reference_with_gtin())
    ledger.run()
    passport = ledger.output("passports")["PACK-1"]
    assert passport["gtin"] == "06291041500213"
    assert passport["url"] == "https://dpp.example/01/06291041500213/21/PACK-1"

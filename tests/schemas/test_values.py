"""Validation of the value types: ids, countries, masses, shares."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from schemas.events import LotOutput
from schemas.values import (
    ALLIANCE_COUNTRIES,
    EU_MEMBER_STATES,
    ISO_3166_ALPHA2,
    CountryCode,
    Gtin,
    MassKg,
    OperatorId,
    SiteId,
    corporate_number_check_digit,
    gtin_check_digit,
)
from tests.strategies import compositions, corporate_numbers

operator = TypeAdapter(OperatorId)


def test_known_corporate_number_passes_its_check_digit() -> None:
    # Toyota Motor Corporation, from the National Tax Agency's public register
    assert corporate_number_check_digit("180301018771") == 1
    assert operator.validate_python("1180301018771") == "1180301018771"


@given(corporate_numbers())
def test_a_wrong_check_digit_is_refused(number: str) -> None:
    wrong = f"{(int(number[0]) % 9) + 1}{number[1:]}"
    with pytest.raises(ValidationError, match="check digit"):
        operator.validate_python(wrong)


@pytest.mark.parametrize(
    "bad", ["BPNL123", "BPNS0000000ABC01", "118030101877", "", "bpnl0000000ABC01"]
)
def test_malformed_operator_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        operator.validate_python(bad)


def test_bpnl_is_accepted() -> None:
    assert operator.validate_python("BPNL00000003AYRE") == "BPNL00000003AYRE"


def test_country_codes() -> None:
    assert len(ISO_3166_ALPHA2) == 249
    assert len(EU_MEMBER_STATES) == 27 and EU_MEMBER_STATES < ISO_3166_ALPHA2
    assert "JP" in ALLIANCE_COUNTRIES and "CN" not in ALLIANCE_COUNTRIES
    with pytest.raises(ValidationError):
        TypeAdapter(CountryCode).validate_python("XX")
    with pytest.raises(ValidationError):
        TypeAdapter(CountryCode).validate_python("jp")


def test_site_ids() -> None:
    site = TypeAdapter(SiteId)
    assert site.validate_python("JP-CELL-PLANT-1")
    for bad in ["BPNS123", "has space", ""]:
        with pytest.raises(ValidationError):
            site.validate_python(bad)


def test_masses_are_non_negative_and_exact_to_the_gram() -> None:
    mass = TypeAdapter(MassKg)
    assert mass.validate_python("0.1") + mass.validate_python("0.2") == Decimal("0.3")
    for bad in ["-1", "0.0001", "NaN", "Infinity"]:
        with pytest.raises(ValidationError):
            mass.validate_python(bad)


@given(compositions())
def test_compositions_up_to_one_are_accepted(composition) -> None:
    lot = LotOutput(lot_id="L", form="refined", material="m", mass_kg=1, composition=composition)
    assert sum(lot.composition.values()) <= 1


def test_compositions_over_one_or_out_of_range_are_refused() -> None:
    for composition in (
        {"nickel": "0.6", "cobalt": "0.5"},
        {"nickel": "1.2"},
        {"nickel": "-0.1"},
        {"unobtainium": "0.1"},
    ):
        with pytest.raises(ValidationError):
            LotOutput(lot_id="L", form="refined", material="m", mass_kg=1, composition=composition)


def test_naive_timestamps_are_refused(sample_event) -> None:
    data = sample_event.model_dump()
    data["occurred_at"] = data["occurred_at"].replace(tzinfo=None)
    with pytest.raises(ValidationError, match="timezone"):
        type(sample_event).model_validate(data)


gtin = TypeAdapter(Gtin)


@pytest.mark.parametrize(
    ("given_as", "written"),
    [
        # GS1 Digital Link Standard's example GTIN (https://id.gs1.org/01/09506000134352)
        ("09506000134352", "09506000134352"),
        ("9506000134352", "09506000134352"),  # the same GTIN as a GTIN-13
        # GS1's check digit calculator example, GTIN-13: 629104150021 -> 3
        ("6291041500213", "06291041500213"),
        ("036000291452", "00036000291452"),  # a GTIN-12 (UPC-A)
        ("96385074", "00000096385074"),  # a GTIN-8 (EAN-8)
    ],
)
def test_a_gtin_is_written_as_14_digits(given_as: str, written: str) -> None:
    assert gtin.validate_python(given_as) == written


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("09506000134353", "check digit"),
        ("6291041500214", "check digit"),
        ("96385075", "check digit"),
        ("950600013435", "check digit"),  # the GTIN-13's first 12 digits read as a GTIN-12
        ("9506000134", "8, 12, 13 or 14 digits"),  # 10 digits: no GTIN has them
        ("095060001343520", "8, 12, 13 or 14 digits"),
        ("0950600013435X", "8, 12, 13 or 14 digits"),
        (" 9506000134352", "8, 12, 13 or 14 digits"),
        ("", "8, 12, 13 or 14 digits"),
    ],
)
def test_a_gtin_that_is_not_one_is_refused(bad: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        gtin.validate_python(bad)


@given(st.text("0123456789", min_size=7, max_size=13), st.integers(1, 9))
def test_any_other_last_digit_breaks_a_gtin(body: str, off: int) -> None:
    good = body + str(gtin_check_digit(body))
    if len(good) not in (8, 12, 13, 14):
        return
    assert gtin.validate_python(good) == good.zfill(14)
    with pytest.raises(ValidationError, match="check digit"):
        gtin.validate_python(body + str((int(good[-1]) + off) % 10))

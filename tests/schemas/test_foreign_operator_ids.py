"""Operator ids of companies outside the alliance: the LEI (ISO 17442) and China's Unified
Social Credit Code (GB 32100-2015), each with its check characters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from schemas.values import (
    USCC_CHARSET,
    OperatorId,
    OperatorIdKind,
    lei_check_digits,
    lei_is_valid,
    operator_country,
    operator_id_kind,
    operator_id_platform,
    uscc_check_character,
)
from tests.strategies import leis, usccs

operator = TypeAdapter(OperatorId)

# LEIs of GLEIF's register: GLEIF itself, Apple Inc., and a widely cited example.
VALID_LEIS = ["506700GE1G29325QX363", "HWUPKR0MPOU8FGXBT394", "5493001KJTIIGC8Y1R12"]
# USCCs: a widely cited example, Huawei Technologies and Tencent (Shenzhen), as published.
VALID_USCCS = ["91350100M000100Y43", "91440300708461136T", "9144030071526726XG"]


@pytest.mark.parametrize("lei", VALID_LEIS)
def test_published_leis_pass_their_check_digits(lei: str) -> None:
    assert lei_is_valid(lei) and lei_check_digits(lei[:18]) == lei[18:]
    assert operator.validate_python(lei) == lei
    assert operator_id_kind(lei) is OperatorIdKind.lei and operator_id_platform(lei) is None


@pytest.mark.parametrize(
    ("wrong", "expected"),
    [
        ("506700GE1G29325QX364", "63"),  # last check digit off by one
        ("506700GE1G29325QX336", "63"),  # check digits swapped
        ("HWUPKR0MPOU8FGXBT349", "94"),
        ("5493001KJTIIGC8Y1R21", "12"),
        ("506700GE1G29352QX363", "36"),  # two base characters transposed
    ],
)
def test_a_lei_with_wrong_check_digits_is_refused_naming_the_right_ones(
    wrong: str, expected: str
) -> None:
    with pytest.raises(ValidationError, match=f"check digits of this LEI are wrong.*{expected}"):
        operator.validate_python(wrong)


@given(leis(), st.integers(0, 17), st.integers(1, 25))
def test_a_single_substitution_within_digits_or_within_letters_is_caught(
    lei: str, at: int, shift: int
) -> None:
    # MOD 97-10 catches a digit changed for a digit, or a letter for a letter (the expansion
    # keeps its length, and no difference times a power of ten is a multiple of 97); a digit
    # changed for a letter lengthens the number and is not always caught.
    alphabet = "0123456789" if lei[at].isdigit() else "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    ch = alphabet[(alphabet.index(lei[at]) + shift) % len(alphabet)]
    changed = lei[:at] + ch + lei[at + 1 :]
    assert (changed == lei) or not lei_is_valid(changed)


@pytest.mark.parametrize("uscc", VALID_USCCS)
def test_published_usccs_pass_their_check_character(uscc: str) -> None:
    assert uscc_check_character(uscc[:17]) == uscc[17]
    assert operator.validate_python(uscc) == uscc
    assert operator_id_kind(uscc) is OperatorIdKind.uscc
    assert operator_id_platform(uscc) is None and operator_country(uscc) == "CN"


@pytest.mark.parametrize(
    ("wrong", "expected"),
    [
        ("91350100M000100Y44", "3"),
        ("91440300708461136X", "T"),
        ("9144030071526726X0", "G"),
        ("911100001011021699", "Q"),  # digits only, a wrong check character
    ],
)
def test_a_uscc_with_a_wrong_check_character_is_refused(wrong: str, expected: str) -> None:
    with pytest.raises(ValidationError, match=f"check character.*expected '{expected}'"):
        operator.validate_python(wrong)


@given(usccs(), st.integers(0, 16), st.sampled_from(USCC_CHARSET))
def test_any_single_changed_character_of_a_uscc_is_caught(uscc: str, at: int, ch: str) -> None:
    # weights 3^i mod 31 are all non-zero in the prime field of 31: a substitution shows
    changed = uscc[:at] + ch + uscc[at + 1 :]
    assert (uscc_check_character(changed[:17]) == changed[17]) == (changed == uscc)


@pytest.mark.parametrize(
    "bad",
    [
        "91350100M000100Y4",  # 17 characters
        "91350100M000100I43",  # I is not in the code's alphabet
        "91350100M000100O43",  # nor O
        "9135AB00M000100Y43",  # the administrative division (characters 3-8) is digits
        "506700ge1g29325qx363",  # an LEI is upper case
        "506700GE1G29325QX3",  # 18 characters, not a USCC either
    ],
)
def test_malformed_foreign_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="is not an operator id"):
        operator.validate_python(bad)

"""Value types shared by every event contract: identifiers, countries, masses, shares, money.

Each type is an ``Annotated`` alias so that pydantic validates it wherever it is used and the
Avro schemas can say the same thing in their own words (decimal logical types, strings).
Masses and shares are ``Decimal`` with a fixed scale: sums of masses are exact, never drifting
the way binary floats do.
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from schemas.rules.countries import alliance

# Avro decimal parameters, one place. A mass is kg with gram resolution; a share is a fraction
# with ppm resolution; money is an amount with four decimals (sub-cent prices per kg exist).
MASS_PRECISION, MASS_SCALE = 18, 3
SHARE_PRECISION, SHARE_SCALE = 7, 6
MONEY_PRECISION, MONEY_SCALE = 18, 4

_BPNL = re.compile(r"BPNL[A-Za-z0-9]{12}")
_BPNS = re.compile(r"BPNS[A-Za-z0-9]{12}")
_CORPORATE_NUMBER = re.compile(r"[0-9]{13}")


def corporate_number_check_digit(base12: str) -> int:
    """Check digit of a Japanese corporate number (houjin bangou) from its 12 base digits.

    National Tax Agency rule: 9 - (sum of P_n * Q_n for n = 1..12) mod 9, where P_n is the
    n-th digit counted from the right and Q_n is 1 for odd n and 2 for even n.
    """
    total = 0
    for n, ch in enumerate(reversed(base12), start=1):
        total += int(ch) * (1 if n % 2 else 2)
    return 9 - total % 9


#: ISO 17442 Legal Entity Identifier: 18 letters or digits, then two check digits.
_LEI = re.compile(r"[A-Z0-9]{18}[0-9]{2}")
#: GB 32100-2015 Unified Social Credit Code: the 31 characters it uses (no I, O, S, V, Z).
USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC = re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}")


def lei_is_valid(value: str) -> bool:
    """Whether a 20-character LEI passes ISO 17442's check: ISO/IEC 7064 MOD 97-10, letters
    read as numbers (A = 10 ... Z = 35), the whole number modulo 97 is 1 (as in an IBAN)."""
    digits = "".join(str(int(ch, 36)) for ch in value)
    return int(digits) % 97 == 1


def lei_check_digits(base18: str) -> str:
    """The two check digits ISO 17442 appends to an LEI's first 18 characters."""
    digits = "".join(str(int(ch, 36)) for ch in base18)
    return f"{98 - int(digits + '00') % 97:02d}"


def uscc_check_character(base17: str) -> str:
    """The check character (the 18th) of a Chinese Unified Social Credit Code (GB 32100-2015,
    4.2): each of the first 17 characters is its index in :data:`USCC_CHARSET`, weighted by
    3^(i-1) mod 31; the check is 31 - (sum mod 31), 31 written as 0."""
    total = sum(USCC_CHARSET.index(ch) * pow(3, i, 31) for i, ch in enumerate(base17))
    return USCC_CHARSET[(31 - total % 31) % 31]


class OperatorIdKind(StrEnum):
    """The registers an operator id can come from. The first two are the alliance platforms'
    own; an LEI (global) or a Chinese USCC names a company outside the alliance, which
    publishes through an alliance member acting for it (an importer or a registered agent)."""

    bpnl = "bpnl"
    jp_corporate_number = "jp_corporate_number"
    lei = "lei"
    uscc = "uscc"


def operator_id_kind(value: str) -> OperatorIdKind:
    """Which register a *valid* operator id is from (see :func:`_operator_id`)."""
    if value.startswith("BPNL"):
        return OperatorIdKind.bpnl
    if len(value) == 13:
        return OperatorIdKind.jp_corporate_number
    if len(value) == 20:
        return OperatorIdKind.lei
    return OperatorIdKind.uscc


def _operator_id(value: str) -> str:
    if _BPNL.fullmatch(value):
        return value
    if _CORPORATE_NUMBER.fullmatch(value):
        if int(value[0]) != corporate_number_check_digit(value[1:]):
            raise ValueError(
                f"{value!r}: the check digit of this Japanese corporate number is wrong"
            )
        return value
    if _LEI.fullmatch(value):
        if not lei_is_valid(value):
            raise ValueError(
                f"{value!r}: the check digits of this LEI are wrong (ISO 17442, ISO/IEC 7064 "
                f"MOD 97-10: expected {lei_check_digits(value[:18])})"
            )
        return value
    if _USCC.fullmatch(value):
        expected = uscc_check_character(value[:17])
        if value[17] != expected:
            raise ValueError(
                f"{value!r}: the check character of this Unified Social Credit Code is wrong "
                f"(GB 32100-2015: expected {expected!r})"
            )
        return value
    raise ValueError(
        f"{value!r} is not an operator id: expected a Catena-X BPNL ('BPNL' + 12 letters or "
        "digits), a 13-digit Japanese corporate number, an LEI (ISO 17442, 20 characters) or "
        "a Chinese Unified Social Credit Code (GB 32100-2015, 18 characters)"
    )


def operator_id_platform(value: str) -> str | None:
    """Which alliance platform issues an operator id of this form: "EU" (Catena-X BPNL) or
    "JP" (Japanese corporate number, as Ouranos uses it); None for an operator outside the
    alliance (LEI, USCC). ``value`` is a valid operator id."""
    kind = operator_id_kind(value)
    if kind is OperatorIdKind.bpnl:
        return "EU"
    if kind is OperatorIdKind.jp_corporate_number:
        return "JP"
    return None


def operator_country(value: str) -> str | None:
    """The country an operator id itself tells, if any: a USCC is Chinese, a corporate
    number Japanese. (A BPNL or an LEI says nothing about the country.)"""
    kind = operator_id_kind(value)
    if kind is OperatorIdKind.uscc:
        return "CN"
    if kind is OperatorIdKind.jp_corporate_number:
        return "JP"
    return None


OPERATOR_ID_KIND = {
    "EU": "a Catena-X BPNL ('BPNL' + 12 letters or digits)",
    "JP": "a 13-digit Japanese corporate number",
}


def _site_id(value: str) -> str:
    # A BPNS is checked strictly; Ouranos plant ids (openPlantId) and other site codes are
    # free-form but must be printable and without whitespace.
    if value.startswith("BPNS") and not _BPNS.fullmatch(value):
        raise ValueError(f"{value!r} starts like a Catena-X BPNS but is not 'BPNS' + 12 characters")
    return value


# ISO 3166-1 alpha-2, officially assigned codes.
ISO_3166_ALPHA2 = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
    DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
    GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
    KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
    VN VU WF WS YE YT ZA ZM ZW
    """.split()
)

#: The EU member states, from the versioned alliance list (``schemas/rules``).
EU_MEMBER_STATES = alliance().sides["EU"]
#: The EU-Japan alliance territory: a shipment of critical material leaving it is an outflow.
ALLIANCE_COUNTRIES = alliance().countries


_GTIN = re.compile(r"[0-9]{8}|[0-9]{12,14}")


def gtin_check_digit(body: str) -> int:
    """GS1 check digit of a GTIN's digits without it (General Specifications 7.9.1): weights
    3 and 1 alternating from the rightmost digit."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def gtin14(gtin: str) -> str:
    """A GTIN-8, -12, -13 or -14 as the 14 digits GS1 Digital Link writes (left-padded with
    zeros); ValueError when it is not one or its check digit is wrong."""
    if not _GTIN.fullmatch(gtin):
        raise ValueError(f"{gtin!r} is not a GTIN: expected 8, 12, 13 or 14 digits")
    if gtin_check_digit(gtin[:-1]) != int(gtin[-1]):
        raise ValueError(f"{gtin!r}: the GTIN's check digit is wrong")
    return gtin.zfill(14)


def _country(value: str) -> str:
    if value not in ISO_3166_ALPHA2:
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    return value


_Identifier = StringConstraints(min_length=1, max_length=128, pattern=r"^[!-~]+$")

OperatorId = Annotated[str, AfterValidator(_operator_id)]
SiteId = Annotated[str, _Identifier, AfterValidator(_site_id)]
CountryCode = Annotated[str, AfterValidator(_country)]
#: Battery identifiers follow ISO/IEC 15459 (EU 2023/1542 Art. 13(6)): printable, no spaces.
BatteryId = Annotated[str, _Identifier]
LotId = Annotated[str, _Identifier]
#: GS1 Global Trade Item Number of the product (GTIN-8, -12, -13 or -14 with a valid check
#: digit), kept as the 14 digits GS1 Digital Link writes: one product, one spelling.
Gtin = Annotated[str, AfterValidator(gtin14)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
#: Customs tariff code: 6-digit HS heading, optionally extended to 8 or 10 digits (CN, TARIC).
HsCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}([0-9]{2}){0,2}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=200)]

MassKg = Annotated[
    Decimal,
    Field(ge=0, max_digits=MASS_PRECISION, decimal_places=MASS_SCALE, allow_inf_nan=False),
]
Share = Annotated[
    Decimal,
    Field(ge=0, le=1, max_digits=SHARE_PRECISION, decimal_places=SHARE_SCALE, allow_inf_nan=False),
]
MoneyAmount = Annotated[
    Decimal,
    Field(ge=0, max_digits=MONEY_PRECISION, decimal_places=MONEY_SCALE, allow_inf_nan=False),
]


class Region(StrEnum):
    """The data platform a record belongs to: Catena-X (EU) or Ouranos (JP)."""

    EU = "EU"
    JP = "JP"

    @property
    def partner(self) -> Region:
        """The other region of the alliance."""
        return Region.JP if self is Region.EU else Region.EU


class Metal(StrEnum):
    """Elements tracked in lot compositions (EU 2023/1542 Art. 8 and Annex XII name most)."""

    lithium = "lithium"
    nickel = "nickel"
    cobalt = "cobalt"
    manganese = "manganese"
    lead = "lead"
    copper = "copper"
    aluminium = "aluminium"
    iron = "iron"
    graphite = "graphite"


class Confidentiality(StrEnum):
    """Kinds of confidential business data that never leave their region.

    Schemas tag fields with ``"confidential": <kind>``; models carry the same tag.
    """

    supplier_identity = "supplier_identity"
    procurement_amount = "procurement_amount"
    price = "price"

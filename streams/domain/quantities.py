"""Exact integer quantities for the hot path and for order-independent arithmetic.

Contracts carry masses as ``decimal(18,3)`` kg and shares as ``decimal(7,6)``, so a mass is an
exact number of grams and a share an exact number of parts per million. A metal mass is then
grams x ppm = micrograms, again exact. Integers add in any order to the same sum, which is what
makes tallies independent of arrival order; divisions (taking part of a lot) round half up to
the microgram, always over inputs sorted by key, so every replay computes the same numbers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

MICROGRAMS_PER_KG = 10**9
GRAMS_PER_KG = 1000
PPM = 10**6
_SHARE_PLACES = Decimal("0.000001")
_KG_PLACES = Decimal("0.000000001")


def grams(kg: Decimal) -> int:
    """kg with at most 3 decimals (the contract's scale) as whole grams."""
    value = kg.scaleb(3)
    if value != value.to_integral_value():
        raise ValueError(f"{kg} kg has more than 3 decimals")
    return int(value)


def ppm(share: Decimal) -> int:
    value = share.scaleb(6)
    if value != value.to_integral_value():
        raise ValueError(f"share {share} has more than 6 decimals")
    return int(value)


def scaled(amount: int, numerator: int, denominator: int) -> int:
    """amount x numerator / denominator, rounded half up; 0 when the denominator is 0."""
    if denominator <= 0:
        return 0
    return (2 * amount * numerator + denominator) // (2 * denominator)


def kg_from_grams(g: int) -> str:
    return format(Decimal(g).scaleb(-3), "f")


def kg_from_micrograms(ug: int) -> str:
    return format(Decimal(ug).scaleb(-9).quantize(_KG_PLACES), "f")


def share(numerator: int, denominator: int) -> str | None:
    """numerator / denominator to 6 decimals, as a string; None when undefined (0/0)."""
    if denominator <= 0:
        return None
    return str((Decimal(numerator) / Decimal(denominator)).quantize(_SHARE_PLACES))


def at_least(numerator: int, denominator: int, minimum: str) -> bool:
    """numerator / denominator >= minimum, exactly (no rounding)."""
    return denominator > 0 and Decimal(numerator) >= Decimal(minimum) * denominator


def micros(moment: datetime) -> int:
    """A time-zone aware time as microseconds since the epoch (sortable, exact)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def iso(us: int) -> str:
    """Microseconds since the epoch as an ISO 8601 UTC time."""
    seconds, rest = divmod(us, 1_000_000)
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest)
    return moment.isoformat().replace("+00:00", "Z")


def year(us: int) -> int:
    return datetime.fromtimestamp(us // 1_000_000, UTC).year


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

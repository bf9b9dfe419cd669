"""Where a battery passport can be resolved on the web: the URL its QR code holds.

EU 2023/1542 Art. 77(3) has a QR code on each battery give access to its passport through the
battery's unique identifier (ISO/IEC 15459). The URL is built from a configurable base
(``BATTERYLOOP_PASSPORT_BASE_URL``; the worker's views answer it) and takes one of two shapes:

* ``<base>/01/<GTIN>/21/<serial>``, the path of GS1 Digital Link (GS1 Digital Link Standard:
  URI Syntax, 1.x: application identifier 01, the GTIN as 14 digits, then 21, the serial),
  where the battery's GTIN is known;
* ``<base>/passport/<battery id>`` otherwise.

Both name the battery, not the passport id: the passport id changes when a battery is
repurposed (a new passport is issued) while the code printed on the battery stays, and a
resolver answers with the battery's latest passport.
"""

from __future__ import annotations

import re
from urllib.parse import quote

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


def normalized_base(base: str) -> str:
    """``base`` without a trailing slash; ValueError unless it is an http(s) URL."""
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", base):
        raise ValueError(f"{base!r} is not an http(s) base URL (e.g. https://passports.example)")
    return base.rstrip("/")


def passport_url(base: str, battery_id: str, gtin: str | None = None) -> str:
    """The resolvable URL of a battery's passport (see the module docstring)."""
    root = normalized_base(base)
    serial = quote(battery_id, safe="")  # GS1 Digital Link percent-encodes the serial
    if gtin is not None:
        return f"{root}/01/{gtin14(gtin)}/21/{serial}"
    return f"{root}/passport/{serial}"

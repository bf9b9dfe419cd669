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

from schemas.values import gtin14, gtin_check_digit

__all__ = ["gtin14", "gtin_check_digit", "normalized_base", "passport_url"]


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

"""Country lists the rules read: which countries are in the alliance, which are OECD
members. Each list is a JSON file beside this module with its version (the date of the last
change it records), the date it is valid from and its source; an alert raised by a rule names
the version it read (:meth:`CountryList.cite`), so a decision can be traced to its data.

A change of membership is a new version of the file: edit the countries, the version, the date
and the source together.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

RULES_DIR = Path(__file__).parent
_COUNTRY = re.compile(r"[A-Z]{2}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class CountryList:
    """A set of countries (ISO 3166-1 alpha-2) as of a version, with its source; ``sides``
    splits it where the list has parts (the alliance: ``EU`` and ``JP``)."""

    name: str
    version: str
    valid_from: str
    source: str
    countries: frozenset[str]
    sides: dict[str, frozenset[str]]

    def __contains__(self, country: object) -> bool:
        return country in self.countries

    def cite(self) -> dict[str, str]:
        """Which data a decision read: name, version and source, for an alert's details."""
        return {"name": self.name, "version": self.version, "source": self.source}


def _countries(values: object, where: str) -> frozenset[str]:
    if not isinstance(values, list) or not values:
        raise ValueError(f"{where}: expected a non-empty list of country codes")
    bad = [v for v in values if not isinstance(v, str) or not _COUNTRY.fullmatch(v)]
    if bad:
        raise ValueError(f"{where}: not ISO 3166-1 alpha-2 codes: {bad}")
    if len(set(values)) != len(values):
        raise ValueError(f"{where}: a country is listed twice")
    return frozenset(values)


def parse_country_list(raw: dict[str, object], where: str) -> CountryList:
    """A country list from its JSON form; ``where`` names it in errors."""
    for field in ("name", "version", "valid_from", "source"):
        if not isinstance(raw.get(field), str) or not raw[field]:
            raise ValueError(f"{where}: field {field!r} missing or empty")
    for field in ("version", "valid_from"):
        if not _DATE.fullmatch(str(raw[field])):
            raise ValueError(f"{where}: {field} {raw[field]!r} is not a YYYY-MM-DD date")
    sides: dict[str, frozenset[str]] = {}
    if "sides" in raw:
        given = raw["sides"]
        if not isinstance(given, dict) or not given:
            raise ValueError(f"{where}: 'sides' must map side names to country lists")
        sides = {str(s): _countries(c, f"{where}: sides.{s}") for s, c in given.items()}
        countries = frozenset().union(*sides.values())
        if sum(len(c) for c in sides.values()) != len(countries):
            raise ValueError(f"{where}: a country is on two sides")
    else:
        countries = _countries(raw.get("countries"), f"{where}: countries")
    return CountryList(
        name=str(raw["name"]),
        version=str(raw["version"]),
        valid_from=str(raw["valid_from"]),
        source=str(raw["source"]),
        countries=countries,
        sides=sides,
    )


@cache
def country_list(name: str) -> CountryList:
    """The committed list ``schemas/rules/<name>.json``."""
    path = RULES_DIR / f"{name}.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the country list: {exc}") from exc
    return parse_country_list(raw, str(path))


def alliance() -> CountryList:
    """The EU member states (side ``EU``) and Japan (side ``JP``)."""
    return country_list("alliance_members")


def oecd() -> CountryList:
    """The OECD member countries."""
    return country_list("oecd_members")

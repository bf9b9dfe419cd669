"""Disclosure rules as data: which attributes a battery passport must disclose, and whether a
passport does.

The rule set is a versioned TOML file, ``schemas/rules/disclosure-<n>.toml``, one table per
mandatory attribute naming its legal source (EU 2023/1542 Annex XIII and Annex VI Part A), the
Catena-X Battery Pass 6.1.0 path and the DIN DKE SPEC 99100 category, and the passport fields
that show it with a check each. :func:`evaluate` applies a rule set to a passport's fields; the
same rules hold for every battery, whoever made it and wherever.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

RULES_DIR = Path(__file__).parent / "rules"
#: The rule set passports are judged by.
CURRENT_VERSION = "disclosure-1"

Check = Literal["present", "declared", "non_empty", "true", "empty"]
_CHECKS: dict[str, Callable[[Any], bool]] = {
    "present": lambda v: v is not None and v != "",
    "declared": lambda v: v is not None,
    "non_empty": lambda v: bool(v),
    "true": lambda v: v is True,
    "empty": lambda v: not v,
}


@dataclass(frozen=True)
class Requirement:
    """A passport field and the check it must pass."""

    field: str
    check: Check


@dataclass(frozen=True)
class Rule:
    """One mandatory attribute and where it comes from."""

    attribute: str
    regulation: str
    battery_pass: str
    din_dke_spec_99100: str
    requires: tuple[Requirement, ...]

    def met_by(self, fields: Mapping[str, Any]) -> bool:
        return all(_CHECKS[r.check](fields.get(r.field)) for r in self.requires)


@dataclass(frozen=True)
class RuleSet:
    version: str
    rules: tuple[Rule, ...]

    @property
    def attributes(self) -> list[str]:
        return [r.attribute for r in self.rules]

    def missing(self, fields: Mapping[str, Any]) -> list[str]:
        """The attributes ``fields`` (a passport's) does not disclose, in the rule set's order."""
        return [r.attribute for r in self.rules if not r.met_by(fields)]


class RuleSetError(ValueError):
    """A rule file that cannot be used: names the file, the rule and the reason."""


def parse_rule_set(path: Path, text: str) -> RuleSet:
    """The rule set a TOML text holds (``path`` names it in errors)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleSetError(f"{path}: not TOML: {exc}") from None
    version = data.get("version")
    if not isinstance(version, str) or not version:
        raise RuleSetError(f"{path}: 'version' must name the rule set")
    rules, seen = [], set()
    for index, raw in enumerate(data.get("rules", []), start=1):
        where = f"{path}: rule {index} ({raw.get('attribute', '?')})"
        try:
            requires = tuple(Requirement(r["field"], r["check"]) for r in raw["requires"])
            rule = Rule(
                raw["attribute"],
                raw["regulation"],
                raw["battery_pass"],
                raw["din_dke_spec_99100"],
                requires,
            )
        except (KeyError, TypeError) as exc:
            raise RuleSetError(f"{where}: missing or malformed {exc}") from None
        unknown = [r.check for r in requires if r.check not in _CHECKS]
        if unknown or not requires:
            raise RuleSetError(
                f"{where}: checks must be some of {', '.join(_CHECKS)} (got {unknown or 'none'})"
            )
        if rule.attribute in seen:
            raise RuleSetError(f"{where}: attribute named twice")
        seen.add(rule.attribute)
        rules.append(rule)
    if not rules:
        raise RuleSetError(f"{path}: no [[rules]]")
    return RuleSet(version, tuple(rules))


@cache
def rule_set(version: str = CURRENT_VERSION) -> RuleSet:
    """The rule set ``version`` from ``schemas/rules/<version>.toml``."""
    path = RULES_DIR / f"{version}.toml"
    found = parse_rule_set(path, path.read_text(encoding="utf-8"))
    if found.version != version:
        raise RuleSetError(f"{path}: says version {found.version!r}")
    return found


def evaluate(fields: Mapping[str, Any], version: str = CURRENT_VERSION) -> dict[str, Any]:
    """A passport's disclosure status: the rule set, met or missing, and what is missing."""
    missing = rule_set(version).missing(fields)
    return {"rules": version, "status": "missing" if missing else "met", "missing": missing}

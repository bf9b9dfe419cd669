"""Disclosure tallies: how completely each maker's battery passports disclose what the rule
set requires (:mod:`schemas.disclosure`), per maker and the maker's country, for dashboards.

Like the recycled-content tallies (:mod:`.tallies`): each battery's newest status is a part of
its own beside the tally (``disclosure-part/<tally>#battery/<id>``), and the tally keeps counts
only: batteries, batteries meeting every rule, and per attribute the batteries missing it.
"""

from __future__ import annotations

from functools import partial

from streams.domain.entities.alerts import DISCLOSURE, publish_if_changed
from streams.domain.entities.effects import Config, Document, Effects
from streams.domain.entities.tallies import part_key, replaced
from streams.domain.messages import DisclosureContribution, DisclosureShare, Message
from streams.domain.quantities import share
from streams.domain.states import DisclosurePart, DisclosureTally


def _count(tally: DisclosureTally, s: DisclosureShare, sign: int) -> None:
    tally.labels = s.labels
    tally.sources += sign
    tally.met += sign * (not s.missing)
    for counts, name in [(tally.rules, s.rules), *((tally.missing, m) for m in s.missing)]:
        counts[name] = counts.get(name, 0) + sign
        if not counts[name]:
            del counts[name]


def handle_disclosure(
    key: str, tally: DisclosureTally, messages: list[Message], now: int, cfg: Config, fx: Effects
) -> DisclosureTally:
    """Replace each battery's status by its newest revision, keeping exact counts."""
    count = partial(_count, tally)
    for message in messages:
        if not isinstance(message, DisclosureContribution):
            continue
        part = part_key(key, message.source)
        held = fx.get(part)
        assert held is None or isinstance(held, DisclosurePart), f"{part}: {held!r}"
        if replaced(held, message.revision, message.share, count):
            fx.put(part, DisclosurePart(revision=message.revision, share=message.share))
    return tally


def disclosure_view(tally: DisclosureTally) -> Document:
    assert tally.labels is not None
    return {
        "manufacturer": tally.labels.manufacturer,
        "country": tally.labels.country,
        "batteries": tally.sources,
        "batteries_met": tally.met,
        "completeness": share(tally.met, tally.sources),
        "missing": dict(sorted(tally.missing.items())),
        "rules": dict(sorted(tally.rules.items())),
    }


def publish_disclosure(key: str, tally: DisclosureTally, cfg: Config, fx: Effects) -> None:
    if tally.labels is not None:
        publish_if_changed(tally, fx, DISCLOSURE, key.split("/", 1)[1], disclosure_view(tally))

"""Tallies: recycled content per manufacturer, plant, model and year; recovery efficiency per
recycler, plant and year. Contributions in (one per battery or recovery, newest revision wins);
tally documents out.

A tally holds only its totals and counts; each source's last contribution is an entry of its
own (``<kind>-part/<tally>#<source key>``, see :func:`part_key`), stored beside the tally in
the same partition. So a tally stays small however many batteries a model sells in a year.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TypeVar

import msgspec

from streams.domain.entities.alerts import RECOVERY, RECYCLED_CONTENT, publish_if_changed
from streams.domain.entities.batteries import RECYCLED_CONTENT_MINIMUMS
from streams.domain.entities.effects import Config, Document, Effects
from streams.domain.messages import (
    DisclosureShare,
    Message,
    MetalMass,
    RecoveryContribution,
    RecoveryShare,
    RecycledContentContribution,
    RecycledContentShare,
)
from streams.domain.quantities import at_least, kg_from_micrograms, share
from streams.domain.states import (
    DisclosurePart,
    RecoveredMetal,
    RecoveryPart,
    RecoveryTally,
    RecycledContentPart,
    RecycledContentTally,
)

#: EU 2023/1542 Annex XII Part C: material recovery targets by 31 Dec 2027 and 31 Dec 2031.
RECOVERY_TARGETS: dict[str, tuple[str, str]] = {
    "cobalt": ("0.90", "0.95"),
    "copper": ("0.90", "0.95"),
    "lead": ("0.90", "0.95"),
    "nickel": ("0.90", "0.95"),
    "lithium": ("0.50", "0.80"),
}


_Share = TypeVar("_Share", RecycledContentShare, RecoveryShare, DisclosureShare)


def part_key(tally_key: str, source: str) -> str:
    """Key of one source's contribution to a tally: ``<kind>-part/<tally>#<source key>``.

    A ``#`` or ``%`` in the tally's own part is escaped (``%23``, ``%25``), so the first ``#``
    always ends it and :func:`tally_of_part` finds the tally, whose partition the part shares.
    """
    kind, _, rest = tally_key.partition("/")
    rest = rest.replace("%", "%25").replace("#", "%23")
    return f"{kind}-part/{rest}#{source}"


def tally_of_part(key: str) -> str:
    """The tally key a contribution key (:func:`part_key`) belongs to."""
    kind, _, rest = key.partition("/")
    tally = rest.partition("#")[0].replace("%23", "#").replace("%25", "%")
    return f"{kind.removesuffix('-part')}/{tally}"


def _count_regions(counts: dict[str, int], regions: list[str], sign: int) -> None:
    for region in regions:
        counts[region] = counts.get(region, 0) + sign
        if not counts[region]:
            del counts[region]


def _count_recycled(tally: RecycledContentTally, s: RecycledContentShare, sign: int) -> None:
    tally.labels = s.labels
    tally.sources += sign
    _count_regions(tally.regions, s.regions, sign)
    tally.incomplete += sign * (not s.complete)
    for metal, mass in s.metals.items():
        into = tally.totals.setdefault(metal, MetalMass(0, 0, 0))
        into.total += sign * mass.total
        into.pre_consumer += sign * mass.pre_consumer
        into.post_consumer += sign * mass.post_consumer


def replaced(
    held: RecycledContentPart | RecoveryPart | DisclosurePart | None,
    revision: int,
    share: _Share | None,
    count: Callable[[_Share, int], None],
) -> bool:
    """Swap a source's counted share for a newer revision's, keeping exact totals; False (and
    nothing counted) when ``revision`` is not newer than what ``held`` records."""
    if held is not None and held.revision >= revision:
        return False
    if held is not None and held.share is not None:
        count(held.share, -1)  # type: ignore[arg-type]  # the part holds this tally's kind
    if share is not None:
        count(share, 1)
    return True


def _apply_recycled(
    key: str, tally: RecycledContentTally, messages: list[Message], fx: Effects
) -> None:
    """Replace each battery's contribution by its newest revision."""
    for message in messages:
        if not isinstance(message, RecycledContentContribution):
            continue
        part = part_key(key, message.source)
        old = fx.get(part)
        assert old is None or isinstance(old, RecycledContentPart), f"{part}: {old!r}"
        if replaced(old, message.revision, message.share, partial(_count_recycled, tally)):
            fx.put(part, RecycledContentPart(revision=message.revision, share=message.share))


def _count_recovered(tally: RecoveryTally, s: RecoveryShare, sign: int) -> None:
    tally.labels = s.labels
    tally.sources += sign
    _count_regions(tally.regions, s.regions, sign)
    for metal in set(s.input) | set(s.output):
        into = tally.totals.setdefault(metal, RecoveredMetal(0, 0))
        into.input += sign * s.input.get(metal, 0)
        into.recovered += sign * s.output.get(metal, 0)


def _apply_recovered(key: str, tally: RecoveryTally, messages: list[Message], fx: Effects) -> None:
    """Replace each recovery's contribution by its newest revision."""
    for message in messages:
        if not isinstance(message, RecoveryContribution):
            continue
        part = part_key(key, message.source)
        old = fx.get(part)
        assert old is None or isinstance(old, RecoveryPart), f"{part}: {old!r}"
        if replaced(old, message.revision, message.share, partial(_count_recovered, tally)):
            fx.put(part, RecoveryPart(revision=message.revision, share=message.share))


def recycled_content_view(tally: RecycledContentTally) -> Document:
    assert tally.labels is not None
    metals = {}
    for metal, (low, high) in RECYCLED_CONTENT_MINIMUMS.items():
        m = tally.totals.get(metal, MetalMass(0, 0, 0))
        total, pre, post = m.total, m.pre_consumer, m.post_consumer
        metals[metal] = {
            "total_kg": kg_from_micrograms(total),
            "recycled_kg": kg_from_micrograms(pre + post),
            "recycled_pre_consumer_kg": kg_from_micrograms(pre),
            "recycled_post_consumer_kg": kg_from_micrograms(post),
            "recycled_share": share(pre + post, total),
            "pre_consumer_share": share(pre, total),
            "post_consumer_share": share(post, total),
            "minimum_2031": low,
            "minimum_2036": high,
            "meets_2031": at_least(pre + post, total, low) if total else None,
            "meets_2036": at_least(pre + post, total, high) if total else None,
        }
    return {
        **msgspec.structs.asdict(tally.labels),
        "batteries": tally.sources,
        "batteries_incomplete": tally.incomplete,
        "metals": metals,
        "regions": sorted(tally.regions),
        "basis": "mass balance over the lot genealogy; lead over the battery, "
        "cobalt, lithium and nickel over the active materials declared as inputs",
    }


def handle_recycled_content(
    key: str,
    tally: RecycledContentTally,
    messages: list[Message],
    now: int,
    cfg: Config,
    fx: Effects,
) -> RecycledContentTally:
    _apply_recycled(key, tally, messages, fx)
    return tally


def publish_recycled_content(
    key: str, tally: RecycledContentTally, cfg: Config, fx: Effects
) -> None:
    if tally.labels is not None:
        document = recycled_content_view(tally)
        publish_if_changed(tally, fx, RECYCLED_CONTENT, key.split("/", 1)[1], document)


def recovery_view(tally: RecoveryTally) -> Document:
    assert tally.labels is not None
    metals = {}
    for metal, (by_2027, by_2031) in RECOVERY_TARGETS.items():
        m = tally.totals.get(metal, RecoveredMetal(0, 0))
        into, out = m.input, m.recovered
        metals[metal] = {
            "input_kg": kg_from_micrograms(into),
            "recovered_kg": kg_from_micrograms(out),
            "efficiency": share(out, into),
            "target_2027": by_2027,
            "target_2031": by_2031,
            "meets_2027": at_least(out, into, by_2027) if into else None,
            "meets_2031": at_least(out, into, by_2031) if into else None,
        }
    return {
        **msgspec.structs.asdict(tally.labels),
        "recoveries": tally.sources,
        "metals": metals,
        "regions": sorted(tally.regions),
    }


def handle_recovery(
    key: str, tally: RecoveryTally, messages: list[Message], now: int, cfg: Config, fx: Effects
) -> RecoveryTally:
    _apply_recovered(key, tally, messages, fx)
    return tally


def publish_recovery(key: str, tally: RecoveryTally, cfg: Config, fx: Effects) -> None:
    if tally.labels is not None:
        publish_if_changed(tally, fx, RECOVERY, key.split("/", 1)[1], recovery_view(tally))

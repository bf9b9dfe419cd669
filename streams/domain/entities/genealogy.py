"""Profiles: what a lot or battery is made of, mixed by mass along the genealogy.

A profile holds a mass in grams, per metal micrograms in all and recycled pre- and
post-consumer, and micrograms of primary origin per ``"<country>|<site>"``. Taking part of a
lot scales every number (rounding half up, :func:`.quantities.scaled`); mixing adds them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, TypeVar

from streams.domain.entities.upstream import absence_revision
from streams.domain.messages import Absence, LotPortion, MetalMass, Profile
from streams.domain.quantities import kg_from_grams, kg_from_micrograms, scaled, share
from streams.domain.routing import lot_key
from streams.domain.states import HeldProfile

MICROGRAMS_PER_GRAM = 10**6
#: A genealogy deeper than this is taken for a cycle (lot A made from B made from A): the
#: profile stops propagating and an alert says so. Real chains, closed loops included, are far
#: shallower (mine, refinery, cathode, cell, module, pack, black mass, recovery: ~10 per loop).
MAX_GENEALOGY_DEPTH = 256
_Fact = TypeVar("_Fact")


def chosen(facts: dict[str, _Fact]) -> _Fact | None:
    """The fact a conflict is resolved to: lowest event id (same choice in every order)."""
    return facts[min(facts)] if facts else None


def hold(inputs: dict[str, HeldProfile], source: str, revision: int, profile: Profile) -> bool:
    """Keep the newest profile per sender; True when it replaced what was held."""
    held = inputs.get(source)
    if held is not None and held.revision >= revision:
        return False
    inputs[source] = HeldProfile(revision, profile)
    return True


def revision(own_facts: int, inputs: dict[str, HeldProfile], absent: dict[str, Absence]) -> int:
    """How many facts a profile rests on: the entity's own, its inputs' revisions, and the
    shipments its uncreated inputs' absence notices rest on."""
    return own_facts + sum(held.revision for held in inputs.values()) + absence_revision(absent)


def take(profile: Profile, g: int) -> Profile:
    """The part of a profiled lot that ``g`` grams of it carry."""
    total = profile.grams
    return Profile(
        grams=g,
        metals={
            metal: MetalMass(
                scaled(m.total, g, total),
                scaled(m.pre_consumer, g, total),
                scaled(m.post_consumer, g, total),
            )
            for metal, m in profile.metals.items()
        },
        origins={k: scaled(x, g, total) for k, x in profile.origins.items()},
        regions=profile.regions,
    )


def add(pool: Profile, part: Profile) -> None:
    pool.grams += part.grams
    for metal, mass in part.metals.items():
        into = pool.metals.get(metal)
        if into is None:
            into = pool.metals[metal] = MetalMass(0, 0, 0)
        into.total += mass.total
        into.pre_consumer += mass.pre_consumer
        into.post_consumer += mass.post_consumer
    for origin, ug in part.origins.items():
        pool.origins[origin] = pool.origins.get(origin, 0) + ug


def mix(parts: Iterable[tuple[str, int | None]], inputs: dict[str, HeldProfile]) -> Profile:
    """Mix the parts taken from inputs: (sender key, grams taken, or None for all of it).

    The pool is complete when every part's profile is known and complete; its depth is one
    more than the deepest part's; it rests on the regions every known part rests on.
    """
    pool = Profile(grams=0, metals={}, origins={}, complete=True, depth=0)
    regions: set[str] = set()
    for source, taken in parts:
        held = inputs.get(source)
        if held is None:
            pool.complete = False
            continue
        profile = held.profile
        pool.complete = pool.complete and profile.complete
        pool.depth = max(pool.depth, profile.depth + 1)
        regions.update(profile.regions)
        add(pool, profile if taken is None else take(profile, taken))
    pool.regions = sorted(regions)
    return pool


def lot_parts(taken: dict[str, int]) -> list[tuple[str, int | None]]:
    return [(lot_key(lot_id), g) for lot_id, g in sorted(taken.items())]


def sorted_profile(p: Profile) -> Profile:
    """``p`` with its maps in key order (what is sent on is the same in every order)."""
    return Profile(
        grams=p.grams,
        metals=dict(sorted(p.metals.items())),
        origins=dict(sorted(p.origins.items())),
        complete=p.complete,
        depth=p.depth,
        regions=sorted(set(p.regions)),
        missing_upstream=p.missing_upstream,
        missing_upstream_more=p.missing_upstream_more,
    )


def metal_in(portions: Iterable[LotPortion]) -> dict[str, int]:
    """Micrograms of each metal in lot portions."""
    out: dict[str, int] = defaultdict(int)
    for portion in portions:
        for metal, p in portion.composition.items():
            out[metal] += portion.grams * p
    return out


def materials_view(metals: dict[str, MetalMass]) -> dict[str, dict[str, Any]]:
    out = {}
    for metal, m in sorted(metals.items()):
        pre, post = m.pre_consumer, m.post_consumer
        out[metal] = {
            "mass_kg": kg_from_micrograms(m.total),
            "recycled_share": share(pre + post, m.total),
            "recycled_pre_consumer_share": share(pre, m.total),
            "recycled_post_consumer_share": share(post, m.total),
        }
    return out


def origins_view(origins: dict[str, int], traced_g: int) -> dict[str, Any]:
    """Origin shares of the traced mass; ``origins`` holds micrograms per country|site."""
    traced = traced_g * MICROGRAMS_PER_GRAM
    countries: dict[str, int] = defaultdict(int)
    sites = []
    for origin, ug in sorted(origins.items()):
        country, _, site = origin.partition("|")
        countries[country] += ug
        sites.append({"country": country, "site_id": site, "share": share(ug, traced)})
    primary = sum(countries.values())
    return {
        "traced_mass_kg": kg_from_grams(traced_g),
        "primary_share": share(primary, traced),
        "secondary_share": share(traced - primary, traced),
        "countries": {c: share(ug, traced) for c, ug in sorted(countries.items())},
        "extraction_sites": sites,
    }

"""Summaries of what a region's processors published, for the demo's report and the worker's
dashboard: the same figures, computed once, from the published documents alone.

The inputs are documents as read back from the output topics (JSON: masses as kg strings with
up to 9 decimals, shares as 6-decimal strings); the outputs are plain JSON-ready values. Sums of
masses are exact (integer micrograms), so a region-wide share is the same whatever order the
tallies arrive in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from streams.domain.crossings import crossed_in_ledger, crossings_view, partner_recycling_in_ledger
from streams.domain.quantities import at_least, kg_from_micrograms, share

_RECYCLED_FIELDS = (
    "recycled_share",
    "pre_consumer_share",
    "post_consumer_share",
    "minimum_2031",
    "minimum_2036",
    "meets_2031",
    "meets_2036",
)
_RECOVERY_FIELDS = ("efficiency", "target_2027", "target_2031", "meets_2027", "meets_2031")
_NOT_LABELS = ("metals", "batteries", "basis", "recoveries", "batteries_incomplete")


def labels(tally: Mapping[str, Any]) -> dict[str, Any]:
    """What names a tally (manufacturer, plant, model, year; or recycler, plant, year)."""
    return {k: v for k, v in tally.items() if k not in _NOT_LABELS}


def recycled_content_rows(tallies: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each recycled-content tally with the metals it holds any of: shares and minimums."""
    rows = []
    for tally in tallies:
        metals = {
            m: {k: v[k] for k in _RECYCLED_FIELDS}
            for m, v in tally["metals"].items()
            if Decimal(v["total_kg"]) > 0
        }
        if metals:
            rows.append(
                {
                    **labels(tally),
                    "batteries": tally["batteries"],
                    "batteries_incomplete": tally["batteries_incomplete"],
                    "metals": metals,
                }
            )
    return rows


def recovery_rows(tallies: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each recovery tally with the metals that went into it: efficiencies and targets."""
    return [
        {
            **labels(tally),
            "metals": {
                m: {k: v[k] for k in _RECOVERY_FIELDS}
                for m, v in tally["metals"].items()
                if Decimal(v["input_kg"]) > 0
            },
        }
        for tally in tallies
    ]


def _ug(kg: str) -> int:
    return int(Decimal(kg).scaleb(9))


def _by_metal(
    tallies: Iterable[Mapping[str, Any]], part: str, whole: str, limits: tuple[str, str]
) -> dict[str, dict[str, Any]]:
    sums: dict[str, list[int]] = {}
    bounds: dict[str, dict[str, str]] = {}
    for tally in tallies:
        for metal, v in tally["metals"].items():
            total = sums.setdefault(metal, [0, 0, 0])
            total[0] += _ug(v[part])
            total[1] += _ug(v[whole])
            total[2] += 1 if _ug(v[whole]) > 0 else 0
            bounds[metal] = {k: v[k] for k in limits}
    out = {}
    for metal, (numerator, denominator, tallied) in sorted(sums.items()):
        if denominator <= 0:
            continue
        out[metal] = {
            part: kg_from_micrograms(numerator),
            whole: kg_from_micrograms(denominator),
            "share": share(numerator, denominator),
            "tallies": tallied,
            **bounds[metal],
            **{
                "meets_" + k.rsplit("_", 1)[1]: at_least(numerator, denominator, bounds[metal][k])
                for k in limits
            },
        }
    return out


def recycled_content_by_metal(tallies: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Recycled content per metal over every tally of the region (all makers, models and years):
    recycled kg over total kg in batteries, against the 2031 and 2036 minimums of EU 2023/1542
    Art. 8 (the figures the tallies carry); metals no battery holds are left out."""
    return _by_metal(tallies, "recycled_kg", "total_kg", ("minimum_2031", "minimum_2036"))


def recovery_by_metal(tallies: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Material recovery per metal over every recycler of the region: recovered kg over input
    kg, against the 2027 and 2031 targets of Annex XII; metals never fed in are left out."""
    return _by_metal(tallies, "recovered_kg", "input_kg", ("target_2027", "target_2031"))


def open_alerts(alerts: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Open alerts per kind."""
    counts = Counter(a["kind"] for a in alerts if a.get("status") == "open")
    return dict(sorted(counts.items()))


def ledger_loops(lots: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Closed loops across the alliance as one region's lot documents have them (lot id ->
    document): recovered metal that crossed the border each way, and the recycled metal each
    region's refiners took from the partner's recycling, in kg."""
    return {
        "recovered_crossing": crossings_view(crossed_in_ledger(lots)),
        "refined_from_partner_recycling": crossings_view(partner_recycling_in_ledger(lots)),
    }


#: The lot fields :func:`ledger_loops` reads: a reader that keeps lots for it keeps only these.
LOOP_LOT_FIELDS = ("kind", "location", "home_region", "mass_kg", "composition", "inputs")


def loop_relevant(lot: Mapping[str, Any]) -> dict[str, Any] | None:
    """The part of a lot document :func:`ledger_loops` needs, or None when it needs none of it
    (only recovered and refined lots take part in a loop)."""
    if lot.get("kind") not in ("recovered", "refined"):
        return None
    return {k: lot.get(k) for k in LOOP_LOT_FIELDS}

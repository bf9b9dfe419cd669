"""Region-wide summaries of the published tallies: exact sums, the scenario's hand-worked
figures, and the part of a lot the loops need."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from schemas.values import Region
from streams.domain.summaries import (
    ledger_loops,
    loop_relevant,
    open_alerts,
    recovery_by_metal,
    recycled_content_by_metal,
)
from tests import scenarios
from tests.integration.workers import ground_truth

KG = st.integers(0, 10**15).map(lambda ug: format(Decimal(ug).scaleb(-9), "f"))


def _tally(metal: str, recycled: str, total: str) -> dict[str, Any]:
    return {
        "metals": {
            metal: {
                "recycled_kg": recycled,
                "total_kg": total,
                "minimum_2031": "0.06",
                "minimum_2036": "0.15",
            }
        }
    }


@given(st.lists(st.tuples(KG, KG), min_size=1, max_size=8))
def test_the_share_per_metal_is_the_exact_sum_over_tallies(parts: list[tuple[str, str]]) -> None:
    tallies = [_tally("nickel", r, t) for r, t in parts]
    recycled = sum(Decimal(r) for r, _ in parts)
    total = sum(Decimal(t) for _, t in parts)
    out = recycled_content_by_metal(tallies)
    assert recycled_content_by_metal(reversed(tallies)) == out  # any order, same figures
    if total == 0:
        assert out == {}
        return
    nickel = out["nickel"]
    assert Decimal(nickel["recycled_kg"]) == recycled and Decimal(nickel["total_kg"]) == total
    assert nickel["share"] == str((recycled / total).quantize(Decimal("0.000001")))
    assert nickel["meets_2031"] == (recycled >= Decimal("0.06") * total)
    assert nickel["meets_2036"] == (recycled >= Decimal("0.15") * total)
    assert nickel["tallies"] == sum(1 for _, t in parts if Decimal(t) > 0)


def test_the_reference_loop_summarises_to_its_hand_worked_figures() -> None:
    ledger = ground_truth(scenarios.reference(), Region.EU)
    recycled = recycled_content_by_metal(ledger.output("recycled-content").values())
    # PACK-1: 20 kg nickel, 3 kg recycled post-consumer (15 %); no other metal in any battery
    assert list(recycled) == ["nickel"]
    assert recycled["nickel"]["share"] == "0.150000"
    assert (recycled["nickel"]["minimum_2031"], recycled["nickel"]["minimum_2036"]) == (
        "0.06",
        "0.15",
    )
    assert recycled["nickel"]["meets_2031"] and recycled["nickel"]["meets_2036"]
    recovery = recovery_by_metal(ledger.output("recovery").values())
    # 3 kg recovered of 4 kg nickel in: 75 %, short of 90 % (2027) and 95 % (2031)
    assert recovery == {
        "nickel": {
            "recovered_kg": "3.000000000",
            "input_kg": "4.000000000",
            "share": "0.750000",
            "tallies": 1,
            "target_2027": "0.90",
            "target_2031": "0.95",
            "meets_2027": False,
            "meets_2031": False,
        }
    }


def test_loops_read_from_trimmed_lots_equal_those_read_from_whole_ones() -> None:
    ledger = ground_truth(scenarios.border_loop(), Region.JP)
    lots = ledger.output("lots")
    trimmed = {k: t for k, doc in lots.items() if (t := loop_relevant(doc)) is not None}
    assert len(trimmed) < len(lots)  # black mass, ore and the like are not kept
    loops = ledger_loops(lots)
    assert ledger_loops(trimmed) == loops
    assert loops["recovered_crossing"]["EU->JP"] == {"nickel": "3.000000000"}


def test_open_alerts_are_counted_per_kind() -> None:
    alerts = [
        {"kind": "outflow", "status": "open"},
        {"kind": "outflow", "status": "resolved"},
        {"kind": "mass_balance", "status": "open"},
        {"kind": "outflow", "status": "open"},
    ]
    assert open_alerts(alerts) == {"mass_balance": 1, "outflow": 2}

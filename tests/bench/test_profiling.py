"""Summing py-spy's raw (collapsed stack) output into the functions with the most own time."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bench.profiling import own_time, short

OUTER = "<module> (/w/.venv/lib/python3.11/site-packages/x/cli.py:3);run (/w/streams/app.py:330)"
RAW = f"""\
{OUTER};_handle (/w/streams/app.py:360) 30
{OUTER};_handle (/w/streams/app.py:371) 10
{OUTER};poll (/usr/lib/python3.11/selectors.py:468) 40
{OUTER} 20
"""


def test_own_time_is_the_innermost_frame_summed_over_its_lines() -> None:
    samples, hotspots = own_time(RAW)
    assert samples == 100
    shares = {h.function: h.share for h in hotspots}
    assert shares == {
        "poll (selectors.py)": 0.4,
        "_handle (/w/streams/app.py)": 0.4,
        "run (/w/streams/app.py)": 0.2,
    }
    assert hotspots[-1].function == "run (/w/streams/app.py)"


def test_nothing_sampled_gives_no_hotspots() -> None:
    assert own_time("") == (0, [])
    assert own_time("py-spy> not a sample line\n") == (0, [])


@given(st.lists(st.tuples(st.sampled_from("abcde"), st.integers(1, 1000)), min_size=1))
def test_the_shares_add_up_to_one_and_are_ordered(lines: list[tuple[str, int]]) -> None:
    raw = "\n".join(f"main (m.py:1);{name} (f.py:{i}) {n}" for i, (name, n) in enumerate(lines))
    samples, hotspots = own_time(raw, top=10)
    assert samples == sum(n for _, n in lines)
    assert abs(sum(h.share for h in hotspots) - 1.0) < 1e-9
    assert [h.share for h in hotspots] == sorted((h.share for h in hotspots), reverse=True)


def test_paths_lose_the_machine_specific_part() -> None:
    assert (
        short("/a/.venv/lib/python3.11/site-packages/confluent_kafka/x.py")
        == "confluent_kafka/x.py"
    )
    assert short("/root/.pyenv/versions/3.11.7/lib/python3.11/threading.py") == "threading.py"

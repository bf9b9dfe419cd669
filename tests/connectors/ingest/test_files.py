from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from connectors.ingest.files import RejectedLine, read_jsonl
from tests.strategies import events


@given(st.lists(events(), max_size=5), st.lists(st.text(max_size=30), max_size=5))
def test_every_line_is_either_an_event_or_a_rejection_with_its_number(good, junk) -> None:
    lines = [e.model_dump_json() for e in good] + [j.replace("\n", " ") + "\n" for j in junk]
    out = list(read_jsonl(lines))
    assert [n for n, _ in out] == [i for i, line in enumerate(lines, 1) if line.strip()]
    assert [item for _, item in out[: len(good)]] == good
    for number, item in out[len(good) :]:
        assert isinstance(item, RejectedLine) and item.line == number and item.reason

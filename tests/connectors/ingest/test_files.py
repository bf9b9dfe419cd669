"""File sources: every line is an event or a rejection with its number; nothing else is lost."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.ingest.files import (
    RejectedLine,
    UnreadableSource,
    byte_lines,
    open_source,
    read_csv,
    read_jsonl,
)
from schemas.events import ANY_EVENT, Event
from tests.strategies import events


@given(st.lists(events(), max_size=5), st.lists(st.text(max_size=30), max_size=5))
def test_every_line_is_either_an_event_or_a_rejection_with_its_number(good, junk) -> None:
    lines = [e.model_dump_json() for e in good] + [j.replace("\n", " ") + "\n" for j in junk]
    out = list(read_jsonl(lines))
    assert [n for n, _ in out] == [i for i, line in enumerate(lines, 1) if line.strip()]
    assert [item for _, item in out[: len(good)]] == good
    for number, item in out[len(good) :]:
        assert isinstance(item, RejectedLine) and item.line == number and item.reason


GOOD = [
    line
    for line in (
        Path(__file__).parents[3] / "connectors" / "ingest" / "samples" / "closed_loop.jsonl"
    )
    .read_bytes()
    .splitlines(keepends=True)
    if b'"region":"EU"' in line
][:3]


def test_a_line_that_is_not_utf8_is_rejected_by_number_and_the_others_come_through() -> None:
    latin1 = '{"material": "minerai de nickel, qualit\u00e9 A"}\n'.encode("latin-1")
    lines = [GOOD[0], latin1, GOOD[1]]
    out = list(read_jsonl(byte_lines(io.BytesIO(b"".join(lines)))))
    assert [n for n, _ in out] == [1, 2, 3]
    assert out[0][1] == ANY_EVENT.validate_json(GOOD[0])
    assert out[2][1] == ANY_EVENT.validate_json(GOOD[1])
    rejected = out[1][1]
    assert isinstance(rejected, RejectedLine)
    assert str(rejected) == "line 2: not UTF-8: byte 0xe9 at byte 40 of the line"
    assert "qualit\\xe9 A" in rejected.text


@settings(max_examples=60)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=80)), max_size=8))
def test_binary_garbage_between_events_loses_no_event(mix: list[tuple[bool, bytes]]) -> None:
    lines, expected = [], []
    for good, junk in mix:
        line = GOOD[len(lines) % len(GOOD)] if good else junk.replace(b"\n", b" ") + b"\n"
        lines.append(line)
        expected.append(good or None)
    out = dict(read_jsonl(byte_lines(io.BytesIO(b"".join(lines)))))
    for number, (line, good) in enumerate(zip(lines, expected, strict=True), start=1):
        if good:
            assert out[number] == ANY_EVENT.validate_json(line)
        elif not _blank(line, number):
            assert isinstance(out[number], RejectedLine) and out[number].reason
        else:
            assert number not in out


def _blank(line: bytes, number: int) -> bool:
    """A line of white space (after a byte order mark on the first line): skipped, not wrong."""
    if number == 1:
        line = line.removeprefix(b"\xef\xbb\xbf")
    try:
        return not line.decode("utf-8").strip()
    except UnicodeDecodeError:
        return False


class _Recording(io.BytesIO):
    """Records the longest read asked of it: a streaming reader never asks for everything."""

    largest = 0

    def readline(self, size: int | None = -1, /) -> bytes:
        assert size is not None and size > 0, "asked for a whole line, however long"
        self.largest = max(self.largest, size)
        return super().readline(size)


def test_an_over_long_line_is_rejected_without_being_held_and_reading_goes_on() -> None:
    stream = _Recording(GOOD[0] + b"\x00\xff" * 5000 + b"\n" + GOOD[1])
    out = list(read_jsonl(byte_lines(stream, limit=1024)))
    assert [n for n, _ in out] == [1, 2, 3]
    assert isinstance(out[0][1], Event) and isinstance(out[2][1], Event)
    assert str(out[1][1]) == "line 2: line of 10001 bytes, longer than 1024: not a line of events"
    assert stream.largest <= 1025


def test_a_utf8_byte_order_mark_does_not_spoil_the_first_line() -> None:
    [(number, event)] = read_jsonl(byte_lines(io.BytesIO(b"\xef\xbb\xbf" + GOOD[0])))
    assert number == 1 and isinstance(event, Event)


def test_csv_rows_with_undecodable_bytes_are_rejected_and_the_others_read() -> None:
    header = (
        "event_type,occurred_at,operator_id,site_id,region,lot_id,form,material,mass_kg,"
        "composition.nickel,country\n"
    )
    row = (
        "extraction,2031-01-01T00:00:00Z,BPNL0000000MIN01,BPNS0000000MIN01,EU,{lot},ore,"
        "{material},5,0.1,FI\n"
    )
    data = (
        header.encode()
        + row.format(lot="L1", material="ni").encode()
        + row.format(lot="L2", material="minerai brut\u00e9").encode("latin-1")
        + row.format(lot="L3", material='"two\nlines \u00e9"').encode("latin-1")
        + row.format(lot="L4", material="ni").encode()
    )
    out = list(read_csv(byte_lines(io.BytesIO(data))))
    assert [n for n, _ in out] == [2, 3, 4, 6]
    assert [e.lot_id for _, e in out if isinstance(e, Event)] == ["L1", "L4"]  # type: ignore[attr-defined]
    assert str(out[1][1]) == "line 3: not UTF-8: byte 0xe9 at byte 89 of the line"
    assert str(out[2][1]) == (
        "line 4: line 5 of the row: not UTF-8: byte 0xe9 at byte 7 of the line"
    )


def test_a_missing_file_or_a_directory_cannot_be_opened_and_says_so(tmp_path: Path) -> None:
    with pytest.raises(UnreadableSource, match=r"missing\.jsonl: no such file$"):
        open_source(tmp_path / "missing.jsonl")
    with pytest.raises(UnreadableSource, match="is a directory, not a file of events$"):
        open_source(tmp_path)

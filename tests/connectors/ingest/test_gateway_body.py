"""JSON Lines bodies of the gateway: every non-blank line is an item, answered by its line."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.ingest.gateway import build_producer, parse_json_lines

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)
_junk = st.sampled_from([b"{", b"not json", b"[1,", b"\xff\xfe", b'{"a": }'])
_blank = st.sampled_from([b"", b"  ", b"\t", b"\r"])


@given(
    st.lists(
        st.one_of(
            _json.map(lambda v: ("json", v)),
            _junk.map(lambda j: ("junk", j)),
            _blank.map(lambda b: ("blank", b)),
        ),
        max_size=12,
    )
)
def test_each_line_is_an_item_or_a_reason_by_line(lines: list[tuple[str, object]]) -> None:
    raw = [json.dumps(v).encode() if kind == "json" else v for kind, v in lines]
    items = parse_json_lines(b"\n".join(raw))  # type: ignore[arg-type]
    expected = [(n, kind, v) for n, (kind, v) in enumerate(lines, 1) if kind != "blank"]
    assert [i.index for i in items] == list(range(len(expected)))
    assert [i.line for i in items] == [n for n, _, _ in expected]
    for item, (number, kind, value) in zip(items, expected, strict=True):
        if kind == "json":
            assert item.not_json is None and item.value == value
        else:
            assert item.not_json is not None and item.not_json.startswith(f"line {number} ")


def test_the_delivery_timeout_is_not_overridden_behind_the_option() -> None:
    # message.timeout.ms is what keeps a record answered 503 from being delivered later.
    for name in ("message.timeout.ms", "delivery.timeout.ms"):
        with pytest.raises(ValueError, match="--delivery-timeout"):
            build_producer({"bootstrap.servers": "127.0.0.1:1", name: "300000"}, 10)

"""The mirror's options without a broker: which source partitions a process takes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.cli.main import main
from connectors.mirror import policy as sharing
from connectors.mirror.options import MirrorOptions, parse_partitions

POLICY = sharing.load(sharing.shipped("eu-to-jp"), b"a-shared-secret-of-the-agreement")


def test_lists_and_ranges() -> None:
    assert parse_partitions("0,2,4") == {0, 2, 4}
    assert parse_partitions("0-2, 5") == {0, 1, 2, 5}
    assert parse_partitions("3-3") == {3}


@given(st.sets(st.integers(0, 200), min_size=1))
def test_a_written_list_reads_back(partitions: set[int]) -> None:
    assert parse_partitions(",".join(map(str, sorted(partitions)))) == partitions


@pytest.mark.parametrize("text", ["", "a", "1,,2", "-1", "3-1", "1-x", "0.5"])
def test_what_is_not_a_partition_list_is_named(text: str) -> None:
    with pytest.raises(ValueError, match="--partitions") as raised:
        parse_partitions(text)
    assert repr(text) in str(raised.value)


def test_a_process_owns_its_share_or_everything() -> None:
    everything = MirrorOptions(POLICY, {}, {})
    share = MirrorOptions(POLICY, {}, {}, partitions=frozenset({1, 3}))
    assert all(everything.owns(p) for p in range(8))
    assert [p for p in range(8) if share.owns(p)] == [1, 3]


def test_the_command_refuses_a_bad_list_before_touching_a_cluster(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["mirror", "--source", "eu", "--target", "jp", "--partitions", "0,two"])
    assert code == 2
    assert "--partitions '0,two': 'two' is not a partition number" in capsys.readouterr().err

"""Publishing a file, up to the producer: what reading finds is reported, nothing is lost."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from connectors.cli.main import main
from connectors.ingest.publishing import RegionMismatch, publish_file
from schemas.values import Region

SAMPLE = Path(__file__).parents[3] / "connectors" / "ingest" / "samples" / "closed_loop.jsonl"


def no_cluster(region: Region) -> dict[str, str]:
    # Every event is then rejected with this reason instead of published: what was read shows
    # in the report without a broker.
    raise RegionMismatch(f"no cluster for {region.value} in this test")


def test_a_file_with_a_bad_byte_is_read_to_its_end(tmp_path: Path) -> None:
    good = SAMPLE.read_bytes().splitlines(keepends=True)[:2]
    source = tmp_path / "events.jsonl"
    source.write_bytes(good[0] + b'{"material": "qualit\xe9"}\n' + b"\x89PNG\r\n\x1a\n" + good[1])
    err = io.StringIO()
    report = publish_file(source, no_cluster, err=err, rejects_path=tmp_path / "rejects.jsonl")
    assert [(r.line, r.reason) for r in report.rejected] == [
        (1, "no cluster for EU in this test"),
        (2, "not UTF-8: byte 0xe9 at byte 21 of the line"),
        (3, "not UTF-8: byte 0x89 at byte 1 of the line"),
        (4, "not JSON: Invalid JSON: expected value at line 1 column 1"),
        (5, "no cluster for EU in this test"),
    ]
    assert "line 2: not UTF-8" in err.getvalue()
    assert len((tmp_path / "rejects.jsonl").read_text().splitlines()) == 5


@pytest.mark.parametrize("what", ["missing", "directory"])
def test_produce_of_a_missing_file_or_a_directory_is_one_line_and_exit_2(
    tmp_path: Path, what: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nothing.jsonl" if what == "missing" else tmp_path
    assert main(["produce", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"batteryloop: error: {path}: ")

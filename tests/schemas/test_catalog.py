"""The one comparison of committed schema files with what they are derived from."""

from __future__ import annotations

from pathlib import Path

from schemas.catalog import committed_problem, write_if_changed


def test_a_committed_file_is_missing_differs_or_agrees(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "x.avsc"
    assert committed_problem(path, "{}", "the model") == (
        f"{path}: missing (run 'batteryloop schemas write')"
    )
    assert write_if_changed(path, '{"type": "int"}') is True
    assert committed_problem(path, "{}", "the X model") == f"{path}: differs from the X model"
    assert committed_problem(path, '{"type": "int"}', "the X model") is None


def test_an_unchanged_file_is_not_written_again(tmp_path: Path) -> None:
    path = tmp_path / "x.avsc"
    assert write_if_changed(path, "a") is True
    before = path.stat().st_mtime_ns
    assert write_if_changed(path, "a") is False
    assert path.stat().st_mtime_ns == before
    assert write_if_changed(path, "b") is True and path.read_text() == "b"

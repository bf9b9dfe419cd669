"""Usage errors the commands answer with one line and exit code 2, before touching a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


def test_an_unreadable_secret_file_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "no-secret"
    code, err = run(
        capsys, "mirror", "--source", "eu", "--target", "jp", "--secret-file", str(missing)
    )
    assert code == 2
    assert err == f"batteryloop: error: --secret-file {missing}: No such file or directory\n"


def test_bootstrap_without_a_region_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "produce", "events.jsonl", "--bootstrap", "127.0.0.1:1")
    assert code == 2 and "give --region with it" in err


def test_a_mistyped_override_does_not_echo_its_value(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "topics", "list", "--region", "eu", "-X", "sasl.password:hunter2")
    assert code == 2 and "sasl.password" in err
    assert "hunter2" not in err

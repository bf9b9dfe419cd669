"""The gateway's tokens file: every error names the file, the line or key and the reason, and a
token never shows in an error message or a repr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.cli.main import main
from connectors.ingest.tokens import TokenError, load_tokens

OPERATOR = "BPNL0000000MIN01"
TOKEN = "s3cret-miner-token-0123456789"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tokens.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(TokenError) as caught:
        load_tokens(path)
    return str(caught.value)


def test_a_valid_file_maps_tokens_to_operators_without_showing_them(tmp_path: Path) -> None:
    tokens = load_tokens(write(tmp_path, f'[tokens]\n"{TOKEN}" = "{OPERATOR}"\n'))
    assert tokens.operator_for(TOKEN) == OPERATOR
    assert tokens.operator_for(TOKEN + "x") is None and tokens.operator_for("") is None
    assert TOKEN not in repr(tokens) and TOKEN not in str(tokens)
    assert TOKEN not in tokens.model_dump_json()


def test_malformed_toml_is_named_by_line(tmp_path: Path) -> None:
    path = write(tmp_path, f'[tokens]\n"{TOKEN}" = "{OPERATOR}"\n"{TOKEN}2" = \n')
    message = error_of(path)
    assert message.startswith(f"{path}: not valid TOML") and "line 3" in message
    assert TOKEN not in message


def test_a_short_token_is_named_by_line_entry_and_operator(tmp_path: Path) -> None:
    path = write(tmp_path, f'[tokens]\n"{TOKEN}" = "{OPERATOR}"\n"sh0rt" = "{OPERATOR}"\n')
    message = error_of(path)
    assert message.startswith(f"{path}:3: [tokens] entry 2 (operator {OPERATOR})")
    assert "too short: 16+ characters" in message and "sh0rt" not in message


def test_an_invalid_operator_id_is_named_without_echoing_the_value(tmp_path: Path) -> None:
    # Key and value swapped: the "operator id" is the token, so it must not be echoed.
    path = write(tmp_path, f'[tokens]\n"{OPERATOR}" = "{TOKEN}"\n')
    message = error_of(path)
    assert message.startswith(f"{path}:2: [tokens] entry 1: the operator id is not")
    assert TOKEN not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "no [tokens] table"),
        ("[tokens]\n", "key 'tokens': the table is empty"),
        ('tokens = "x"\n', "key 'tokens' is not a table"),
        (f'"{TOKEN}" = "{OPERATOR}"\n', ":1: a key outside the [tokens] table"),
        (f'[tokens]\n"{TOKEN}" = 5\n', ":2: [tokens] entry 1: the operator id must be a string"),
    ],
)
def test_structure_errors_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    message = error_of(write(tmp_path, text))
    assert expected in message and TOKEN not in message


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    message = error_of(tmp_path / "missing.toml")
    assert "missing.toml: cannot read the tokens file" in message


def test_the_gateway_command_refuses_a_bad_tokens_file_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, f'[tokens]\n"{TOKEN}" = "not-an-operator"\n')
    code = main(["gateway", "--region", "eu", "--bootstrap", "127.0.0.1:1", "--tokens", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and f"{path}:2: [tokens] entry 1" in err and TOKEN not in err


_secrets = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=0, max_size=40)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(
    entries=st.lists(
        st.tuples(_secrets, st.one_of(st.just(OPERATOR), _secrets, st.integers())),
        min_size=1,
        max_size=4,
        unique_by=lambda e: e[0],
    )
)
def test_no_token_ever_shows_in_an_error(tmp_path: Path, entries: list[tuple[str, object]]) -> None:
    secrets = [f"tok3n-{token}" for token, _ in entries]  # distinctive: not a word of a message
    lines = [
        f"{json.dumps(secret)} = {json.dumps(operator)}"
        for secret, (_, operator) in zip(secrets, entries, strict=True)
    ]
    path = write(tmp_path, "[tokens]\n" + "\n".join(lines) + "\n")
    try:
        tokens = load_tokens(path)
    except TokenError as exc:
        shown = str(exc)
        assert shown.startswith(str(path))
    else:
        shown = repr(tokens) + str(tokens)
        for secret, (_, operator) in zip(secrets, entries, strict=True):
            assert tokens.operator_for(secret) == operator
    for secret in secrets:
        assert secret not in shown

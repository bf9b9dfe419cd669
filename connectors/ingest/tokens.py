"""The gateway's bearer tokens: the tokens file, validated by a model, tokens held as secrets.

The file is TOML with one table, ``[tokens]``, of ``"<token>" = "<operator id>"``. A token is
the key, so an error never quotes a key of the file (a misplaced table header would make a key
a token): it names the file, the line, the entry's position and the reason, and the operator
id only once that id is known to be valid.
"""

from __future__ import annotations

import hmac
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from schemas.values import OperatorId

MIN_TOKEN_LENGTH = 16
FORMAT = '[tokens] then "<token>" = "<operator id>" per line'


class TokenError(ValueError):
    """The tokens file is unreadable or invalid; the message names file, line and reason."""


class TokenGrant(BaseModel):
    """One bearer token and the operator it authenticates."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    token: SecretStr = Field(min_length=MIN_TOKEN_LENGTH)
    operator_id: OperatorId


class TokensFile(BaseModel):
    """Every grant of a tokens file; the tokens themselves never leave as text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    grants: tuple[TokenGrant, ...] = Field(min_length=1)

    def operator_for(self, given: str) -> str | None:
        """The operator id whose token is ``given``, compared in constant time per token."""
        found: str | None = None
        for grant in self.grants:
            if hmac.compare_digest(grant.token.get_secret_value().encode(), given.encode()):
                found = grant.operator_id
        return found


def load_tokens(path: Path) -> TokensFile:
    """Read and validate a tokens file; raise :class:`TokenError` naming what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"{path}: cannot read the tokens file: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # the message says "(at line L, column C)"
        raise TokenError(f"{path}: not valid TOML: {exc}") from None
    strays = [key for key in data if key != "tokens"]
    if strays:
        raise TokenError(
            f"{path}:{_line_of(text, strays[0])}: a key outside the [tokens] table (not shown: "
            f"it may be a token); expected {FORMAT}"
        )
    table = data.get("tokens")
    if not isinstance(table, dict):
        where = "no [tokens] table" if table is None else "key 'tokens' is not a table"
        raise TokenError(f"{path}: {where}; expected {FORMAT}")
    entries = list(table.items())
    raw: list[dict[str, Any]] = [{"token": t, "operator_id": o} for t, o in entries]
    try:
        return TokensFile.model_validate({"grants": raw})
    except ValidationError as exc:
        raise TokenError(_describe(path, text, entries, exc)) from None


def _describe(path: Path, text: str, entries: list[tuple[str, Any]], exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = error["loc"]
        if len(loc) < 3:  # the whole table: empty (pydantic also says so when entries failed)
            if not entries:
                problems.append(f"{path}: key 'tokens': the table is empty; expected {FORMAT}")
            continue
        index = int(loc[1])  # ("grants", index, field)
        field = loc[-1]
        token, operator = entries[index]
        where = f"{path}:{_line_of(text, token)}: [tokens] entry {index + 1}"
        if field == "operator_id":
            # The value is not echoed: a file with key and value swapped would show its token.
            reason = (
                "the operator id is not a Catena-X BPNL, a Japanese corporate number, an LEI or a "
                "Chinese USCC with valid check characters"
                if isinstance(operator, str)
                else "the operator id must be a string"
            )
        else:
            reason = (
                f"the token is too short: {MIN_TOKEN_LENGTH}+ characters are needed"
                if error["type"] == "too_short"
                else "the token must be a string"
            )
            if _valid_operator(operator):
                where += f" (operator {operator})"
        problems.append(f"{where}: {reason}")
    return "; ".join(problems)


def _valid_operator(value: Any) -> bool:
    try:
        TokenGrant(token=SecretStr("x" * MIN_TOKEN_LENGTH), operator_id=value)
    except ValidationError:
        return False
    return True


def _line_of(text: str, key: str) -> str:
    """The 1-based line where ``key`` is written, or '?' (a key written with escapes)."""
    for written in (f'"{key}"', f"'{key}'", key):
        at = text.find(written)
        if at >= 0:
            return str(text.count("\n", 0, at) + 1)
    return "?"

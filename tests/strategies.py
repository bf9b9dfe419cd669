"""Hypothesis strategies for every contract model, derived from the models' own annotations.

Walking the annotations (rather than writing a strategy per event type) means a new field or
event type is generated without touching this file; the value types with validators of their
own (operator ids, countries, sites) get strategies that produce valid values.
"""

from __future__ import annotations

import types
import typing
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum
from typing import Any, Literal, Union, get_args, get_origin
from uuid import UUID

from hypothesis import strategies as st
from pydantic import AfterValidator, AwareDatetime, BaseModel
from pydantic.fields import FieldInfo

from schemas import values
from schemas.events import EVENT_MODELS, BlackMassClassification, Event

_ZONES = [
    UTC,
    timezone(timedelta(hours=9)),
    timezone(timedelta(hours=1)),
    timezone(timedelta(hours=-5)),
]
_IDENT = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=24)


@st.composite
def corporate_numbers(draw: st.DrawFn) -> str:
    base = draw(st.text("0123456789", min_size=12, max_size=12))
    return f"{values.corporate_number_check_digit(base)}{base}"


@st.composite
def leis(draw: st.DrawFn) -> str:
    """ISO 17442 LEIs: 18 letters or digits and their MOD 97-10 check digits."""
    base = draw(st.from_regex(r"\A[A-Z0-9]{18}\Z"))
    return base + values.lei_check_digits(base)


@st.composite
def usccs(draw: st.DrawFn) -> str:
    """GB 32100-2015 Unified Social Credit Codes with their check character."""
    chars = values.USCC_CHARSET
    base = (
        draw(st.text(chars, min_size=2, max_size=2))
        + draw(st.text("0123456789", min_size=6, max_size=6))
        + draw(st.text(chars, min_size=9, max_size=9))
    )
    return base + values.uscc_check_character(base)


@st.composite
def gtins(draw: st.DrawFn) -> str:
    """GTIN-8, -12, -13 or -14 with their GS1 check digit, as a maker may write them (the model
    writes each as 14 digits)."""
    length = draw(st.sampled_from([8, 12, 13, 14]))
    body = draw(st.text("0123456789", min_size=length - 1, max_size=length - 1))
    return body + str(values.gtin_check_digit(body))


bpnls = st.from_regex(r"\ABPNL[A-Za-z0-9]{12}\Z")
#: Operators outside the alliance: they publish into the region of the member acting for them.
foreign_operator_ids = st.one_of(leis(), usccs())
operator_ids = st.one_of(bpnls, corporate_numbers(), foreign_operator_ids)
countries = st.sampled_from(sorted(values.ISO_3166_ALPHA2))
site_ids = st.one_of(
    st.from_regex(r"\ABPNS[A-Za-z0-9]{12}\Z"), _IDENT.filter(lambda s: not s.startswith("BPNS"))
)
aware_datetimes = st.datetimes(
    min_value=datetime(1990, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from(_ZONES),
)

_BY_VALIDATOR = {
    values._operator_id: operator_ids,
    values._country: countries,
    values._site_id: site_ids,
    values.gtin14: gtins(),
}


def _flatten(meta: list[Any]) -> list[Any]:
    out = []
    for item in meta:
        out.extend(_flatten(list(item.metadata)) if isinstance(item, FieldInfo) else [item])
    return out


def _attr(meta: list[Any], name: str) -> Any:
    for item in meta:
        value = getattr(item, name, None)
        if value is not None:
            return value
    return None


@st.composite
def compositions(draw: st.DrawFn) -> dict[values.Metal, Decimal]:
    metals = draw(st.lists(st.sampled_from(list(values.Metal)), unique=True, max_size=5))
    budget = 10**values.SHARE_SCALE
    out = {}
    for metal in metals:
        ppm = draw(st.integers(0, budget))
        budget -= ppm
        out[metal] = Decimal(ppm).scaleb(-values.SHARE_SCALE)
    return out


@st.composite
def classifications(draw: st.DrawFn) -> BlackMassClassification:
    """A black mass classification whose hazardous mark agrees with its code's asterisk."""
    fields = {
        name: for_type(info.annotation, list(info.metadata))
        for name, info in BlackMassClassification.model_fields.items()
    }
    drawn = draw(st.fixed_dictionaries(fields))
    drawn["hazardous"] = drawn["waste_code"].endswith("*")
    return BlackMassClassification.model_validate(drawn)


def for_type(tp: Any, meta: list[Any] | None = None) -> st.SearchStrategy[Any]:
    meta = _flatten(list(meta or []))
    origin = get_origin(tp)
    if origin is typing.Annotated:
        base, *more = get_args(tp)
        return for_type(base, meta + more)
    for item in meta:
        if isinstance(item, AfterValidator) and item.func in _BY_VALIDATOR:
            return _BY_VALIDATOR[item.func]
    if origin in (Union, types.UnionType):
        (member,) = [a for a in get_args(tp) if a is not type(None)]
        return st.none() | for_type(member)
    if origin is list:
        return st.lists(
            for_type(get_args(tp)[0]), min_size=_attr(meta, "min_length") or 0, max_size=3
        )
    if origin is dict:
        return compositions()
    if origin is Literal:
        return st.sampled_from(get_args(tp))
    if isinstance(tp, type) and issubclass(tp, Enum):
        return st.sampled_from(list(tp))
    if tp is BlackMassClassification:
        return classifications()
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return models(tp)
    if tp is bool:
        return st.booleans()
    if tp is Decimal:
        scale = _attr(meta, "decimal_places")
        digits = _attr(meta, "max_digits")
        top = Decimal(
            _attr(meta, "le") if _attr(meta, "le") is not None else 10 ** (digits - scale)
        )
        top = min(top, Decimal(10 ** (digits - scale)) - Decimal(1).scaleb(-scale))
        return st.decimals(min_value=0, max_value=top, places=scale)
    if tp is AwareDatetime or tp is datetime:
        return aware_datetimes
    if tp is UUID:
        return st.uuids()
    if tp is int:
        return st.integers(min_value=_attr(meta, "ge") or 0, max_value=2**31 - 1)
    if tp is str:
        pattern = _attr(meta, "pattern")
        if pattern:
            return st.from_regex(pattern, fullmatch=True)
        low, high = _attr(meta, "min_length") or 0, _attr(meta, "max_length") or 40
        return st.text(min_size=low, max_size=min(high, 40))
    raise TypeError(f"no strategy for {tp!r}")


#: The operator ids a region's events are published by (see ``Event._operator_of_the_region``).
operator_ids_of = {values.Region.EU: bpnls, values.Region.JP: corporate_numbers()}
#: A region with an operator id of it.
regions_and_operators = st.sampled_from(list(values.Region)).flatmap(
    lambda region: st.tuples(
        st.just(region), st.one_of(operator_ids_of[region], foreign_operator_ids)
    )
)


def models(cls: type[BaseModel]) -> st.SearchStrategy[Any]:
    fields = {
        name: for_type(info.annotation, list(info.metadata))
        for name, info in cls.model_fields.items()
        if name != "schema_version"
    }
    if not issubclass(cls, Event):
        return st.fixed_dictionaries(fields).map(cls.model_validate)
    del fields["region"], fields["operator_id"]  # drawn together: the operator fits the region
    return st.tuples(st.fixed_dictionaries(fields), regions_and_operators).map(
        lambda drawn: cls.model_validate(
            {**drawn[0], "region": drawn[1][0], "operator_id": drawn[1][1]}
        )
    )


def events(event_type: str | None = None) -> st.SearchStrategy[Event]:
    if event_type is not None:
        return models(EVENT_MODELS[event_type])
    return st.one_of([models(m) for m in EVENT_MODELS.values()])

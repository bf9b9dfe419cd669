"""Plain checks of what a policy shares of an event, on the plain record (no pydantic).

The mirror's fast path reads records with the serde's plain readers (:mod:`schemas.plain`:
decimals as unscaled integers, times as microseconds, UUIDs as canonical text). Records on the
source's event topics were validated where they entered the region (the SDK, the gateway, the
file reader all validate with the models); what the partner receives is checked again here,
because producers that never used the models can write the topics too. A :class:`SharedCheck`
holds, for one event type under one policy, the rules of the pydantic model that can be checked
on the plain values of the fields the policy keeps or transforms (a dropped field never leaves
the region), derived once from the model's annotations:

* decimals within their bounds (``ge``/``le``) and the contract's digits;
* compositions naming metals, summing to at most 1;
* strings by their constraints (length, pattern) and their validators (operator and site ids
  with their check characters, countries, GTINs written as the 14 digits the model writes);
* lists at least as long as the contract asks;
* the record's ``event_type`` is its schema's; the publisher (operator id, site, region) by the
  envelope's own rules, checked once per distinct publisher.

Avro itself vouches for the rest (enum symbols, union branches, UUID form: the plain reader
checks them). A failing check raises :class:`ValueError` naming the field's path and reason.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, Literal, Union, cast, get_args, get_origin

import annotated_types
from pydantic import AfterValidator, BaseModel, StringConstraints
from pydantic.fields import FieldInfo

from connectors.mirror.policy import EventRules, SharingPolicy
from schemas import catalog
from schemas.events import EVENT_MODELS, Publisher
from schemas.values import Metal

Check = Callable[[Any], None]
_METALS = frozenset(m.value for m in Metal)
_PUBLISHERS_KEPT = 100_000


class SharedCheck:
    """The plain checks of one event type's shared fields under one policy."""

    def __init__(self, policy: SharingPolicy, event_type: str) -> None:
        self.event_type = event_type
        rules = policy.events[event_type]
        raw = catalog.current(event_type).raw
        self._fields = _record_checks(EVENT_MODELS[event_type], raw, rules, "", _Names(raw))
        #: publisher (operator, site, region) -> what is wrong with it, None: nothing
        self._publishers: dict[tuple[str, str, str], str | None] = {}

    def __call__(self, record: dict[str, Any]) -> None:
        """Raise :class:`ValueError` naming the first field that breaks its contract."""
        if record["event_type"] != self.event_type:
            raise ValueError(
                f"event_type {record['event_type']!r} in a record of the {self.event_type} schema"
            )
        publisher = (record["operator_id"], record["site_id"], record["region"])
        problem = self._publishers.get(publisher, "")
        if problem == "":
            problem = self._publishers[publisher] = _publisher_problem(*publisher)
            if len(self._publishers) > _PUBLISHERS_KEPT:
                self._publishers.clear()
        if problem is not None:
            raise ValueError(problem)
        for name, check in self._fields:
            check(record[name])


def _publisher_problem(operator_id: str, site_id: str, region: str) -> str | None:
    try:
        Publisher.model_validate({"operator_id": operator_id, "site_id": site_id, "region": region})
    except ValueError as exc:  # pydantic's ValidationError is one
        return f"publisher: {exc}"
    return None


class _Names:
    """The named types of a schema, so that a reference by name finds its definition."""

    def __init__(self, schema: Any) -> None:
        self.named: dict[str, Any] = {}
        self._add(schema)

    def _add(self, schema: Any) -> None:
        if isinstance(schema, list):
            for t in schema:
                self._add(t)
        elif isinstance(schema, dict):
            if schema.get("type") in ("record", "enum", "fixed"):
                self.named.setdefault(schema["name"], schema)
                self.named.setdefault(schema["name"].rsplit(".", 1)[-1], schema)
            for f in schema.get("fields", []):
                self._add(f["type"])
            for key in ("items", "values"):
                if key in schema:
                    self._add(schema[key])

    def resolve(self, avro_type: Any) -> Any:
        if isinstance(avro_type, list):
            avro_type = next(t for t in avro_type if t != "null")
        return self.named.get(avro_type, avro_type) if isinstance(avro_type, str) else avro_type


def _record_checks(
    model: type[BaseModel], schema: dict[str, Any], rules: EventRules, prefix: str, names: _Names
) -> list[tuple[str, Check]]:
    """(field name, check) for the fields of ``model`` the policy keeps, transforms or looks
    inside of; fields without a rule to check are left out."""
    checks = []
    for f in schema["fields"]:
        name = f["name"]
        step = rules.step(prefix, name)
        if step.action == "drop" and step.record is None and step.items is None:
            continue  # never leaves the region
        info = model.model_fields[name]
        path = prefix + name
        check = _check(
            info.annotation, list(info.metadata), names.resolve(f["type"]), path, rules, names
        )
        if check is not None:
            checks.append((name, check))
    return checks


def _check(
    annotation: Any, metadata: list[Any], avro: Any, path: str, rules: EventRules, names: _Names
) -> Check | None:
    """The check of one value of ``annotation`` (with ``metadata``), or None: nothing to check."""
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *more = get_args(annotation)
        return _check(inner, [*more, *metadata], avro, path, rules, names)
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        assert len(members) == 1, f"{path}: a union of {members}"
        found = _check(members[0], metadata, avro, path, rules, names)
        return None if found is None else _optional(found)
    constraints = _flatten(metadata)
    if origin is list:
        (item,) = get_args(annotation)
        items = _check(item, [], names.resolve(avro["items"]), path + "[]", rules, names)
        least = next(
            (c.min_length for c in constraints if isinstance(c, annotated_types.MinLen)), 0
        )
        return _list(items, least, path)
    if origin is dict:
        key, value = get_args(annotation)
        values = _check(value, [], names.resolve(avro["values"]), path, rules, names)
        metals = isinstance(key, type) and issubclass(key, Metal)
        return _composition(values, names.resolve(avro["values"]), path) if metals else None
    if origin is Literal:
        return None  # the event_type: checked against the schema by SharedCheck
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        fields = _record_checks(annotation, avro, rules, path + ".", names)
        return _record(fields) if fields else None
    if annotation is Decimal:
        return _decimal(constraints, avro, path)
    if annotation is str:
        return _string(constraints, path)
    return None  # ints, enums, UUIDs, times: what Avro holds is what the model accepts


def _flatten(metadata: list[Any]) -> list[Any]:
    out: list[Any] = []
    for m in metadata:
        if isinstance(m, FieldInfo):
            out.extend(_flatten(list(m.metadata)))
        elif isinstance(m, StringConstraints):
            if m.min_length is not None:
                out.append(annotated_types.MinLen(m.min_length))
            if m.max_length is not None:
                out.append(annotated_types.MaxLen(m.max_length))
            if m.pattern is not None:
                out.append(re.compile(str(m.pattern)))
        else:
            out.append(m)
    return out


def _min_length(constraints: list[Any]) -> int:
    return next((c.min_length for c in constraints if isinstance(c, annotated_types.MinLen)), 0)


def _optional(check: Check) -> Check:
    def optional(value: Any) -> None:
        if value is not None:
            check(value)

    return optional


def _record(fields: list[tuple[str, Check]]) -> Check:
    def record(value: dict[str, Any]) -> None:
        for name, check in fields:
            check(value[name])

    return record


def _list(items: Check | None, least: int, path: str) -> Check | None:
    if items is None and not least:
        return None

    def each(value: list[Any]) -> None:
        if len(value) < least:
            raise ValueError(f"{path}: at least {least} item(s) required, {len(value)} given")
        if items is not None:
            for item in value:
                items(item)

    return each


def _decimal(constraints: list[Any], avro: dict[str, Any], path: str) -> Check:
    """Bounds on the unscaled integer the plain reader gives (``1.5`` of scale 3 is 1500)."""
    scale, precision = avro.get("scale", 0), avro["precision"]
    unit = 10**scale
    low, high = -(10**precision) + 1, 10**precision - 1
    for c in constraints:
        if isinstance(c, annotated_types.Ge):
            low = max(low, int(Decimal(str(c.ge)) * unit))
        elif isinstance(c, annotated_types.Le):
            high = min(high, int(Decimal(str(c.le)) * unit))

    def decimal(value: int) -> None:
        if not low <= value <= high:
            shown = Decimal(value).scaleb(-scale)
            raise ValueError(
                f"{path}: {shown} is outside [{Decimal(low).scaleb(-scale)}, "
                f"{Decimal(high).scaleb(-scale)}]"
            )

    return decimal


def _composition(values: Check | None, avro: dict[str, Any], path: str) -> Check:
    whole = 10 ** avro.get("scale", 0)

    def composition(value: dict[str, int]) -> None:
        total = 0
        for metal, part in value.items():
            if metal not in _METALS:
                raise ValueError(f"{path}: {metal!r} is not a metal tracked in compositions")
            if values is not None:
                values(part)
            total += part
        if total > whole:
            raise ValueError(f"{path}: shares sum to {Decimal(total) / whole}, more than 1")

    return composition


def _string(constraints: list[Any], path: str) -> Check | None:
    least = _min_length(constraints)
    most = next((c.max_length for c in constraints if isinstance(c, annotated_types.MaxLen)), None)
    patterns = [c for c in constraints if isinstance(c, re.Pattern)]
    # the contracts' string validators take the value alone (no validation info)
    validators = [
        cast(Callable[[str], str], c.func) for c in constraints if isinstance(c, AfterValidator)
    ]
    if not (least or most is not None or patterns or validators):
        return None

    def string(value: str) -> None:
        if len(value) < least or (most is not None and len(value) > most):
            raise ValueError(f"{path}: {len(value)} characters, not {least}..{most}")
        for pattern in patterns:
            if pattern.search(value) is None:
                raise ValueError(f"{path}: {value!r} does not match {pattern.pattern}")
        for validate in validators:
            try:
                normal = validate(value)
            except ValueError as exc:  # pydantic's custom errors are ValueErrors too
                raise ValueError(f"{path}: {exc}") from None
            if normal != value:  # written as the model writes it (a GTIN as 14 digits)
                raise ValueError(f"{path}: {value!r} is not in its canonical form {normal!r}")

    return string


def checks(policy: SharingPolicy) -> dict[str, SharedCheck]:
    """A check for every event type ``policy`` shares."""
    return {t: SharedCheck(policy, t) for t in policy.events}

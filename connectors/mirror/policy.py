"""The written data-sharing policy between two regions, and redaction of events under it.

A policy is a TOML file::

    [agreement]
    name = "Catena-X / Ouranos battery materials"
    source = "EU"
    target = "JP"

    [events.extraction]          # an event type not named here is not shared at all
    share = true
    [events.extraction.fields]   # a field not named here is dropped (default deny)
    event_id = "keep"
    operator_id = "pseudonymise" # keyed hash under the agreement's secret
    mass_kg = "band"             # lower edge of its power of ten: 1234.5 -> 1000
    composition = "keep"

Field paths are the schema's: ``inputs[].lot_id`` is a field of each element of ``inputs``;
naming a record (``carbon_footprint``) or an array of records (``inputs``) applies the action to
everything inside it that is not named more precisely. Actions: ``keep``, ``drop``,
``pseudonymise`` (strings), ``band`` (masses), ``country`` (a site reduced to its country,
where the event names that country: extraction sites, shipment origins and destinations). A
field the schema tags confidential (supplier identities, procurement amounts, prices) can only
be dropped: a policy that would let one through in any form, directly or inside a kept record,
does not load, and the error names the rule.

The file is validated by pydantic models (:class:`PolicyFile`), then against the schemas; a
refusal is a :class:`PolicyError` naming the file, the TOML key path and the reason. The
secret is held as :class:`~pydantic.SecretBytes`, so no repr, log line or error shows it.

No Kafka here: the mirror applies :meth:`SharingPolicy.redact` to decoded records.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretBytes,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from schemas import catalog
from schemas.catalog import SchemaVersion
from schemas.events import EVENT_MODELS
from schemas.serde import SHARED_NAMESPACE
from schemas.values import Region

ACTIONS = ("keep", "drop", "pseudonymise", "band", "country")
#: Site fields that can be reduced to their country: the event names the site's country in
#: another field (no other event says where its site is).
SITE_COUNTRY = {
    "extraction": {"site_id": "country"},
    "shipment": {"from_site_id": "from_country", "to_site_id": "to_country"},
}
#: The envelope every shared event must keep for the partner to use it at all.
REQUIRED = ("event_type", "event_id", "schema_version", "occurred_at", "region")
POLICY_DIR = Path(__file__).parent / "policies"


class PolicyError(ValueError):
    """A policy that cannot be loaded; the message names the file and the rule."""


@dataclass(frozen=True)
class Leaf:
    path: str  # e.g. "inputs[].supplier_id"
    avro_type: Any
    confidential: str | None


def leaves(event_type: str) -> dict[str, Leaf]:
    """Every field of the current schema a policy can name, by path (records and arrays too)."""
    return {leaf.path: leaf for leaf in _walk(catalog.current(event_type).raw, "", None)}


def _walk(schema: Any, prefix: str, confidential: str | None) -> Iterator[Leaf]:
    for f in schema["fields"]:
        path = f"{prefix}{f['name']}"
        kind = f.get("confidential", confidential)
        yield Leaf(path, f["type"], kind)
        inner = _unwrap(f["type"])
        if isinstance(inner, dict) and inner.get("type") == "record":
            yield from _walk(inner, path + ".", kind)
        elif isinstance(inner, dict) and inner.get("type") == "array":
            items = _unwrap(inner["items"])
            if isinstance(items, dict) and items.get("type") == "record":
                yield from _walk(items, path + "[].", kind)


def _unwrap(avro_type: Any) -> Any:
    if isinstance(avro_type, list):  # ["null", X]
        return next(t for t in avro_type if t != "null")
    return avro_type


def _is_decimal(avro_type: Any) -> bool:
    inner = _unwrap(avro_type)
    return isinstance(inner, dict) and inner.get("logicalType") == "decimal"


def _is_string(avro_type: Any) -> bool:
    inner = _unwrap(avro_type)
    return inner == "string" or (isinstance(inner, dict) and inner.get("type") == "string")


@dataclass(frozen=True, slots=True)
class Step:
    action: str
    record: str | None  # prefix of the rules inside, when the field is a record with rules below
    items: str | None  # ... when it is an array of records with rules below
    path: str  # the field's schema path (``inputs[].supplier_id``)
    confidential: bool  # the schema tags the field itself confidential
    holds_confidential: bool  # ... or something inside it


@dataclass(slots=True)
class RedactionTally:
    """What redaction did to present (non-null) values, by kind.

    ``confidential_removed`` counts values of fields the schema tags confidential (a supplier
    identity, a price record, a procurement amount), one per field per record, including those
    inside a dropped record or array; the other counters count the policy's own choices."""

    confidential_removed: int = 0
    dropped: int = 0  # other values dropped (a dropped record once, besides what it held)
    pseudonymised: int = 0
    banded: int = 0
    reduced_to_country: int = 0
    #: of one record: the path of every present value dropped or transformed, once per value
    #: (``inputs[].supplier_id`` once per input); not carried over by :meth:`add`
    paths: list[str] = field(default_factory=list, compare=False)

    @property
    def total(self) -> int:
        return (
            self.confidential_removed
            + self.dropped
            + self.pseudonymised
            + self.banded
            + self.reduced_to_country
        )

    def add(self, other: RedactionTally) -> None:
        self.confidential_removed += other.confidential_removed
        self.dropped += other.dropped
        self.pseudonymised += other.pseudonymised
        self.banded += other.banded
        self.reduced_to_country += other.reduced_to_country

    def other(self) -> dict[str, int]:
        """The redactions that are not confidential values removed, by kind."""
        return {
            "dropped": self.dropped,
            "pseudonymised": self.pseudonymised,
            "banded": self.banded,
            "reduced_to_country": self.reduced_to_country,
        }


@dataclass(frozen=True)
class EventRules:
    event_type: str
    actions: dict[str, str]  # path -> action, as written
    #: Paths with rules for something inside them (``inputs`` and ``inputs[]`` when
    #: ``inputs[].lot_id`` is named); worked out once, asked for every field of every record.
    containers: frozenset[str] = field(init=False, default=frozenset())
    #: Paths the schema tags confidential.
    confidential: frozenset[str] = field(init=False, default=frozenset())
    _steps: dict[tuple[str, str], Step] = field(
        init=False, default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        found = set()
        for path in self.actions:
            for i, char in enumerate(path):
                if char == ".":
                    found.add(path[:i])
                    if path[:i].endswith("[]"):
                        found.add(path[: i - 2])
        object.__setattr__(self, "containers", frozenset(found))
        tagged = catalog.current(self.event_type).confidential_fields
        object.__setattr__(self, "confidential", frozenset(tagged))

    def has_rules_below(self, path: str) -> bool:
        return path in self.containers

    def step(self, prefix: str, name: str) -> Step:
        """What to do with field ``name`` of the record at ``prefix``, worked out once per
        field (redaction asks for every field of every record: no path strings per record)."""
        cache = self._steps
        found = cache.get((prefix, name))
        if found is None:
            path = f"{prefix}{name}"
            found = Step(
                self.action(path),
                path + "." if self.has_rules_below(path) else None,
                path + "[]." if self.has_rules_below(path + "[]") else None,
                path,
                path in self.confidential,
                self.holds_confidential(path),
            )
            cache[(prefix, name)] = found
        return found

    def holds_confidential(self, path: str) -> bool:
        return any(c.startswith((path + ".", path + "[].")) for c in self.confidential)

    def confidential_in(self, value: Any, path: str) -> int:
        """How many present values of confidential fields ``value`` (at ``path``) holds."""
        if value is None:
            return 0
        if path in self.confidential:
            return 1
        if isinstance(value, dict) and self.holds_confidential(path):
            return sum(self.confidential_in(v, f"{path}.{k}") for k, v in value.items())
        if isinstance(value, list) and self.holds_confidential(path):
            return sum(self.confidential_in(v, path + "[]") for v in value)
        return 0

    def action(self, path: str) -> str:
        """The most precise rule for ``path``: its own, else its nearest named ancestor's."""
        named = self.named(path)
        return "drop" if named is None else self.actions[named]  # default deny

    def named(self, path: str) -> str | None:
        """The path of the rule that decides ``path``, or None when no rule does."""
        probe = path
        while probe not in self.actions:
            if probe.endswith("[]"):
                probe = probe[:-2]
                continue
            cut = probe.rfind(".")
            if cut < 0:
                return None
            probe = probe[:cut]
        return probe


class SharingPolicy(BaseModel):
    """A loaded, validated policy, ready to redact. The secret is a :class:`SecretBytes`:
    a repr, a log line or an error message shows ``**********``, never its value."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    source: Region
    target: Region
    events: dict[str, EventRules]
    #: the agreement's pseudonymisation secret; None where only the schemas are wanted
    secret: SecretBytes | None

    def shares(self, event_type: str) -> bool:
        return event_type in self.events

    @property
    def direction(self) -> str:
        """``eu-to-jp`` or ``jp-to-eu``."""
        return direction(self.source.value, self.target.value)

    def redact(self, event_type: str, record: dict[str, Any]) -> dict[str, Any] | None:
        """The shareable part of a decoded record, or None when its type is not shared."""
        tallied = self.redact_tallied(event_type, record)
        return None if tallied is None else tallied[0]

    def redact_counted(
        self, event_type: str, record: dict[str, Any]
    ) -> tuple[dict[str, Any], int] | None:
        """Like :meth:`redact`, with the number of present (non-null) values it dropped or
        transformed; None when the type is not shared."""
        tallied = self.redact_tallied(event_type, record)
        return None if tallied is None else (tallied[0], tallied[1].total)

    def redact_tallied(
        self, event_type: str, record: dict[str, Any]
    ) -> tuple[dict[str, Any], RedactionTally] | None:
        """Like :meth:`redact`, with what it removed or transformed, by kind; None when the
        type is not shared."""
        rules = self.events.get(event_type)
        if rules is None:
            return None
        tally = RedactionTally()
        return self._record(rules, record, "", tally), tally

    def redact_detailed(
        self, event_type: str, record: dict[str, Any]
    ) -> tuple[dict[str, Any], list[str]] | None:
        """Like :meth:`redact`, with the path of every present (non-null) value it dropped or
        transformed (a path once per value: ``inputs[].supplier_id`` once per input); None
        when the type is not shared."""
        tallied = self.redact_tallied(event_type, record)
        return None if tallied is None else (tallied[0], tallied[1].paths)

    def _record(
        self, rules: EventRules, record: dict[str, Any], prefix: str, tally: RedactionTally
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        step_of = rules.step
        for name, value in record.items():
            step = step_of(prefix, name)
            if step.record is not None and isinstance(value, dict):
                out[name] = self._record(rules, value, step.record, tally)
                continue
            if step.items is not None and isinstance(value, list):
                out[name] = [self._record(rules, v, step.items, tally) for v in value]
                continue
            action = step.action
            if action == "keep":
                out[name] = value
                continue
            if value is not None:
                tally.paths.append(step.path)
            if action == "drop":
                if step.confidential or step.holds_confidential:
                    tally.confidential_removed += rules.confidential_in(value, step.path)
                if value is not None and not step.confidential:
                    tally.dropped += 1
                continue
            if action == "country":  # validated on load: a top-level site with a country field
                out[name] = record.get(SITE_COUNTRY[rules.event_type][prefix + name])
                if value is not None:
                    tally.reduced_to_country += 1
                continue
            out[name] = self._transform(action, value)
            if value is not None and action == "pseudonymise":
                tally.pseudonymised += 1
            elif value is not None:
                tally.banded += 1
        return out

    @cached_property
    def shared_schemas(self) -> dict[str, SchemaVersion]:
        """The shared schema of every event type this policy shares, ready for the serde."""
        return {
            t: catalog.schema_version(t, catalog.current(t).version, shared_schema(self, t))
            for t in self.events
        }

    def _transform(self, action: str, value: Any) -> Any:
        if value is None or action == "keep":
            return value
        if action == "pseudonymise":
            if self.secret is None:
                raise PolicyError("pseudonymising needs the agreement's secret; none was given")
            key = self.secret.get_secret_value()
            digest = hmac.new(key, str(value).encode(), hashlib.sha256).hexdigest()
            return f"ps-{digest[:32]}"
        if action == "band":
            return mass_band(value)
        raise AssertionError(action)  # load() admits no other action


def direction(source: str, target: str) -> str:
    """The name of a direction of sharing: ``direction("JP", "EU") == "jp-to-eu"``."""
    return f"{source.lower()}-to-{target.lower()}"


def mass_band(value: Decimal) -> Decimal:
    """The lower edge of the power of ten a mass falls in (0 stays 0)."""
    if value <= 0:
        return Decimal(0)
    return Decimal(1).scaleb(value.adjusted())


def load(path: Path | str, secret: bytes | None) -> SharingPolicy:
    """Read and validate a policy; raise :class:`PolicyError` naming the offending rule."""
    path = Path(path)
    where = path.name
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"{where}: cannot read the policy: {exc}") from exc
    return parse(data, secret, where)


# --- the policy file, as pydantic models ---------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgreementSection(_Strict):
    """``[agreement]``: who shares with whom."""

    name: str = ""
    source: Region
    target: Region

    @field_validator("source", "target", mode="before")
    @classmethod
    def _region(cls, value: object) -> Region:
        try:
            return Region(str(value).upper())
        except ValueError:
            raise ValueError("must be EU or JP") from None

    @field_validator("target")
    @classmethod
    def _differs(cls, target: Region, info: ValidationInfo) -> Region:
        if info.data.get("source") == target:
            raise ValueError("must differ from the source region")
        return target


class EventSection(_Strict):
    """``[events.<type>]``: whether the type is shared, and what happens to each field."""

    share: StrictBool
    fields: dict[str, str] = Field(default_factory=dict)

    @field_validator("fields")
    @classmethod
    def _actions(cls, fields: dict[str, str]) -> dict[str, str]:
        for name, action in fields.items():
            if action not in ACTIONS:
                raise PydanticCustomError(
                    "unknown_action",
                    "{field}: action {action} is not one of {actions}",
                    {"field": repr(name), "action": repr(action), "actions": ", ".join(ACTIONS)},
                )
        return fields


class PolicyFile(_Strict):
    """A policy file as written: ``[agreement]`` and ``[events.*]``, nothing else."""

    agreement: AgreementSection
    events: dict[str, EventSection] = Field(default_factory=dict)


#: Reasons for pydantic's error types, in the policy's words.
_REASONS = {
    "missing": "missing (required)",
    "extra_forbidden": "unknown key",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "dict_type": "must be a table",
    "model_type": "must be a table",
}


def _key_path(loc: tuple[int | str, ...]) -> str:
    """A TOML key path as the policy's messages write it: field paths quoted
    (``events.refining.fields.'inputs[].lot_id'``)."""
    parts = [str(p) for p in loc]
    if len(parts) > 3 and parts[0] == "events" and parts[2] == "fields":
        parts[3:] = [repr(".".join(parts[3:]))]
    return ".".join(parts)


def _policy_error(exc: ValidationError, where: str) -> PolicyError:
    """The first problem pydantic found, naming the file, the key and the reason (never the
    value: a policy is not secret, but a reason needs no copy of it)."""
    error = exc.errors(include_input=False, include_url=False)[0]
    loc = error["loc"]
    if error["type"] == "unknown_action":  # the field is named in the message
        ctx = error.get("ctx") or {}
        loc = (*loc, ctx.get("field", "").strip("'"))
        reason = f"action {ctx.get('action')} is not one of {ctx.get('actions')}"
    elif error["type"] == "value_error":
        reason = str((error.get("ctx") or {}).get("error", error["msg"]))
    elif error["type"] == "extra_forbidden" and len(loc) == 1:
        reason = "unknown section (expected [agreement] and [events.*])"
    else:
        reason = _REASONS.get(error["type"], error["msg"])
    return PolicyError(f"{where}: {_key_path(loc) or 'policy'}: {reason}")


def parse(data: dict[str, Any], secret: bytes | None, where: str = "policy") -> SharingPolicy:
    """Validate a parsed policy. ``secret`` may be None only where no record is redacted
    (deriving the shared schemas)."""
    try:
        document = PolicyFile.model_validate(data)
    except ValidationError as exc:
        raise _policy_error(exc, where) from None
    if secret is not None and len(secret) < 16:
        raise PolicyError(
            f"{where}: agreement: the pseudonymisation secret must be at least 16 bytes"
        )
    events: dict[str, EventRules] = {}
    for event_type, section in document.events.items():
        if section.share:
            events[event_type] = _event_rules(event_type, section, where)
        elif event_type not in EVENT_MODELS:
            raise PolicyError(f"{where}: events.{event_type}: {_unknown_type()}")
    return SharingPolicy(
        name=document.agreement.name,
        source=document.agreement.source,
        target=document.agreement.target,
        events=events,
        secret=None if secret is None else SecretBytes(secret),
    )


def _unknown_type() -> str:
    return f"no such event type (known: {', '.join(EVENT_MODELS)})"


def _event_rules(event_type: str, section: EventSection, where: str) -> EventRules:
    """The rules of one shared event type, checked against its schema."""
    rule = f"events.{event_type}"

    def fail(key: str, problem: str) -> PolicyError:
        return PolicyError(f"{where}: {key}: {problem}")

    if event_type not in EVENT_MODELS:
        raise fail(rule, _unknown_type())
    known = leaves(event_type)
    sites = SITE_COUNTRY.get(event_type, {})
    for name, action in section.fields.items():
        field_rule = f"{rule}.fields.{name!r}"
        if name not in known:
            raise fail(field_rule, f"no such field in the {event_type} schema")
        leaf = known[name]
        if action == "pseudonymise" and not _is_string(leaf.avro_type):
            raise fail(field_rule, "only text can be pseudonymised")
        if action == "band" and not _is_decimal(leaf.avro_type):
            raise fail(field_rule, "only masses (decimals) can be banded")
        if action == "country" and name not in sites:
            raise fail(
                field_rule,
                "only a site whose country the event names can be reduced to it "
                f"({', '.join(f'{t}.{f}' for t, m in SITE_COUNTRY.items() for f in m)})",
            )
    rules = EventRules(event_type, dict(section.fields))
    for leaf in known.values():
        if leaf.confidential and rules.action(leaf.path) != "drop":
            raise fail(
                f"{rule}.fields.{rules.named(leaf.path)!r}",
                f"would share {leaf.path}, which is confidential ({leaf.confidential}); "
                "confidential fields can only be dropped",
            )
    missing = [f for f in REQUIRED if rules.action(f) != "keep"]
    if missing:
        raise fail(f"{rule}.fields", f"must keep the envelope fields {', '.join(missing)}")
    return rules


def shipped(direction: str) -> Path:
    """One of the policies that ship with batteryloop: ``eu-to-jp`` or ``jp-to-eu``."""
    path = POLICY_DIR / f"{direction}.toml"
    if not path.exists():
        raise PolicyError(f"no shipped policy {direction!r} (have: eu-to-jp, jp-to-eu)")
    return path


# --- shared schemas ---------------------------------------------------------------------------


def shared_schema(policy: SharingPolicy, event_type: str) -> dict[str, Any]:
    """The Avro schema of ``event_type`` as the partner receives it under ``policy``: the
    private schema without the fields the policy drops (confidentiality tags gone with them),
    renamed into ``batteryloop.shared`` so that it never passes for the private one.
    Pseudonyms stay strings and banded masses decimals, so field types do not change."""
    rules = policy.events.get(event_type)
    if rules is None:
        raise KeyError(f"{event_type} is not shared under {policy.name or 'this policy'}")
    raw = catalog.current(event_type).raw
    record = _shared_record(rules, raw, "", _Names(_named_types(raw)))
    assert isinstance(record, dict)
    return record


class _Names:
    """Named types of the private schema, and which the shared one has defined so far: a
    reference whose definition was dropped with its field gets the definition instead."""

    def __init__(self, private: dict[str, dict[str, Any]]) -> None:
        self.private = private
        self.defined: set[str] = set()


def _named_types(schema: Any, found: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    found = {} if found is None else found
    if isinstance(schema, list):
        for t in schema:
            _named_types(t, found)
    elif isinstance(schema, dict):
        if schema.get("type") in ("record", "enum"):
            found.setdefault(schema["name"], schema)
        for f in schema.get("fields", []):
            _named_types(f["type"], found)
        for key in ("items", "values"):
            if key in schema:
                _named_types(schema[key], found)
    return found


def _shared_record(
    rules: EventRules, schema: dict[str, Any], prefix: str, defined: _Names
) -> dict[str, Any] | str:
    name = _shared_name(schema["name"])
    if name in defined.defined:
        return name
    defined.defined.add(name)
    fields = []
    for f in schema["fields"]:
        path = f"{prefix}{f['name']}"
        below = rules.has_rules_below(path) or rules.has_rules_below(path + "[]")
        if not below and rules.action(path) == "drop":
            continue
        shared = {k: v for k, v in f.items() if k != "confidential"}
        shared["type"] = _shared_type(rules, f["type"], path, defined)
        fields.append(shared)
    return {**schema, "name": name, "fields": fields}


def _shared_type(rules: EventRules, avro_type: Any, path: str, defined: _Names) -> Any:
    if isinstance(avro_type, list):
        return [_shared_type(rules, t, path, defined) for t in avro_type]
    if isinstance(avro_type, str) and avro_type in defined.private:  # a reference by name
        if _shared_name(avro_type) in defined.defined:
            return _shared_name(avro_type)
        return _shared_type(rules, defined.private[avro_type], path, defined)
    if isinstance(avro_type, dict):
        kind = avro_type.get("type")
        if kind == "record":
            return _shared_record(rules, avro_type, path + ".", defined)
        if kind == "array":
            items = _shared_type(rules, avro_type["items"], path + "[]", defined)
            return {**avro_type, "items": items}
        if kind == "map":
            return {**avro_type, "values": _shared_type(rules, avro_type["values"], path, defined)}
        if kind == "enum":
            name = _shared_name(avro_type["name"])
            if name in defined.defined:
                return name
            defined.defined.add(name)
            return {**avro_type, "name": name}
    return avro_type


def _shared_name(name: str) -> str:
    return f"{SHARED_NAMESPACE}.{name.rsplit('.', 1)[-1]}"


# --- the shared schemas of the shipped policies, committed for partners ------------------------

SHIPPED = ("eu-to-jp", "jp-to-eu")
SHARED_DIR = catalog.AVRO_DIR / "shared"


def shared_schema_path(direction: str, event_type: str) -> Path:
    return SHARED_DIR / direction / f"{event_type}.avsc"


def partner_shared_schema(policy: SharingPolicy, event_type: str) -> SchemaVersion | None:
    """The shared schema the partner's mirror writes ``event_type`` under into this policy's
    source region: the committed one of the reverse direction (the agreement both sides hold);
    None when the reverse direction shares no such type."""
    reverse = f"{policy.target.value.lower()}-to-{policy.source.value.lower()}"
    path = shared_schema_path(reverse, event_type)
    if not path.exists():
        return None
    raw = json.loads(path.read_text(encoding="utf-8"))
    return catalog.schema_version(event_type, catalog.current(event_type).version, raw)


def _shipped_shared() -> Iterator[tuple[Path, str]]:
    for direction in SHIPPED:
        policy = load(shipped(direction), secret=None)
        for event_type in policy.events:
            path = shared_schema_path(direction, event_type)
            yield path, catalog.render(shared_schema(policy, event_type))


def check_shared_committed() -> list[str]:
    """Differences between the shipped policies' shared schemas and the committed files."""
    found = (
        catalog.committed_problem(path, text, "what its shipped policy shares")
        for path, text in _shipped_shared()
    )
    return [problem for problem in found if problem]


def write_shared_committed() -> list[Path]:
    return [path for path, text in _shipped_shared() if catalog.write_if_changed(path, text)]

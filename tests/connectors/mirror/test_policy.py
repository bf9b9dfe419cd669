"""The data-sharing policy: loading refuses what it must; nothing confidential gets out."""

from __future__ import annotations

import io
import json
import traceback
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.mirror import policy as sharing
from connectors.mirror.policy import PolicyError, SharingPolicy, mass_band, parse
from schemas import catalog
from schemas.events import EVENT_TYPES, Event
from schemas.serde import Serde
from schemas.topics import event_topic_name
from tests.strategies import events

SECRET = b"a-shared-secret-of-the-agreement"
ENVELOPE = {
    f: "keep" for f in ("event_type", "event_id", "schema_version", "occurred_at", "region")
}


def policy(events_section: dict[str, Any], **agreement: str) -> SharingPolicy:
    return parse(
        {"agreement": {"source": "EU", "target": "JP", **agreement}, "events": events_section},
        SECRET,
        "test.toml",
    )


def decoded(event: Event) -> dict[str, Any]:
    serde = Serde()
    return serde.decode(serde.encode(event, event_topic_name(event.event_type)))[1]


def values_at(record: Any, path: list[str]) -> list[Any]:
    """Every value at a schema path (``inputs[].supplier_id`` as ["inputs[]", "supplier_id"])."""
    if not path:
        return [record]
    if not isinstance(record, dict):
        return []
    head, *rest = path
    if head.endswith("[]"):
        return [v for item in record.get(head[:-2]) or [] for v in values_at(item, rest)]
    if head not in record:
        return []
    return values_at(record[head], rest)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(EVENT_TYPES).flatmap(events), st.sampled_from(["eu-to-jp", "jp-to-eu"]))
def test_no_confidential_value_survives_a_shipped_policy(event: Event, direction: str) -> None:
    shipped = sharing.load(sharing.shipped(direction), SECRET)
    record = decoded(event)
    redacted = shipped.redact(event.event_type, record)
    assert redacted is not None
    shared_values = {str(v) for v in _scalars(redacted)}
    public = json.loads(json.dumps(record, default=str))
    for path in catalog.current(event.event_type).confidential_fields:
        _remove(public, path.replace("[].", "[]/").replace(".", "/").split("/"))
    # A value the event also carries in a shared field (an operator that is its own consignee)
    # may appear; any other confidential value must not.
    shared_anyway = {str(v) for v in _scalars(public)}
    for path in catalog.current(event.event_type).confidential_fields:
        steps = path.replace("[].", "[]/").replace(".", "/").split("/")
        assert values_at(redacted, steps) == []  # the field is gone, not emptied
        for value in values_at(record, steps):
            for leaf in _scalars(value):
                if str(leaf) not in shared_anyway:
                    assert str(leaf) not in shared_values, f"{path} leaked"


def _scalars(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _scalars(v)]
    if isinstance(value, list):
        return [s for v in value for s in _scalars(v)]
    return [] if value is None else [value]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(EVENT_TYPES).flatmap(events))
def test_shipped_policy_shares_everything_that_is_not_confidential(event: Event) -> None:
    shipped = sharing.load(sharing.shipped("eu-to-jp"), SECRET)
    record = decoded(event)
    redacted = shipped.redact(event.event_type, record)
    expected = json.loads(json.dumps(record, default=str))
    for path in catalog.current(event.event_type).confidential_fields:
        _remove(expected, path.replace("[].", "[]/").replace(".", "/").split("/"))
    assert json.loads(json.dumps(redacted, default=str)) == expected


def _remove(record: Any, path: list[str]) -> None:
    head, *rest = path
    if head.endswith("[]"):
        for item in record.get(head[:-2]) or []:
            _remove(item, rest)
    elif not rest:
        record.pop(head, None)
    elif isinstance(record.get(head), dict):
        _remove(record[head], rest)


def test_default_deny_unnamed_types_and_fields_are_not_shared(sample_event: Event) -> None:
    only = policy({"extraction": {"share": True, "fields": {**ENVELOPE, "lot_id": "keep"}}})
    redacted = only.redact("extraction", decoded(sample_event))
    assert redacted is not None
    assert set(redacted) == {*ENVELOPE, "lot_id"}
    assert only.redact("shipment", {"event_type": "shipment"}) is None
    assert not only.shares("manufacture")


def test_transforms_pseudonymise_and_band(sample_event: Event) -> None:
    rules = {**ENVELOPE, "operator_id": "pseudonymise", "mass_kg": "band", "lot_id": "keep"}
    one = policy({"extraction": {"share": True, "fields": rules}})
    record = decoded(sample_event)
    redacted = one.redact("extraction", record)
    assert redacted is not None
    assert redacted["mass_kg"] == Decimal("10000")  # 20000.125 kg -> its power of ten
    assert redacted["operator_id"].startswith("ps-")
    assert sample_event.operator_id not in redacted["operator_id"]
    assert one.redact("extraction", record) == redacted  # same secret, same pseudonym
    other = parse(
        {
            "agreement": {"source": "EU", "target": "JP"},
            "events": {"extraction": {"share": True, "fields": rules}},
        },
        b"another-secret-entirely",
    )
    assert other.redact("extraction", record)["operator_id"] != redacted["operator_id"]  # type: ignore[index]


def test_a_site_reduced_to_its_country(sample_event: Event) -> None:
    rules = {**ENVELOPE, "site_id": "country", "lot_id": "keep"}
    one = policy({"extraction": {"share": True, "fields": rules}})
    counted = one.redact_counted("extraction", decoded(sample_event))
    assert counted is not None
    redacted, changed = counted
    assert redacted["site_id"] == sample_event.country  # type: ignore[attr-defined]
    assert "country" not in redacted  # dropped: not named
    assert changed >= 2  # the site transformed, the country (and more) dropped


def test_shared_schemas_of_the_shipped_policies_are_committed() -> None:
    assert sharing.check_shared_committed() == []


@pytest.mark.parametrize(
    ("value", "band"),
    [("0", "0"), ("0.9", "0.1"), ("1", "1"), ("9.999", "1"), ("10", "1E+1"), ("20000.125", "1E+4")],
)
def test_mass_band(value: str, band: str) -> None:
    assert mass_band(Decimal(value)) == Decimal(band)


REFINING_ENVELOPE = {"share": True, "fields": {**ENVELOPE, "batch_id": "keep"}}


@pytest.mark.parametrize(
    ("events_section", "agreement", "message"),
    [
        (
            {"refining": {"share": True, "fields": {**ENVELOPE, "inputs[].supplier_id": "keep"}}},
            {},
            "events.refining.fields.'inputs[].supplier_id': would share inputs[].supplier_id, "
            "which is confidential (supplier_identity)",
        ),
        (
            {"refining": {"share": True, "fields": {**ENVELOPE, "inputs": "keep"}}},
            {},
            "events.refining.fields.'inputs': would share inputs[].supplier_id",
        ),
        (
            {"shipment": {"share": True, "fields": {**ENVELOPE, "consignee_id": "pseudonymise"}}},
            {},
            "events.shipment.fields.'consignee_id': would share consignee_id",
        ),
        ({"mining": REFINING_ENVELOPE}, {}, "events.mining: no such event type"),
        (
            {"refining": {"share": True, "fields": {**ENVELOPE, "colour": "keep"}}},
            {},
            "events.refining.fields.'colour': no such field in the refining schema",
        ),
        (
            {"refining": {"share": True, "fields": {**ENVELOPE, "batch_id": "shout"}}},
            {},
            "events.refining.fields.'batch_id': action 'shout' is not one of",
        ),
        (
            {"refining": {"share": True, "fields": {**ENVELOPE, "batch_id": "band"}}},
            {},
            "events.refining.fields.'batch_id': only masses (decimals) can be banded",
        ),
        (
            {"extraction": {"share": True, "fields": {**ENVELOPE, "mass_kg": "pseudonymise"}}},
            {},
            "events.extraction.fields.'mass_kg': only text can be pseudonymised",
        ),
        (
            {"refining": {"share": True, "fields": {"batch_id": "keep"}}},
            {},
            "events.refining.fields: must keep the envelope fields event_type",
        ),
        (
            {"refining": {"share": True, "fields": {**ENVELOPE, "site_id": "country"}}},
            {},
            "events.refining.fields.'site_id': only a site whose country the event names",
        ),
        ({"refining": {"share": "yes"}}, {}, "events.refining.share: must be true or false"),
        ({}, {"target": "EU"}, "agreement.target: must differ from the source region"),
        ({}, {"source": "US"}, "agreement.source: must be EU or JP"),
    ],
)
def test_invalid_policies_are_refused_naming_the_rule(
    events_section: dict[str, Any], agreement: dict[str, str], message: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        policy(events_section, **agreement)
    assert str(caught.value).startswith("test.toml: ")
    assert message in str(caught.value)


def test_unreadable_policy_file_and_short_secret(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[agreement\nsource = 'EU'")
    with pytest.raises(PolicyError, match="broken.toml: cannot read the policy"):
        sharing.load(broken, SECRET)
    with pytest.raises(PolicyError, match="secret must be at least 16 bytes"):
        sharing.load(sharing.shipped("eu-to-jp"), b"short")
    with pytest.raises(PolicyError, match="no shipped policy 'eu-to-us'"):
        sharing.shipped("eu-to-us")


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(EVENT_TYPES).flatmap(events), st.sampled_from(["eu-to-jp", "jp-to-eu"]))
def test_redacted_events_are_valid_avro_under_the_shared_schema(
    event: Event, direction: str
) -> None:
    shipped = sharing.load(sharing.shipped(direction), SECRET)
    redacted = shipped.redact(event.event_type, decoded(event))
    schema = sharing.shared_schema(shipped, event.event_type)
    assert "confidential" not in json.dumps(schema)
    parsed = fastavro.parse_schema(schema)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, redacted)
    buffer.seek(0)
    # The partner reads it with the shared schema alone.
    assert fastavro.schemaless_reader(buffer, parsed, None) == redacted


def _input(n: int, confidential: bool) -> dict[str, Any]:
    return {
        "lot_id": f"LOT-{n}",
        "mass_kg": Decimal("100.000"),
        "supplier_id": "BPNL00000SUPPL01" if confidential else None,
        "unit_price": {"amount": Decimal("9.5000"), "currency": "EUR"} if confidential else None,
        "contract_volume_kg": Decimal("5000.000") if confidential else None,
    }


def test_redaction_tally_counts_confidential_values_apart(sample_event: Event) -> None:
    """Known records: which values were confidential and removed, and what else was done."""
    shipped = sharing.load(sharing.shipped("eu-to-jp"), SECRET)
    refining = {
        **ENVELOPE,
        "batch_id": "B-1",
        "inputs": [_input(1, True), _input(2, False), _input(3, True)],
    }
    tallied = shipped.redact_tallied("refining", refining)
    assert tallied is not None
    assert tallied[1] == sharing.RedactionTally(confidential_removed=6)  # 3 fields x 2 inputs
    shipment = {**ENVELOPE, "consignee_id": "BPNL00000CONSG01", "invoice_value": None}
    tallied = shipped.redact_tallied("shipment", shipment)
    assert tallied is not None and tallied[1] == sharing.RedactionTally(confidential_removed=1)
    extraction = decoded(sample_event)  # its offtake price is set
    tallied = shipped.redact_tallied("extraction", extraction)
    assert tallied is not None and tallied[1] == sharing.RedactionTally(confidential_removed=1)

    rules = {**ENVELOPE, "operator_id": "pseudonymise", "mass_kg": "band", "site_id": "country"}
    custom = policy(
        {
            "extraction": {"share": True, "fields": {**rules, "lot_id": "keep"}},
            "refining": {"share": True, "fields": {**ENVELOPE, "batch_id": "keep"}},
        }
    )
    tallied = custom.redact_tallied("extraction", extraction)
    assert tallied is not None
    present_unnamed = [
        k
        for k, v in extraction.items()
        if k not in rules and k not in ("lot_id", "offtake_price") and v is not None
    ]
    assert tallied[1] == sharing.RedactionTally(
        confidential_removed=1,
        dropped=len(present_unnamed),
        pseudonymised=1,
        banded=1,
        reduced_to_country=1,
    )
    # inputs not named: dropped whole, and the confidential values inside it are still counted
    tallied = custom.redact_tallied("refining", refining)
    assert tallied is not None
    assert tallied[1] == sharing.RedactionTally(confidential_removed=6, dropped=1)
    assert custom.redact_counted("refining", refining) == (tallied[0], 7)


_SECRETS = st.binary(min_size=16, max_size=48).filter(lambda b: b"*" not in b)


@settings(max_examples=50, deadline=None)
@given(secret=_SECRETS)
def test_the_secret_never_shows_in_a_repr_str_format_or_log_line(secret: bytes) -> None:
    loaded = sharing.load(sharing.shipped("eu-to-jp"), secret)
    shown = [
        repr(loaded),
        str(loaded),
        f"{loaded}",
        f"{loaded!r}",
        format(loaded, ""),
        "%s %r" % (loaded, loaded),  # noqa: UP031 - how logging formats its arguments
        repr(loaded.secret),
        loaded.model_dump_json(),
        repr(loaded.model_dump()),
    ]
    forms = {secret.hex(), repr(secret), str(secret)}
    if secret.isascii():
        forms.add(secret.decode())
    for text in shown:
        for form in forms:
            assert form not in text
    assert "**********" in repr(loaded)
    # and it still works
    assert loaded.secret is not None and loaded.secret.get_secret_value() == secret


@settings(max_examples=30, deadline=None)
@given(secret=_SECRETS)
def test_a_raised_errors_text_never_shows_the_secret(secret: bytes) -> None:
    broken = {"agreement": {"source": "EU", "target": "JP"}, "events": {"mining": {"share": True}}}
    with pytest.raises(PolicyError) as caught:
        parse(broken, secret, "p.toml")
    short = secret[:15]
    with pytest.raises(PolicyError) as too_short:
        parse({"agreement": {"source": "EU", "target": "JP"}}, short, "p.toml")
    for exc, value in ((caught.value, secret), (too_short.value, short)):
        text = "".join(traceback.format_exception(exc))
        for form in {value.hex(), repr(value), value.decode("latin-1")}:
            assert form not in text


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (  # unknown action
            '[events.refining]\nshare = true\n[events.refining.fields]\nbatch_id = "hide"\n',
            "bad.toml: events.refining.fields.'batch_id': action 'hide' is not one of keep, drop",
        ),
        (  # unknown field
            '[events.refining]\nshare = true\n[events.refining.fields]\n"inputs[].colour" = '
            '"keep"\n',
            "bad.toml: events.refining.fields.'inputs[].colour': no such field in the refining "
            "schema",
        ),
        (  # a confidential field kept, inside a kept array of records
            '[events.refining]\nshare = true\n[events.refining.fields]\ninputs = "keep"\n',
            "bad.toml: events.refining.fields.'inputs': would share inputs[].supplier_id, which "
            "is confidential (supplier_identity); confidential fields can only be dropped",
        ),
        (  # wrong types
            "[events.refining]\nshare = 1\n",
            "bad.toml: events.refining.share: must be true or false",
        ),
        (
            '[events.refining]\nshare = true\nfields = "keep"\n',
            "bad.toml: events.refining.fields: must be a table",
        ),
        (
            "[events.refining]\nshare = true\n[events.refining.fields]\nbatch_id = 3\n",
            "bad.toml: events.refining.fields.'batch_id': must be a string",
        ),
        (
            "[events]\nrefining = true\n",
            "bad.toml: events.refining: must be a table",
        ),
        (  # unknown keys
            "[events.refining]\nshare = true\nshared = true\n",
            "bad.toml: events.refining.shared: unknown key",
        ),
        ("[partners]\nname = 'x'\n", "bad.toml: partners: unknown section"),
    ],
)
def test_malformed_policy_files_name_file_key_and_reason(
    tmp_path: Path, toml: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[agreement]\nsource = "EU"\ntarget = "JP"\n' + toml)
    with pytest.raises(PolicyError) as caught:
        sharing.load(path, SECRET)
    assert str(caught.value).startswith(message), str(caught.value)


def test_a_policy_without_agreement_names_it(tmp_path: Path) -> None:
    path = tmp_path / "no-agreement.toml"
    path.write_text("[events.refining]\nshare = false\n")
    with pytest.raises(PolicyError, match=r"^no-agreement.toml: agreement: missing \(required\)"):
        sharing.load(path, SECRET)

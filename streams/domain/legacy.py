"""Version 1 of entity states and messages (JSON dictionaries with short keys) -> version 2.

Version 1 is what the processors wrote before states and messages were typed; changelog topics
and the entity-messages topic may still hold it. Each function here renames one dictionary's
fields to the version-2 names, and ``msgspec.convert`` checks the result against the version-2
class, so a field missing or of the wrong type fails loudly instead of loading half a state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from streams.domain.messages import (
    Certification,
    CertificationCheck,
    LotCreated,
    LotDebited,
    Manufactured,
    Message,
    PartOf,
    ProfileUpdate,
    RecoveryContribution,
    RecycledContentContribution,
    Shipped,
    Shredded,
    Tick,
    Used,
)
from streams.domain.states import STATE_TYPES, State

Legacy = dict[str, Any]


def _envelope(f: Legacy) -> Legacy:
    return {
        "event_id": f["eid"],
        "event_type": f["type"],
        "occurred_at": f["at"],
        "operator_id": f["op"],
        "site_id": f["site"],
        "region": f["region"],
    }


def _created(f: Legacy) -> Legacy:
    return {
        **_envelope(f),
        "kind": f["kind"],
        "form": f["form"],
        "material": f["material"],
        "grams": f["g"],
        "composition": f["comp"],
        "country": f.get("country"),
        "batch_id": f.get("batch"),
        "inputs": f.get("inputs", {}),
        "batch_outputs": f.get("batch_outputs", {}),
        "pre_consumer_grams": f.get("pre_g", 0),
        "post_consumer_grams": f.get("post_g", 0),
    }


def _debit(f: Legacy) -> Legacy:
    recovery = f.get("recovery")
    return {
        **_envelope(f),
        "grams": f["g"],
        "consumers": f["consumers"],
        "recovery_outputs": None if recovery is None else recovery["outputs"],
    }


def _shipped(f: Legacy) -> Legacy:
    return {
        **_envelope(f),
        "grams": f["g"],
        "from_site_id": f["from_site"],
        "from_country": f["from_country"],
        "to_site_id": f["to_site"],
        "to_country": f["to_country"],
        "hs_code": f["hs"],
    }


def _manufactured(f: Legacy) -> Legacy:
    return {
        **_envelope(f),
        "passport_id": f["passport"],
        "level": f["level"],
        "category": f["category"],
        "model": f["model"],
        "chemistry": f["chemistry"],
        "grams": f["g"],
        "capacity_kwh": f["kwh"],
        "carbon_footprint": f["cf"],
        "inputs": f["inputs"],
        "components": f["components"],
    }


def _used(f: Legacy) -> Legacy:
    return {
        **_envelope(f),
        "action": f["action"],
        "status": f["status"],
        "state_of_health": f["soh"],
        "new_passport_id": f["new_passport"],
        "predecessor_passport_id": f["predecessor"],
    }


def _shredded(f: Legacy) -> Legacy:
    return {**_envelope(f), "black_mass_lot_id": f["lot"], "grams": f["g"]}


def _part_of(f: Legacy) -> Legacy:
    return {**_envelope(f), "parent": f["parent"]}


def _certification(f: Legacy) -> Legacy:
    return {
        **_envelope(f),
        "action": f["action"],
        "scheme_region": f["scheme_region"],
        "scheme": f["scheme"],
        "certificate_id": f["certificate"],
        "valid_until": f["until"],
    }


def _profile(p: Legacy) -> Legacy:
    return {
        "grams": p["g"],
        "metals": p["m"],
        "origins": p["o"],
        "complete": p["c"],
        "depth": p["d"],
    }


def _held(inputs: dict[str, list[Any]]) -> dict[str, Any]:
    return {src: [revision, _profile(p)] for src, (revision, p) in inputs.items()}


def _recycled_share(p: Legacy | None) -> Legacy | None:
    if p is None:
        return None
    return {"labels": p["labels"], "metals": p["m"], "complete": p.get("c", True)}


def _recovery_share(p: Legacy | None) -> Legacy | None:
    if p is None:
        return None
    return {"labels": p["labels"], "input": p["in"], "output": p["out"]}


#: Version-1 fact kind -> (version-2 class, field renaming).
FACTS: dict[str, tuple[type[Message], Callable[[Legacy], Legacy]]] = {
    "created": (LotCreated, _created),
    "debit": (LotDebited, _debit),
    "shipped": (Shipped, _shipped),
    "manufactured": (Manufactured, _manufactured),
    "used": (Used, _used),
    "shredded": (Shredded, _shredded),
    "part_of": (PartOf, _part_of),
    "certification": (Certification, _certification),
}


def _fact(kind: str, f: Legacy) -> Message:
    cls, rename = FACTS[kind]
    return msgspec.convert(rename(f), cls)


def _facts(kind: str, facts: dict[str, Legacy]) -> dict[str, Message]:
    return {eid: _fact(kind, f) for eid, f in facts.items()}


def upgrade_message(key: str, m: Legacy) -> Message:
    """One version-1 message to ``key`` as its version-2 class."""
    kind = m["m"]
    if kind in FACTS:
        return _fact(kind, m["fact"])
    if kind == "check":
        return msgspec.convert({"events": m["events"]}, CertificationCheck)
    if kind == "profile":
        update = {"source": m["src"], "revision": m["v"], "profile": _profile(m["p"])}
        return msgspec.convert(update, ProfileUpdate)
    if kind == "contribution" and key.startswith("recycled-content/"):
        update = {"source": m["src"], "revision": m["v"], "share": _recycled_share(m["p"])}
        return msgspec.convert(update, RecycledContentContribution)
    if kind == "contribution" and key.startswith("recovery/"):
        update = {"source": m["src"], "revision": m["v"], "share": _recovery_share(m["p"])}
        return msgspec.convert(update, RecoveryContribution)
    if kind == "tick":
        return Tick()
    raise ValueError(f"no version-1 message kind {kind!r} for {key!r}")


def upgrade_messages(key: str, messages: list[Legacy]) -> list[Message]:
    return [upgrade_message(key, m) for m in messages]


def _alerts(st: Legacy) -> dict[str, Any]:
    alerts: dict[str, Any] = st.get("alerts", {})
    return alerts


def _lot(st: Legacy) -> Legacy:
    return {
        "created": _facts("created", st.get("created", {})),
        "debits": _facts("debit", st.get("debits", {})),
        "shipments": _facts("shipped", st.get("ships", {})),
        "inputs": _held(st.get("in", {})),
        "profile_revision": st.get("pv"),
        "recovery_revision": st.get("rv"),
        "published": st.get("pub"),
        "alerts": _alerts(st),
        "waiting_since": st.get("since"),
    }


def _battery(st: Legacy) -> Legacy:
    health = st.get("health")
    return {
        "manufactured": _facts("manufactured", st.get("made", {})),
        "uses": _facts("used", st.get("uses", {})),
        "latest_health": None if health is None else _fact("used", health),
        "shipments": _facts("shipped", st.get("ships", {})),
        "shredded": _facts("shredded", st.get("shreds", {})),
        "parents": _facts("part_of", st.get("parents", {})),
        "inputs": _held(st.get("in", {})),
        "profile_revision": st.get("pv"),
        "tally": st.get("tv"),
        "published": st.get("pub"),
        "alerts": _alerts(st),
        "waiting_since": st.get("since"),
    }


def _operator(st: Legacy) -> Legacy:
    return {
        "certifications": _facts("certification", st.get("certs", {})),
        "pending": st.get("pending", {}),
        "pending_by_hour": st.get("bulk", {}),
        "flagged": st.get("flagged", {}),
        "flagged_total": st.get("flagged_total", 0),
        "published": st.get("pub"),
        "alerts": _alerts(st),
    }


def _tally(st: Legacy) -> Legacy:
    counts = st.get("n", {})
    return {
        "labels": st.get("labels"),
        "totals": st.get("t", {}),
        "sources": counts.get("sources", 0),
        "incomplete": counts.get("incomplete", 0),
        "published": st.get("pub"),
    }


def _recycled_part(st: Legacy) -> Legacy:
    return {"revision": st["v"], "share": _recycled_share(st["p"])}


def _recovery_part(st: Legacy) -> Legacy:
    return {"revision": st["v"], "share": _recovery_share(st["p"])}


#: Entity kind -> how its version-1 state's fields are renamed.
STATES: dict[str, Callable[[Legacy], Legacy]] = {
    "lot": _lot,
    "battery": _battery,
    "operator": _operator,
    "recycled-content": _tally,
    "recovery": _tally,
    "recycled-content-part": _recycled_part,
    "recovery-part": _recovery_part,
}


def upgrade_state(key: str, st: Legacy) -> State:
    """The version-1 state stored under ``key`` as its version-2 class."""
    kind = key.split("/", 1)[0]
    if kind not in STATES:
        raise ValueError(f"no entity kind {kind!r}")
    state: State = msgspec.convert(STATES[kind](st), STATE_TYPES[kind])
    return state

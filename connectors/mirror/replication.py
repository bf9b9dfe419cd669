"""What the mirror decides, record by record, and what it keeps per source partition; no Kafka.

**Which records cross.** A record of the source region's event topics is mirrored when its type
is shared under the policy (``share = true``; any other type is filtered as ``not_shared``), it
decodes and validates, it did not originate in the target region (its envelope's region, or the
origin named by provenance headers of an earlier crossing), and its operator is certified at the
time the event occurred under *either* region's scheme: Catena-X and Ouranos recognise each
other's certifications, so a JP-certified operator publishing in the EU region crosses too. The
``batteryloop-recognised`` header names the scheme and certificate that covered it. An event
whose operator has no known certification at all *waits* up to a grace period for one to arrive
(certification and first events may be published at the same moment); after that it is
filtered as uncertified. A revocation ends coverage under its scheme from its ``occurred_at``.

**Certifications: read always, shared only by policy.** The gate's input is every certification
the source cluster holds: the source region's own certification events, and the partner's as
the partner's mirror brought them (``<target>.batteryloop.events.certification`` on the source
cluster). They are read in every session, whatever the policy says about sharing them, and fed to
:class:`KnownCertifications` before any decision. Sharing them is a separate question, answered
like any other type's: when the policy shares certifications, those under the source region's
scheme cross, revocations included (the partner's state judges again what it accepted); one
under the target region's scheme is filtered as ``foreign_scheme``, since the target has it from
its own certifying body. When the policy does not share them, each is filtered as ``not_shared``
and the partner learns of a certification only through the ``batteryloop-recognised`` header of
the events it let through.

**Order and position.** Records of one source partition go to the same partition of the target
topic in source-offset order; a waiting record holds the records behind it in its partition.
So one offset per source partition says where mirroring stands: below it, every record is
decided and, if mirrored, acknowledged by the target. The agent writes it to the target as a
checkpoint, with the target partition's end at that moment; on recovery, every mirrored record
from that target offset on names, in its provenance headers, a source offset at or after the
checkpoint that has landed already (see :class:`Lane`).
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from connectors.mirror.policy import SharingPolicy
from schemas.values import Region
from streams.domain.entities import CertificationTimeline
from streams.domain.messages import Certification
from streams.domain.quantities import micros

PREFIX = "batteryloop-"
ORIGIN_REGION = "batteryloop-origin-region"
ORIGIN_TOPIC = "batteryloop-origin-topic"
ORIGIN_PARTITION = "batteryloop-origin-partition"
ORIGIN_OFFSET = "batteryloop-origin-offset"
HOPS = "batteryloop-hops"
#: On the receiving side: the certificate under which the record was accepted,
#: ``<scheme region>:<certificate id>``, of either region's scheme (mutual recognition).
RECOGNISED = "batteryloop-recognised"
#: The ``[agreement] name`` of the policy the record was shared under.
AGREEMENT = "batteryloop-agreement"
#: Paths of the fields the policy dropped or transformed, comma-separated and sorted
#: (``inputs[].supplier_id,offtake_price``); absent when nothing was.
REDACTED = "batteryloop-redacted"

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a mirrored record came from, carried in its headers."""

    region: str
    topic: str
    partition: int
    offset: int
    hops: int

    def headers(self) -> Headers:
        return [
            (ORIGIN_REGION, self.region.encode()),
            (ORIGIN_TOPIC, self.topic.encode()),
            (ORIGIN_PARTITION, str(self.partition).encode()),
            (ORIGIN_OFFSET, str(self.offset).encode()),
            (HOPS, str(self.hops).encode()),
        ]

    @staticmethod
    def read(headers: Headers | None) -> Provenance | None:
        """The provenance in ``headers``, None when there is none; ValueError when malformed."""
        if not headers:
            return None
        found = {k: v for k, v in headers if k.startswith(PREFIX)}
        if ORIGIN_REGION not in found:
            return None
        try:
            return Provenance(
                found[ORIGIN_REGION].decode(),
                found[ORIGIN_TOPIC].decode(),
                int(found[ORIGIN_PARTITION]),
                int(found[ORIGIN_OFFSET]),
                int(found[HOPS]),
            )
        except (KeyError, ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"malformed provenance headers {sorted(found)}: {exc!r}") from exc


def sharing_headers(agreement: str, redacted: list[str]) -> Headers:
    """The headers saying under which agreement a record was shared and what it redacted."""
    headers = [(AGREEMENT, agreement.encode())]
    if redacted:
        headers.append((REDACTED, ",".join(sorted(set(redacted))).encode()))
    return headers


def read_sharing(headers: Headers | None) -> tuple[str | None, tuple[str, ...]]:
    """(agreement name or None, redacted field paths) from a mirrored record's headers."""
    found = {k: v for k, v in headers or () if k in (AGREEMENT, REDACTED)}
    agreement = found.get(AGREEMENT)
    redacted = found.get(REDACTED)
    paths = tuple(p for p in redacted.decode(errors="replace").split(",") if p) if redacted else ()
    return (None if agreement is None else agreement.decode(errors="replace")), paths


class Reason(StrEnum):
    """Why a record read from the source was not mirrored (a metric label)."""

    invalid = "invalid"  # does not decode or validate (the processors dead-letter it)
    from_target_region = "from_target_region"  # it came from the target region: never back
    uncertified = "uncertified"  # its operator holds no certification of either scheme then
    foreign_scheme = "foreign_scheme"  # a certification under the target region's scheme
    not_shared = "not_shared"  # its event type is not shared under the policy


class Action(StrEnum):
    mirror = "mirror"
    hold = "hold"
    filter = "filter"


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    reason: Reason | None = None
    recognised: str | None = None  # "<scheme region>:<certificate id>"


MIRROR = Verdict(Action.mirror)
HOLD = Verdict(Action.hold)


class KnownCertifications:
    """Who is certified under either region's scheme, and when, from certification events."""

    def __init__(self) -> None:
        self._facts: dict[str, dict[str, Certification]] = {}  # operator -> event id -> fact
        self._timelines: dict[str, CertificationTimeline] = {}

    def add(self, record: dict[str, Any]) -> None:
        """Take in a decoded certification event, of either scheme, as the processors' fact."""
        until = record.get("valid_until")
        fact = Certification(
            event_id=str(record["event_id"]),
            event_type="certification",
            occurred_at=_us(record["occurred_at"]),
            # the gate needs only the certification's terms, not who published it where
            operator_id=record.get("operator_id", ""),
            site_id=record.get("site_id", ""),
            region=record.get("region", ""),
            action=record["action"],
            scheme_region=record["scheme_region"],
            scheme=record["scheme"],
            certificate_id=record["certificate_id"],
            valid_until=None if until is None else _us(until),
        )
        operator = record["subject_operator_id"]
        self._facts.setdefault(operator, {})[fact.event_id] = fact
        self._timelines.pop(operator, None)

    def known(self, operator: str) -> bool:
        return operator in self._facts

    def covering(self, operator: str, at: int) -> Certification | None:
        facts = self._facts.get(operator)
        if facts is None:
            return None
        timeline = self._timelines.get(operator)
        if timeline is None:
            timeline = self._timelines[operator] = CertificationTimeline(facts.values())
        return timeline.covering(at)


def _us(value: datetime | int) -> int:
    return value if isinstance(value, int) else micros(value)


def judge(
    policy: SharingPolicy,
    certifications: KnownCertifications,
    event_type: str,
    record: dict[str, Any],
    origin: Provenance | None,
    waited: float,
    grace: float,
) -> Verdict:
    """Decide one decoded, valid record. ``waited``: seconds it has waited.

    A record of a type the policy does not share is filtered first: nothing else about it
    matters, and a mirror verdict must always have a redaction to go with it."""
    if not policy.shares(event_type):
        return Verdict(Action.filter, Reason.not_shared)
    target = policy.target.value
    if record["region"] == target or (origin is not None and origin.region == target):
        return Verdict(Action.filter, Reason.from_target_region)
    if event_type == "certification":
        if record["scheme_region"] != policy.source.value:
            return Verdict(Action.filter, Reason.foreign_scheme)
        if record["action"] == "certified":
            return Verdict(
                Action.mirror, recognised=f"{record['scheme_region']}:{record['certificate_id']}"
            )
        return MIRROR
    operator = record["operator_id"]
    fact = certifications.covering(operator, _us(record["occurred_at"]))
    if fact is not None:
        return Verdict(Action.mirror, recognised=f"{fact.scheme_region}:{fact.certificate_id}")
    if not certifications.known(operator) and waited < grace:
        return HOLD
    return Verdict(Action.filter, Reason.uncertified)


@dataclass(slots=True)
class Waiting:
    """A record read from the source and not decided yet, with when it was read."""

    message: Any  # a confluent_kafka.Message (kept opaque here)
    arrived: float


@dataclass(slots=True, eq=False)  # one object per partition: hashed by identity
class Lane:
    """One source partition on its way to the same partition of its target topic.

    ``start`` is the checkpointed offset: every record below it is decided and landed.
    ``landed`` holds the source offsets at or after ``start`` that recovery found on the target
    already, reading from ``target_from``; they are skipped when read again and forgotten once
    passed. Until then a checkpoint must keep ``target_from``: those records lie after it.
    """

    event_type: str
    topic: str
    partition: int
    target_topic: str
    start: int = 0
    target_from: int = 0
    landed: set[int] = field(default_factory=set)
    next_offset: int = 0  # below this, every record is decided
    consumed: int = 0  # the next offset the consumer will hand over
    waiting: deque[Waiting] = field(default_factory=deque)
    checkpointed: int = -1
    paused: bool = False
    #: what became of every record below :meth:`position`, cumulative over the lane's life;
    #: kept in the checkpoint, so it counts each record once whatever the restarts
    flows: Flows = field(default_factory=lambda: Flows())

    def position(self) -> int:
        """Where this lane stands: the first record not yet decided (the checkpoint)."""
        return self.waiting[0].message.offset() if self.waiting else self.next_offset

    def checkpoint(self, target_end: int) -> tuple[int, int]:
        """(position, target offset) to record once every record produced so far is
        acknowledged and ``target_end`` is the target partition's end: every record this lane
        has yet to find or write on the target lies at or after that target offset."""
        return self.position(), self.target_from if self.landed else target_end


# --- checkpoints: the position, kept on the target cluster ---------------------------------------


def checkpoint_key(source: Region, topic: str, partition: int) -> bytes:
    return f"{source.value}/{topic}/{partition}".encode()


@dataclass(slots=True)
class Flows:
    """What a mirror did with the records of one source partition below its checkpoint:
    mirrored (shared), filtered by reason, and the field values it redacted in those shared.

    Kept in the checkpoint record with the position it belongs to, so the counts are exactly
    those of the records below that position: a restart resumes both together, and records
    re-decided after a crash are counted again only because the checkpoint never counted them.
    """

    shared: int = 0
    filtered: dict[str, int] = field(default_factory=dict)
    redacted: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "version": FLOWS_VERSION,
            "shared": self.shared,
            "filtered": dict(sorted(self.filtered.items())),
            "redacted": self.redacted,
        }

    @classmethod
    def from_json(cls, data: Any) -> Flows:
        """Flows from a checkpoint's ``flows`` field; a checkpoint written before flows were
        kept (no field) counts as zero. ValueError when present but malformed."""
        if data is None:
            return cls()
        if not isinstance(data, dict) or data.get("version") != FLOWS_VERSION:
            raise ValueError(f"flows of an unknown version: {data!r:.80}")
        filtered = data["filtered"]
        if not isinstance(filtered, dict):
            raise ValueError("flows.filtered is not an object")
        return cls(
            _count(data["shared"]),
            {str(k): _count(v) for k, v in filtered.items()},
            _count(data["redacted"]),
        )

    def add(self, other: Flows) -> None:
        self.shared += other.shared
        self.redacted += other.redacted
        for reason, n in other.filtered.items():
            self.filtered[reason] = self.filtered.get(reason, 0) + n


#: Version of the ``flows`` field of a checkpoint (bumped on an incompatible change).
FLOWS_VERSION = 1


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"not a count: {value!r:.40}")
    return value


def checkpoint_value(position: int, target_offset: int, flows: Flows | None = None) -> bytes:
    body: dict[str, Any] = {"position": position, "target_offset": target_offset}
    if flows is not None:
        body["flows"] = flows.as_json()
    return json.dumps(body).encode()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    topic: str
    partition: int
    position: int  # source offset: below it, everything decided and landed
    target_offset: int  # target partition offset: every later mirrored record is at or after it
    #: what became of the records below ``position`` (zero in a checkpoint without flows)
    flows: Flows = field(default_factory=Flows)


def parse_checkpoint(key: bytes | None, value: bytes | None) -> tuple[str, Checkpoint] | None:
    """(source region, checkpoint) of a record of the checkpoint topic, whichever mirror wrote
    it; None for a malformed one."""
    if key is None or value is None:
        return None
    try:
        region, topic, partition = key.decode().split("/")
        data = json.loads(value)
        flows = Flows.from_json(data.get("flows"))
        return region, Checkpoint(
            topic, int(partition), int(data["position"]), int(data["target_offset"]), flows
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def read_checkpoint(source: Region, key: bytes | None, value: bytes | None) -> Checkpoint | None:
    """The checkpoint in a record of the checkpoint topic; None for another source's, or a
    malformed one (the caller then starts that partition from an earlier checkpoint or the
    beginning, which is safe)."""
    parsed = parse_checkpoint(key, value)
    if parsed is None or parsed[0] != source.value:
        return None
    return parsed[1]


_FIRST_HOP: dict[tuple[str, str, int], Headers] = {}


def lane_headers(lane: Lane, region: str, offset: int) -> Headers:
    """``Provenance(region, lane.topic, lane.partition, offset, 1).headers()``: the headers of
    a record crossing for the first time, with the parts fixed per partition encoded once."""
    fixed = _FIRST_HOP.get((region, lane.topic, lane.partition))
    if fixed is None:
        fixed = _FIRST_HOP[region, lane.topic, lane.partition] = [
            (ORIGIN_REGION, region.encode()),
            (ORIGIN_TOPIC, lane.topic.encode()),
            (ORIGIN_PARTITION, str(lane.partition).encode()),
        ]
    return [*fixed, (ORIGIN_OFFSET, str(offset).encode()), (HOPS, b"1")]

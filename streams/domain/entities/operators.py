"""Operators: certifications and certification checks in; operator documents and alerts for
events that occurred while their operator held no valid certification out.

Mutual recognition
------------------
Catena-X (EU) and Ouranos (JP) recognise each other's certified operators: an event is covered
when, under *either* region's scheme, the latest certification fact at or before the event's
``occurred_at`` is ``certified`` and not expired (``valid_until``). A scheme's facts reach both
regions' state (each region's certification events, and the partner's as mirrored), so both
regions judge an operator alike, without a second certification event.

Revocation
----------
A revocation ends coverage under its own scheme from its ``occurred_at`` (the effective time),
not from when it was published or arrived; a certification under the other scheme still covers.
Events that occurred before the revocation stay valid. Events of that operator that occurred at
or after it are uncovered whatever order things arrived in: read after the revocation, they wait
for a certificate like any uncovered event; read (and accepted) before it, they are kept as
accepted facts and judged again when the revocation arrives, then wait the same grace period.
Either way, those the grace period does not settle are flagged in the ``uncertified_operator``
alert; an example after a revocation carries ``reason: revoked``, the certificate and
``revoked_at`` (after an expiry, ``expired``), and the alert lists the operator's
``revocations``. Documents already published from those events (passports, lots, tallies)
keep what the events said: a revocation withdraws recognition, not facts; a passport read says
whether its manufacturer is certified now and was at manufacture (:func:`with_certification`).
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from streams.domain.entities.alerts import (
    OPERATORS,
    alert,
    publish_alerts,
    publish_if_changed,
)
from streams.domain.entities.effects import Config, Document, Effects
from streams.domain.entities.provenance import keep
from streams.domain.messages import Certification, CertificationCheck, CheckedEvent, Message
from streams.domain.quantities import iso, micros
from streams.domain.states import (
    AcceptedEvent,
    AcceptedHour,
    FlaggedEvent,
    OperatorState,
    PendingCheck,
    PendingHour,
)

#: Events waiting for their operator's certification are kept one by one up to this many per
#: operator; beyond that they are counted per hour in which they occurred. A burst read before
#: the certificate (on a replay, partitions are read in any order) must not grow an operator's
#: state without bound. Counting in bulk gives up exact deduplication for those: a replayed
#: event there is counted again in the alert's total (it cannot change passports or tallies).
PENDING_DETAIL = 500
#: Flagged events remembered by id (the newest), for deduplication and the alert's examples.
#: An older flagged event replayed is judged and counted again (the caveat above): the
#: alert's total may grow on a replay; its kind, status and examples do not change.
FLAGGED_DETAIL = 100
#: Accepted (covered) events kept by id, the newest by occurred_at, so that a revocation read
#: after them can judge them again; older ones are counted per hour, with the caveat above, and
#: an hour a revocation falls inside is judged as a whole (it waits, and is flagged, entire).
ACCEPTED_DETAIL = 1000
_HOUR_US = 3600 * 10**6


class CertificationTimeline:
    """Which times an operator's certifications cover; built once, asked many times.

    Per scheme (either region's: certification is mutual), the latest certification fact at or
    before a time decides: certified and not expired covers; revoked does not. The mirror's
    certification gate asks the same question of the same facts.
    """

    def __init__(self, certs: Iterable[Certification]) -> None:
        by_scheme: dict[tuple[str, str], list[Certification]] = {}
        for fact in certs:
            by_scheme.setdefault((fact.scheme_region, fact.scheme), []).append(fact)
        self._timelines = [
            sorted(facts, key=lambda f: (f.occurred_at, f.event_id)) for facts in by_scheme.values()
        ]
        self._keys = [
            [(f.occurred_at, f.event_id) for f in timeline] for timeline in self._timelines
        ]
        self._bounds = _covered(self._timelines)

    def covers(self, at: int) -> bool:
        """Whether some certification covers ``at``: what ``covering(at) is not None`` says,
        in one bisection (asked once per checked event)."""
        return bisect.bisect_right(self._bounds, at) % 2 == 1

    def standing(self, at: int) -> list[Certification]:
        """The latest fact at or before ``at`` of each scheme that has one."""
        out = []
        for timeline, keys in zip(self._timelines, self._keys, strict=True):
            i = bisect.bisect_right(keys, (at, "\uffff")) - 1
            if i >= 0:
                out.append(timeline[i])
        return out

    def covering(self, at: int) -> Certification | None:
        """The certification fact that covers ``at`` (the first scheme's that does), or None."""
        for fact in self.standing(at):
            if fact.action == "certified" and (fact.valid_until is None or fact.valid_until >= at):
                return fact
        return None


#: Beyond any time (µs since the epoch) an event can have: the end of a coverage that never ends.
_NEVER = 1 << 80


def _covered(timelines: list[list[Certification]]) -> list[int]:
    """The times some scheme's certification covers, as sorted bounds ``[start, end, ...]`` of
    disjoint half-open intervals. A scheme's latest fact at or before a time decides
    (:meth:`CertificationTimeline.standing`): a fact decides from its time until the next
    later fact of its scheme; a certification covers that stretch up to its ``valid_until``."""
    stretches = []
    for timeline in timelines:
        for fact, following in zip(timeline, [*timeline[1:], None], strict=True):
            end = _NEVER if following is None else following.occurred_at
            if end == fact.occurred_at or fact.action != "certified":
                continue  # superseded at its own time, or not a certification
            if fact.valid_until is not None:
                end = min(end, fact.valid_until + 1)
            if end > fact.occurred_at:
                stretches.append((fact.occurred_at, end))
    bounds: list[int] = []
    for start, end in sorted(stretches):
        if bounds and start <= bounds[-1]:
            bounds[-1] = max(bounds[-1], end)
        else:
            bounds += [start, end]
    return bounds


def certified_at(certs: Iterable[Certification], at: int) -> bool:
    return CertificationTimeline(certs).covers(at)


def _wait(state: OperatorState, event: CheckedEvent, now: int) -> None:
    """Keep an uncovered event waiting for a certificate: by id, or counted per hour."""
    if len(state.pending) < PENDING_DETAIL:
        state.pending[event.event_id] = PendingCheck(
            event.occurred_at, event.event_type, event.subject, now
        )
        return
    at = event.occurred_at
    _wait_hour(state, str(at // _HOUR_US), 1, at, at, now)


def _wait_hour(
    state: OperatorState, hour_key: str, count: int, first: int, last: int, now: int
) -> None:
    hour = state.pending_by_hour.setdefault(hour_key, PendingHour(0, now, first, last))
    hour.count += count
    hour.first, hour.last = min(hour.first, first), max(hour.last, last)


def _accept_hour(state: OperatorState, hour_key: str, count: int, first: int, last: int) -> None:
    hour = state.accepted_by_hour.setdefault(hour_key, AcceptedHour(0, first, last))
    hour.count += count
    hour.first, hour.last = min(hour.first, first), max(hour.last, last)


def _fold_accepted(state: OperatorState) -> None:
    """Keep the newest ``ACCEPTED_DETAIL`` accepted events by id; count the older per hour."""
    if len(state.accepted) <= ACCEPTED_DETAIL:
        return
    newest = heapq.nlargest(
        ACCEPTED_DETAIL, state.accepted.items(), key=lambda kv: (kv[1].occurred_at, kv[0])
    )
    kept = dict(newest)
    # A batch of events folds into a few hours: count per hour first, then add to the state.
    hours: dict[int, tuple[int, int, int]] = {}
    for eid, event in state.accepted.items():
        if eid in kept:
            continue
        at = event.occurred_at
        hour = at // _HOUR_US
        held = hours.get(hour)
        hours[hour] = (
            (1, at, at) if held is None else (held[0] + 1, min(held[1], at), max(held[2], at))
        )
    for hour, (count, first, last) in hours.items():
        _accept_hour(state, str(hour), count, first, last)
    state.accepted = kept


def _take_in(
    state: OperatorState, messages: list[Message], now: int
) -> tuple[CertificationTimeline, bool]:
    """Record certifications, then sort every checked event into accepted (a certification
    covers it) or waiting. Also says whether a certification fact was new."""
    new_facts = False
    for message in messages:
        if isinstance(message, Certification) and keep(state.certifications, message):
            new_facts = True
    index = CertificationTimeline(state.certifications.values())
    for message in messages:
        if not isinstance(message, CertificationCheck):
            continue
        for event in message.events:
            eid = event.event_id
            if eid in state.accepted or eid in state.pending or eid in state.flagged:
                continue
            if index.covers(event.occurred_at):
                state.accepted[eid] = AcceptedEvent(
                    event.occurred_at, event.event_type, event.subject
                )
            else:
                _wait(state, event, now)
    return index, new_facts


def _judge_again(state: OperatorState, index: CertificationTimeline, now: int) -> None:
    """After new certification facts: accepted events they leave uncovered (a revocation
    effective before they occurred) wait again, as they would have had it arrived first."""
    for eid in sorted(state.accepted):
        a = state.accepted[eid]
        if not index.covers(a.occurred_at):
            del state.accepted[eid]
            _wait(state, CheckedEvent(eid, a.occurred_at, a.event_type, a.subject), now)
    for hour_key in sorted(state.accepted_by_hour):
        hour = state.accepted_by_hour[hour_key]
        if not (index.covers(hour.first) and index.covers(hour.last)):
            del state.accepted_by_hour[hour_key]
            _wait_hour(state, hour_key, hour.count, hour.first, hour.last, now)


def _flag(state: OperatorState, count: int, example: tuple[str, FlaggedEvent] | None) -> None:
    state.flagged_total += count
    if example is None:
        return
    state.flagged[example[0]] = example[1]
    if len(state.flagged) > FLAGGED_DETAIL:
        oldest = min(state.flagged.items(), key=lambda kv: (kv[1].occurred_at, kv[0]))[0]
        del state.flagged[oldest]


def _settle(state: OperatorState, index: CertificationTimeline, now: int, cfg: Config) -> None:
    """Accept waiting events a certificate now covers; flag those that waited out the grace."""
    for eid in sorted(state.pending):
        p = state.pending[eid]
        if index.covers(p.occurred_at):
            del state.pending[eid]
            state.accepted[eid] = AcceptedEvent(p.occurred_at, p.event_type, p.subject)
        elif now - p.seen_at >= cfg.grace_ms:
            del state.pending[eid]
            _flag(state, 1, (eid, FlaggedEvent(p.occurred_at, p.event_type, p.subject)))
    for hour_key in sorted(state.pending_by_hour):
        hour = state.pending_by_hour[hour_key]
        # Covered at both ends of the hour counts as covered (certificates change rarely).
        if index.covers(hour.first) and index.covers(hour.last):
            del state.pending_by_hour[hour_key]
            _accept_hour(state, hour_key, hour.count, hour.first, hour.last)
        elif now - hour.seen_at >= cfg.grace_ms:
            del state.pending_by_hour[hour_key]
            _flag(state, hour.count, None)
    _fold_accepted(state)


def _reason(index: CertificationTimeline, at: int) -> dict[str, Any]:
    """Why no certification covered ``at``: a revocation (which certificate, since when), an
    expiry, or nothing when none was ever issued by then. A revocation is named first: it is
    the news. One that covers it now arrived after the grace period (``certified_late``)."""
    if index.covers(at):
        return {"reason": "certified_late"}
    standing = sorted(index.standing(at), key=lambda c: (c.scheme_region, c.scheme))
    for c in standing:
        if c.action == "revoked":
            return {
                "reason": "revoked",
                "certificate": f"{c.scheme_region}:{c.certificate_id}",
                "revoked_at": iso(c.occurred_at),
            }
    for c in standing:
        if c.valid_until is not None and c.valid_until < at:
            return {
                "reason": "expired",
                "certificate": f"{c.scheme_region}:{c.certificate_id}",
                "expired_at": iso(c.valid_until),
            }
    return {}  # never certified by then: nothing to add (the alert's documents predate reasons)


def _uncertified_alert(
    key: str, operator_id: str, state: OperatorState, index: CertificationTimeline
) -> dict[str, Document]:
    if not state.flagged_total:
        return {}
    newest = sorted(state.flagged.items(), key=lambda kv: (kv[1].occurred_at, kv[0]))[-10:]
    revocations = sorted(
        (c.occurred_at, c.scheme_region, c.certificate_id)
        for c in state.certifications.values()
        if c.action == "revoked"
    )
    # Only when there are any: an alert about an operator never certified reads as it always did.
    revoked = {
        "revocations": [
            {"certificate": f"{region}:{cert}", "revoked_at": iso(at)}
            for at, region, cert in revocations
        ]
    }
    return {
        f"uncertified/{key}": alert(
            "uncertified_operator",
            key,
            f"{state.flagged_total} event(s) from operator {operator_id}, which held no valid "
            "certification in either region when they occurred",
            **(revoked if revocations else {}),
            events=state.flagged_total,
            latest=[
                {
                    "event_id": e,
                    "event_type": f.event_type,
                    "subject": f.subject,
                    "occurred_at": iso(f.occurred_at),
                    **_reason(index, f.occurred_at),
                }
                for e, f in newest
            ],
        )
    }


def operator_view(operator_id: str, state: OperatorState) -> Document:
    certifications = sorted(
        state.certifications.values(), key=lambda c: (c.occurred_at, c.event_id)
    )
    return {
        "operator_id": operator_id,
        "certifications": [
            {
                "event_id": c.event_id,
                "action": c.action,
                "scheme_region": c.scheme_region,
                "scheme": c.scheme,
                "certificate_id": c.certificate_id,
                "occurred_at": iso(c.occurred_at),
                "valid_until": None if c.valid_until is None else iso(c.valid_until),
            }
            for c in certifications
        ],
    }


def handle_operator(
    key: str, state: OperatorState, messages: list[Message], now: int, cfg: Config, fx: Effects
) -> OperatorState:
    index, new_facts = _take_in(state, messages, now)
    if new_facts:
        _judge_again(state, index, now)
    _settle(state, index, now, cfg)
    operator_id = key.split("/", 1)[1]
    publish_alerts(state, fx, _uncertified_alert(key, operator_id, state, index))
    return state


def publish_operator(key: str, state: OperatorState, cfg: Config, fx: Effects) -> None:
    if state.certifications:
        operator_id = key.split("/", 1)[1]
        publish_if_changed(state, fx, OPERATORS, operator_id, operator_view(operator_id, state))


def operator_certified(document: Document | None, at: int) -> bool:
    """Read side of :func:`certified_at`, over a published operator document."""
    if not document:
        return False
    certs = [
        Certification(
            event_id=c["event_id"],
            event_type="certification",
            occurred_at=micros(datetime.fromisoformat(c["occurred_at"])),
            operator_id="",
            site_id="",
            region="",
            action=c["action"],
            scheme_region=c["scheme_region"],
            scheme=c["scheme"],
            certificate_id=c["certificate_id"],
            valid_until=None
            if c["valid_until"] is None
            else micros(datetime.fromisoformat(c["valid_until"])),
        )
        for c in document["certifications"]
    ]
    return certified_at(certs, at)


def with_certification(passport: Document, manufacturer: Document | None, now: int) -> Document:
    """The passport with whether its manufacturer is certified now (``now`` in µs) and was at
    manufacture, read from the manufacturer's operator document: answered when a passport is
    read, since certifications change after the passport was computed."""
    made = micros(datetime.fromisoformat(passport["manufactured_at"]))
    return {
        **passport,
        "manufacturer_certified": operator_certified(manufacturer, now),
        "manufacturer_certified_at_manufacture": operator_certified(manufacturer, made),
    }

"""Entity states, as kept in the worker's tables and their changelog topics: typed, versioned.

One state class per entity kind, each a tagged ``msgspec.Struct`` whose tag (field ``type``) is
``"<kind>/<version>"`` (``"lot/2"``). Facts are kept as the messages that brought them
(:mod:`.messages`), keyed by event id. Encoding, and reading older versions, is
:mod:`.codec`'s job; what each field means for the entity, :mod:`.entities`'.
The records inside states are out of the cycle collector, as messages are (:mod:`.messages`).
"""

from __future__ import annotations

from typing import Any, TypeAlias

import msgspec

from streams.domain.messages import (
    Absence,
    Certification,
    DisclosureLabels,
    DisclosureShare,
    LotCreated,
    LotDebited,
    Manufactured,
    MetalMass,
    PartOf,
    Profile,
    RecoveryLabels,
    RecoveryShare,
    RecycledContentLabels,
    RecycledContentShare,
    Shipped,
    Shredded,
    Used,
)

#: Format version of the states defined here (version 1: the JSON dictionaries).
STATE_VERSION = 2


class HeldProfile(msgspec.Struct, gc=False, array_like=True):
    """The newest profile received from one sender, and the revision it rests on."""

    revision: int
    profile: Profile


class AlertMemory(msgspec.Struct, gc=False, array_like=True):
    """What was last published for an alert: its digest (``"resolved"`` once resolved)."""

    digest: str
    kind: str
    subject: str


class EntityState(msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="type", dict=True):
    """Base of every state: the digest of the document last published.

    A state held in memory between batches may also carry values derived from its fields (a
    profile, a document's parts), so that the next batch need not derive them again. They are
    instance attributes outside the fields (``dict=True``): never encoded, never compared, and
    gone from a decoded or copied state, which then derives them afresh (:func:`derived`).
    """

    published: str | None = None


class LotState(EntityState, tag="lot/2"):
    created: dict[str, LotCreated] = {}
    debits: dict[str, LotDebited] = {}
    shipments: dict[str, Shipped] = {}
    inputs: dict[str, HeldProfile] = {}  # input lot key -> its newest profile
    profile_revision: int | None = None  # revision of the profile last sent to consumers
    recovery_revision: int | None = None  # revision of the recovery contributions last sent
    alerts: dict[str, AlertMemory] = {}
    waiting_since: int | None = None  # wall ms: referenced but not created since then
    # Added in place to lot/2 (empty by default: an older state has heard of no absence).
    absent: dict[str, Absence] = {}  # input lot key -> its newest absence notice
    absence_revision: int | None = None  # revision of the absence notice last sent


class TallyMembership(msgspec.Struct, gc=False, array_like=True):
    """The tally a battery contributes to, and the revision of its contribution."""

    tally: str
    revision: int


class BatteryState(EntityState, tag="battery/2"):
    manufactured: dict[str, Manufactured] = {}
    uses: dict[str, Used] = {}  # all but health readings
    latest_health: Used | None = None  # only the latest reading by (time, event id)
    shipments: dict[str, Shipped] = {}
    shredded: dict[str, Shredded] = {}
    parents: dict[str, PartOf] = {}
    inputs: dict[str, HeldProfile] = {}  # input lot or component key -> its newest profile
    profile_revision: int | None = None
    tally: TallyMembership | None = None
    alerts: dict[str, AlertMemory] = {}
    waiting_since: int | None = None
    # Added in place to battery/2, as for lots.
    absent: dict[str, Absence] = {}  # input lot or component key -> its newest absence notice
    absence_revision: int | None = None
    # Added in place: the disclosure tally the battery last contributed to.
    disclosure: TallyMembership | None = None


class PendingCheck(msgspec.Struct, gc=False, array_like=True):
    """An event waiting for its operator's certification, since ``seen_at`` (wall ms)."""

    occurred_at: int
    event_type: str
    subject: str
    seen_at: int


class PendingHour(msgspec.Struct, gc=False, array_like=True):
    """Events beyond the detailed ones, counted per hour in which they occurred."""

    count: int
    seen_at: int
    first: int
    last: int


class FlaggedEvent(msgspec.Struct, gc=False, array_like=True):
    occurred_at: int
    event_type: str
    subject: str


class AcceptedEvent(msgspec.Struct, gc=False, array_like=True):
    """An event its operator's certifications covered when last judged: kept so that a
    revocation arriving later can judge it again."""

    occurred_at: int
    event_type: str
    subject: str


class AcceptedHour(msgspec.Struct, gc=False, array_like=True):
    """Accepted events beyond the detailed ones, counted per hour in which they occurred."""

    count: int
    first: int
    last: int


class OperatorState(EntityState, tag="operator/2"):
    certifications: dict[str, Certification] = {}
    pending: dict[str, PendingCheck] = {}
    pending_by_hour: dict[str, PendingHour] = {}  # hours since the epoch -> count
    flagged: dict[str, FlaggedEvent] = {}
    flagged_total: int = 0
    alerts: dict[str, AlertMemory] = {}
    # Added in place to operator/2 (both default to empty: an older state reads as having
    # forgotten what it accepted, which is what it did).
    accepted: dict[str, AcceptedEvent] = {}
    accepted_by_hour: dict[str, AcceptedHour] = {}  # hours since the epoch -> count


class RecoveredMetal(msgspec.Struct, gc=False, array_like=True):
    """Micrograms of a metal that went into recoveries and came out."""

    input: int
    recovered: int


class RecycledContentTally(EntityState, tag="recycled-content/2"):
    labels: RecycledContentLabels | None = None
    totals: dict[str, MetalMass] = {}
    sources: int = 0
    incomplete: int = 0
    regions: dict[str, int] = {}  # region -> contributions resting on its events


class RecoveryTally(EntityState, tag="recovery/2"):
    labels: RecoveryLabels | None = None
    totals: dict[str, RecoveredMetal] = {}
    sources: int = 0
    incomplete: int = 0
    regions: dict[str, int] = {}  # region -> contributions resting on its events


class RecycledContentPart(EntityState, tag="recycled-content-part/2"):
    """One battery's last contribution to a tally, stored beside the tally."""

    revision: int
    share: RecycledContentShare | None = None


class RecoveryPart(EntityState, tag="recovery-part/2"):
    """One recovery's last contribution to a tally, stored beside the tally."""

    revision: int
    share: RecoveryShare | None = None


class DisclosureTally(EntityState, tag="disclosure/2"):
    """Disclosure completeness of one maker's batteries (per the maker's country)."""

    labels: DisclosureLabels | None = None
    sources: int = 0
    met: int = 0
    missing: dict[str, int] = {}  # attribute -> batteries not disclosing it
    rules: dict[str, int] = {}  # rule set version -> batteries judged by it


class DisclosurePart(EntityState, tag="disclosure-part/2"):
    """One battery's last disclosure status, stored beside its tally."""

    revision: int
    share: DisclosureShare | None = None


State: TypeAlias = (
    LotState
    | BatteryState
    | OperatorState
    | RecycledContentTally
    | RecoveryTally
    | RecycledContentPart
    | RecoveryPart
    | DisclosureTally
    | DisclosurePart
)


def derived(state: EntityState) -> Any:
    """What the entity's handler last derived from ``state`` (None: nothing yet, or a state
    decoded or copied since). Only the handler that stored it may read it: the value is kept
    valid by the handler re-deriving it whenever it changes the fields it comes from."""
    return state.__dict__.get("derived")


def remember(state: EntityState, value: Any) -> None:
    state.__dict__["derived"] = value


#: Entity kind (a key's prefix) -> its state class.
STATE_TYPES: dict[str, type[State]] = {
    "lot": LotState,
    "battery": BatteryState,
    "operator": OperatorState,
    "recycled-content": RecycledContentTally,
    "recovery": RecoveryTally,
    "recycled-content-part": RecycledContentPart,
    "recovery-part": RecoveryPart,
    "disclosure": DisclosureTally,
    "disclosure-part": DisclosurePart,
}

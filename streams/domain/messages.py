"""Entity messages: what routing and the entities send to an entity key, typed and versioned.

Every message is a tagged ``msgspec.Struct``; the tag (field ``type``) names the message and its
format version, ``"<name>/<version>"`` (``"lot-created/2"``). A change to a message's fields
gets a new version and a new class; the old class stays decodable and is upgraded on reading,
which is how version 1 (the JSON dictionaries of before, ``{"m": "created", "fact": {...}}``)
is read: see :mod:`streams.domain.legacy`. How messages and states are written to Kafka is
described in :mod:`streams.domain.codec`.

Facts (what one event said about one entity) are the messages routing sends; entities keep
them as they came, keyed by event id, which is what makes applying one twice harmless.
Quantities are exact integers (:mod:`streams.domain.quantities`): grams, parts per million,
micrograms, microseconds since the epoch.

Messages and the records inside them are trees of values that never refer back to themselves,
so they are left out of the cycle collector (``gc=False``): a worker holds hundreds of thousands
of them, and collections scanning them were a quarter of the entity stage's time.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import msgspec

#: Format version of the messages defined here (version 1: the JSON dictionaries).
MESSAGE_VERSION = 2


class Versioned(
    msgspec.Struct, gc=False, frozen=True, kw_only=True, omit_defaults=True, tag_field="type"
):
    """Base of every message: tagged ``"<name>/<version>"`` in the field ``type``."""


class LotPortion(msgspec.Struct, gc=False, frozen=True, array_like=True):
    """Grams of a lot and its composition in parts per million per metal."""

    grams: int
    composition: dict[str, int]


class MetalMass(msgspec.Struct, gc=False, array_like=True):
    """Micrograms of one metal, and how many of them are recycled pre- and post-consumer."""

    total: int
    pre_consumer: int
    post_consumer: int


class MissingUpstream(msgspec.Struct, gc=False, frozen=True, array_like=True):
    """A lot or battery somewhere upstream that this ledger holds no creation of.

    ``hops`` counts the steps from the profiled entity (1: a direct input); ``referenced_by``
    is the id of the lot or battery whose event names it as an input or component;
    ``expected_from`` is the region expected to supply its creation (see
    :mod:`streams.domain.entities.upstream`), None when unknown.
    """

    kind: str  # lot | battery
    id: str
    hops: int
    referenced_by: str
    expected_from: str | None


class Profile(msgspec.Struct, gc=False, kw_only=True):
    """What an entity is made of, as far as its genealogy is known.

    A lot's or battery's mass, its metals, the micrograms of primary origin per
    ``"<country>|<site>"``, whether every input is known, the genealogy's depth, the
    regions whose events it rests on (the entity's creation and everything upstream), and the
    nearest entities upstream this ledger has no creation of (with a count of those beyond the
    bound). A profile written before ``regions`` or ``missing_upstream`` existed reads as
    resting on none and missing none.
    """

    grams: int
    metals: dict[str, MetalMass]
    origins: dict[str, int]
    complete: bool = True
    depth: int = 0
    regions: list[str] = []
    missing_upstream: list[MissingUpstream] = []
    missing_upstream_more: int = 0


class SharedUnder(msgspec.Struct, gc=False, frozen=True, array_like=True):
    """The data-sharing agreement a partner region's event arrived under, and its direction
    (``"jp-to-eu"``: mirrored from the JP cluster to the EU one)."""

    agreement: str
    direction: str


class Fact(Versioned, frozen=True, kw_only=True):
    """What one event said about one entity: the event's envelope, then its own fields."""

    event_id: str
    event_type: str
    occurred_at: int  # microseconds since the epoch
    operator_id: str
    site_id: str
    region: str
    #: Set when the event came from the partner region through the mirror (None: it was
    #: published on this ledger's own cluster).
    shared: SharedUnder | None = None
    #: Field paths of the event (``inputs[].supplier_id``) the partner's policy dropped or
    #: transformed; confidential fields that were never part of a fact are listed too.
    redacted: tuple[str, ...] = ()


class BlackMassClass(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    """A black mass lot's classification as its shredding event declared it (see
    :class:`schemas.events.BlackMassClassification`)."""

    waste_code: str
    hazardous: bool
    basel_entry: str
    hs_code: str
    chemistry_family: str
    meets_gb_t_45203: bool


class LotCreated(Fact, frozen=True, tag="lot-created/2"):
    """A lot came into being: extracted, refined, recovered, or shredded into black mass."""

    kind: str  # extracted | refined | recovered | shredded
    form: str
    material: str
    grams: int
    composition: dict[str, int]
    country: str | None = None  # extracted: where it was mined
    batch_id: str | None = None  # refined: the batch that made it
    inputs: dict[str, int] = {}  # refined, recovered: grams taken from each input lot
    batch_outputs: dict[str, LotPortion] = {}  # refined: every output lot of the batch
    pre_consumer_grams: int = 0  # shredded: batteries that were manufacturing scrap
    post_consumer_grams: int = 0  # shredded: batteries that were used
    #: shredded: the black mass's classification (None: the event declared none). Added with
    #: a default, so facts stored before it read as unclassified.
    classification: BlackMassClass | None = None


class LotDebited(Fact, frozen=True, tag="lot-debited/2"):
    """Grams taken from a lot by the entities in ``consumers`` (their keys)."""

    grams: int
    consumers: list[str]
    recovery_outputs: dict[str, LotPortion] | None = None  # a recovery: the lots it put out


class Shipped(Fact, frozen=True, tag="shipped/2"):
    """A lot or battery moved between sites."""

    grams: int
    from_site_id: str
    from_country: str
    to_site_id: str
    to_country: str
    hs_code: str


class Manufactured(Fact, frozen=True, tag="battery-manufactured/2"):
    """A cell, module or pack was made from lots and components."""

    passport_id: str
    level: str
    category: str
    model: str
    chemistry: str
    grams: int
    capacity_kwh: str
    #: The contract's carbon footprint as JSON, passed through to the passport unchanged.
    carbon_footprint: dict[str, Any] | None = None
    inputs: dict[str, int] = {}  # grams taken from each lot
    components: list[str] = []  # battery ids, sorted
    # Disclosure attributes of manufacture v2 (None: not disclosed). Added in place with
    # defaults: a fact written before them reads as disclosing none, which is what it said.
    manufacture_country: str | None = None
    manufacturer_country: str | None = None
    due_diligence_report: str | None = None
    hazardous_substances: list[str] | None = None
    extinguishing_agent: str | None = None
    #: GS1 GTIN, 14 digits (manufacture v2, added in place like the disclosure attributes):
    #: the passport URL takes the GS1 Digital Link shape when it is known.
    gtin: str | None = None


class Used(Fact, frozen=True, tag="battery-used/2"):
    """Use or collection of a battery: a status, a health reading or a new passport."""

    action: str
    status: str
    state_of_health: str | None = None
    new_passport_id: str | None = None
    predecessor_passport_id: str | None = None


class Shredded(Fact, frozen=True, tag="battery-shredded/2"):
    """A battery went into a black mass lot."""

    black_mass_lot_id: str
    grams: int


class PartOf(Fact, frozen=True, tag="part-of/2"):
    """A battery became a component of another (``parent``: the parent's entity key)."""

    parent: str


class Certification(Fact, frozen=True, tag="certification/2"):
    """An operator was certified, or its certification revoked, under a scheme."""

    action: str
    scheme_region: str
    scheme: str
    certificate_id: str
    valid_until: int | None = None  # microseconds since the epoch


class CheckedEvent(msgspec.Struct, gc=False, frozen=True, array_like=True):
    """An event whose operator must have been certified when it occurred."""

    event_id: str
    occurred_at: int
    event_type: str
    subject: str


class CertificationCheck(Versioned, frozen=True, tag="certification-check/2"):
    """Events of one operator to hold against its certifications."""

    events: list[CheckedEvent]


class ProfileUpdate(Versioned, frozen=True, tag="profile/2"):
    """The sender's profile, resting on ``revision`` facts (see :mod:`.entities`)."""

    source: str
    revision: int
    profile: Profile


class Absence(Versioned, frozen=True, tag="absence/2"):
    """From a lot or battery referenced as an input but not created on this ledger, to those
    made from it: the region its shipments say its creation is expected from. ``revision``
    counts the shipment facts it rests on (it only grows, like a profile's)."""

    source: str
    revision: int
    expected_from: str | None


class RecycledContentLabels(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    manufacturer: str
    plant: str
    model: str
    year: int


class RecycledContentShare(msgspec.Struct, gc=False, kw_only=True):
    """One battery's metals (those with a recycled-content minimum) for its model's tally."""

    labels: RecycledContentLabels
    metals: dict[str, MetalMass]
    complete: bool
    regions: list[str] = []  # the battery's profile's


class RecoveryLabels(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    recycler: str
    plant: str
    year: int


class RecoveryShare(msgspec.Struct, gc=False, kw_only=True):
    """One recovery's metal in and out, micrograms per metal, for its plant's tally."""

    labels: RecoveryLabels
    input: dict[str, int]
    output: dict[str, int]
    regions: list[str] = []  # the black mass lot's profile's, and the recovery's


class RecycledContentContribution(Versioned, frozen=True, tag="recycled-content-contribution/2"):
    """A battery's newest share of a tally; ``share`` None withdraws it."""

    source: str
    revision: int
    share: RecycledContentShare | None


class RecoveryContribution(Versioned, frozen=True, tag="recovery-contribution/2"):
    """A recovery's newest share of a tally; ``share`` None withdraws it."""

    source: str
    revision: int
    share: RecoveryShare | None


class DisclosureLabels(msgspec.Struct, gc=False, frozen=True, kw_only=True):
    """Whose batteries a disclosure tally counts: the maker, and the maker's country."""

    manufacturer: str
    country: str  # ISO 3166 alpha-2, or "unknown"


class DisclosureShare(msgspec.Struct, gc=False, kw_only=True):
    """One battery's disclosure status under a rule set, for its maker's tally."""

    labels: DisclosureLabels
    rules: str  # the rule set's version
    missing: list[str] = []  # attributes it does not disclose


class DisclosureContribution(Versioned, frozen=True, tag="disclosure-contribution/2"):
    """A battery's newest disclosure status for a tally; ``share`` None withdraws it."""

    source: str
    revision: int
    share: DisclosureShare | None


class Tick(Versioned, frozen=True, tag="tick/2"):
    """Time passed: raise alerts whose grace period is over."""


Message: TypeAlias = (
    LotCreated
    | LotDebited
    | Shipped
    | Manufactured
    | Used
    | Shredded
    | PartOf
    | Certification
    | CertificationCheck
    | ProfileUpdate
    | Absence
    | RecycledContentContribution
    | RecoveryContribution
    | DisclosureContribution
    | Tick
)
#: A message and the key of the entity it is for.
Addressed: TypeAlias = tuple[str, Message]

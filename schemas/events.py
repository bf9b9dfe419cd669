"""Pydantic models of the lifecycle events, one per Avro schema in ``schemas/avro``.

Every event carries the common envelope (:class:`Event`) flat at its top, then its own fields.
The models validate what Avro cannot say: non-negative masses, composition shares in [0, 1]
summing to at most 1, ISO 3166 country codes, operator id formats (the publisher's of its
region's kind), time-zone aware timestamps. An event id not given is derived from the content.
Fields holding confidential business data are marked with :func:`confidential`, matching the
``"confidential"`` attribute the schema puts on the same field.

Keys: lot events are keyed by lot id, battery events by battery id (see ``KEY_FIELD``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self
from uuid import UUID, uuid5

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.values import (
    OPERATOR_ID_KIND,
    BatteryId,
    Confidentiality,
    CountryCode,
    CurrencyCode,
    Gtin,
    HsCode,
    LotId,
    MassKg,
    Metal,
    MoneyAmount,
    OperatorId,
    Region,
    Share,
    SiteId,
    Text,
    operator_id_platform,
)


def confidential(kind: Confidentiality, description: str, **kwargs: Any) -> Any:
    """A field holding confidential business data: never shared outside its region."""
    return Field(
        default=None,
        description=description,
        json_schema_extra={"confidential": kind.value},
        **kwargs,
    )


class Contract(BaseModel):
    """Base of every model in the contracts: immutable, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Composition = dict[Metal, Share]


def _composition_sums_to_at_most_one(value: Composition | None) -> Composition | None:
    if value is not None and sum(value.values()) > 1:
        raise ValueError(f"composition shares sum to {sum(value.values())}, more than 1")
    return value


class Money(Contract):
    amount: MoneyAmount
    currency: CurrencyCode


class LotForm(StrEnum):
    """What a lot of material is, from the mine to recovery."""

    ore = "ore"
    concentrate = "concentrate"
    intermediate = "intermediate"
    refined = "refined"
    black_mass = "black_mass"
    recovered = "recovered"


#: Namespace of the event ids derived from content: uuid5(NAMESPACE_URL,
#: "urn:batteryloop:event-id"). Fixed forever: changing it would give every id-less record
#: replayed after the change a new identity, and count it twice.
EVENT_ID_NAMESPACE = UUID("30e12a0f-d1d1-55e8-8035-48dd599358de")
#: Stands in for an event id not given until the content's id replaces it (never published).
_NOT_GIVEN = UUID(int=0)


def _canonical(value: Any) -> Any:
    """The JSON form of a value that JSON has no type for, the same for the same content.

    Decimals lose trailing zeros (200 kg and 200.000 kg are one mass), times become the UTC
    instant (09:00+09:00 and 00:00Z are one time), enums their value. (Called by ``json.dumps``
    for these values only: the rest is encoded in C, which keeps deriving ids cheap.)
    """
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):  # a StrEnum is a str, and encoded without coming here
        return value.value
    raise TypeError(f"no canonical form for {type(value).__name__}")


def content_event_id(event: Event) -> UUID:
    """The event id derived from everything an event says except its id (a UUIDv5 under
    :data:`EVENT_ID_NAMESPACE` over the canonical JSON with sorted keys): the same record read
    twice is the same event, so replaying an id-less file counts nothing twice."""
    text = json.dumps(
        event.model_dump(exclude={"event_id"}),
        default=_canonical,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return uuid5(EVENT_ID_NAMESPACE, text)


def _operator_of_the_region(region: Region, info: ValidationInfo) -> Region:
    """An event's region is the platform it is published under, and its publisher is a
    participant of that platform: a Catena-X BPNL in the EU, a Japanese corporate number in
    JP; an operator outside the alliance (an LEI or a Chinese USCC) publishes into the region
    of the member acting for it. (Operators an event only names, such as a certification's
    subject, a supplier or a consignee, may be of either region.)"""
    operator = info.data.get("operator_id")  # absent when itself invalid: reported there
    platform = None if operator is None else operator_id_platform(operator)
    # An operator outside the alliance (LEI, USCC) has no platform of its own: it publishes
    # through a member acting for it (importer, registered agent), into that member's
    # region, which the gateway's token for it decides.
    if platform is not None and platform != region.value:
        raise PydanticCustomError(
            "operator_region",
            "operator_id {operator} is {kind}, but an event of region {region} is published "
            "by {expected}: an event's region is the platform it is published under",
            {
                "operator": operator,
                "kind": OPERATOR_ID_KIND[platform],
                "region": region.value,
                "expected": OPERATOR_ID_KIND[region.value],
            },
        )
    return region


class Publisher(Contract):
    """Who publishes an event, by the envelope's own rules: the processors check records that
    reach them without the models (``streams/domain/ingest.py``) against this."""

    operator_id: OperatorId
    site_id: SiteId
    region: Region

    @field_validator("region")
    @classmethod
    def _region(cls, region: Region, info: ValidationInfo) -> Region:
        return _operator_of_the_region(region, info)


class Event(Contract):
    """The common envelope: who published what, where, when, in which region.

    ``event_id`` is the dedup key. Given, it is kept; not given, it is derived from the content
    (:func:`content_event_id`) here, so that files, the SDK and the gateway agree.
    """

    event_type: str
    # The description is in the published schemas (doc): changing it would rewrite them.
    event_id: UUID = Field(default=_NOT_GIVEN, description="Unique forever; the dedup key")
    schema_version: int = Field(default=1, ge=1)
    occurred_at: AwareDatetime
    operator_id: OperatorId = Field(description="Publishing company: BPNL or JP corporate number")
    site_id: SiteId = Field(description="Site of the operator: BPNS, openPlantId or site code")
    region: Region

    #: Name of the field whose value is the Kafka record key.
    KEY_FIELD: ClassVar[str]

    @field_validator("region")
    @classmethod
    def _region(cls, region: Region, info: ValidationInfo) -> Region:
        return _operator_of_the_region(region, info)

    @model_validator(mode="after")
    def _derive_event_id(self) -> Self:
        if "event_id" not in self.model_fields_set:
            # frozen model: set once, while it is being validated, before anyone sees it
            object.__setattr__(self, "event_id", content_event_id(self))
            self.model_fields_set.add("event_id")  # an id now, carried wherever the event goes
        return self

    def key(self) -> str:
        return str(getattr(self, self.KEY_FIELD))


class LotOutput(Contract):
    """A lot created by an event, with its mass and what it contains."""

    lot_id: LotId
    form: LotForm
    material: Text = Field(description="Trade name, e.g. 'lithium hydroxide monohydrate'")
    mass_kg: MassKg
    composition: Composition

    _check_composition = field_validator("composition")(_composition_sums_to_at_most_one)


class LotInput(Contract):
    """A quantity taken from an existing lot, and what buying it cost."""

    lot_id: LotId
    mass_kg: MassKg
    supplier_id: OperatorId | None = confidential(
        Confidentiality.supplier_identity, "Company the lot was bought from"
    )
    unit_price: Money | None = confidential(Confidentiality.price, "Price paid per kg")
    contract_volume_kg: MassKg | None = confidential(
        Confidentiality.procurement_amount, "Volume contracted with this supplier"
    )


class ExtractionEvent(Event):
    """A mine produced a lot of ore or concentrate."""

    KEY_FIELD: ClassVar[str] = "lot_id"
    event_type: Literal["extraction"] = "extraction"
    lot_id: LotId
    form: LotForm
    material: Text
    mass_kg: MassKg
    composition: Composition
    country: CountryCode = Field(description="Country of the extraction site")
    offtake_price: Money | None = confidential(Confidentiality.price, "Sale price per kg")

    _check_composition = field_validator("composition")(_composition_sums_to_at_most_one)


class RefiningProcess(StrEnum):
    hydrometallurgical = "hydrometallurgical"
    pyrometallurgical = "pyrometallurgical"
    chemical_conversion = "chemical_conversion"


class RefiningEvent(Event):
    """Lots went into a refinery and refined lots came out (mass balance across both)."""

    KEY_FIELD: ClassVar[str] = "batch_id"
    event_type: Literal["refining"] = "refining"
    batch_id: LotId = Field(description="Refining batch; keys the event")
    process: RefiningProcess
    inputs: list[LotInput] = Field(min_length=1)
    outputs: list[LotOutput] = Field(min_length=1)


class BatteryLevel(StrEnum):
    cell = "cell"
    module = "module"
    pack = "pack"


class BatteryCategory(StrEnum):
    """EU 2023/1542 Art. 2 categories."""

    ev = "ev"
    lmt = "lmt"
    industrial = "industrial"
    sli = "sli"
    portable = "portable"


class CarbonFootprint(Contract):
    """Carbon footprint per declared unit (EU 2023/1542 Art. 7; Ouranos cfp payload)."""

    kg_co2e_per_kwh: Annotated[MassKg, Field(description="Total, kg CO2e per kWh of capacity")]
    raw_material_kg_co2e_per_kwh: MassKg | None = None
    production_kg_co2e_per_kwh: MassKg | None = None


class ManufactureEvent(Event):
    """A cell, module or pack was made from material lots and, above cell level, components."""

    KEY_FIELD: ClassVar[str] = "battery_id"
    event_type: Literal["manufacture"] = "manufacture"
    battery_id: BatteryId
    passport_id: UUID
    level: BatteryLevel
    category: BatteryCategory
    model: Text
    chemistry: Text = Field(description="e.g. NMC811, LFP")
    mass_kg: MassKg
    capacity_kwh: MassKg
    inputs: list[LotInput] = Field(description="Material lots consumed, with the mass of each")
    components: list[BatteryId] = Field(description="Cells or modules assembled into this")
    carbon_footprint: CarbonFootprint | None = None
    # v2: what the battery passport must disclose (EU 2023/1542 Annex XIII) and v1 had no field
    # for; optional, so a passport without one says it is missing (schemas/rules/).
    schema_version: int = Field(default=2, ge=1)
    manufacture_country: CountryCode | None = Field(
        default=None, description="Country of the plant: the place of manufacture"
    )
    manufacturer_country: CountryCode | None = Field(
        default=None, description="Country where the manufacturer is registered"
    )
    due_diligence_report: Text | None = Field(
        default=None, description="Reference (URL) of the supply-chain due-diligence report"
    )
    hazardous_substances: list[Text] | None = Field(
        default=None,
        description="Hazardous substances contained; empty: declared none; null: not declared",
    )
    extinguishing_agent: Text | None = Field(
        default=None, description="Usable extinguishing agent (Annex VI Part A(9))"
    )
    gtin: Gtin | None = Field(
        default=None,
        description="GS1 GTIN of the product, 14 digits: its passport URL takes the GS1 "
        "Digital Link shape /01/<GTIN>/21/<battery id>",
    )


class BatteryStatus(StrEnum):
    """EU 2023/1542 Annex XIII battery status."""

    original = "original"
    repurposed = "repurposed"
    reused = "reused"
    remanufactured = "remanufactured"
    waste = "waste"


class UseAction(StrEnum):
    state_of_health = "state_of_health"
    status_change = "status_change"
    collected = "collected"
    repurposed = "repurposed"


class UseCollectionEvent(Event):
    """A battery in use reported its health, changed status, was collected or repurposed.

    Repurposing and remanufacturing issue a new passport whose predecessor is the old one.
    """

    KEY_FIELD: ClassVar[str] = "battery_id"
    event_type: Literal["use_collection"] = "use_collection"
    battery_id: BatteryId
    action: UseAction
    status: BatteryStatus
    state_of_health: Share | None = None
    new_passport_id: UUID | None = None
    predecessor_passport_id: UUID | None = None


class WasteOrigin(StrEnum):
    """Where waste came from, for the recycled-content split (EU 2023/1542 Art. 8).

    ``pre_consumer``: manufacturing waste (scrap cells, rejects) that never reached a user.
    ``post_consumer``: batteries collected after use.
    """

    pre_consumer = "pre_consumer"
    post_consumer = "post_consumer"


class ShreddedBattery(Contract):
    battery_id: BatteryId
    mass_kg: MassKg
    waste_origin: WasteOrigin = Field(
        default=WasteOrigin.post_consumer,
        description="Manufacturing scrap (pre_consumer) or a battery collected after use",
    )


class ChemistryFamily(StrEnum):
    """Cathode chemistry family of the batteries a black mass came from (``mixed``: a feed of
    several families, which recyclers report as such)."""

    nmc = "nmc"
    nca = "nca"
    lfp = "lfp"
    lco = "lco"
    lmo = "lmo"
    mixed = "mixed"


#: An entry of the EU List of Waste (Commission Decision 2000/532/EC, Annex): three pairs of
#: digits, and an asterisk when the entry is hazardous waste (Directive 2008/98/EC Art. 7(1)).
#: Entries for batteries and black mass: 16 06 01* lead batteries, 19 12 11* other wastes
#: (including mixtures of materials) from mechanical treatment of waste containing hazardous
#: substances (where shredder output was classed before the 2025 amendment). The amendment of
#: the List of Waste adopted by the Commission on 5 March 2025 adds separate entries for
#: lithium-based waste batteries and for black mass, classed hazardous; its entry numbers are
#: not quoted here because the texts consulted did not give them unambiguously, so any code of
#: the List's form is accepted and the publisher's asterisk decides.
LOW_CODE = r"^[0-9]{2} [0-9]{2} [0-9]{2}\*?$"
#: An entry of the Basel Convention's Annexes: Annex VIII (A: presumed hazardous, e.g. A1170
#: unsorted waste batteries), Annex IX (B: presumed not hazardous, e.g. B1090 waste batteries
#: conforming to a specification, excluding lead, cadmium or mercury ones) or Annex II (Y46-Y49;
#: Y49, electrical and electronic waste, was added by the e-waste amendments in force since
#: 1 January 2025, which also replaced A1180 by A1181 and deleted B1110). Whether black mass
#: falls under A1170, A1181 or Y49 was still debated at COP-17 (2025): the publisher says which.
BASEL_ENTRY = r"^(A[0-9]{4}|B[0-9]{4}|Y[0-9]{1,2})$"


class BlackMassClassification(Contract):
    """How a black mass lot is classed for waste and customs law, as its shredder declares it.

    ``hs_code``: the customs code, e.g. 854913 or 854914 (HS 2022 heading 8549, electrical
    and electronic waste and scrap: 8549 13 batteries sorted by chemical type, 8549 14
    unsorted, neither containing lead, cadmium or mercury), 26209995 (the UK's ruling for
    black mass, CN 2620 99 95: other slag, ash and residues containing metals), 38249996 (CN
    3824 99 96, other chemical products, which some EU declarations use for processed black
    mass), or 3824999996 (China's code for black mass meeting GB/T 45203-2024, which imports
    it as a product, not waste). Which heading customs will accept for black mass is not
    settled across jurisdictions; the publisher declares it.
    """

    waste_code: Annotated[str, Field(pattern=LOW_CODE)] = Field(
        description="EU List of Waste entry, asterisk when hazardous (2000/532/EC)"
    )
    hazardous: bool = Field(description="Hazardous waste under the List of Waste (the asterisk)")
    basel_entry: Annotated[str, Field(pattern=BASEL_ENTRY)] = Field(
        description="Basel Convention Annex II, VIII or IX entry"
    )
    hs_code: HsCode
    chemistry_family: ChemistryFamily
    meets_gb_t_45203: bool = Field(
        description="Meets GB/T 45203-2024 (China: recycled black mass as a product)"
    )

    @model_validator(mode="after")
    def _asterisk_is_the_hazardous_mark(self) -> Self:
        if self.waste_code.endswith("*") != self.hazardous:
            raise ValueError(
                f"waste_code {self.waste_code!r} and hazardous={self.hazardous} disagree: in "
                "the List of Waste an asterisk marks a hazardous entry, and only such an entry"
            )
        return self


class ShreddingEvent(Event):
    """End-of-life batteries were shredded into a black mass lot."""

    KEY_FIELD: ClassVar[str] = "black_mass_lot_id"
    event_type: Literal["shredding"] = "shredding"
    # v2: inputs carry waste_origin (defaults to post_consumer when reading v1 data).
    # v3: the black mass's classification (None when reading v1 or v2 data).
    schema_version: int = Field(default=3, ge=1)
    black_mass_lot_id: LotId
    inputs: list[ShreddedBattery] = Field(min_length=1)
    mass_kg: MassKg = Field(description="Mass of the black mass lot")
    composition: Composition
    gate_fee: Money | None = confidential(Confidentiality.price, "Fee charged per kg accepted")
    classification: BlackMassClassification | None = Field(
        default=None, description="Waste, Basel and customs classification of the black mass"
    )

    _check_composition = field_validator("composition")(_composition_sums_to_at_most_one)


class RecoveryEvent(Event):
    """A black mass lot was processed into recovered material lots, one or more per metal."""

    KEY_FIELD: ClassVar[str] = "black_mass_lot_id"
    event_type: Literal["recovery"] = "recovery"
    black_mass_lot_id: LotId
    input_mass_kg: MassKg
    process: RefiningProcess
    outputs: list[LotOutput] = Field(min_length=1)
    offtake_price: Money | None = confidential(Confidentiality.price, "Sale price per kg")


class ShipmentSubject(StrEnum):
    lot = "lot"
    battery = "battery"


class ShipmentEvent(Event):
    """A lot or a battery moved from one site to another, possibly across a border."""

    KEY_FIELD: ClassVar[str] = "subject_id"
    event_type: Literal["shipment"] = "shipment"
    subject: ShipmentSubject
    subject_id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[!-~]+$")]
    mass_kg: MassKg
    from_site_id: SiteId
    from_country: CountryCode
    to_site_id: SiteId
    to_country: CountryCode
    hs_code: HsCode
    consignee_id: OperatorId | None = confidential(
        Confidentiality.supplier_identity, "Company receiving the goods"
    )
    invoice_value: Money | None = confidential(Confidentiality.price, "Invoiced value")


class CertificationAction(StrEnum):
    certified = "certified"
    revoked = "revoked"


class CertificationEvent(Event):
    """An operator was certified, or its certificate revoked, under one region's scheme."""

    KEY_FIELD: ClassVar[str] = "subject_operator_id"
    event_type: Literal["certification"] = "certification"
    subject_operator_id: OperatorId
    action: CertificationAction
    scheme_region: Region
    scheme: Text = Field(description="e.g. 'Catena-X conformity assessment', 'Ouranos'")
    certificate_id: Text
    valid_until: AwareDatetime | None = None


def envelope(
    operator_id: str,
    site_id: str,
    occurred_at: datetime,
    event_id: UUID | None = None,
    region: Region | None = None,
) -> dict[str, Any]:
    """The envelope fields of an event that ``operator_id`` publishes at ``site_id``, to spread
    into a model: ``ExtractionEvent(**envelope(MINER, SITE, when), lot_id=...)``.

    The region is the platform that issues the operator's id (the rule the models check);
    an operator outside the alliance has none, and ``region`` names the one of the member
    acting for it. Without ``event_id``, the model derives the id from the content.
    """
    platform = operator_id_platform(operator_id)
    if region is None:
        if platform is None:
            raise ValueError(
                f"operator {operator_id} is outside the alliance: name the region of the "
                "member publishing for it"
            )
        region = Region(platform)
    fields: dict[str, Any] = {
        "occurred_at": occurred_at,
        "operator_id": operator_id,
        "site_id": site_id,
        "region": region,
    }
    if event_id is not None:
        fields["event_id"] = event_id
    return fields


EVENT_MODELS: dict[str, type[Event]] = {
    model.model_fields["event_type"].default: model
    for model in (
        ExtractionEvent,
        RefiningEvent,
        ManufactureEvent,
        UseCollectionEvent,
        ShreddingEvent,
        RecoveryEvent,
        ShipmentEvent,
        CertificationEvent,
    )
}
EVENT_TYPES = tuple(EVENT_MODELS)

AnyEvent = Annotated[
    ExtractionEvent
    | RefiningEvent
    | ManufactureEvent
    | UseCollectionEvent
    | ShreddingEvent
    | RecoveryEvent
    | ShipmentEvent
    | CertificationEvent,
    Field(discriminator="event_type"),
]
#: Validates any event from JSON or a dict, choosing the model by ``event_type``.
ANY_EVENT: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)


def parse_event_json(data: str | bytes) -> Event:
    return ANY_EVENT.validate_json(data)

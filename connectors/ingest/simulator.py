"""A seeded, deterministic battery supply chain across both regions, for the demo and for trying
batteryloop out.

Each region runs its own closed loop with its own companies (Catena-X participants with BPNs in
the EU, Ouranos participants with corporate numbers in Japan):

* certification of the region's certified companies under its own scheme;
* earlier batteries (made before the simulated period, without traced inputs) collected and
  shredded, post-consumer, with a batch of factory scrap shredded pre-consumer, into black mass;
  one black-mass lot is exported out of the alliance (an outflow), the others are recovered;
  black mass is classified (waste code, Basel entry, HS code, GB/T 45203), and in the EU the
  exported lot is first offered to a buyer outside the OECD (an illegal export attempt);
* mines inside and outside the alliance, some operators not certified (their events are not
  shared with the partner, and the processors alert them), ore shipped in to the refiner;
* refining that mixes mined and recovered material, so new batteries carry recycled content;
* packs made from the refined lots over ``years`` years, shipped to vehicle plants, and their
  state of health reported.

And the loop crosses the border both ways (:class:`_CrossBorder`): earlier packs made in one
region are sold in the other, collected and shredded there; one of their black-mass lots is
recovered there and the recovered nickel, cobalt and lithium lots are shipped back to the maker's
region, the other black-mass lot is shipped back (inside the alliance: no outflow) and recovered
by the maker's region's recycler. The maker's region refines both with virgin material of its
own and builds packs of a model of their own (``<region>-PACK-NMC811-X``) from it, whose recycled
content rests on the partner's recycling. Every event is published by its own operator in its
own region, and every operator in these loops is certified, so the mirror shares all of it.

And makers outside the alliance (:data:`FOREIGN_MAKERS`, :class:`_Imports`: USCCs and LEIs)
import packs into each region through an alliance member there; the passport disclosure rules
hold for them as for everyone: in each region one discloses every attribute, one leaves some
out, and the imports of the latter raise ``non_compliant_import``. The alliance's makers
disclose everything for their new packs (the earlier packs show only what their label did);
the EU maker's new packs carry a GTIN (:func:`pack_gtin`), so their passport URLs take the GS1
Digital Link shape.

Masses are sized so that no lot is overdrawn. Everything comes from one ``random.Random(seed)``:
the same seed and scale give the same events, ids included. A minority of *bad records*
(``bad_share``) is produced as well: bytes that are not Avro, and Avro that breaks the models'
rules. They are never valid events, so they come as raw records for a topic, to be published as
they are and dead-lettered by the processors. The imports come from a generator of their own
(seeded from ``seed``), added last, so that they move nothing else.
"""

from __future__ import annotations

import random
import uuid
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TextIO

from schemas.events import (
    CertificationEvent,
    Event,
    ExtractionEvent,
    ManufactureEvent,
    RecoveryEvent,
    RefiningEvent,
    ShipmentEvent,
    ShreddingEvent,
    UseCollectionEvent,
    envelope,
)
from schemas.serde import Serde
from schemas.topics import event_topic_name
from schemas.values import (
    Region,
    corporate_number_check_digit,
    gtin14,
    gtin_check_digit,
    lei_check_digits,
    uscc_check_character,
)

START = datetime(2031, 1, 1, tzinfo=UTC)


def _corporate(base12: str) -> str:
    return f"{corporate_number_check_digit(base12)}{base12}"


def _lei(base18: str) -> str:
    return f"{base18}{lei_check_digits(base18)}"


def _uscc(base17: str) -> str:
    return f"{base17}{uscc_check_character(base17)}"


@dataclass(frozen=True)
class Company:
    operator_id: str
    site_id: str
    country: str
    certified: bool = True


@dataclass(frozen=True)
class Cast:
    """The companies of one region's loop."""

    region: Region
    scheme: str
    certifier: Company
    mine_in: Company  # inside the alliance
    mine_out: Company  # outside the alliance, not certified
    refiner: Company
    maker: Company
    recycler: Company
    vehicle_plant: Company
    export_to: Company  # where a black-mass lot leaves the alliance to


CASTS = {
    Region.EU: Cast(
        Region.EU,
        "Catena-X conformity assessment",
        Company("BPNL00000000CXCB", "BPNS00000000CXCB", "DE", certified=False),
        Company("BPNL0000000MINFI", "BPNS0000000MINFI", "FI"),
        Company("BPNL0000000MINCL", "BPNS0000000MINCL", "CL", certified=False),
        Company("BPNL0000000REFFI", "BPNS0000000REFFI", "FI"),
        Company("BPNL0000000PCKDE", "BPNS0000000PCKDE", "DE"),
        Company("BPNL0000000RECDE", "BPNS0000000RECDE", "DE"),
        Company("BPNL0000000CARFR", "BPNS0000000CARFR", "FR"),
        Company("BPNL0000000BMXKR", "BPNS0000000BMXKR", "KR", certified=False),
    ),
    Region.JP: Cast(
        Region.JP,
        "Ouranos Ecosystem certification",
        Company(_corporate("000000000101"), "JP-OURANOS-CB", "JP", certified=False),
        Company(_corporate("000000000102"), "JP-NI-MINE-HISHIKARI", "JP"),
        Company(_corporate("000000000103"), "AU-LI-MINE-1", "AU", certified=False),
        Company(_corporate("000000000104"), "JP-REF-NIIHAMA", "JP"),
        Company(_corporate("000000000105"), "JP-CELL-OSAKA", "JP"),
        Company(_corporate("000000000106"), "JP-REC-KYUSHU", "JP"),
        Company(_corporate("000000000107"), "JP-CAR-TOYOTA-CITY", "JP"),
        Company(_corporate("000000000108"), "CN-BM-BUYER-1", "CN", certified=False),
    ),
}

#: Metal per pack (kg of metal, NMC811 ~75 kWh) and the refined product carrying it.
PACK_METALS = {
    "nickel": (Decimal("38"), "nickel sulphate hexahydrate", Decimal("0.22")),
    "cobalt": (Decimal("4.8"), "cobalt sulphate heptahydrate", Decimal("0.21")),
    "lithium": (Decimal("6.5"), "lithium hydroxide monohydrate", Decimal("0.165")),
}
#: What a mine produces, per metal: (form, trade name, metal share).
ORE = {
    "nickel": ("concentrate", "nickel sulphide concentrate", Decimal("0.12")),
    "cobalt": ("concentrate", "cobalt hydroxide", Decimal("0.30")),
    "lithium": ("concentrate", "spodumene concentrate", Decimal("0.027")),
}
#: NMC black mass, per mass (domain facts: Ni 10-25 %, Co 3-10 %, Li 3-5 %, Mn 3-10 %).
BLACK_MASS = {"nickel": Decimal("0.18"), "cobalt": Decimal("0.06"), "lithium": Decimal("0.04")}
#: Hydrometallurgical recovery, per metal (Li loses most: up to 30 % and more).
RECOVERY = {"nickel": (0.93, 0.97), "cobalt": (0.92, 0.96), "lithium": (0.6, 0.85)}
KG = Decimal("0.001")
#: HS codes of what is shipped: black mass (no code of its own yet: 3824.99), ores and
#: concentrates, lithium-ion batteries, and the recovered salts (nickel and cobalt sulphates,
#: lithium hydroxide).
HS_BLACK_MASS, HS_ORE, HS_BATTERY = "382499", "253090", "850760"
HS_RECOVERED = {"nickel": "283324", "cobalt": "283329", "lithium": "282520"}
#: How each region's recyclers class their black mass (schemas.events.BlackMassClassification).
#: 19 12 11*: hazardous waste from the mechanical treatment of waste (the List of Waste entry
#: black mass was declared under before the 2025 amendment gave it one of its own); Basel
#: A1170, the entry EU notifications of black mass commonly use (A1181 and Y49 are argued too);
#: CN 3824 99 96 in the EU; in Japan, China's code for black mass meeting GB/T 45203-2024, which
#: the JP recycler's export lot meets.
BLACK_MASS_CLASSIFICATION = {
    Region.EU: {
        "waste_code": "19 12 11*",
        "hazardous": True,
        "basel_entry": "A1170",
        "hs_code": "38249996",
        "chemistry_family": "nmc",
        "meets_gb_t_45203": False,
    },
    Region.JP: {
        "waste_code": "19 12 11*",
        "hazardous": True,
        "basel_entry": "A1170",
        "hs_code": "3824999996",
        "chemistry_family": "nmc",
        "meets_gb_t_45203": True,
    },
}
#: A buyer outside the OECD that an EU recycler tries to ship hazardous black mass to.
ILLEGAL_BUYER = {
    Region.EU: Company("BPNL0000000BMXIN", "BPNS0000000BMXIN", "IN", certified=False),
}
#: Certified companies hold their certificate since before the earliest earlier pack was made,
#: so every step of a cross-border loop is by a certified operator (and the mirror shares it).
CERTIFIED_SINCE = START - timedelta(days=3100)
#: Hazardous substances a pack declares (Annex VI Part A(8)), per chemistry family.
HAZARDOUS = {
    "NMC": ("lithium hexafluorophosphate", "nickel compounds", "cobalt compounds"),
    "LFP": ("lithium hexafluorophosphate",),
}


def due_diligence_report(tag: str) -> str:
    return f"https://example.com/{tag.lower()}/due-diligence-2031.pdf"


#: The region whose maker gives its new packs a GTIN; the other region's passports keep the
#: ``/passport/<id>`` URL, so the demo shows both shapes.
GTIN_REGION = Region.EU
#: GS1 prefix 952 is reserved for demonstration numbers (GS1 General Specifications 1.4.x):
#: the simulated GTINs are nobody's product.
_DEMO_GTIN_PREFIX = "9520000"


def pack_gtin(model: str) -> str:
    """The GTIN-13 of a pack model, derived from the model's name (not from the random
    stream, so that adding it moved no other simulated value), as the model writes it: 14
    digits."""
    body = f"{_DEMO_GTIN_PREFIX}{zlib.crc32(model.encode()) % 100_000:05d}"
    return gtin14(body + str(gtin_check_digit(body)))


@dataclass(frozen=True)
class ForeignMaker:
    """A pack maker outside the alliance (an LEI or a USCC, no alliance platform's id) whose
    packs are imported into ``into``: certified under that region's scheme, it publishes
    through the alliance member acting for it there. Vertically integrated: it mines and
    refines the lithium of its packs itself (in ``mine_country``), so their genealogy is
    complete. ``undisclosed`` names the manufacture fields it leaves out."""

    company: Company
    tag: str
    into: Region
    chemistry: str
    mine_country: str
    undisclosed: tuple[str, ...] = ()


#: Each region imports from a maker disclosing everything and from one that does not: the
#: incomplete ones' imports raise ``non_compliant_import``.
FOREIGN_MAKERS = (
    ForeignMaker(
        Company(_uscc("91350900MA2XN0001"), "CN-FJ-NINGDE-PACK", "CN"),
        "CN-NINGDE",
        Region.EU,
        "LFP",
        "CN",
    ),
    ForeignMaker(
        Company(_lei("5493004KRBATPACK00"), "KR-CB-OCHANG-PACK", "KR"),
        "KR-OCHANG",
        Region.EU,
        "NMC811",
        "AU",
        undisclosed=("due_diligence_report",),
    ),
    ForeignMaker(
        Company(_uscc("91440300MA5FT0002"), "CN-GD-SHENZHEN-PACK", "CN"),
        "CN-SHENZHEN",
        Region.JP,
        "LFP",
        "CN",
        undisclosed=("due_diligence_report", "hazardous_substances"),
    ),
    ForeignMaker(
        Company(_lei("549300USBATCELL000"), "US-NV-RENO-PACK", "US"),
        "US-RENO",
        Region.JP,
        "NMC811",
        "US",
    ),
)


@dataclass(frozen=True)
class BadRecord:
    region: Region
    topic: str
    key: bytes | None
    value: bytes
    why: str


@dataclass
class Simulation:
    events: list[Event] = field(default_factory=list)
    bad: list[BadRecord] = field(default_factory=list)

    def by_region(self, region: Region) -> list[Event]:
        return [e for e in self.events if e.region == region]


def simulate(
    batteries: int = 100, years: int = 1, seed: int = 2031, bad_share: float = 0.02
) -> Simulation:
    """``batteries`` new packs per region, made over ``years`` years from 2031 on, and the
    cross-border loops (:class:`_CrossBorder`) sized from ``batteries``."""
    if batteries < 1 or years < 1:
        raise ValueError("batteries and years must be at least 1")
    rng = random.Random(seed)
    sim = Simulation()
    loops = {region: _Loop(rng, CASTS[region], batteries, years) for region in Region}
    for region in Region:
        sim.events += loops[region].events()
    for maker, recycler in ((Region.JP, Region.EU), (Region.EU, Region.JP)):
        sim.events += _CrossBorder(loops[maker], loops[recycler], batteries).events()
    sim.events.sort(key=lambda e: e.occurred_at)
    sim.bad = _bad_records(rng, sim.events, bad_share)
    # after the bad records were picked, and from a generator of their own: every other
    # event and bad record stays what it was without them
    imports = _Imports(random.Random(f"foreign-makers-{seed}"), batteries).events()
    sim.events = sorted(sim.events + imports, key=lambda e: e.occurred_at)
    return sim


class _Loop:
    """One region's companies publishing their events: the region's own closed loop, and the
    steps its operators take in a cross-border loop."""

    def __init__(self, rng: random.Random, cast: Cast, batteries: int, years: int) -> None:
        self.rng = rng
        self.cast = cast
        self.batteries = batteries
        self.years = years
        self.tag = cast.region.value
        self.out: list[Event] = []

    def uid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def env(self, who: Company, when: datetime) -> dict[str, Any]:
        return envelope(who.operator_id, who.site_id, when, self.uid())

    def day(self, first: int, last: int) -> datetime:
        return START + timedelta(
            days=self.rng.randint(first, last), minutes=self.rng.randint(0, 1439)
        )

    def money(self, low: float, high: float) -> dict[str, Any]:
        amount = Decimal(str(round(self.rng.uniform(low, high), 2)))
        return {"amount": amount, "currency": "EUR" if self.cast.region is Region.EU else "JPY"}

    def events(self) -> list[Event]:
        c = self.cast
        for who in (c.mine_in, c.refiner, c.maker, c.recycler):
            self.out.append(
                CertificationEvent(
                    **self.env(c.certifier, CERTIFIED_SINCE),
                    subject_operator_id=who.operator_id,
                    action="certified",
                    scheme_region=c.region,
                    scheme=c.scheme,
                    certificate_id=f"{self.tag}-CERT-{who.operator_id[-4:]}",
                )
            )
        recovered = self.end_of_life()
        refined = self.refine(recovered)
        self.manufacture(refined)
        return self.out

    # --- earlier batteries to black mass to recovered lots ------------------------------------

    def earlier_pack(self, battery_id: str, made: datetime) -> Decimal:
        """A pack made before the simulated period, without traced inputs; returns its mass."""
        mass = Decimal(self.rng.randint(380, 460))
        self.out.append(
            ManufactureEvent(
                **self.env(self.cast.maker, made),
                battery_id=battery_id,
                passport_id=self.uid(),
                level="pack",
                category="ev",
                model=f"{self.tag}-PACK-2024",
                chemistry="NMC622",
                mass_kg=mass,
                capacity_kwh=Decimal(self.rng.randint(55, 70)),
                inputs=[],
                components=[],
                # what the label of a pack made before the rules showed; no carbon footprint
                # or due-diligence report (nor traced inputs) then
                **self.maker_disclosure(),
                hazardous_substances=list(HAZARDOUS["NMC"]),
                extinguishing_agent="water",
            )
        )
        return mass

    def maker_disclosure(self) -> dict[str, Any]:
        """Where the region's maker is registered and its plant is."""
        country = self.cast.maker.country
        return {"manufacture_country": country, "manufacturer_country": country}

    def collect(self, battery_id: str) -> None:
        self.out.append(
            UseCollectionEvent(
                **self.env(self.cast.recycler, self.day(0, 40)),
                battery_id=battery_id,
                action="collected",
                status="waste",
            )
        )

    def shred(self, lot_id: str, packs: list[tuple[str, Decimal, str]]) -> Decimal:
        """Shred (battery id, mass, waste origin) into black-mass lot ``lot_id``; its mass."""
        mass = (sum(m for _, m, _ in packs) * Decimal("0.62")).quantize(KG)
        self.out.append(
            ShreddingEvent(
                **self.env(self.cast.recycler, self.day(45, 60)),
                black_mass_lot_id=lot_id,
                inputs=[{"battery_id": b, "mass_kg": m, "waste_origin": o} for b, m, o in packs],
                mass_kg=mass,
                composition=BLACK_MASS,
                gate_fee=self.money(0.5, 1.5),
                classification=BLACK_MASS_CLASSIFICATION[self.cast.region],
            )
        )
        return mass

    def illegal_export_attempt(self, lot_id: str, mass: Decimal) -> None:
        """An attempt to ship a hazardous black-mass lot from the EU to a country outside the
        OECD (prohibited: the processors raise ``illegal_export``); none from Japan.

        A minute after the shredding, with an id derived from its content: it draws nothing
        from the seeded generator, so every other event stays what it was."""
        buyer = ILLEGAL_BUYER.get(self.cast.region)
        if buyer is None:
            return
        shredded = next(
            e for e in self.out if isinstance(e, ShreddingEvent) and e.black_mass_lot_id == lot_id
        )
        sender = self.cast.recycler
        self.out.append(
            ShipmentEvent(
                **envelope(
                    sender.operator_id,
                    sender.site_id,
                    shredded.occurred_at + timedelta(minutes=1),
                ),
                subject="lot",
                subject_id=lot_id,
                mass_kg=mass,
                from_site_id=sender.site_id,
                from_country=sender.country,
                to_site_id=buyer.site_id,
                to_country=buyer.country,
                hs_code=HS_BLACK_MASS,
                consignee_id=buyer.operator_id,
            )
        )

    def recover(
        self, lot_id: str, mass: Decimal, prefix: str, suffix: str
    ) -> dict[str, tuple[str, Decimal]]:
        """Recover a black-mass lot into one lot ``<prefix>-<NI|CO|LI>-<suffix>`` per metal;
        returns metal -> (recovered lot id, its mass)."""
        outputs = []
        recovered = {}
        for metal, (_, material, content) in PACK_METALS.items():
            metal_in = mass * BLACK_MASS[metal]
            got = (metal_in * Decimal(str(self.rng.uniform(*RECOVERY[metal])))).quantize(KG)
            out_id = f"{prefix}-{metal[:2].upper()}-{suffix}"
            out_mass = (got / content).quantize(KG)
            outputs.append(
                {
                    "lot_id": out_id,
                    "form": "recovered",
                    "material": material,
                    "mass_kg": out_mass,
                    "composition": {metal: content},
                }
            )
            recovered[metal] = (out_id, out_mass)
        self.out.append(
            RecoveryEvent(
                **self.env(self.cast.recycler, self.day(65, 80)),
                black_mass_lot_id=lot_id,
                input_mass_kg=mass,
                process="hydrometallurgical",
                outputs=outputs,
                offtake_price=self.money(8, 20),
            )
        )
        return recovered

    def end_of_life(self) -> dict[str, list[tuple[str, Decimal]]]:
        """Shred earlier packs and scrap; export one black-mass lot, recover the rest."""
        tag = self.tag
        old = max(4, self.batteries // 8)
        packs = []
        for i in range(old + 2):
            scrap = i >= old  # two packs rejected at end of line: pre-consumer waste
            battery_id = f"{tag}-{'SCRAP' if scrap else 'OLD'}-PACK-{i:05d}"
            made = START - timedelta(days=self.rng.randint(2000, 3000) if not scrap else 20)
            mass = self.earlier_pack(battery_id, made)
            if not scrap:
                self.collect(battery_id)
            packs.append((battery_id, mass, "pre_consumer" if scrap else "post_consumer"))
        recovered: dict[str, list[tuple[str, Decimal]]] = {m: [] for m in PACK_METALS}
        lots = [packs[i : i + 5] for i in range(0, len(packs), 5)]
        for n, group in enumerate(lots):
            lot_id = f"{tag}-BM-{n:04d}"
            mass = self.shred(lot_id, group)
            if n == 0 and len(lots) > 1:  # sold abroad: leaves the alliance
                c = self.cast
                self.illegal_export_attempt(lot_id, mass)
                self.out.append(self.ship_lot(lot_id, mass, c.export_to, HS_BLACK_MASS))
                continue
            for metal, lot in self.recover(lot_id, mass, f"{tag}-REC", f"{n:04d}").items():
                recovered[metal].append(lot)
        return recovered

    def ship_lot(
        self,
        lot_id: str,
        mass: Decimal,
        receiver: Company,
        hs: str,
        sender: Company | None = None,
        days: tuple[int, int] = (60, 90),
    ) -> ShipmentEvent:
        """The shipment of a whole lot, by ``sender`` (the region's recycler unless named)."""
        sender = sender or self.cast.recycler
        return ShipmentEvent(
            **self.env(sender, self.day(*days)),
            subject="lot",
            subject_id=lot_id,
            mass_kg=mass,
            from_site_id=sender.site_id,
            from_country=sender.country,
            to_site_id=receiver.site_id,
            to_country=receiver.country,
            hs_code=hs,
            consignee_id=receiver.operator_id,
            invoice_value=self.money(10_000, 90_000),
        )

    # --- mines and refining -------------------------------------------------------------------

    def mine(
        self, metal: str, mine: Company, ore_id: str, metal_kg: Decimal, when: datetime
    ) -> dict[str, Any]:
        """Extract ore carrying at least ``metal_kg`` of ``metal`` (1 kg more ore, so a batch
        always takes some), ship it to the refiner if abroad; return the refining input."""
        c = self.cast
        form, ore_name, ore_share = ORE[metal]
        ore_mass = (metal_kg / ore_share).quantize(KG) + 1
        self.out.append(
            ExtractionEvent(
                **self.env(mine, when),
                lot_id=ore_id,
                form=form,
                material=ore_name,
                mass_kg=ore_mass,
                composition={metal: ore_share},
                country=mine.country,
                offtake_price=self.money(1, 30),
            )
        )
        if mine.country != c.refiner.country:
            self.out.append(self.ship_lot(ore_id, ore_mass, c.refiner, HS_ORE, sender=mine))
        return {
            "lot_id": ore_id,
            "mass_kg": ore_mass,
            "supplier_id": mine.operator_id,
            "unit_price": self.money(1, 30),
            "contract_volume_kg": (ore_mass * 4).quantize(KG),
        }

    def refining(
        self,
        metal: str,
        batch_id: str,
        out_id: str,
        inputs: list[dict[str, Any]],
        metal_in: Decimal,
        when: datetime,
    ) -> None:
        """A refining batch of ``inputs`` (holding ``metal_in`` kg of the metal) into one lot of
        the metal's refined product, with 2 % process loss."""
        _, material, content = PACK_METALS[metal]
        self.out.append(
            RefiningEvent(
                **self.env(self.cast.refiner, when),
                batch_id=batch_id,
                process="hydrometallurgical",
                inputs=inputs,
                outputs=[
                    {
                        "lot_id": out_id,
                        "form": "refined",
                        "material": material,
                        "mass_kg": (metal_in * Decimal("0.98") / content).quantize(KG),
                        "composition": {metal: content},
                    }
                ],
            )
        )

    def refine(self, recovered: dict[str, list[tuple[str, Decimal]]]) -> dict[str, list[str]]:
        """One refining batch per metal and year: a part of every recovered lot plus mined ore,
        giving a refined lot sized for that year's packs (2 % process loss)."""
        c, tag = self.cast, self.tag
        refined: dict[str, list[str]] = {}
        per_year = [self.batteries // self.years] * self.years
        per_year[-1] += self.batteries - sum(per_year)
        for metal, (per_pack, _, content) in PACK_METALS.items():
            refined[metal] = []
            for year, packs in enumerate(per_year):
                need = per_pack * packs * Decimal("1.05")  # what the packs take, with headroom
                inputs = []
                metal_in = Decimal(0)
                for lot_id, mass in recovered[metal]:  # each year takes its part of each lot
                    part = (mass / self.years).quantize(KG)
                    if year == self.years - 1:
                        part = mass - part * (self.years - 1)
                    inputs.append({"lot_id": lot_id, "mass_kg": part})
                    metal_in += part * content
                mined_metal = max(Decimal(0), need / Decimal("0.98") - metal_in)
                mine = c.mine_out if metal == "lithium" else c.mine_in
                ore_id = f"{tag}-ORE-{metal[:2].upper()}-{year}"
                mined_at = self.day(year * 365 + 1, year * 365 + 30)
                ore = self.mine(metal, mine, ore_id, mined_metal, mined_at)
                inputs.append(ore)
                metal_in += ore["mass_kg"] * ORE[metal][2]
                out_id = f"{tag}-{metal[:2].upper()}-REFINED-{year}"
                batch_id = f"{tag}-BATCH-{metal[:2].upper()}-{year}"
                when = self.day(year * 365 + 91, year * 365 + 110)
                self.refining(metal, batch_id, out_id, inputs, metal_in, when)
                refined[metal].append(out_id)
        return refined

    # --- new packs ----------------------------------------------------------------------------

    def pack(self, battery_id: str, model: str, lots: dict[str, str], made: datetime) -> None:
        """A new NMC811 pack made from one refined lot per metal."""
        c = self.cast
        capacity = Decimal(self.rng.randint(70, 82))
        inputs = []
        for metal, (per_pack, _, content) in PACK_METALS.items():
            inputs.append(
                {
                    "lot_id": lots[metal],
                    "mass_kg": (per_pack / content).quantize(KG),
                    "supplier_id": c.refiner.operator_id,
                    "unit_price": self.money(5, 40),
                    "contract_volume_kg": Decimal(50_000),
                }
            )
        footprint = Decimal(str(round(self.rng.uniform(55, 85), 1)))
        self.out.append(
            ManufactureEvent(
                **self.env(c.maker, made),
                battery_id=battery_id,
                passport_id=self.uid(),
                level="pack",
                category="ev",
                model=model,
                chemistry="NMC811",
                mass_kg=Decimal(self.rng.randint(420, 480)),
                capacity_kwh=capacity,
                inputs=inputs,
                components=[],
                carbon_footprint={
                    "kg_co2e_per_kwh": footprint,
                    "raw_material_kg_co2e_per_kwh": (footprint * Decimal("0.6")).quantize(KG),
                    "production_kg_co2e_per_kwh": (footprint * Decimal("0.3")).quantize(KG),
                },
                **self.maker_disclosure(),
                due_diligence_report=due_diligence_report(self.tag),
                hazardous_substances=list(HAZARDOUS["NMC"]),
                extinguishing_agent="water",
                gtin=pack_gtin(model) if c.region is GTIN_REGION else None,
            )
        )

    def ship_pack(self, battery_id: str, when: datetime, to: Company) -> None:
        """The maker ships a pack to a vehicle plant (``to``), in its region or abroad."""
        c = self.cast
        self.out.append(
            ShipmentEvent(
                **self.env(c.maker, when),
                subject="battery",
                subject_id=battery_id,
                mass_kg=Decimal(450),
                from_site_id=c.maker.site_id,
                from_country=c.maker.country,
                to_site_id=to.site_id,
                to_country=to.country,
                hs_code=HS_BATTERY,
                consignee_id=to.operator_id,
                invoice_value=self.money(6_000, 9_000),
            )
        )

    def manufacture(self, refined: dict[str, list[str]]) -> None:
        c, tag = self.cast, self.tag
        per_year = self.batteries // self.years
        for i in range(self.batteries):
            year = min(i // max(per_year, 1), self.years - 1)
            made = self.day(year * 365 + 120, year * 365 + 330)
            battery_id = f"{tag}-PACK-{year + 2031}-{i:06d}"
            model = f"{tag}-PACK-NMC811-{'A' if i % 3 else 'B'}"
            self.pack(battery_id, model, {m: lots[year] for m, lots in refined.items()}, made)
            self.ship_pack(battery_id, made + timedelta(days=3), c.vehicle_plant)
            self.out.append(
                UseCollectionEvent(
                    **self.env(c.maker, made + timedelta(days=self.rng.randint(30, 200))),
                    battery_id=battery_id,
                    action="state_of_health",
                    status="original",
                    state_of_health=Decimal(str(round(self.rng.uniform(0.9, 1.0), 3))),
                )
            )


class _CrossBorder:
    """The loop across the border, one way: packs made in ``maker``'s region, sold in
    ``recycler``'s, recycled there, their metals back home in new packs.

    1. ``maker`` made earlier packs (``<M>-EXPORT-PACK-n``) and shipped them to ``recycler``'s
       vehicle plant, where the vehicles were sold;
    2. ``recycler``'s recycler collects them and shreds them into two black-mass lots
       (``<R>-XBM-0000``, ``<R>-XBM-0001``);
    3. it recovers the first (``<R>-XREC-<NI|CO|LI>-<R>0000``) and ships the recovered lots to
       ``maker``'s refiner; it ships the second, as black mass, to ``maker``'s recycler (inside
       the alliance: no outflow), who recovers it (``<M>-XREC-<NI|CO|LI>-<R>0001``);
    4. ``maker``'s refiner refines both recovered lots of each metal with virgin ore from its
       certified mine (``<M>-XBATCH-<NI|CO|LI>`` into ``<M>-<NI|CO|LI>-XREFINED``), and its
       maker builds packs of model ``<M>-PACK-NMC811-X`` (``<M>-XPACK-2031-n``) from them.

    Every event is published by the operator that acts, in its own region, with that region's
    ids and currency; every operator taking part is certified (since before the earlier packs
    were made), so the mirror shares every step.
    """

    def __init__(self, maker: _Loop, recycler: _Loop, batteries: int) -> None:
        self.maker = maker
        self.recycler = recycler
        self.exported = max(2, batteries // 20)
        # Six new packs per pack recycled: recovered metal covers part of each metal, so every
        # batch mixes it with virgin ore (cobalt, recovered best, would otherwise cover it all).
        self.packs = 6 * self.exported

    def events(self) -> list[Event]:
        m, r = self.maker, self.recycler
        first = len(m.out), len(r.out)
        sold = []
        for i in range(self.exported):
            battery_id = f"{m.tag}-EXPORT-PACK-{i:05d}"
            made = START - timedelta(days=m.rng.randint(2000, 3000))
            mass = m.earlier_pack(battery_id, made)
            m.ship_pack(battery_id, made + timedelta(days=3), r.cast.vehicle_plant)
            r.collect(battery_id)
            sold.append((battery_id, mass, "post_consumer"))
        half = (len(sold) + 1) // 2
        here, home = f"{r.tag}-XBM-0000", f"{r.tag}-XBM-0001"
        here_mass, home_mass = r.shred(here, sold[:half]), r.shred(home, sold[half:])
        back = r.recover(here, here_mass, f"{r.tag}-XREC", f"{r.tag}0000")
        for metal, (lot_id, mass) in back.items():
            hs = HS_RECOVERED[metal]
            r.out.append(r.ship_lot(lot_id, mass, m.cast.refiner, hs, days=(81, 90)))
        r.out.append(r.ship_lot(home, home_mass, m.cast.recycler, HS_BLACK_MASS, days=(61, 64)))
        at_home = m.recover(home, home_mass, f"{m.tag}-XREC", f"{r.tag}0001")
        refined = self.refine([back, at_home])
        for i in range(self.packs):
            made = m.day(120, 330)
            m.pack(f"{m.tag}-XPACK-2031-{i:06d}", f"{m.tag}-PACK-NMC811-X", refined, made)
        return m.out[first[0] :] + r.out[first[1] :]

    def refine(self, recovered: list[dict[str, tuple[str, Decimal]]]) -> dict[str, str]:
        """One batch per metal: all of both recovered lots, topped up with virgin ore to what
        the packs take (with headroom); returns metal -> refined lot id."""
        m = self.maker
        refined = {}
        for metal, (per_pack, _, content) in PACK_METALS.items():
            lots = [r[metal] for r in recovered]
            inputs: list[dict[str, Any]] = [{"lot_id": i, "mass_kg": kg} for i, kg in lots]
            metal_in = sum((kg * content for _, kg in lots), Decimal(0))
            need = per_pack * self.packs * Decimal("1.05")
            mined = max(Decimal(0), need / Decimal("0.98") - metal_in)
            code = metal[:2].upper()
            ore = m.mine(metal, m.cast.mine_in, f"{m.tag}-XORE-{code}", mined, m.day(1, 30))
            inputs.append(ore)
            metal_in += ore["mass_kg"] * ORE[metal][2]
            out_id = f"{m.tag}-{code}-XREFINED"
            m.refining(metal, f"{m.tag}-XBATCH-{code}", out_id, inputs, metal_in, m.day(91, 110))
            refined[metal] = out_id
        return refined


class _Imports:
    """The makers outside the alliance (:data:`FOREIGN_MAKERS`): each mines and refines its
    lithium, makes ``max(2, batteries // 10)`` packs and ships them to the vehicle plant of the
    region it publishes into, from its own country (an import into the alliance)."""

    def __init__(self, rng: random.Random, batteries: int) -> None:
        self.rng = rng
        self.packs = max(2, batteries // 10)

    def uid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def day(self, first: int, last: int) -> datetime:
        return START + timedelta(
            days=self.rng.randint(first, last), minutes=self.rng.randint(0, 1439)
        )

    def env(self, f: ForeignMaker, site_id: str, when: datetime) -> dict[str, Any]:
        return envelope(f.company.operator_id, site_id, when, self.uid(), region=f.into)

    def events(self) -> list[Event]:
        out: list[Event] = []
        for f in FOREIGN_MAKERS:
            out += self.maker(f)
        return out

    def maker(self, f: ForeignMaker) -> list[Event]:
        cast, who = CASTS[f.into], f.company
        per_pack, material, content = PACK_METALS["lithium"]
        _, ore_name, ore_share = ORE["lithium"]
        refined_mass = (per_pack * self.packs * Decimal("1.05") / content).quantize(KG)
        ore_mass = (refined_mass * content / Decimal("0.98") / ore_share).quantize(KG) + 1
        ore_id, refined_id = f"{f.tag}-ORE-LI", f"{f.tag}-LI-REFINED"
        out: list[Event] = [
            CertificationEvent(
                **envelope(cast.certifier.operator_id, cast.certifier.site_id, CERTIFIED_SINCE),
                subject_operator_id=who.operator_id,
                action="certified",
                scheme_region=f.into,
                scheme=cast.scheme,
                certificate_id=f"{f.into.value}-CERT-{who.operator_id[-4:]}",
            ),
            ExtractionEvent(
                **self.env(f, f"{f.mine_country}-{f.tag}-MINE", self.day(1, 30)),
                lot_id=ore_id,
                form="concentrate",
                material=ore_name,
                mass_kg=ore_mass,
                composition={"lithium": ore_share},
                country=f.mine_country,
            ),
            RefiningEvent(
                **self.env(f, who.site_id, self.day(91, 110)),
                batch_id=f"{f.tag}-BATCH-LI",
                process="hydrometallurgical",
                inputs=[{"lot_id": ore_id, "mass_kg": ore_mass}],
                outputs=[
                    {
                        "lot_id": refined_id,
                        "form": "refined",
                        "material": material,
                        "mass_kg": refined_mass,
                        "composition": {"lithium": content},
                    }
                ],
            ),
        ]
        for i in range(self.packs):
            battery_id = f"{f.tag}-PACK-2031-{i:06d}"
            made = self.day(120, 330)
            out.append(self.pack(f, battery_id, refined_id, made))
            out.append(
                ShipmentEvent(
                    **self.env(f, who.site_id, made + timedelta(days=30)),
                    subject="battery",
                    subject_id=battery_id,
                    mass_kg=Decimal(450),
                    from_site_id=who.site_id,
                    from_country=who.country,
                    to_site_id=cast.vehicle_plant.site_id,
                    to_country=cast.vehicle_plant.country,
                    hs_code=HS_BATTERY,
                    consignee_id=cast.vehicle_plant.operator_id,
                )
            )
        return out

    def pack(self, f: ForeignMaker, battery_id: str, lot_id: str, made: datetime) -> Event:
        per_pack, _, content = PACK_METALS["lithium"]
        footprint = Decimal(str(round(self.rng.uniform(60, 110), 1)))
        disclosed: dict[str, Any] = {
            "manufacture_country": f.company.country,
            "manufacturer_country": f.company.country,
            "due_diligence_report": due_diligence_report(f.tag),
            "hazardous_substances": list(HAZARDOUS[f.chemistry[:3]]),
            "extinguishing_agent": "water",
        }
        for name in f.undisclosed:
            del disclosed[name]
        return ManufactureEvent(
            **self.env(f, f.company.site_id, made),
            battery_id=battery_id,
            passport_id=self.uid(),
            level="pack",
            category="ev",
            model=f"{f.tag}-PACK-{f.chemistry}",
            chemistry=f.chemistry,
            mass_kg=Decimal(self.rng.randint(400, 480)),
            capacity_kwh=Decimal(self.rng.randint(60, 82)),
            inputs=[{"lot_id": lot_id, "mass_kg": (per_pack / content).quantize(KG)}],
            components=[],
            carbon_footprint={"kg_co2e_per_kwh": footprint},
            **disclosed,
        )


def _bad_records(rng: random.Random, events: list[Event], share: float) -> list[BadRecord]:
    """Records a real platform gets from misconfigured or buggy producers."""
    serde = Serde()
    picks = []
    for region in Region:  # each region's platform gets its share, at least one
        mine = [e for e in events if e.region == region]
        if share > 0 and mine:
            picks += [rng.choice(mine) for _ in range(max(1, round(len(mine) * share)))]
    out = []
    for i, event in enumerate(picks):
        topic = event_topic_name(event.event_type)
        key = event.key().encode()
        if i % 2 == 0:
            value = event.model_dump_json().encode()  # JSON where Avro belongs
            why = "JSON text instead of framed Avro"
        else:
            record = event.model_dump()
            record["occurred_at"] = event.occurred_at
            record["site_id"] = "BPNS-BROKEN"  # starts like a BPNS, is not one
            value = serde.encode_record(event.event_type, record, topic)
            why = "Avro that breaks the model's rules (malformed BPNS)"
        out.append(BadRecord(event.region, topic, key, value, why))
    return out


def jsonl_lines(sim: Simulation) -> Iterator[str]:
    """The events as JSON lines in time order, and for each bad record that was Avro a line a
    file source must reject (bad records that were never Avro have no JSON form to write)."""
    import json

    serde = Serde()
    for event in sim.events:
        yield event.model_dump_json()
    for record in sim.bad:
        if record.value[:2] == b"\xc3\x01":
            _, decoded = serde.decode(record.value)
            yield json.dumps(decoded, default=str)


@dataclass
class Published:
    events: dict[str, int] = field(default_factory=dict)  # region -> events acknowledged
    bad: dict[str, int] = field(default_factory=dict)  # region -> bad records acknowledged


def publish(
    sim: Simulation, configs: Mapping[Region, Mapping[str, str]], err: TextIO | None = None
) -> Published:
    """Publish every event to its own region's cluster, and the bad records as they are.
    Returns once the clusters acknowledged everything (a failure raises DeliveryError)."""
    from connectors.ingest.producer import EventProducer
    from connectors.progress import Progress

    result = Published()
    for region in Region:
        events = sim.by_region(region)
        bad = [b for b in sim.bad if b.region == region]
        progress = Progress(f"publishing to {region.value}", len(events) + len(bad), stream=err)
        with EventProducer(configs[region]) as producer:
            for n, event in enumerate(events, 1):
                producer.publish(event)
                progress.update(n)
            for record in bad:
                producer.publish_raw(record.topic, record.key, record.value)
            producer.flush()
            progress.close(f"{producer.delivered} acknowledged ({len(bad)} bad records)")
        result.events[region.value] = len(events)
        result.bad[region.value] = len(bad)
    return result

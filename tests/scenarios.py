"""Supply chains as lists of events: the hand-worked reference, and random closed loops.

The reference chain's expected numbers are worked out by hand below; the tests (in memory and
through a broker) assert exactly these.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from schemas import values
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

T0 = datetime(2031, 1, 1, tzinfo=UTC)
CERTIFIER = "BPNL00000000CERT"
MINER, REFINER, MAKER, RECYCLER = (
    "BPNL0000000MIN01",
    "BPNL0000000REF01",
    "BPNL0000000PCK01",
    "7120001077358",  # a JP corporate number (valid check digit)
)


def _corporate_number(base12: str) -> str:
    return f"{values.corporate_number_check_digit(base12)}{base12}"


#: Who plays each role of a random loop in each region: operator id (a BPNL in the EU, a
#: Japanese corporate number in Japan) and the site prefix.
ROLES = ("miner", "refiner", "maker", "recycler")
OPERATORS: dict[str, dict[str, tuple[str, str]]] = {
    "EU": {
        "miner": (MINER, "BPNS00000MINE"),
        "refiner": (REFINER, "BPNS0000000REF01"),
        "maker": (MAKER, "BPNS0000000PCK01"),
        "recycler": ("BPNL0000000REC01", "BPNS0000000REC01"),
    },
    "JP": {
        "miner": (_corporate_number("300000000001"), "JP-MINE-"),
        "refiner": (_corporate_number("300000000002"), "JP-REF-PLANT-1"),
        "maker": (_corporate_number("300000000003"), "JP-PCK-PLANT-1"),
        "recycler": (RECYCLER, "JP-REC-PLANT-1"),
    },
}
#: The certifying body and scheme of each region.
SCHEMES = {
    "EU": (CERTIFIER, "BPNS00000000CERT", "Catena-X conformity assessment"),
    "JP": (_corporate_number("300000000009"), "JP-CERT-1", "Ouranos"),
}
#: Where each region's operators ship from (a country of the region).
HOME_COUNTRY = {"EU": "DE", "JP": "JP"}


def uid(n: int) -> UUID:
    return UUID(int=n)


def _env(n: int, day: int, operator: str, site: str) -> dict[str, Any]:
    return envelope(operator, site, T0 + timedelta(days=day), uid(n))


def certification(
    subject: str, at: datetime, certificate_id: str, event_id: UUID | None = None
) -> CertificationEvent:
    """``subject`` certified under the Catena-X scheme by the EU certification body."""
    return CertificationEvent(
        **envelope(CERTIFIER, "BPNS00000000CERT", at, event_id),
        subject_operator_id=subject,
        action="certified",
        scheme_region="EU",
        scheme="Catena-X conformity assessment",
        certificate_id=certificate_id,
    )


def certifications(
    operators: list[str], start: int = 1000, regions: list[str] | None = None
) -> list[Event]:
    """Each operator certified under its region's scheme (``regions``; the EU's by default),
    by that region's certifying body."""
    out: list[Event] = []
    for i, op in enumerate(operators):
        region = regions[i] if regions else "EU"
        certifier, site, scheme = SCHEMES[region]
        out.append(
            CertificationEvent(
                **_env(start + i, 0, certifier, site),
                subject_operator_id=op,
                action="certified",
                scheme_region=region,
                scheme=scheme,
                certificate_id=f"CX-{i}" if region == "EU" else f"OU-{i}",
            )
        )
    return out


def reference() -> list[Event]:
    """A closed loop whose numbers are worked by hand.

    * ORE-NI-1: 200 kg concentrate, nickel 0.085 -> 17 kg Ni, mined in FI.
    * OLD-PACK-1 (an earlier battery, no traced inputs) is collected and shredded, post-consumer,
      into BM-1: 50 kg, nickel 0.08 -> 4 kg Ni, all of it post-consumer recycled.
    * Recovery of BM-1 (50 kg in) -> REC-NI-1: 15 kg, nickel 0.2 -> 3 kg Ni.
      Recovery efficiency for nickel: 3 / 4 = 0.75 (below the 0.90 of 2027).
    * Refining batch REF-1 takes all 200 kg of ORE-NI-1 (17 kg Ni) and all 15 kg of REC-NI-1
      (3 kg Ni, post-consumer) -> NISO4-1: 80 kg, nickel 0.25 -> 20 kg Ni, of which
      20 x 3 / 20 = 3 kg recycled post-consumer: 15 %.
      Origin by mass: 200 of the 215 kg that went in were mined in FI: 80 x 200/215 = 74.4186 kg
      of NISO4-1 traces to FI, share 200/215 = 0.930233; secondary share 0.069767.
    * PACK-1 (model REF-PACK, plant BPNS0000000PCK01, 2031) is made from all 80 kg of NISO4-1:
      nickel 20 kg, recycled 3 kg, all post-consumer: share 0.150000. The 2031 minimum (6 %) is
      met, and the 2036 minimum (15 %) exactly met.
    * PACK-1 is shipped DE -> JP (inside the alliance, no alert), used (state of health 0.91).
    """
    return [
        *certifications([MINER, REFINER, MAKER, RECYCLER]),
        ExtractionEvent(
            **_env(1, 10, MINER, "BPNS0000000MIN02"),
            lot_id="ORE-NI-1",
            form="concentrate",
            material="nickel sulphide concentrate",
            mass_kg=Decimal("200"),
            composition={"nickel": Decimal("0.085")},
            country="FI",
        ),
        ManufactureEvent(
            **_env(2, 11, MAKER, "BPNS0000000PCK01"),
            battery_id="OLD-PACK-1",
            passport_id=uid(9001),
            level="pack",
            category="ev",
            model="OLD-PACK",
            chemistry="NMC622",
            mass_kg=Decimal("60"),
            capacity_kwh=Decimal("10"),
            inputs=[],
            components=[],
        ),
        UseCollectionEvent(
            **_env(3, 12, MAKER, "BPNS0000000PCK01"),
            battery_id="OLD-PACK-1",
            action="collected",
            status="waste",
        ),
        ShreddingEvent(
            **_env(4, 13, RECYCLER, "JP-REC-PLANT-1"),
            black_mass_lot_id="BM-1",
            inputs=[{"battery_id": "OLD-PACK-1", "mass_kg": Decimal("60")}],
            mass_kg=Decimal("50"),
            composition={"nickel": Decimal("0.08")},
        ),
        RecoveryEvent(
            **_env(5, 14, RECYCLER, "JP-REC-PLANT-1"),
            black_mass_lot_id="BM-1",
            input_mass_kg=Decimal("50"),
            process="hydrometallurgical",
            outputs=[
                {
                    "lot_id": "REC-NI-1",
                    "form": "recovered",
                    "material": "nickel sulphate",
                    "mass_kg": Decimal("15"),
                    "composition": {"nickel": Decimal("0.2")},
                }
            ],
        ),
        RefiningEvent(
            **_env(6, 15, REFINER, "BPNS0000000REF01"),
            batch_id="REF-1",
            process="hydrometallurgical",
            inputs=[
                {"lot_id": "ORE-NI-1", "mass_kg": Decimal("200"), "supplier_id": MINER},
                {"lot_id": "REC-NI-1", "mass_kg": Decimal("15"), "supplier_id": RECYCLER},
            ],
            outputs=[
                {
                    "lot_id": "NISO4-1",
                    "form": "refined",
                    "material": "nickel sulphate",
                    "mass_kg": Decimal("80"),
                    "composition": {"nickel": Decimal("0.25")},
                }
            ],
        ),
        ManufactureEvent(
            **_env(7, 16, MAKER, "BPNS0000000PCK01"),
            battery_id="PACK-1",
            passport_id=uid(9002),
            level="pack",
            category="ev",
            model="REF-PACK",
            chemistry="NMC811",
            mass_kg=Decimal("300"),
            capacity_kwh=Decimal("60"),
            inputs=[{"lot_id": "NISO4-1", "mass_kg": Decimal("80")}],
            components=[],
            carbon_footprint={"kg_co2e_per_kwh": Decimal("72.5")},
        ),
        ShipmentEvent(
            **_env(8, 17, MAKER, "BPNS0000000PCK01"),
            subject="battery",
            subject_id="PACK-1",
            mass_kg=Decimal("300"),
            from_site_id="BPNS0000000PCK01",
            from_country="DE",
            to_site_id="JP-CAR-PLANT-1",
            to_country="JP",
            hs_code="850760",
        ),
        UseCollectionEvent(
            **_env(9, 18, MAKER, "BPNS0000000PCK01"),
            battery_id="PACK-1",
            action="state_of_health",
            status="original",
            state_of_health=Decimal("0.91"),
        ),
    ]


#: A GTIN-13 from GS1's check digit calculator example (629104150021, check digit 3).
PACK_GTIN = "6291041500213"


def impossible_extraction() -> dict[str, Any]:
    """The extraction of ORE-NI-1 made impossible, as a record: lot ORE-BAD, a composition
    that sums to 1.2 (the model refuses it, so tests encode it around the model)."""
    return {
        **reference()[4].model_dump(),
        "lot_id": "ORE-BAD",
        "event_id": uid(70),
        "composition": {"nickel": Decimal("0.8"), "cobalt": Decimal("0.4")},
    }


def reference_with_gtin(gtin: str = PACK_GTIN) -> list[Event]:
    """The reference scenario with PACK-1 made under a GTIN, as its maker wrote it (the model
    writes it as 14 digits)."""
    return [
        ManufactureEvent.model_validate({**e.model_dump(), "gtin": gtin})
        if isinstance(e, ManufactureEvent) and e.battery_id == "PACK-1"
        else e
        for e in reference()
    ]


def random_loop(
    rng: random.Random,
    first_id: int = 100_000,
    certify: bool = True,
    split: dict[str, str] | None = None,
) -> list[Event]:
    """A random but consistent closed loop: mines, refining, cells, packs, shredding, recovery,
    and recovered material refined into a second generation of cells. Masses never overdraw.
    ``certify``: begin with certifications of the loop's four operators.
    ``split``: the region ("EU", "JP") of each role (:data:`ROLES`); each event's operator,
    site and ``region`` follow its role's, and the recovered lot is shipped from the
    recycler's region to the refiner's. Without it: an EU miner, refiner and maker and a
    JP recycler, no shipment (the loop the fixtures were captured from).
    """
    ids = iter(range(first_id, first_id + 10_000))
    metals = ["nickel", "cobalt", "lithium", "manganese", "lead"]
    events: list[Event] = []
    where = split or {"miner": "EU", "refiner": "EU", "maker": "EU", "recycler": "JP"}
    who = {role: OPERATORS[where[role]][role] for role in ROLES}
    MINER, REFINER, MAKER, RECYCLER = (who[role][0] for role in ROLES)  # noqa: N806
    if certify:
        operators = [MINER, REFINER, MAKER, RECYCLER]
        schemes = [where[r] for r in ROLES] if split is not None else None
        events += certifications(operators, next(ids), schemes)
        for _ in operators[1:]:  # certifications() numbered them from the first id on
            next(ids)

    def env(operator: str, site: str) -> dict[str, Any]:
        role = next(r for r in ROLES if who[r][0] == operator)
        if split is not None:  # the role's site; the defaults keep the sites named below
            prefix = who[role][1]
            site = f"{prefix}{site[-3:]}" if role == "miner" else prefix
        return _env(next(ids), rng.randrange(365), operator, site)

    def composition() -> dict[str, Decimal]:
        chosen = rng.sample(metals, rng.randint(1, 3))
        return {m: Decimal(rng.randint(1, 300)) / 1000 for m in chosen}

    lots: dict[str, Decimal] = {}  # lot id -> mass still available
    for i in range(rng.randint(2, 4)):
        lot = f"ORE-{first_id}-{i}"
        mass = Decimal(rng.randint(100, 5000))
        lots[lot] = mass
        events.append(
            ExtractionEvent(
                **env(MINER, f"BPNS00000MINE{i:03d}"),
                lot_id=lot,
                form="concentrate",
                material="concentrate",
                mass_kg=mass,
                composition=composition(),
                country=rng.choice(["FI", "AU", "CL", "SE"]),
            )
        )

    def take(n: int) -> list[dict[str, Any]]:
        chosen = rng.sample(sorted(k for k, v in lots.items() if v > 2), min(n, len(lots)))
        out = []
        for lot in chosen:
            mass = (lots[lot] * Decimal(rng.randint(10, 50)) / 100).quantize(Decimal("0.001"))
            lots[lot] -= mass
            out.append({"lot_id": lot, "mass_kg": mass})
        return out

    def refine(tag: str) -> None:
        inputs = take(rng.randint(1, 3))
        if not inputs:
            return
        outputs = []
        for j in range(rng.randint(1, 2)):
            lot = f"{tag}-{j}"
            mass = Decimal(rng.randint(10, 400))
            lots[lot] = mass
            outputs.append(
                {
                    "lot_id": lot,
                    "form": "refined",
                    "material": "refined salt",
                    "mass_kg": mass,
                    "composition": composition(),
                }
            )
        events.append(
            RefiningEvent(
                **env(REFINER, "BPNS0000000REF01"),
                batch_id=f"B-{tag}",
                process="hydrometallurgical",
                inputs=inputs,
                outputs=outputs,
            )
        )

    for i in range(rng.randint(1, 3)):
        refine(f"REF-{first_id}-{i}")

    def cells(tag: str, n: int) -> list[str]:
        made = []
        for i in range(n):
            battery = f"{tag}-{i}"
            inputs = take(rng.randint(1, 2))
            events.append(
                ManufactureEvent(
                    **env(MAKER, "BPNS0000000PCK01"),
                    battery_id=battery,
                    passport_id=uid(next(ids)),
                    level="cell",
                    category="ev",
                    model=f"CELL-{tag[:3]}",
                    chemistry="NMC811",
                    mass_kg=Decimal("1.2"),
                    capacity_kwh=Decimal("0.3"),
                    inputs=inputs,
                    components=[],
                )
            )
            made.append(battery)
        return made

    generation = cells(f"C1-{first_id}", rng.randint(2, 5))
    pack = f"PACK-{first_id}"
    events.append(
        ManufactureEvent(
            **env(MAKER, "BPNS0000000PCK01"),
            battery_id=pack,
            passport_id=uid(next(ids)),
            level="pack",
            category="ev",
            model="PACK-R",
            chemistry="NMC811",
            mass_kg=Decimal("400"),
            capacity_kwh=Decimal("70"),
            inputs=[],
            components=generation,
        )
    )
    events.append(
        UseCollectionEvent(
            **env(MAKER, "BPNS0000000PCK01"), battery_id=pack, action="collected", status="waste"
        )
    )
    bm = f"BM-{first_id}"
    events.append(
        ShreddingEvent(
            **env(RECYCLER, "JP-REC-PLANT-1"),
            black_mass_lot_id=bm,
            inputs=[
                {"battery_id": pack, "mass_kg": Decimal("400")},
                {
                    "battery_id": generation[0],
                    "mass_kg": Decimal("1.2"),
                    "waste_origin": rng.choice(["pre_consumer", "post_consumer"]),
                },
            ],
            mass_kg=Decimal("160"),
            composition=composition(),
        )
    )
    recovered = f"REC-{first_id}"
    lots[recovered] = Decimal("40")
    events.append(
        RecoveryEvent(
            **env(RECYCLER, "JP-REC-PLANT-1"),
            black_mass_lot_id=bm,
            input_mass_kg=Decimal("160"),
            process="hydrometallurgical",
            outputs=[
                {
                    "lot_id": recovered,
                    "form": "recovered",
                    "material": "recovered salt",
                    "mass_kg": Decimal("40"),
                    "composition": composition(),
                }
            ],
        )
    )
    if split is not None:
        events.append(
            ShipmentEvent(
                **env(RECYCLER, "JP-REC-PLANT-1"),
                subject="lot",
                subject_id=recovered,
                mass_kg=Decimal("40"),
                from_site_id=who["recycler"][1],
                from_country=HOME_COUNTRY[where["recycler"]],
                to_site_id=who["refiner"][1],
                to_country=HOME_COUNTRY[where["refiner"]],
                hs_code="283324",
            )
        )
    refine(f"REF2-{first_id}")
    cells(f"C2-{first_id}", rng.randint(1, 3))
    return events


# --- across the border ---------------------------------------------------------------------------

JP_MINER, JP_REFINER, JP_MAKER = (OPERATORS["JP"][r][0] for r in ("miner", "refiner", "maker"))
EU_RECYCLER = OPERATORS["EU"]["recycler"][0]
#: Document fields that differ between the regions' ledgers by design: whether the ledger
#: holds the document as a replica, and the agreements its partner facts arrived under.
BY_DESIGN = frozenset({"replica", "shared_under"})


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    """A document without the fields that differ between regions by design (:data:`BY_DESIGN`)
    and without every field it marks redacted."""
    hidden = BY_DESIGN | set(document.get("redacted", ()))
    return {k: v for k, v in document.items() if k not in hidden}


def border_loop() -> list[Event]:
    """Nickel across the border and back, worked by hand.

    * JP-OLD-1, a pack made in Japan by a JP maker (no traced inputs), is collected, shipped
      to Germany and shredded there by an EU recycler, post-consumer, into BM-X-1: 50 kg,
      nickel 0.08 -> 4 kg Ni, all of it recycled post-consumer.
    * The EU recycler recovers REC-NI-X-1 from all of BM-X-1: 15 kg, nickel 0.2 -> 3 kg Ni
      (nickel recovery 3 / 4 = 0.75), and ships it to Japan.
    * A JP refiner blends it with ORE-NI-X-1, virgin concentrate mined in AU by a JP miner:
      200 kg, nickel 0.085 -> 17 kg Ni. Out comes NISO4-X-1: 80 kg, nickel 0.25 -> 20 kg Ni, of
      which 20 x 3 / 20 = 3 kg is recycled post-consumer: 15 %.
    * The JP maker builds JP-NEW-1 and JP-NEW-2 from 40 kg of NISO4-X-1 each: 10 kg Ni each,
      1.5 kg recycled, share 0.150000; the model's 2031 tally: 20 kg Ni, 3 kg recycled.
    """
    regions = ["JP", "JP", "JP", "EU"]
    return [
        *certifications([JP_MINER, JP_REFINER, JP_MAKER, EU_RECYCLER], 3000, regions),
        ManufactureEvent(
            **_env(3101, 5, JP_MAKER, "JP-PCK-PLANT-1"),
            battery_id="JP-OLD-1",
            passport_id=uid(9101),
            level="pack",
            category="ev",
            model="JP-OLD",
            chemistry="NMC622",
            mass_kg=Decimal("60"),
            capacity_kwh=Decimal("10"),
            inputs=[],
            components=[],
        ),
        UseCollectionEvent(
            **_env(3102, 6, JP_MAKER, "JP-PCK-PLANT-1"),
            battery_id="JP-OLD-1",
            action="collected",
            status="waste",
        ),
        ShipmentEvent(
            **_env(3103, 7, JP_MAKER, "JP-PCK-PLANT-1"),
            subject="battery",
            subject_id="JP-OLD-1",
            mass_kg=Decimal("60"),
            from_site_id="JP-PCK-PLANT-1",
            from_country="JP",
            to_site_id="BPNS0000000REC01",
            to_country="DE",
            hs_code="854810",
        ),
        ShreddingEvent(
            **_env(3104, 8, EU_RECYCLER, "BPNS0000000REC01"),
            black_mass_lot_id="BM-X-1",
            inputs=[{"battery_id": "JP-OLD-1", "mass_kg": Decimal("60")}],
            mass_kg=Decimal("50"),
            composition={"nickel": Decimal("0.08")},
            gate_fee={"amount": Decimal("0.4"), "currency": "EUR"},
        ),
        RecoveryEvent(
            **_env(3105, 9, EU_RECYCLER, "BPNS0000000REC01"),
            black_mass_lot_id="BM-X-1",
            input_mass_kg=Decimal("50"),
            process="hydrometallurgical",
            outputs=[
                {
                    "lot_id": "REC-NI-X-1",
                    "form": "recovered",
                    "material": "nickel sulphate",
                    "mass_kg": Decimal("15"),
                    "composition": {"nickel": Decimal("0.2")},
                }
            ],
        ),
        ShipmentEvent(
            **_env(3106, 10, EU_RECYCLER, "BPNS0000000REC01"),
            subject="lot",
            subject_id="REC-NI-X-1",
            mass_kg=Decimal("15"),
            from_site_id="BPNS0000000REC01",
            from_country="DE",
            to_site_id="JP-REF-PLANT-1",
            to_country="JP",
            hs_code="283324",
            consignee_id=JP_REFINER,
        ),
        ExtractionEvent(
            **_env(3107, 10, JP_MINER, "JP-MINE-001"),
            lot_id="ORE-NI-X-1",
            form="concentrate",
            material="nickel sulphide concentrate",
            mass_kg=Decimal("200"),
            composition={"nickel": Decimal("0.085")},
            country="AU",
        ),
        RefiningEvent(
            **_env(3108, 12, JP_REFINER, "JP-REF-PLANT-1"),
            batch_id="REF-X-1",
            process="hydrometallurgical",
            inputs=[
                {"lot_id": "ORE-NI-X-1", "mass_kg": Decimal("200"), "supplier_id": JP_MINER},
                {"lot_id": "REC-NI-X-1", "mass_kg": Decimal("15"), "supplier_id": EU_RECYCLER},
            ],
            outputs=[
                {
                    "lot_id": "NISO4-X-1",
                    "form": "refined",
                    "material": "nickel sulphate",
                    "mass_kg": Decimal("80"),
                    "composition": {"nickel": Decimal("0.25")},
                }
            ],
        ),
        *[
            ManufactureEvent(
                **_env(3108 + n, 13 + n, JP_MAKER, "JP-PCK-PLANT-1"),
                battery_id=f"JP-NEW-{n}",
                passport_id=uid(9101 + n),
                level="pack",
                category="ev",
                model="JP-NEW",
                chemistry="NMC811",
                mass_kg=Decimal("300"),
                capacity_kwh=Decimal("60"),
                inputs=[{"lot_id": "NISO4-X-1", "mass_kg": Decimal("40")}],
                components=[],
            )
            for n in (1, 2)
        ],
    ]

"""The batteries the benchmarks publish, built in one place on the models' own envelope.

Each benchmark keeps its own shape (a JP cell, an EU pack with confidential purchase data, an
EU pack without inputs) so that its numbers stay comparable with earlier runs.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from schemas.events import ManufactureEvent, envelope

T0 = datetime(2031, 4, 1, tzinfo=UTC)
REFINER = "BPNL0000000REF01"


def lot_inputs(refined_kg: str, recovered_kg: str, confidential: bool = False) -> list[Any]:
    """A refined lot bought from a refiner (with price and contract volume if
    ``confidential``) and a recovered lot."""
    refined: dict[str, Any] = {
        "lot_id": "REF-NISO4-0001",
        "mass_kg": refined_kg,
        "supplier_id": REFINER,
    }
    if confidential:
        refined["unit_price"] = {"amount": "18.5", "currency": "EUR"}
        refined["contract_volume_kg"] = "50000"
    return [refined, {"lot_id": "REC-NI-0001", "mass_kg": recovered_kg}]


def batteries(
    n: int,
    operator_id: str,
    site_id: str,
    battery_id: str,
    level: str,
    mass_kg: str,
    capacity_kwh: str,
    inputs: list[Any],
    model: str = "NMC811-P60",
    carbon_footprint: str | None = "62.5",
    at: datetime = T0,
) -> list[ManufactureEvent]:
    """``n`` EV batteries made by ``operator_id``; ``battery_id`` is a format with ``{i}``."""
    return [
        ManufactureEvent(
            **envelope(operator_id, site_id, at),
            battery_id=battery_id.format(i=i),
            passport_id=uuid.uuid4(),
            level=level,
            category="ev",
            model=model,
            chemistry="NMC811",
            mass_kg=Decimal(mass_kg),
            capacity_kwh=Decimal(capacity_kwh),
            inputs=inputs,
            components=[],
            carbon_footprint=(
                None if carbon_footprint is None else {"kg_co2e_per_kwh": carbon_footprint}
            ),
        )
        for i in range(n)
    ]

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.events import ExtractionEvent


@pytest.fixture
def sample_event() -> ExtractionEvent:
    return ExtractionEvent(
        occurred_at=datetime(2031, 2, 1, 6, tzinfo=UTC),
        operator_id="BPNL0000000MIN01",
        site_id="BPNS0000000MIN01",
        region="EU",
        lot_id="MINE-AU-0001",
        form="concentrate",
        material="spodumene concentrate",
        mass_kg="20000.125",
        composition={"lithium": "0.027"},
        country="AU",
        offtake_price={"amount": "1.35", "currency": "USD"},
    )

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.events import ExtractionEvent, envelope


@pytest.fixture
def sample_event() -> ExtractionEvent:
    return ExtractionEvent(
        **envelope("BPNL0000000MIN01", "BPNS0000000MIN01", datetime(2031, 2, 1, 6, tzinfo=UTC)),
        lot_id="MINE-AU-0001",
        form="concentrate",
        material="spodumene concentrate",
        mass_kg="20000.125",
        composition={"lithium": "0.027"},
        country="AU",
        offtake_price={"amount": "1.35", "currency": "USD"},
    )

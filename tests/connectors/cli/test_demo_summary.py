"""The demo's mirror summary: confidential values removed apart from the other redactions."""

from __future__ import annotations

from decimal import Decimal

from connectors.cli.demo import mirror_summary
from connectors.mirror import policy as sharing
from connectors.mirror.agent import Totals

SECRET = b"a-shared-secret-of-the-agreement"
ENVELOPE = {
    "event_type": "shipment",
    "event_id": "00000000-0000-0000-0000-000000000001",
    "schema_version": 1,
    "occurred_at": 0,
    "region": "EU",
}


def test_the_summary_counts_removed_confidential_values_not_every_redaction() -> None:
    data = {
        "agreement": {"source": "EU", "target": "JP"},
        "events": {
            "shipment": {
                "share": True,
                "fields": {
                    **{k: "keep" for k in ENVELOPE},
                    "operator_id": "pseudonymise",
                    "mass_kg": "band",
                    "from_site_id": "country",
                },
            }
        },
    }
    policy = sharing.parse(data, SECRET, "demo.toml")
    records = [
        {  # a consignee and an invoice: two confidential values
            **ENVELOPE,
            "operator_id": "BPNL0000000SHIP1",
            "mass_kg": Decimal("1234.500"),
            "from_site_id": "BPNS0000000SITE1",
            "from_country": "DE",
            "consignee_id": "BPNL00000CONSG01",
            "invoice_value": {"amount": Decimal("10.0000"), "currency": "EUR"},
        },
        {  # neither set: nothing confidential to remove
            **ENVELOPE,
            "operator_id": "BPNL0000000SHIP1",
            "mass_kg": Decimal("10.000"),
            "from_site_id": "BPNS0000000SITE1",
            "from_country": "DE",
            "consignee_id": None,
            "invoice_value": None,
        },
    ]
    totals = Totals(mirrored=len(records))
    for record in records:
        tallied = policy.redact_tallied("shipment", record)
        assert tallied is not None
        totals.redactions.add(tallied[1])
        totals.redacted += tallied[1].total
    assert mirror_summary(totals) == {
        "mirrored": 2,
        "filtered": {},
        "confidential_values_removed": 2,
        "other_redactions": {
            "dropped": 2,  # from_country, not named, in each record
            "pseudonymised": 2,
            "banded": 2,
            "reduced_to_country": 2,
        },
    }
    assert totals.redacted == 10  # what the old count called "confidential field values"


def test_the_legality_section_lists_each_illegal_export_with_its_rule_and_data() -> None:
    import io

    from connectors.cli.demo import _print_legality, legality_summary
    from connectors.ingest.simulator import simulate
    from schemas.values import Region
    from streams.domain.entities.effects import Config
    from streams.domain.local import LocalLedger

    summaries = {}
    for region in Region:
        ledger = LocalLedger(Config(grace_ms=60_000))
        ledger.submit(simulate(20, years=1, bad_share=0).by_region(region))
        ledger.run()
        summaries[region.value] = {"legality": legality_summary(ledger.output("alerts").values())}
    eu, jp = (summaries[r]["legality"]["illegal_exports"] for r in ("EU", "JP"))
    assert [i["subject"] for i in eu] == ["lot/EU-BM-0000"] and jp == []
    assert eu[0]["data"] == ["oecd_members 2021-05-25", "alliance_members 2020-02-01"]
    out = io.StringIO()
    _print_legality(summaries, out.write)
    text = out.getvalue()
    assert "== export legality ==" in text
    assert "EU: 1 illegal export(s)" in text and "JP: 0 illegal export(s)" in text
    assert "rule eu-hazardous-waste-export-to-non-oecd" in text and "to IN" in text

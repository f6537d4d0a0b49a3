"""docs/tables.md is what the definitions say: regenerated, it is unchanged; every published
column has a meaning; every table the contract names is in it."""

import re
from pathlib import Path

import pytest

from billing_assets.definitions import defs
from billing_assets.table_reference import render, undescribed

DOCS = Path(__file__).resolve().parents[1] / "docs"
CONTRACT = Path(__file__).resolve().parents[2] / "shared" / "CONTRACT.md"


def _notes() -> str:
    return (DOCS / "table-notes.md").read_text(encoding="utf-8")


def test_tables_md_is_current():
    assert (DOCS / "tables.md").read_text(encoding="utf-8") == render(defs, _notes()), (
        "docs/tables.md is stale: run `make docs`")


def test_every_published_column_has_a_meaning():
    assert undescribed(defs) == []


def test_every_table_the_contract_names_is_documented():
    # the tables CONTRACT.md names in §6 (outputs), §8 (customers), §9 (operations) and §11 (providers),
    # written out here by hand from the contract
    named = {"usage_events", "quarantined_events", "metered_usage", "rated_charges", "invoice_lines", "invoices",
             "invoice_adjustments", "reconciliation", "usage_statements", "usage_alerts", "usage_anomalies",
             "billing_kpis", "remediation_impact", "sessions", "provider_sync", "refund_requests",
             "provider_reconciliation"}
    documented = set(re.findall(r"^## `(\w+)`$", (DOCS / "tables.md").read_text(encoding="utf-8"), re.MULTILINE))
    assert named <= documented, sorted(named - documented)
    if CONTRACT.exists():  # beside the repository in the team's layout: every §6 table of its own list too
        section = CONTRACT.read_text(encoding="utf-8").split("## 6.")[1].split("## 7.")[0]
        assert set(re.findall(r"`(\w+)`", section.split("These columns")[0])) <= documented


def test_a_column_described_in_the_model_appears_with_its_meaning_type_and_constraints():
    page = (DOCS / "tables.md").read_text(encoding="utf-8")
    assert ("| `quantity` | decimal(38, 9) |  | exact decimal(38, 9); 1 for count meters without one "
            "| >= 0; <= 1000000000000000 |") in page
    assert "| `status` | string |  | draft until the month's grace period ends; issued documents never change " \
           "| one of `draft`, `issued` |" in page


def test_notes_for_a_table_nobody_publishes_fail_loudly():
    with pytest.raises(ValueError, match="usage_event"):
        render(defs, _notes() + "\n## usage_event\n\nA typo of a table's name.\n")

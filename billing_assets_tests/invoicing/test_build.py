"""Invoices built from rated charges, and corrections of issued invoices, worked by hand."""

from datetime import date
from decimal import Decimal

import pyarrow as pa

from billing_assets.invoicing.build import build_invoices, correction
from billing_assets.metering.aggregate import METERED_USAGE_SCHEMA
from billing_assets.rating.rate import rate_month
from billing_assets.reference.loading import load_reference
from billing_assets_tests.conftest import reference_files

PLANS = """\
plans:
  - plan_id: pro
    currency: USD
    base_fee: "49.00"
    minimum_commitment: "100.00"
    charges:
      - {meter: egress_gb, model: per_unit, unit_price: "0.08"}
"""
CONTRACTS = ("contract_id,customer_id,plan_id,start_date,end_date,discount_percent\n"
             "c-acme,acme,pro,2026-01-22,,10\n"
             "c-globex,globex,pro,2025-01-01,,\n")


def invoices_for(egress: dict[str, str]):
    reference = load_reference(reference_files(plans_yaml=PLANS, contracts_csv=CONTRACTS).get)
    rows = [{"day": date(2026, 1, 25), "customer_id": customer, "meter": "egress_gb", "aggregation": "sum",
             "quantity": Decimal(quantity), "event_count": 1, "latest_timestamp": None, "latest_event_id": None,
             "distinct_values": None} for customer, quantity in egress.items()]
    rated = rate_month("2026-01", pa.Table.from_pylist(rows, schema=METERED_USAGE_SCHEMA), reference)
    return {invoice.customer_id: invoice for invoice in build_invoices("2026-01", rated, reference)}


def test_invoices_apply_discount_and_minimum_to_rated_lines():
    invoices = invoices_for({"acme": "123.456", "globex": "2000"})
    acme = invoices["acme"]
    # acme covers 10 of 31 days: egress 123.456 × 0.08 = 9.87648 → 988; base 490/31 → 1581;
    # discount −round(2569 × 10 %) = −257; minimum 100 × 10/31 → 3226, true-up 3226 − 2312 = 914
    assert [(line["line_type"], line["amount_minor"]) for line in acme.lines] == [
        ("usage", 988), ("base_fee", 1581), ("discount", -257), ("minimum_true_up", 914)]
    assert (acme.invoice_number, acme.currency, acme.total_minor) == ("INV-202601-acme", "USD", 3226)
    # globex, whole month, no discount: 2000 × 0.08 = 160.00 + 49.00 = 209.00 ≥ 100.00
    assert invoices["globex"].total_minor == 20900


def test_customers_without_a_contract_in_the_month_get_no_invoice():
    assert sorted(invoices_for({"acme": "1"})) == ["acme", "globex"]  # hooli and initech have none


def test_more_usage_after_issue_gives_an_adjustment_invoice_itemising_the_line():
    issued = invoices_for({"globex": "2000"})["globex"].document()
    later = invoices_for({"globex": "2500"})["globex"]
    document = correction(later, issued, [])
    # 500 GB more × 0.08 = 40.00
    assert document["document_number"] == "ADJ-202601-globex-1" and document["kind"] == "adjustment_invoice"
    assert document["amount_minor"] == 4000
    assert [(line["line_type"], line["meter"], line["billed_minor"], line["owed_minor"]) for line in document["lines"]] == [
        ("usage", "egress_gb", 16000, 20000)]


def test_less_usage_after_issue_gives_a_credit_note_and_numbering_continues():
    issued = invoices_for({"globex": "2000"})["globex"].document()
    first = correction(invoices_for({"globex": "2500"})["globex"], issued, [])
    second = correction(invoices_for({"globex": "1900"})["globex"], issued, [first])
    # billed 160.00 + 40.00; owed 152.00 now: credit 48.00
    assert (second["document_number"], second["kind"], second["amount_minor"]) == ("CN-202601-globex-2", "credit_note", -4800)


def test_nothing_changed_issues_nothing():
    issued = invoices_for({"globex": "2000"})["globex"].document()
    assert correction(invoices_for({"globex": "2000"})["globex"], issued, []) is None


def test_a_minimum_can_absorb_a_change_so_nothing_is_issued():
    # acme is topped up to its minimum either way: 1 GB or 2 GB more changes lines, not the total
    issued = invoices_for({"acme": "1"})["acme"].document()
    assert correction(invoices_for({"acme": "2"})["acme"], issued, []) is None

"""A month's KPIs worked out by hand: two currencies (never added), a credit note, an adjustment
invoice, a refund, quarantined billable lines, duplicates, and lines of no known customer."""

import json
from decimal import Decimal

from billing_assets.analytics.kpis import MonthFigures, billing_kpis
from billing_assets.insights.charges import contract_terms
from billing_assets.reference.loading import load_reference
from billing_assets_tests.conftest import reference_files

MONTH = "2026-01"
REFERENCE = load_reference(reference_files().get)  # acme pro, globex pro 10 % off, initech euro
TERMS = {terms.customer_id: terms for terms in contract_terms(REFERENCE, MONTH).values()}


def _invoice(customer, currency, total):
    return {"invoice_number": f"INV-202601-{customer}", "customer_id": customer, "currency": currency,
            "total_minor": total, "status": "issued"}


def _quarantined(customer, meter, quantity, reason, lines=1):
    return {"customer_id": customer, "meter": meter, "quantity": None if quantity is None else Decimal(quantity),
            "reason": reason, "lines": lines}


FIGURES = MonthFigures(
    invoices=[_invoice("acme", "USD", 10_000), _invoice("globex", "USD", 5_130), _invoice("initech", "EUR", 2_000)],
    adjustments=[
        {"invoice_number": "INV-202601-acme", "currency": "USD", "kind": "credit_note", "amount_minor": -1_000},
        {"invoice_number": "INV-202601-initech", "currency": "EUR", "kind": "adjustment_invoice", "amount_minor": 500}],
    refunds=[{"currency": "USD", "amount_minor": 1_000}],
    quarantined=[
        _quarantined("acme", "egress_gb", "10", "future_timestamp", lines=2),  # 10 GB over two lines
        _quarantined("globex", "egress_gb", "5", "partition_mismatch"),
        _quarantined("globex", "api_requests", None, "partition_mismatch"),  # in the free tier
        _quarantined("initech", "egress_gb", "20", "invalid_timestamp"),
        _quarantined(None, "egress_gb", "1", "unknown_customer"),
        _quarantined(None, None, None, "malformed_json"),
    ],
    accepted={"acme": 97, "globex": 100, "initech": 50}, duplicates={"acme": 3},
    currency_of=dict(zip(REFERENCE.customers["customer_id"], REFERENCE.customers["currency"])),
    terms=TERMS, rated={(TERMS["globex"].contract_id, "egress_gb"): Decimal(100),
                        (TERMS["acme"].contract_id, "egress_gb"): Decimal(200)},
    aggregation=REFERENCE.meter_aggregation())
SLA = {"hits": 30, "misses": 1, "days_to_issue": Decimal("1.25")}


def test_a_month_in_two_currencies_and_no_currency():
    rows = {row["currency"]: row for row in billing_kpis(MONTH, FIGURES, SLA)}
    assert sorted(rows) == ["EUR", "USD", "XXX"]
    usd, eur, none = rows["USD"], rows["EUR"], rows["XXX"]
    # USD: 2 issued, acme's corrected by a credit note: first time right 1/2; credit 10.00 of 151.30
    # billed = 6.6094 %; recovered nothing; refunded 10.00
    assert (usd["invoices_issued"], usd["first_time_right_rate"], usd["adjustment_rate"]) == (
        2, Decimal("0.5000"), Decimal("0.5000"))
    assert (usd["billed_minor"], usd["credit_note_minor"], usd["credit_note_pct_of_billed"]) == (
        15_130, 1_000, Decimal("6.6094"))
    assert (usd["adjustment_invoice_minor"], usd["refunds_minor"]) == (0, 1_000)
    # acme: 10 GB × 0.08 = 0.80. globex (10 % off): 100 → 105 GB moves the subtotal 57.00 → 57.40
    # and the discount −5.70 → −5.74, so 0.36; its one API call is in the 100,000 free: 0
    assert usd["quarantined_lines"] == 4 and usd["quarantined_billable_minor"] == 80 + 36
    assert json.loads(usd["quarantined_by_reason"]) == {
        "future_timestamp": {"lines": 2, "billable_minor": 80}, "partition_mismatch": {"lines": 2, "billable_minor": 36}}
    assert usd["duplicate_rate"] == Decimal("0.0150")  # 3 of 200 lines
    # EUR: 1 issued and corrected; 5.00 recovered; 20 GB × 0.07 = 1.40 not billed; no duplicates
    assert (eur["first_time_right_rate"], eur["adjustment_invoice_minor"], eur["credit_note_pct_of_billed"]) == (
        Decimal("0.0000"), 500, Decimal("0.0000"))
    assert (eur["quarantined_billable_minor"], eur["duplicate_rate"]) == (140, Decimal("0.0000"))
    # lines of no known customer: counted, never priced, never added to a currency
    assert (none["invoices_issued"], none["quarantined_lines"], none["quarantined_billable_minor"]) == (0, 2, None)
    assert none["first_time_right_rate"] is None and none["billed_minor"] == 0
    assert all((row["sla_hits"], row["sla_misses"], row["days_to_issue"]) == (30, 1, Decimal("1.25"))
               for row in rows.values())


def test_onboarding_to_the_first_invoice_no_correction_followed():
    from datetime import date, datetime, timezone

    from billing_assets.analytics.kpis import Onboarding

    def at(text):
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)

    onboardings = [
        # January's invoice was corrected, February's (issued 2 March, 00:00) was not: 10 Jan → 2 Mar = 51 days
        Onboarding("acme", "USD", date(2026, 1, 10), [(at("2026-02-02T06:00:00"), True), (at("2026-03-02T00:00:00"), False)]),
        # right the first time, issued at noon on 2 February: 13.5 days after 20 January
        Onboarding("globex", "USD", date(2026, 1, 20), [(at("2026-02-02T12:00:00"), False)]),
        Onboarding("initech", "EUR", date(2026, 1, 15), [(at("2026-02-02T00:00:00"), True)]),  # still waiting
    ]
    rows = {row["currency"]: row for row in billing_kpis(MONTH, FIGURES, SLA, onboardings)}
    assert (rows["USD"]["contracts_onboarded"], rows["USD"]["onboarding_to_first_right_days"],
            rows["USD"]["onboardings_awaiting_right_invoice"]) == (2, Decimal("32.2500"), 0)  # (51 + 13.5) / 2
    assert (rows["EUR"]["contracts_onboarded"], rows["EUR"]["onboarding_to_first_right_days"],
            rows["EUR"]["onboardings_awaiting_right_invoice"]) == (1, None, 1)
    assert rows["XXX"]["contracts_onboarded"] == 0

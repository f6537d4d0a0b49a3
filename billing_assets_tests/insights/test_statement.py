"""Statements in memory: formula-safe CSV cells, escaped customer strings, and one customer's
statement never holding another's rows, ids or totals (a property test over mixed customers)."""

import csv
import io
import json
from datetime import date, datetime, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from billing_assets.insights.month import MonthFacts, customer_statement
from billing_assets.insights.render import statement_html
from billing_assets.insights.statement import change_vs_previous, lines_csv, standing_lines
from billing_assets.lib.csv_cells import safe_cell
from billing_assets.reference.loading import load_reference
from billing_assets_tests.conftest import reference_files

CUSTOMERS = ("zq1", "zq2", "zq3")  # ids that are no substring of anything else in a statement
CONTRACTS = "contract_id,customer_id,plan_id,start_date,end_date,discount_percent\n" + "".join(
    f"k-{c},{c},pro,2026-01-01,,\n" for c in CUSTOMERS)
NAMES = {"zq1": "<script>alert('zq1')</script>", "zq2": '=HYPERLINK("http://x")', "zq3": "Plain & Co"}


def reference():
    customers = "customer_id,name,currency\n" + "".join(f'{c},"{NAMES[c].replace(chr(34), chr(34) * 2)}",USD\n'
                                                        for c in CUSTOMERS)
    files = reference_files(customers_csv=customers, contracts_csv=CONTRACTS,
                            ip_allocations_csv="cidr,customer_id,valid_from,valid_to\n")
    return load_reference(files.get)


def test_a_cell_that_a_spreadsheet_would_run_is_prefixed_and_a_number_is_not():
    assert [safe_cell(value) for value in ("=SUM(A1:A9)", "+cmd", "-cmd", "@now", "\tx", "\rx", "-", "=1+1")] == [
        "'=SUM(A1:A9)", "'+cmd", "'-cmd", "'@now", "'\tx", "'\rx", "'-", "'=1+1"]
    assert [safe_cell(value) for value in ("-12.90", "+5", "-49/31", "0", "egress_gb", "a=b", None, -377)] == [
        "-12.90", "+5", "-49/31", "0", "egress_gb", "a=b", "", "-377"]


def facts(usage: list[dict], month: str = "2026-01") -> MonthFacts:
    invoices = [{"invoice_number": f"INV-202601-{c}", "customer_id": c, "month": month, "currency": "USD",
                 "total_minor": 0, "status": "draft"} for c in CUSTOMERS]
    lines = {f"INV-202601-{c}": [{"invoice_number": f"INV-202601-{c}", "contract_id": f"k-{c}", "line_type": "usage",
                                  "meter": "egress_gb", "quantity": "1", "amount_exact": "0.08", "amount_minor": 8 + i,
                                  "tiers": None}] for i, c in enumerate(CUSTOMERS)}
    by_customer = {c: [row for row in usage if row["customer_id"] == c] for c in CUSTOMERS}
    return MonthFacts(month, reference(), invoices, lines, {}, {}, by_customer,
                      {row["day"].isoformat(): datetime(2026, 2, 1, tzinfo=timezone.utc) for row in usage})


usage_rows = st.lists(st.builds(
    lambda customer, day, quantity: {"customer_id": customer, "day": date(2026, 1, day), "meter": "egress_gb",
                                     "aggregation": "sum", "quantity": Decimal(quantity), "event_count": 1,
                                     "latest_timestamp": None, "latest_event_id": None, "distinct_values": None},
    st.sampled_from(CUSTOMERS), st.integers(1, 28), st.integers(0, 10**6)), max_size=30,
).map(lambda rows: list({(row["customer_id"], row["day"]): row for row in rows}.values()))


@given(usage_rows)
def test_a_statement_holds_only_its_own_customer(rows):
    month = facts(rows)
    for invoice, customer in zip(month.invoices, CUSTOMERS):
        statement = customer_statement(month, invoice, {})
        text = json.dumps(statement) + statement_html(statement) + lines_csv(statement).decode()
        assert all(other not in text for other in CUSTOMERS if other != customer)
        mine = sorted((row["day"].isoformat(), str(row["quantity"])) for row in rows if row["customer_id"] == customer)
        assert sorted((row["day"], row["quantity"]) for row in statement["usage"]) == mine
        assert statement["total_minor"] == 8 + CUSTOMERS.index(customer)  # its own draft line, no one else's


def test_customer_supplied_strings_are_text_in_html_and_csv():
    month = facts([])
    statements = {invoice["customer_id"]: customer_statement(month, invoice, {}) for invoice in month.invoices}
    html = statement_html(statements["zq1"])
    assert "<script>" not in html and "&lt;script&gt;alert(&#x27;zq1&#x27;)&lt;/script&gt;" in html
    assert "Plain &amp; Co" in statement_html(statements["zq3"])
    # a line cell a spreadsheet would run as a formula (a contract id is billing ops' free text)
    statement = statements["zq2"] | {"lines": [statements["zq2"]["lines"][0] | {"contract_id": "=cmd|'/c calc'!A1"}]}
    rows = list(csv.DictReader(io.StringIO(lines_csv(statement).decode())))
    assert rows[0]["contract_id"] == "'=cmd|'/c calc'!A1" and rows[0]["amount_minor"] == "9"


def test_standing_lines_fold_corrections_into_what_is_billed_per_line():
    line = {"contract_id": "k", "line_type": "usage", "meter": "m", "quantity": "10", "amount_exact": "1",
            "amount_minor": 100, "tiers": None}
    issued = {"currency": "USD", "lines": [line, {"contract_id": "k", "line_type": "minimum_true_up", "meter": None,
                                                  "quantity": None, "amount_exact": "5", "amount_minor": 500}]}
    correction = {"lines": [{"contract_id": "k", "line_type": "usage", "meter": "m", "difference_minor": 700},
                            {"contract_id": "k", "line_type": "minimum_true_up", "meter": None, "difference_minor": -500}]}
    now = [line | {"quantity": "80", "amount_exact": "8", "amount_minor": 800}]
    assert standing_lines(issued, [correction], now) == now  # the true-up corrected away is gone
    # invoicing not yet caught up: what the documents billed stands, marked pending
    behind = standing_lines(issued, [correction], [line | {"amount_minor": 900}])
    assert behind == [line | {"amount_minor": 800, "amount_exact": "8", "pending": True}]


def test_the_change_against_last_month_is_null_without_its_statement_and_zero_for_a_meter_it_lacked():
    # last month billed egress 12.5 GB for 100 minor units and no seats; this month 20 GB for 160
    # and 3 seats for 300 (decision 33)
    previous = {"quantities": {"egress_gb": "12.5"}, "amounts": {"egress_gb": 100}}
    now_quantities, now_amounts = {"egress_gb": "20", "seats": "3"}, {"egress_gb": 160, "seats": 300}
    assert change_vs_previous(previous, now_quantities, now_amounts) == [
        {"meter": "egress_gb", "previous_quantity": "12.5", "previous_amount_minor": 100,
         "quantity": "20", "amount_minor": 160},
        {"meter": "seats", "previous_quantity": "0", "previous_amount_minor": 0, "quantity": "3", "amount_minor": 300}]
    assert [(row["previous_quantity"], row["previous_amount_minor"])
            for row in change_vs_previous(None, now_quantities, now_amounts)] == [(None, None), (None, None)]

"""Tie-outs of one month, stage by stage: accepted events → metered → rated → invoiced → billed.

Each row is one tie-out with what was expected, what was found and the difference, so that a
break names its customer, meter and amount."""

from collections import defaultdict

import pyarrow as pa
import pyarrow.compute as pc

from billing_assets.invoicing.build import Invoice
from billing_assets.rating.period import period_quantity
from billing_assets.rating.rate import covered_days, month_days
from billing_assets.reference.loading import ReferenceData

EVENTS_TIE = "accepted events = metered events"  # per customer × meter
QUANTITY_TIE = "metered period quantity = rated quantity"  # per contract × meter
TOTAL_TIE = "invoice total = sum of its lines"
OWED_TIE = "issued + corrections = owed now"  # per issued invoice
TIE_OUTS = [EVENTS_TIE, QUANTITY_TIE, TOTAL_TIE, OWED_TIE]

RECONCILIATION_SCHEMA = pa.schema([
    ("month", pa.string()), ("tie_out", pa.string()), ("customer_id", pa.string()), ("contract_id", pa.string()),
    ("meter", pa.string()), ("expected", pa.string()), ("actual", pa.string()), ("difference", pa.string()),
    ("ties", pa.bool_()),
])


def _row(month, tie_out, customer, contract, meter, expected, actual) -> dict:
    difference = actual - expected
    return {"month": month, "tie_out": tie_out, "customer_id": customer, "contract_id": contract, "meter": meter,
            "expected": str(expected), "actual": str(actual), "difference": str(difference), "ties": difference == 0}


def reconcile_month(month: str, accepted: pa.Table, metered: pa.Table, rated: pa.Table, invoices: pa.Table,
                    invoice_lines: pa.Table, adjustments: pa.Table, owed: list[Invoice],
                    reference: ReferenceData) -> pa.Table:
    """``accepted``: the month's accepted events counted per customer_id and meter (``events``)."""
    rows = []
    events = defaultdict(int)
    for customer, meter, count in zip(*(accepted.column(name).to_pylist() for name in ("customer_id", "meter", "events"))):
        events[(customer, meter)] += count
    metered_rows = defaultdict(list)
    for row in metered.to_pylist():
        metered_rows[(row["customer_id"], row["meter"])].append(row)
    for key in sorted(set(events) | set(metered_rows)):
        rows.append(_row(month, EVENTS_TIE, key[0], None, key[1], events.get(key, 0),
                         sum(row["event_count"] for row in metered_rows.get(key, []))))
    contracts = {row["contract_id"]: row for row in reference.contracts.to_dict("records")}
    aggregation = reference.meter_aggregation()
    days = month_days(month)
    for row in rated.filter(pc.equal(rated.column("line_type"), "usage")).to_pylist():
        span = set(covered_days(contracts[row["contract_id"]], days)) if row["contract_id"] in contracts else set()
        in_span = [day for day in metered_rows.get((row["customer_id"], row["meter"]), []) if day["day"] in span]
        rows.append(_row(month, QUANTITY_TIE, row["customer_id"], row["contract_id"],
                         row["meter"], period_quantity(aggregation[row["meter"]], in_span), row["quantity"]))
    line_sums = defaultdict(int)
    for line in invoice_lines.select(["invoice_number", "amount_minor"]).to_pylist():
        line_sums[line["invoice_number"]] += line["amount_minor"]
    adjusted = defaultdict(int)
    for document in adjustments.to_pylist():
        adjusted[document["invoice_number"]] += document["amount_minor"]
    owed_now = {invoice.invoice_number: invoice.total_minor for invoice in owed}
    for invoice in invoices.to_pylist():
        number, customer = invoice["invoice_number"], invoice["customer_id"]
        rows.append(_row(month, TOTAL_TIE, customer, None, None,
                         line_sums.get(number, 0), invoice["total_minor"]))
        if invoice["status"] == "issued":
            rows.append(_row(month, OWED_TIE, customer, None, None,
                             owed_now.get(number, 0), invoice["total_minor"] + adjusted.get(number, 0)))
    return pa.Table.from_pylist(rows, schema=RECONCILIATION_SCHEMA)


def breaks(table: pa.Table) -> list[str]:
    return [f"{row['tie_out']}: customer {row['customer_id']}"
            + (f", meter {row['meter']}" if row["meter"] else "") + (f", contract {row['contract_id']}" if row["contract_id"] else "")
            + f": expected {row['expected']}, found {row['actual']} (difference {row['difference']})"
            for row in table.to_pylist() if not row["ties"]]

"""`remediation_impact` of one month (CONTRACT.md §9): did a fix to a billing error work, and what
did it change in money?

"Before" is the month as it was first issued: its issued invoices (write-once documents) and what
became of its lines then (`line_outcomes_at_issue`, written once by invoicing at that moment).
"After" is now: the lines as they stand and every correction since. A remediation's scope is its
customer (or all), its meter (or all) and the usage days from its `start_date`; its re-rating
delta is, exactly, the in-scope lines of the credit notes and adjustment invoices issued since —
what re-rating the changed history made the platform bill or give back. Two remediations with
the same scope in the same month share those corrections; the rows say which documents they are.

One row per remediation × currency of the customers in scope; lines that name no known customer
are on an `XXX` row, counted, never priced (as in `billing_kpis`)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from billing_assets.analytics.kpis import NO_CURRENCY
from billing_assets.invoicing.render import money
from billing_assets.reference.remediations import Remediation

MEASURED, NOT_ISSUED, NO_RECORD = "measured", "month_not_issued", "no_record_at_issue"


@dataclass(frozen=True)
class MonthDocuments:
    """The month's issued invoices and corrections as stored (JSON documents), by customer."""

    issued: Mapping[str, dict]  # customer → INV document
    corrections: Mapping[str, Sequence[dict]]  # customer → CN/ADJ documents, in sequence order


def _in_scope(outcomes: pa.Table, remediation: Remediation, month: str) -> pa.Table:
    first_day = max(remediation.start_date.isoformat(), f"{month}-01")
    mask = pc.greater_equal(outcomes.column("day"), first_day)
    if remediation.customer_id:
        mask = pc.and_(mask, pc.equal(outcomes.column("customer_id"), remediation.customer_id))
    if remediation.meter:
        mask = pc.and_(mask, pc.equal(outcomes.column("meter"), remediation.meter))
    return outcomes.filter(pc.fill_null(mask, False))


def _figures(outcomes: pa.Table | None, currency_of: Mapping[str, str]) -> dict[str, dict]:
    """Per currency: accepted events, duplicate lines, quarantined lines by reason."""
    if outcomes is None:
        return {}
    result: dict[str, dict] = {}
    for row in outcomes.group_by(["customer_id", "outcome", "reason"], use_threads=False).aggregate(
            [("lines", "sum")]).to_pylist():
        currency = currency_of.get(row["customer_id"], NO_CURRENCY)
        figures = result.setdefault(currency, {"accepted": 0, "duplicate": 0, "quarantined": Counter()})
        if row["outcome"] == "quarantined":
            figures["quarantined"][row["reason"]] += row["lines_sum"]
        else:
            figures[row["outcome"]] += row["lines_sum"]
    return result


def _line_in_scope(line: dict, remediation: Remediation) -> bool:
    return remediation.meter is None or (line["line_type"] == "usage" and line["meter"] == remediation.meter)


def _money(documents: MonthDocuments, remediation: Remediation) -> dict[str, dict]:
    """Per currency: invoices issued in scope, those corrected since, billed as issued (in-scope
    lines), the re-rating delta (in-scope lines of every correction; each document's in-scope
    change counted as credited when it lowers what is owed, recovered when it raises it) and the
    corrections' numbers."""
    result: dict[str, dict] = {}
    for customer, invoice in sorted(documents.issued.items()):
        if remediation.customer_id not in (None, customer):
            continue
        figures = result.setdefault(invoice["currency"], _no_money())
        figures["invoices"] += 1
        figures["billed"] += sum(line["amount_minor"] for line in invoice["lines"] if _line_in_scope(line, remediation))
        touched = False
        for document in documents.corrections.get(customer, ()):
            change = sum(line["difference_minor"] for line in document["lines"] if _line_in_scope(line, remediation))
            if change:
                touched = True
                figures["delta"] += change
                figures["credit" if change < 0 else "recovered"] += abs(change)
                figures["documents"].append(document["document_number"])
        figures["corrected"] += touched
    return result


def _sentence(remediation: Remediation, month: str, currency: str, row: dict) -> str:
    scope = ", ".join(part for part in (remediation.customer_id or "every customer", remediation.meter) if part)
    head = f"{remediation.remediation_id} ({scope}, usage from {max(remediation.start_date.isoformat(), month + '-01')})"
    if row["status"] == NOT_ISSUED:
        return f"{head}: {month} is not issued yet; its impact is measured against the invoices once they are."
    parts = []
    if row["quarantined_lines_before"] is None:
        parts.append(f"what became of its lines when {month} was issued was not recorded")
    else:
        released = json.loads(row["released_by_reason"])
        detail = ", ".join(f"{reason} {count:,}" for reason, count in sorted(released.items()))
        parts.append(f"{row['released_lines']:,} lines held back when {month} was issued are released"
                     + (f" ({detail})" if detail else "")
                     + f"; {row['quarantined_lines_after']:,} remain quarantined")
    if currency != NO_CURRENCY:
        corrections = json.loads(row["corrections"])
        parts.append("re-rating changed nothing billed" if not corrections else
                     f"re-rating changed what is owed by {'+' if row['rerating_delta_minor'] > 0 else ''}"
                     f"{money(row['rerating_delta_minor'], currency)} ({', '.join(corrections)})")
    return f"{head}: " + "; ".join(parts) + "."


def _empty() -> dict:
    return {"accepted": 0, "duplicate": 0, "quarantined": Counter()}


def _no_money() -> dict:
    return {"invoices": 0, "corrected": 0, "billed": 0, "delta": 0, "credit": 0, "recovered": 0, "documents": []}


def remediation_rows(month: str, remediations: Sequence[Remediation], before: pa.Table | None, now: pa.Table,
                     documents: MonthDocuments, currency_of: Mapping[str, str]) -> list[dict]:
    """The month's rows. ``before``: `line_outcomes_at_issue` of the month, None when there is none;
    ``now``: the month's line outcomes as they stand."""
    issued = bool(documents.issued)
    status = MEASURED if issued and before is not None else (NO_RECORD if issued else NOT_ISSUED)
    rows = []
    for remediation in remediations:
        if not remediation.applies_to(month):
            continue
        then = _figures(None if status != MEASURED else _in_scope(before, remediation, month), currency_of)
        current = _figures(_in_scope(now, remediation, month), currency_of)
        billed = _money(documents, remediation)
        for currency in sorted(set(then) | set(current) | set(billed)):
            was = then.get(currency, _empty()) if status == MEASURED else None
            cur = current.get(currency, _empty())
            cash = billed.get(currency, _no_money()) if issued and currency != NO_CURRENCY else None

            def known(value, figures=was):
                return None if figures is None else value(figures)

            def paid(name):
                return None if cash is None else cash[name]

            released = known(lambda figures: {reason: count - cur["quarantined"][reason] for reason, count
                                              in figures["quarantined"].items() if count > cur["quarantined"][reason]})
            row = {
                "month": month, "remediation_id": remediation.remediation_id, "currency": currency,
                "description": remediation.description, "customer_id": remediation.customer_id,
                "meter": remediation.meter, "start_date": remediation.start_date, "status": status,
                "accepted_events_before": known(lambda figures: figures["accepted"]),
                "accepted_events_after": cur["accepted"],
                "duplicate_lines_before": known(lambda figures: figures["duplicate"]),
                "duplicate_lines_after": cur["duplicate"],
                "quarantined_lines_before": known(lambda figures: sum(figures["quarantined"].values())),
                "quarantined_lines_after": sum(cur["quarantined"].values()),
                "quarantined_by_reason_before": known(lambda figures: json.dumps(figures["quarantined"], sort_keys=True)),
                "quarantined_by_reason_after": json.dumps(cur["quarantined"], sort_keys=True),
                "released_lines": None if released is None else sum(released.values()),
                "released_by_reason": None if released is None else json.dumps(released, sort_keys=True),
                "invoices_in_scope": paid("invoices"), "invoices_corrected": paid("corrected"),
                "billed_before_minor": paid("billed"),
                "billed_after_minor": None if cash is None else cash["billed"] + cash["delta"],
                "rerating_delta_minor": paid("delta"), "credit_note_minor": paid("credit"),
                "adjustment_invoice_minor": paid("recovered"),
                "corrections": json.dumps([] if cash is None else cash["documents"]),
            }
            row["explanation"] = _sentence(remediation, month, currency, row)
            rows.append(row)
    return rows

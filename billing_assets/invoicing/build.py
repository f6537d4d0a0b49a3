"""A month's invoices from its rated charges, and the corrections of issued ones.

Rated charge rows are the usage and base-fee lines (already priced and rounded once); the
contract's terms (discount, minimum true-up) are applied here. An issued invoice is a
write-once document: when a later run computes something else, the difference is itemised in
a credit note (total down) or an adjustment invoice (total up), never written over the invoice.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

import pyarrow as pa

from billing_assets.invoicing.lines import ContractMonth, InvoiceLine, PlanTerms, invoice_number, terms_lines
from billing_assets.lib.money import exact_text
from billing_assets.reference.loading import ReferenceData

LINE_ORDER = {"usage": 0, "base_fee": 1, "discount": 2, "minimum_true_up": 3}


@dataclass(frozen=True)
class Invoice:
    """A computed invoice: what the customer owes for the month as of this run."""

    invoice_number: str
    customer_id: str
    month: str
    currency: str
    lines: tuple[dict, ...]  # JSON-ready line records, in a stable order

    @property
    def total_minor(self) -> int:
        return sum(line["amount_minor"] for line in self.lines)

    def document(self, kind: str = "invoice") -> dict:
        return {"document_number": self.invoice_number, "kind": kind, "invoice_number": self.invoice_number,
                "customer_id": self.customer_id, "month": self.month, "currency": self.currency,
                "total_minor": self.total_minor, "lines": list(self.lines)}


def _record(line: InvoiceLine | dict) -> dict:
    if isinstance(line, dict):
        return line
    return {"contract_id": line.contract_id, "line_type": line.line_type, "meter": line.meter,
            "quantity": None if line.quantity is None else str(line.quantity),
            "amount_exact": exact_text(line.amount_exact), "amount_minor": line.amount_minor, "tiers": None}


def build_invoices(month: str, rated: pa.Table, reference: ReferenceData) -> list[Invoice]:
    """One invoice per customer with a contract active in the month (one with rated rows)."""
    contracts = {row["contract_id"]: row for row in reference.contracts.to_dict("records")}
    plans = {row["plan_id"]: row for row in reference.plans.to_dict("records")}
    by_customer: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row in rated.to_pylist():
        by_customer[row["customer_id"]][row["contract_id"]].append(row)
    invoices = []
    for customer_id in sorted(by_customer):
        lines, currency = [], None
        for contract_id in sorted(by_customer[customer_id], key=lambda c: (contracts[c]["start_date"], c)):
            rows = by_customer[customer_id][contract_id]
            first = rows[0]
            currency = first["currency"]
            plan = plans[first["plan_id"]]
            charge_lines = [{
                "contract_id": contract_id, "line_type": row["line_type"], "meter": row["meter"],
                "quantity": None if row["quantity"] is None else format(row["quantity"].normalize(), "f"),
                "amount_exact": row["amount_exact"], "amount_minor": row["amount_minor"], "tiers": row["tiers"],
            } for row in rows]
            terms = PlanTerms(currency, (), minimum_commitment=Decimal(plan["minimum_commitment"])
                              if plan["minimum_commitment"] else None)
            discount = contracts[contract_id]["discount_percent"]
            month_terms = ContractMonth(contract_id, Decimal(discount) if discount else Decimal(0),
                                        first["covered_days"], first["days_in_month"])
            subtotal = sum(line["amount_minor"] for line in charge_lines)
            lines += charge_lines + [_record(line) for line in terms_lines(month_terms, terms, subtotal)]
        lines.sort(key=lambda line: (line["contract_id"], LINE_ORDER[line["line_type"]], line["meter"] or ""))
        invoices.append(Invoice(invoice_number(month, customer_id), customer_id, month, currency, tuple(lines)))
    return invoices


def _line_key(line: dict) -> tuple:
    return (line["contract_id"], line["line_type"], line["meter"] or "")


def billed_so_far(issued: dict, adjustments: list[dict]) -> dict[tuple, int]:
    """Minor units billed per line: the issued invoice plus every correction since."""
    billed: dict[tuple, int] = defaultdict(int)
    for line in issued["lines"]:
        billed[_line_key(line)] += line["amount_minor"]
    for document in adjustments:
        for line in document["lines"]:
            billed[_line_key(line)] += line["difference_minor"]
    return billed


def correction(invoice: Invoice, issued: dict, adjustments: list[dict]) -> dict | None:
    """The credit note or adjustment invoice that brings what was billed to what is owed now,
    itemised per line; None when the total owed has not changed."""
    billed = billed_so_far(issued, adjustments)
    owed = defaultdict(int)
    for line in invoice.lines:
        owed[_line_key(line)] += line["amount_minor"]
    differences = [
        {"contract_id": key[0], "line_type": key[1], "meter": key[2] or None, "billed_minor": billed.get(key, 0),
         "owed_minor": owed.get(key, 0), "difference_minor": owed.get(key, 0) - billed.get(key, 0)}
        for key in sorted(set(billed) | set(owed), key=lambda k: (k[0], LINE_ORDER[k[1]], k[2]))
        if owed.get(key, 0) != billed.get(key, 0)
    ]
    amount = sum(line["difference_minor"] for line in differences)
    if amount == 0:
        return None
    kind, prefix = ("credit_note", "CN") if amount < 0 else ("adjustment_invoice", "ADJ")
    sequence = len(adjustments) + 1
    month = invoice.month.replace("-", "")
    return {"document_number": f"{prefix}-{month}-{invoice.customer_id}-{sequence}", "kind": kind,
            "sequence": sequence, "invoice_number": invoice.invoice_number, "customer_id": invoice.customer_id,
            "month": invoice.month, "currency": invoice.currency, "amount_minor": amount, "lines": differences}


def document_bytes(document: dict) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()

"""A month's statements from the lake: the tables and documents that bill, read once per month,
then one statement per invoiced customer."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime

import pyarrow as pa

from billing_assets.insights.charges import aggregation_rules, contract_terms, explain_line
from billing_assets.insights.forecast import forecast_customer
from billing_assets.insights.render import statement_html
from billing_assets.insights.statement import (
    StatementInputs, build_statement, correction_causes, lines_csv, standing_lines, statement_json, usage_csv,
)
from billing_assets.invoicing.assets import documents_prefix, is_document
from billing_assets.invoicing.build import build_invoices
from billing_assets.lib.lake import BillingLake
from billing_assets.rating.assets import metered_month
from billing_assets.rating.rate import month_days
from billing_assets.reference.loading import ReferenceData

STATEMENT_FILES = {"statement.json": "application/json", "statement.html": "text/html",
                   "statement-lines.csv": "text/csv", "statement-usage.csv": "text/csv"}
USAGE_STATEMENTS_SCHEMA = pa.schema([(name, pa.int64() if name.endswith(("_minor", "corrections")) else pa.string())
                                     for name in ("month", "customer_id", "invoice_number", "status", "as_of", "currency",
                                                  "total_minor", "corrections", "forecast_expected_minor",
                                                  "forecast_low_minor", "forecast_high_minor", "meters", "documents",
                                                  "content_sha256")])


def previous_month(month: str) -> str:
    first = date.fromisoformat(f"{month}-01")
    return f"{first.year - 1}-12" if first.month == 1 else f"{first.year}-{first.month - 1:02d}"


@dataclass
class MonthFacts:
    """What every statement of a month is built from."""

    month: str
    reference: ReferenceData
    invoices: list[dict]
    draft_lines: dict[str, list[dict]]  # by invoice number: the invoice_lines rows
    current: dict[str, list[dict]]  # by customer: the lines as computed from today's rated charges
    documents: dict[str, dict[str, datetime]]  # by customer: document key → when it was written
    usage: dict[str, list[dict]]  # by customer: metered_usage rows of the month
    remetered: dict[str, datetime]  # by day: when its metered partition was last written
    previous: dict[str, dict] = field(default_factory=dict)  # by customer: last month's quantities and amounts

    def __post_init__(self):
        reference = self.reference
        self.terms = contract_terms(reference, self.month)
        self.names = dict(zip(reference.customers["customer_id"], reference.customers["name"]))
        self.aggregation = reference.meter_aggregation()
        self.units = dict(zip(reference.meters["name"], reference.meters["unit"]))
        self.rules = aggregation_rules(reference)

    @property
    def as_of(self) -> date | None:
        return max((date.fromisoformat(day) for day in self.remetered), default=None)


def read_month(lake: BillingLake, month: str, reference: ReferenceData) -> MonthFacts:
    invoices = lake.read_table("invoices", month).to_pylist()
    draft_lines = defaultdict(list)
    for row in lake.read_table("invoice_lines", month).to_pylist():
        draft_lines[row["invoice_number"]].append(row)
    rated = lake.read_table("rated_charges", month)
    current = {invoice.customer_id: list(invoice.lines) for invoice in build_invoices(month, rated, reference)}
    documents = defaultdict(dict)
    if any(invoice["status"] == "issued" for invoice in invoices):  # a draft month has no documents to read
        for item in lake.list_objects(f"documents/{month}/"):
            documents[item.key.split("/")[2]][item.key] = item.last_modified
    metered, _ = metered_month(lake, month)
    usage = defaultdict(list)
    for row in metered.to_pylist():
        usage[row["customer_id"]].append(row)
    remetered = {item.key.split("/")[2].removeprefix("dt="): item.last_modified
                 for item in lake.list_objects(f"warehouse/metered_usage/dt={month}-")}
    previous = {}
    before = previous_month(month)
    if lake.get_bytes_or_none(lake.partition_key("usage_statements", before)) is not None:
        previous = {row["customer_id"]: json.loads(row["meters"])
                    for row in lake.read_table("usage_statements", before).to_pylist()}
    return MonthFacts(month, reference, invoices, dict(draft_lines), current, dict(documents), dict(usage), remetered,
                      previous)


def _explained(lines: list[dict], facts: MonthFacts) -> list[dict]:
    subtotals = defaultdict(int)
    for line in lines:
        if line["line_type"] in ("usage", "base_fee"):
            subtotals[line["contract_id"]] += line["amount_minor"]
    explained = []
    for line in lines:
        contract = facts.terms.get(line["contract_id"])
        text = explain_line(line, contract, facts.rules, subtotals[line["contract_id"]], facts.units.get(line["meter"])) \
            if contract and not line.get("pending") else "As billed by the invoice and its corrections."
        explained.append(dict(line) | {"explanation": text})
    return explained


def _corrections(facts: MonthFacts, customer_id: str, issued: dict, documents: dict[str, dict]) -> list[dict]:
    """Each correction with its causes, in sequence order; the document before the first is the invoice."""
    written = facts.documents.get(customer_id, {})
    usage_days = defaultdict(set)
    for row in facts.usage.get(customer_id, []):
        usage_days[row["meter"]].add(row["day"].isoformat())
    prefix = documents_prefix(facts.month, customer_id)
    previous_at = written[f"{prefix}{issued['document_number']}.json"]
    contracts = {line["contract_id"] for line in issued["lines"]}
    causes = []
    for document in sorted(documents.values(), key=lambda document: document["sequence"]):
        at = written[f"{prefix}{document['document_number']}.json"]
        causes.append(correction_causes(document, previous_at, at, facts.remetered, usage_days, contracts))
        previous_at = at
    return causes


def customer_statement(facts: MonthFacts, invoice: dict, stored: dict[str, dict]) -> dict:
    """``stored``: the customer's issued documents (invoice and corrections), by document number."""
    customer_id = invoice["customer_id"]
    issued = stored.get(invoice["invoice_number"])
    if invoice["status"] == "issued" and issued is not None:
        corrections = {number: document for number, document in stored.items() if number != invoice["invoice_number"]}
        lines = standing_lines(issued, list(corrections.values()), facts.current.get(customer_id, []))
        causes, status = _corrections(facts, customer_id, issued, corrections), "final"
    else:
        lines, causes, status = facts.draft_lines.get(invoice["invoice_number"], []), [], "month_to_date"
    as_of, usage = facts.as_of, facts.usage.get(customer_id, [])
    forecast = None
    if status == "month_to_date" and as_of is not None and as_of < month_days(facts.month)[-1]:
        mine = [facts.terms[contract] for contract in sorted({line["contract_id"] for line in lines})
                if contract in facts.terms]
        forecast = forecast_customer(mine, usage, facts.aggregation, as_of)
    return build_statement(StatementInputs(
        customer_id=customer_id, name=facts.names.get(customer_id, customer_id), currency=invoice["currency"],
        month=facts.month, status=status, as_of=as_of, lines=_explained(lines, facts), corrections=causes, usage=usage,
        aggregation=facts.aggregation, units=facts.units, previous=facts.previous.get(customer_id), forecast=forecast,
        invoice_number=invoice["invoice_number"]))


def _issued_documents(lake: BillingLake, facts: MonthFacts) -> dict[str, dict[str, dict]]:
    keys = [key for documents in facts.documents.values() for key in documents if is_document(key)]
    stored = defaultdict(dict)
    for document in map(json.loads, lake.get_many(keys)) if keys else ():
        stored[document["customer_id"]][document["document_number"]] = document
    return stored


def publish_statements(lake: BillingLake, month: str, reference: ReferenceData) -> pa.Table:
    """Every statement of ``month`` written (the files of one whose content is unchanged are left
    as they are), and the month's ``usage_statements`` rows."""
    facts = read_month(lake, month, reference)
    # a statement is four small objects, so a month of many customers is many small PUTs: S3
    # answers them side by side far faster than one after another
    with ThreadPoolExecutor(max_workers=32) as pool:
        stored = _issued_documents(lake, facts)
        statements = [customer_statement(facts, invoice, stored.get(invoice["customer_id"], {}))
                      for invoice in facts.invoices]
        known = {}
        if lake.get_bytes_or_none(lake.partition_key("usage_statements", month)) is not None:
            known = {row["customer_id"]: row["content_sha256"] for row in lake.read_table("usage_statements", month).to_pylist()}
        rows, writes = [], []
        for statement in statements:
            body = statement_json(statement)
            digest = hashlib.sha256(body).hexdigest()
            prefix = documents_prefix(month, statement["customer_id"])
            # unchanged content is not written again: the files a row of usage_statements lists
            # were written before that row was
            if known.get(statement["customer_id"]) != digest:
                bodies = {"statement.json": body, "statement.html": statement_html(statement).encode(),
                          "statement-lines.csv": lines_csv(statement), "statement-usage.csv": usage_csv(statement)}
                writes += [(f"{prefix}{name}", bodies[name], STATEMENT_FILES[name]) for name in STATEMENT_FILES]
            forecast = statement["forecast"] or {}
            rows.append({"month": month, "customer_id": statement["customer_id"],
                         "invoice_number": statement["invoice_number"], "status": statement["status"],
                         "as_of": statement["as_of"], "currency": statement["currency"],
                         "total_minor": statement["total_minor"], "corrections": len(statement["corrections"]),
                         **{f"forecast_{name}_minor": forecast.get(f"{name}_minor") for name in ("expected", "low", "high")},
                         "meters": json.dumps({"quantities": statement["quantities"], "amounts": statement["amounts"]},
                                              sort_keys=True),
                         "documents": f"{prefix}statement", "content_sha256": digest})
        list(pool.map(lambda write: lake.put_bytes(*write), writes))
    return pa.Table.from_pylist(rows, schema=USAGE_STATEMENTS_SCHEMA)

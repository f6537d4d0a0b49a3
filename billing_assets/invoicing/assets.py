"""Monthly invoices: drafts until the grace period ends, then issued once and never rewritten."""

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import dagster as dg
import pyarrow as pa

from billing_assets.invoicing.build import Invoice, build_invoices, correction, document_bytes
from billing_assets.invoicing.policy import BillingPolicy
from billing_assets.invoicing.render import document_html
from billing_assets.invoicing.schemas import InvoiceAdjustmentRow, InvoiceLineRow, InvoiceRow, RefundRow
from billing_assets.lib.automation import follows_upstream
from billing_assets.lib.checks import markdown_preview, table_metadata
from billing_assets.lib.lake import BillingLake, StoredObject, parquet_bytes
from billing_assets.metering.outcomes import line_outcomes
from billing_assets.partitions import monthly_billing_partitions
from billing_assets.reference.assets import read_reference

INVOICE_LINES_SCHEMA = pa.schema([(name, pa.int64() if name == "amount_minor" else pa.string()) for name in (
    "invoice_number", "month", "customer_id", "currency", "contract_id", "line_type", "meter", "quantity",
    "amount_exact", "amount_minor", "tiers")])
INVOICES_SCHEMA = pa.schema([(name, pa.int64() if name == "total_minor" else pa.string()) for name in (
    "invoice_number", "customer_id", "month", "currency", "total_minor", "status")])
REFUNDS_SCHEMA = pa.schema([(name, pa.int64() if name == "amount_minor" else pa.string()) for name in (
    "document_number", "invoice_number", "customer_id", "month", "currency", "amount_minor")])
INVOICE_ADJUSTMENTS_SCHEMA = pa.schema([(name, pa.int64() if name in ("sequence", "amount_minor") else pa.string())
                                        for name in ("document_number", "invoice_number", "customer_id", "month",
                                                     "currency", "kind", "sequence", "amount_minor")])


def documents_prefix(month: str, customer_id: str) -> str:
    return f"documents/{month}/{customer_id}/"


def _publish(lake: BillingLake, prefix: str, document: dict, stored_keys: frozenset[str]) -> tuple[bool, dict]:
    """Write a document once, as JSON and as HTML. Returns (written now, the document as stored):
    when its JSON already existed, what was issued then is what stands. ``stored_keys``: what
    was listed under the customer's month before, whose writes would only be refused."""
    key = f"{prefix}{document['document_number']}"
    written = f"{key}.json" not in stored_keys and lake.put_once(f"{key}.json", document_bytes(document),
                                                                  "application/json")
    stored = document if written else json.loads(lake.get_bytes(f"{key}.json"))
    if f"{key}.html" not in stored_keys:
        lake.put_once(f"{key}.html", document_html(stored).encode(), "text/html")  # always from what was issued
    return written, stored


def _issue(lake: BillingLake, invoice: Invoice, stored_keys: frozenset[str]) -> tuple[dict, list[dict], dict | None]:
    """Issue ``invoice`` if it was not yet (write-once), then correct it if what is owed changed.
    Returns (issued document, every correction so far, the correction made now or None)."""
    prefix = documents_prefix(invoice.month, invoice.customer_id)
    _, issued = _publish(lake, prefix, invoice.document() | {"status": "issued"}, stored_keys)
    corrections = sorted(
        (json.loads(lake.get_bytes(key)) for key in stored_keys
         if key.rsplit("/", 1)[1].startswith(("CN-", "ADJ-")) and key.endswith(".json")),
        key=lambda document: document["sequence"])
    new = correction(invoice, issued, corrections)
    if new is not None:
        if not _publish(lake, prefix, new, frozenset())[0]:
            raise dg.Failure(f"{new['document_number']} appeared while this run was correcting {invoice.invoice_number}; "
                             "another run is invoicing the same month. Re-run to continue.")
        corrections.append(new)
    return issued, corrections, new


def _issue_all(lake: BillingLake, invoices: list[Invoice], stored: list[str]) -> list[tuple[dict, list[dict], dict | None]]:
    """``_issue`` for each invoice, in order, side by side (each one's documents are its own, and
    a document store answers many small writes at once far faster than one after another).
    ``stored``: the month's document keys, listed once."""
    by_prefix: dict[str, set[str]] = {}
    for key in stored:
        by_prefix.setdefault(key.rsplit("/", 1)[0] + "/", set()).add(key)
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(lambda invoice: _issue(lake, invoice, frozenset(
            by_prefix.get(documents_prefix(invoice.month, invoice.customer_id), ()))), invoices))


def is_document(key: str) -> bool:
    """An issued document's JSON: an invoice, credit note or adjustment invoice (not a statement)."""
    return key.endswith(".json") and key.rsplit("/", 1)[1].startswith(("INV-", "CN-", "ADJ-"))


def _is_issued_invoice(key: str) -> bool:
    return key.rsplit("/", 1)[1].startswith("INV-") and key.endswith(".json")


def issued_invoice_documents(lake: BillingLake, month: str) -> list[StoredObject]:
    """The month's issued invoices as stored: each INV-….json written once, when it was issued."""
    return [item for item in lake.list_objects(f"documents/{month}/") if _is_issued_invoice(item.key)]


def _owing_nothing_now(lake: BillingLake, month: str, invoiced: set[str], stored: list[str]) -> list[Invoice]:
    """Customers with an issued invoice for the month but no contract in it any more (a contract
    removed or moved retroactively): they now owe nothing, which a credit note must say.
    ``stored``: the month's document keys; only the documents of customers not invoiced now
    (each under its customer's folder) are read."""
    ghosts = []
    for key in sorted(key for key in stored if _is_issued_invoice(key) and key.split("/")[2] not in invoiced):
        document = json.loads(lake.get_bytes(key))
        if document["customer_id"] not in invoiced:
            ghosts.append(Invoice(document["invoice_number"], document["customer_id"], month, document["currency"], ()))
    return ghosts


OUTCOMES_AT_ISSUE = "line_outcomes_at_issue"


def record_outcomes_at_issue(lake: BillingLake, month: str, stored: list[str]) -> bool:
    """When a month is issued for the first time, what became of its lines then (accepted,
    duplicate, quarantined by reason, per day × customer × meter), written once beside the
    write-once invoices: the "before" of every later correction and remediation. A month first
    issued before this record existed has none (its remediations are measured as unknown)."""
    if any(_is_issued_invoice(key) for key in stored):
        return False
    return lake.put_once(lake.partition_key(OUTCOMES_AT_ISSUE, month), parquet_bytes(line_outcomes(lake, month)),
                         "application/vnd.apache.parquet")


# asset-level health in the UI (issued by 06:00 on the 2nd with the default grace); the per-month
# SLA, which follows BILLING_GRACE_HOURS, is the invoices_issued_on_time check
ISSUED_BY = dg.FreshnessPolicy.cron(deadline_cron="0 6 2 * *", lower_bound_delta=timedelta(hours=30))


def _spec(name: str, model, description: str) -> dg.AssetSpec:
    return dg.AssetSpec(name, description=description, group_name="invoicing", owners=["team:billing"],
                        kinds={"s3", "parquet"}, metadata=table_metadata(name, model), automation_condition=follows_upstream(),
                        deps=["rated_charges", "contracts", "plans"],
                        freshness_policy=ISSUED_BY if name == "invoices" else None)


@dg.multi_asset(
    name="invoicing",
    specs=[
        _spec("invoice_lines", InvoiceLineRow,
              "Every line of the month's invoices: usage and base fee as rated, the contract's discount, the "
              "minimum-commitment true-up. An issued invoice's lines are shown as issued."),
        _spec("invoices", InvoiceRow,
              "One invoice per customer with a contract in the month, INV-YYYYMM-<customer>: a draft until the "
              "month's end plus the grace period, then issued once and never changed."),
        _spec("invoice_adjustments", InvoiceAdjustmentRow,
              "Credit notes (CN-…) and adjustment invoices (ADJ-…) issued when what an issued invoice's customer "
              "owes changes (late usage, a corrected contract), each itemising the difference."),
        _spec("refunds", RefundRow,
              "What the payments system owes customers back: one row per credit note, its amount positive."),
    ],
    partitions_def=monthly_billing_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def invoicing(context: dg.AssetExecutionContext, lake: BillingLake, billing_policy: BillingPolicy):
    """Invoice each month of the run from its rated charges."""
    reference = read_reference(lake)
    summary = {"draft": 0, "issued": 0, "corrections_now": 0}
    last = {}
    for month in context.partition_keys:
        invoices = build_invoices(month, lake.read_table("rated_charges", month), reference)
        issuing = billing_policy.issuing(month)
        if issuing:
            stored = [item.key for item in lake.list_objects(f"documents/{month}/")]
            invoices += _owing_nothing_now(lake, month, {invoice.customer_id for invoice in invoices}, stored)
            if record_outcomes_at_issue(lake, month, stored):
                context.log.info(f"{month}: first issue; what became of its lines recorded in {OUTCOMES_AT_ISSUE}")
        lines, heads, adjustments = [], [], []
        issued = _issue_all(lake, invoices, stored) if issuing else [(invoice.document(), [], None) for invoice in invoices]
        for document, corrections, new in issued:
            summary["corrections_now"] += new is not None
            adjustments += corrections
            status = "issued" if issuing else "draft"
            summary[status] += 1
            heads.append({key: document[key] for key in ("invoice_number", "customer_id", "month", "currency")}
                         | {"total_minor": document["total_minor"], "status": status})
            lines += [{"invoice_number": document["invoice_number"], "month": month, "customer_id": document["customer_id"],
                       "currency": document["currency"]} | line for line in document["lines"]]
        tables = {
            "invoice_lines": pa.Table.from_pylist(lines, schema=INVOICE_LINES_SCHEMA),
            "invoices": pa.Table.from_pylist(heads, schema=INVOICES_SCHEMA),
            "invoice_adjustments": pa.Table.from_pylist(
                [{key: document[key] for key in INVOICE_ADJUSTMENTS_SCHEMA.names} for document in adjustments],
                schema=INVOICE_ADJUSTMENTS_SCHEMA),
            "refunds": pa.Table.from_pylist(
                [{key: document[key] for key in REFUNDS_SCHEMA.names} | {"amount_minor": -document["amount_minor"]}
                 for document in adjustments if document["kind"] == "credit_note"], schema=REFUNDS_SCHEMA),
        }
        for name, table in tables.items():
            lake.write_table(name, month, table)
        last = tables
        context.log.info(f"{month}: {len(invoices)} invoices ({'issued' if issuing else 'draft'}), "
                         f"{len(adjustments)} corrections on record")
    for name in ("invoice_lines", "invoices", "invoice_adjustments", "refunds"):
        metadata = {"invoices_draft": summary["draft"], "invoices_issued": summary["issued"],
                    "corrections_issued_now": summary["corrections_now"]}
        if len(context.partition_keys) == 1:
            metadata |= {"dagster/row_count": last[name].num_rows, "preview": markdown_preview(last[name])}
        yield dg.MaterializeResult(asset_key=name, metadata=metadata)

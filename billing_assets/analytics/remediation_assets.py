"""`remediation_impact`, monthly: for each fix in reference/remediations.csv, the month's lines
and money as first issued against as they stand now (analytics/remediation.py computes it)."""

import json

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from billing_assets.analytics.remediation import MonthDocuments, remediation_rows
from billing_assets.analytics.schemas import RemediationImpactRow
from billing_assets.invoicing.assets import OUTCOMES_AT_ISSUE, is_document
from billing_assets.lib.automation import follows_upstream
from billing_assets.lib.checks import markdown_preview, table_metadata
from billing_assets.lib.lake import BillingLake
from billing_assets.metering.outcomes import line_outcomes
from billing_assets.partitions import monthly_billing_partitions
from billing_assets.reference.assets import read_reference, read_remediations

_COUNT, _MINOR, _TEXT = pa.int64(), pa.int64(), pa.string()
REMEDIATION_IMPACT_SCHEMA = pa.schema([
    ("month", _TEXT), ("remediation_id", _TEXT), ("currency", _TEXT), ("description", _TEXT), ("customer_id", _TEXT),
    ("meter", _TEXT), ("start_date", pa.date32()), ("status", _TEXT),
    ("accepted_events_before", _COUNT), ("accepted_events_after", _COUNT),
    ("duplicate_lines_before", _COUNT), ("duplicate_lines_after", _COUNT),
    ("quarantined_lines_before", _COUNT), ("quarantined_lines_after", _COUNT),
    ("quarantined_by_reason_before", _TEXT), ("quarantined_by_reason_after", _TEXT),
    ("released_lines", _COUNT), ("released_by_reason", _TEXT),
    ("invoices_in_scope", _COUNT), ("invoices_corrected", _COUNT),
    ("billed_before_minor", _MINOR), ("billed_after_minor", _MINOR), ("rerating_delta_minor", _MINOR),
    ("credit_note_minor", _MINOR), ("adjustment_invoice_minor", _MINOR), ("corrections", _TEXT),
    ("explanation", _TEXT),
])


def month_documents(lake: BillingLake, month: str, customers: set[str] | None) -> MonthDocuments:
    """The month's issued invoices and corrections as stored; ``customers``: only theirs (None: all)."""
    prefixes = [f"documents/{month}/"] if customers is None else [f"documents/{month}/{c}/" for c in sorted(customers)]
    keys = [item.key for prefix in prefixes for item in lake.list_objects(prefix) if is_document(item.key)]
    issued, corrections = {}, {}
    for document in map(json.loads, lake.get_many(keys)) if keys else ():
        if document["kind"] == "invoice":
            issued[document["customer_id"]] = document
        else:
            corrections.setdefault(document["customer_id"], []).append(document)
    return MonthDocuments(issued, {customer: sorted(documents, key=lambda d: d["sequence"])
                                   for customer, documents in corrections.items()})


def outcomes_at_issue(lake: BillingLake, month: str) -> pa.Table | None:
    body = lake.get_bytes_or_none(lake.partition_key(OUTCOMES_AT_ISSUE, month))
    return None if body is None else pq.read_table(pa.BufferReader(body))


@dg.asset(
    name="remediation_impact",
    deps=["invoices", "invoice_adjustments",
          dg.AssetDep("metered_usage", partition_mapping=dg.TimeWindowPartitionMapping()),
          dg.AssetDep("quarantined_events", partition_mapping=dg.TimeWindowPartitionMapping()),
          dg.AssetDep("duplicate_events", partition_mapping=dg.TimeWindowPartitionMapping()),
          "customers", "meters"],
    partitions_def=monthly_billing_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="analytics",
    automation_condition=follows_upstream(),
    owners=["team:billing", "team:finance"],
    kinds={"s3", "parquet"},
    metadata=table_metadata("remediation_impact", RemediationImpactRow),
)
def remediation_impact(context: dg.AssetExecutionContext, lake: BillingLake) -> dg.MaterializeResult:
    """Did a fix to a billing error work, and what did it change in money? For each remediation in
    reference/remediations.csv (a contract onboarded or back-dated, a producer fixed and its usage
    re-sent, a price corrected), the month's lines in its scope as they were when the month was
    first issued and as they are now — accepted, duplicates, quarantined by reason, and the
    held-back lines it released — and the exact re-rating delta: the in-scope lines of the credit
    notes and adjustment invoices issued since, what the corrected history billed or gave back."""
    reference = read_reference(lake)
    remediations = read_remediations(lake, reference)
    currency_of = dict(zip(reference.customers["customer_id"], reference.customers["currency"]))
    last, released = REMEDIATION_IMPACT_SCHEMA.empty_table(), 0
    for month in context.partition_keys:
        applying = [remediation for remediation in remediations if remediation.applies_to(month)]
        rows = []
        if applying:  # without remediations the month's lines and documents are not read at all
            scoped = {remediation.customer_id for remediation in applying}
            documents = month_documents(lake, month, None if None in scoped else scoped)
            rows = remediation_rows(month, applying, outcomes_at_issue(lake, month), line_outcomes(lake, month),
                                    documents, currency_of)
        last = pa.Table.from_pylist(rows, schema=REMEDIATION_IMPACT_SCHEMA)
        lake.write_table("remediation_impact", month, last)
        released += sum(row["released_lines"] or 0 for row in rows)
        for row in rows:
            context.log.info(f"{month}: {row['explanation']}")
    metadata = {"remediations": len(remediations), "released_lines": released}
    if len(context.partition_keys) == 1:
        metadata |= {"dagster/row_count": last.num_rows, "preview": markdown_preview(last.select(
            ["remediation_id", "currency", "status", "released_lines", "quarantined_lines_before",
             "quarantined_lines_after", "rerating_delta_minor", "corrections"]))}
    return dg.MaterializeResult(metadata=metadata)

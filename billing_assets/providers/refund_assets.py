"""Credit notes paid back through the billing provider (CONTRACT.md §11): `refund_requests`."""

from collections import Counter

import dagster as dg

from billing_assets.lib.automation import follows_upstream
from billing_assets.lib.checks import markdown_preview, table_metadata
from billing_assets.lib.lake import BillingLake
from billing_assets.partitions import monthly_billing_partitions
from billing_assets.providers.refunds import RefundRow, open_rows, plan, settle, to_table
from billing_assets.providers.resource import BillingProvider
from billing_assets.providers.tables import read_rows
from billing_assets.providers.schemas import RefundRequestRow
from billing_assets.reference.assets import read_provider_customers, read_reference


def read_refund_ledger(lake: BillingLake, month: str) -> list | None:
    """The month's refund ledger, None when it was never written."""
    return read_rows(lake, "refund_requests", month, RefundRow)


@dg.asset(
    deps=["refunds", "customers"],
    partitions_def=monthly_billing_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="providers",
    automation_condition=follows_upstream(),
    owners=["team:billing"],
    kinds={"s3", "parquet"},
    metadata=table_metadata("refund_requests", RefundRequestRow),
)
def refund_requests(context: dg.AssetExecutionContext, lake: BillingLake,
                    billing_provider: BillingProvider) -> dg.MaterializeResult:
    """Each credit note's refund, requested from the billing provider with the credit note's
    number as idempotency key and written on the refund, so that whatever retries or re-runs
    happen there is never a second refund for one document; then followed to succeeded or
    failed, a failure naming the provider's reason and retried only when the provider says it
    may be. With BILLING_PROVIDER=none the rows are the plan: what would be paid back."""
    reference = read_reference(lake)
    mapping = read_provider_customers(lake, reference)
    kind, client, now = billing_provider.provider_kind(), billing_provider.connect(), billing_provider.now()
    statuses, amounts, last = Counter(), Counter(), None
    for month in context.partition_keys:
        notes = lake.read_table("refunds", month).to_pylist()
        stored = read_refund_ledger(lake, month)
        added = plan(notes, stored or [], kind, mapping, now)
        ledger = (stored or []) + added
        if added or stored is None:
            lake.write_table("refund_requests", month, to_table(ledger))  # the plan first: see provider_sync
        pending = open_rows(ledger, kind, mapping)
        if pending:
            ledger = settle(ledger, client.request_refunds(pending, now))
            lake.write_table("refund_requests", month, to_table(ledger))
        last = to_table(ledger)
        for row in ledger:
            if row.provider == kind:
                statuses[row.status] += 1
                amounts[f"{row.status}_minor/{row.currency}"] += row.amount_minor
    metadata = {"provider": kind, **{f"status/{name}": count for name, count in sorted(statuses.items())},
                **dict(sorted(amounts.items()))}
    if len(context.partition_keys) == 1:
        metadata |= {"dagster/row_count": last.num_rows, "preview": markdown_preview(last.select(
            ["document_number", "customer_id", "amount_minor", "currency", "status", "provider_refund_id",
             "failure_reason"]))}
    return dg.MaterializeResult(metadata=metadata)

"""What the billing provider holds and billed, tied to ours (CONTRACT.md §11): `provider_reconciliation`."""

from collections import Counter
from datetime import date, datetime, timezone

import dagster as dg

from billing_assets.lib.automation import follows_upstream
from billing_assets.lib.checks import markdown_preview, table_metadata
from billing_assets.lib.lake import BillingLake
from billing_assets.partitions import monthly_billing_partitions
from billing_assets.providers.assets import read_ledger, synced_quantities
from billing_assets.providers.reconciliation import invoice_rows, to_table, usage_rows
from billing_assets.providers.resource import BillingProvider
from billing_assets.providers.schemas import ProviderReconciliationRow
from billing_assets.reference.assets import read_provider_customers, read_reference


def month_bounds(month: str) -> tuple[datetime, datetime]:
    first = date.fromisoformat(f"{month}-01")
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return (datetime(first.year, first.month, 1, tzinfo=timezone.utc),
            datetime(following.year, following.month, 1, tzinfo=timezone.utc))


def our_month(lake: BillingLake, month: str, reference, provider: str):
    """The month's synced usage per customer × meter (metered_usage, day by day), the sends of
    ``provider`` not acknowledged, and the identifiers of every send that may have arrived, from
    the sync ledgers."""
    usage, open_sends, sent = Counter(), Counter(), []
    for day in sorted(lake.days_present("metered_usage", month)):
        for key, quantity in synced_quantities(lake.read_table("metered_usage", day), reference,
                                               date.fromisoformat(day)).items():
            usage[key] += quantity
        for row in read_ledger(lake, day) or []:
            if row.provider == provider and row.status != "acknowledged":
                open_sends[row.key] += 1
            if row.provider == provider and row.status in ("sent", "acknowledged"):
                sent.append(row.identifier)
    return dict(usage), dict(open_sends), sent


def our_invoices(lake: BillingLake, month: str) -> dict[str, tuple[int, str]]:
    """Per customer whose invoice is issued: what it owes for the month, corrections included."""
    owed = {row["customer_id"]: [row["total_minor"], row["currency"]]
            for row in lake.read_table("invoices", month).to_pylist() if row["status"] == "issued"}
    for row in lake.read_table("invoice_adjustments", month).to_pylist():
        if row["customer_id"] in owed:
            owed[row["customer_id"]][0] += row["amount_minor"]
    return {customer: (amount, currency) for customer, (amount, currency) in owed.items()}


@dg.asset(
    deps=["invoices", "invoice_adjustments", dg.AssetDep("provider_sync", partition_mapping=dg.TimeWindowPartitionMapping())],
    partitions_def=monthly_billing_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="providers",
    automation_condition=follows_upstream(),
    owners=["team:billing"],
    kinds={"s3", "parquet"},
    metadata=table_metadata("provider_reconciliation", ProviderReconciliationRow),
)
def provider_reconciliation(context: dg.AssetExecutionContext, lake: BillingLake,
                            billing_provider: BillingProvider) -> dg.MaterializeResult:
    """The billing provider's view of each month read back — the usage it holds per customer ×
    meter and the total it invoiced — and tied to ours: the usage we metered and synced, and what
    each customer owes for the month after corrections. Every break is named with both figures
    and, where the sync ledger knows why, the reason."""
    reference = read_reference(lake)
    mapping = read_provider_customers(lake, reference)
    kind, client = billing_provider.provider_kind(), billing_provider.connect()
    statuses, last = Counter(), None
    for month in context.partition_keys:
        start, end = month_bounds(month)
        usage, open_sends, sent = our_month(lake, month, reference, kind)
        owed = our_invoices(lake, month)
        mapped = {customer: mapping[customer] for customer in {c for c, _ in usage} | set(owed) if customer in mapping}
        theirs_usage = None if client is None else client.usage_totals(
            mapped, sorted({meter for _, meter in usage}), start, end, sent)
        theirs_invoices = None if client is None else client.invoice_totals(sorted(mapped.values()), start, end)
        rows = usage_rows(month, kind, usage, theirs_usage, mapping, open_sends) + invoice_rows(
            month, kind, owed, theirs_invoices, mapping)
        last = to_table(rows)
        lake.write_table("provider_reconciliation", month, last)
        statuses.update(row["status"] for row in rows)
    metadata = {"provider": kind, **{f"status/{name}": count for name, count in sorted(statuses.items())}}
    if len(context.partition_keys) == 1:
        metadata |= {"dagster/row_count": last.num_rows,
                     "preview": markdown_preview(last.select(["customer_id", "measure", "meter", "ours", "theirs",
                                                              "status", "explanation"]))}
    return dg.MaterializeResult(metadata=metadata)

"""What leaves the lake for the billing provider (CONTRACT.md §11): each day's usage, synced
exactly once through the ledger in `provider_sync`."""

from collections import Counter
from datetime import date
from decimal import Decimal

import dagster as dg
import pyarrow as pa

from billing_assets.lib.automation import follows_upstream
from billing_assets.lib.checks import markdown_preview, table_metadata
from billing_assets.lib.lake import BillingLake
from billing_assets.partitions import daily_usage_partitions
from billing_assets.providers.ledger import ADDITIVE, SyncRow, plan, settle, to_send, to_table
from billing_assets.providers.resource import BillingProvider
from billing_assets.providers.schemas import ProviderSyncRow
from billing_assets.providers.tables import read_rows
from billing_assets.reference.assets import read_provider_customers, read_reference
from billing_assets.reference.loading import ReferenceData


def synced_quantities(metered: pa.Table, reference: ReferenceData, day: date) -> dict[tuple[str, str], Decimal]:
    """The day's metered quantity of every customer × meter its plan charges that day, for
    meters whose month is the sum of its days."""
    priced, aggregation = reference.priced_meters_on(day), reference.meter_aggregation()
    return {(customer, meter): quantity
            for customer, meter, quantity in zip(*(metered.column(name).to_pylist()
                                                   for name in ("customer_id", "meter", "quantity")))
            if meter in priced.get(customer, ()) and aggregation.get(meter) in ADDITIVE}


def read_ledger(lake: BillingLake, day: str) -> list | None:
    """The day's ledger, None when the day was never synced."""
    return read_rows(lake, "provider_sync", day, SyncRow)


@dg.asset(
    deps=["metered_usage", "customers", "contracts", "plans", "meters"],
    partitions_def=daily_usage_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="providers",
    automation_condition=follows_upstream(),
    owners=["team:billing"],
    kinds={"s3", "parquet"},
    metadata=table_metadata("provider_sync", ProviderSyncRow),
)
def provider_sync(context: dg.AssetExecutionContext, lake: BillingLake,
                  billing_provider: BillingProvider) -> dg.MaterializeResult:
    """Each customer × priced meter × day's usage as the billing provider (Stripe Billing meter
    events or Orb events) should hold it: sent once under a deterministic identifier, late data
    as a correction of the difference only, a re-run sending nothing. Every send is written to
    the ledger before its request leaves, so a crash resumes without sending twice. With
    BILLING_PROVIDER=none (the default) the rows are the plan: what would be sent, for anyone to
    audit before switching a provider on."""
    reference = read_reference(lake)
    mapping = read_provider_customers(lake, reference)
    kind, client, now = billing_provider.provider_kind(), billing_provider.connect(), billing_provider.now()
    totals, statuses, last = Counter(), Counter(), None
    for day in context.partition_keys:
        metered = synced_quantities(lake.read_table("metered_usage", day), reference, date.fromisoformat(day))
        stored = read_ledger(lake, day)
        added = plan(date.fromisoformat(day), metered, stored or [], kind, mapping, now)
        ledger = (stored or []) + added
        pending = to_send(ledger, kind, mapping)
        if added or stored is None:
            # the plan is stored before anything is sent: a crash from here on re-sends these same rows
            lake.write_table("provider_sync", day, to_table(ledger))
        if pending:
            ledger = settle(ledger, client.send_usage(pending, now))
            lake.write_table("provider_sync", day, last := to_table(ledger))
        else:
            last = to_table(ledger)
        totals.update(planned=len(added), sent=len(pending), keys=len(metered))
        statuses.update(row.status for row in ledger if row.provider == kind)
    metadata = {"provider": kind, "rows_added": totals["planned"], "requests_sent": totals["sent"],
                "keys_synced": totals["keys"], **{f"status/{name}": count for name, count in sorted(statuses.items())}}
    if len(context.partition_keys) == 1:
        metadata |= {"dagster/row_count": last.num_rows,
                     "preview": markdown_preview(last.select(["customer_id", "meter", "identifier", "quantity_sent",
                                                              "kind", "status", "failure_reason"]))}
    return dg.MaterializeResult(metadata=metadata)

"""The monthly reconciliation, with its blocking check."""

import dagster as dg
import pyarrow as pa

from billing_assets.invoicing.build import build_invoices
from billing_assets.lib.automation import follows_upstream
from billing_assets.lib.checks import markdown_preview
from billing_assets.lib.lake import BillingLake
from billing_assets.monitoring.reconcile import breaks, reconcile_month
from billing_assets.partitions import monthly_billing_partitions
from billing_assets.rating.assets import metered_month
from billing_assets.rating.rate import month_days
from billing_assets.reference.assets import read_reference
from billing_assets.usage.ingest import USAGE_EVENTS_SCHEMA

RECONCILIATION_TIES = "reconciliation_ties"


def _accepted_month(lake: BillingLake, month: str) -> pa.Table:
    present = lake.days_present("usage_events", month)
    tables = [lake.read_table("usage_events", day.isoformat()).select(["customer_id", "meter"])
              for day in month_days(month) if day.isoformat() in present]
    return pa.concat_tables(tables) if tables else USAGE_EVENTS_SCHEMA.empty_table().select(["customer_id", "meter"])


@dg.asset(
    deps=["usage_events", "metered_usage", "rated_charges", "invoice_lines", "invoices", "invoice_adjustments"],
    partitions_def=monthly_billing_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="monitoring",
    automation_condition=follows_upstream(),
    owners=["team:billing"],
    kinds={"s3", "parquet"},
    metadata={"dagster/table_name": "warehouse.reconciliation"},
    check_specs=[dg.AssetCheckSpec(RECONCILIATION_TIES, asset="reconciliation", blocking=True,
                                   description="Every tie-out of the month holds exactly.")],
)
def reconciliation(context: dg.AssetExecutionContext, lake: BillingLake):
    """Proof for the month that nothing was lost or counted twice between stages: accepted events
    = metered events per customer and meter; metered period quantity = rated quantity per
    contract and meter; each invoice's total = its lines; each issued invoice plus its
    corrections = what is owed now. A break names customer, meter and difference."""
    reference = read_reference(lake)
    found, tie_outs, last, key = [], 0, None, None
    for month in context.partition_keys:
        metered, _ = metered_month(lake, month)
        rated = lake.read_table("rated_charges", month)
        table = reconcile_month(
            month, _accepted_month(lake, month), metered, rated, lake.read_table("invoices", month),
            lake.read_table("invoice_lines", month), lake.read_table("invoice_adjustments", month),
            build_invoices(month, rated, reference), reference)
        key, _ = lake.write_table("reconciliation", month, table)
        found += breaks(table)
        tie_outs, last = tie_outs + table.num_rows, table
    metadata = {"dagster/row_count": tie_outs, "breaks": len(found)}
    if len(context.partition_keys) == 1:
        metadata |= {"dagster/uri": lake.uri(key), "preview": markdown_preview(last)}
    yield dg.MaterializeResult(metadata=metadata)
    yield dg.AssetCheckResult(check_name=RECONCILIATION_TIES, passed=not found,
                              metadata={"tie_outs": tie_outs, "breaks": "\n".join(found[:50]) or "none"})

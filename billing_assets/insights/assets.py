"""Usage statements and alerts: what each customer sees of a month — the charges and why, daily usage,
corrections and their causes, and for the open month a forecast (CONTRACT.md §8)."""

from datetime import date

import dagster as dg
import pyarrow.compute as pc

from billing_assets.insights.alerting import USAGE_ALERTS_SCHEMA, MonthAlerts, alerts_of_day
from billing_assets.insights.month import publish_statements
from billing_assets.insights.schemas import UsageAlertRow, UsageStatementRow
from billing_assets.lib.automation import follows_upstream
from billing_assets.lib.checks import markdown_preview, table_metadata
from billing_assets.lib.lake import BillingLake
from billing_assets.partitions import daily_usage_partitions, monthly_billing_partitions
from billing_assets.reference.assets import read_alerts, read_reference


@dg.asset(
    deps=[dg.AssetDep("metered_usage", partition_mapping=dg.TimeWindowPartitionMapping()),
          "invoices", "invoice_lines", "invoice_adjustments", "rated_charges", "customers", "meters", "plans", "contracts"],
    partitions_def=monthly_billing_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="insights",
    automation_condition=follows_upstream(),
    owners=["team:billing"],
    kinds={"s3", "parquet", "html"},
    metadata=table_metadata("usage_statements", UsageStatementRow),
)
def usage_statements(context: dg.AssetExecutionContext, lake: BillingLake) -> dg.MaterializeResult:
    """Each customer's usage statement of the month, under documents/YYYY-MM/<customer>/: the
    lines they owe now with how each was charged, their daily usage per meter, the credit notes
    and adjustment invoices since the invoice and what caused them, the change against the month
    before, and for the open month the total so far and an end-of-month forecast priced through
    the plan. A view: rewritten as the month's days are metered and its documents issued."""
    reference = read_reference(lake)
    last, totals, final, forecasts = None, {}, 0, 0
    for month in context.partition_keys:
        table = publish_statements(lake, month, reference)
        lake.write_table("usage_statements", month, table)
        last = table
        final += pc.sum(pc.equal(table.column("status"), "final")).as_py() or 0
        forecasts += table.num_rows - table.column("forecast_expected_minor").null_count
        for row in table.select(["currency", "total_minor"]).to_pylist():
            totals[row["currency"]] = totals.get(row["currency"], 0) + row["total_minor"]
        context.log.info(f"{month}: {table.num_rows} statements")
    metadata = {"statements_final": final, "statements_with_forecast": forecasts,
                **{f"owed_minor/{currency}": amount for currency, amount in sorted(totals.items())}}
    if len(context.partition_keys) == 1 and last is not None:
        month = context.partition_keys[0]
        metadata |= {"dagster/row_count": last.num_rows, "documents": f"s3://{lake.bucket_name}/documents/{month}/",
                     "preview": markdown_preview(last.drop_columns(["meters", "content_sha256"]))}
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    deps=["metered_usage", "customers", "contracts", "plans", "meters"],
    partitions_def=daily_usage_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="insights",
    automation_condition=follows_upstream(),
    owners=["team:billing"],
    kinds={"s3", "parquet", "json"},
    metadata=table_metadata("usage_alerts", UsageAlertRow),
)
def usage_alerts(context: dg.AssetExecutionContext, lake: BillingLake) -> dg.MaterializeResult:
    """Usage, spend, commitment and forecast alerts of reference/alerts.yaml that the month has
    crossed up to the day, each on the first day its month-to-date value reached the threshold;
    one outbox object per crossing under alerts/YYYY-MM/<customer>/ for a notifier to deliver
    (written once, whatever re-runs), a -retracted one when a correction undoes it; and each
    limited customer's entitlements/<customer>.json (used, soft and hard limit, state)."""
    reference = read_reference(lake)
    config = read_alerts(lake, reference)
    written, last = {"notified": 0, "retracted": 0, "entitlements": 0}, None
    months = {}
    for day in context.partition_keys:  # a month's usage is read, and its crossings found, once
        months[day[:7]] = max(months.get(day[:7], day), day)
    worked = {month: MonthAlerts(lake, month, date.fromisoformat(last), reference, config)
              for month, last in months.items()} if config.alerts or config.limits else {}
    for day in context.partition_keys:
        table, now = alerts_of_day(lake, day, worked[day[:7]]) if worked else (USAGE_ALERTS_SCHEMA.empty_table(), {})
        lake.write_table("usage_alerts", day, table)
        written = {key: written[key] + now.get(key, 0) for key in written}
        last = table
    metadata = {"alerts_configured": len(config.alerts), "limits_configured": len(config.limits),
                **{f"outbox/{key}": value for key, value in written.items()}}
    if len(context.partition_keys) == 1:
        metadata |= {"dagster/row_count": last.num_rows, "preview": markdown_preview(last)}
    return dg.MaterializeResult(metadata=metadata)

"""Billing-accuracy analytics for billing operations and finance (CONTRACT.md §9): what the
platform received can be wrong even when it billed it exactly — a producer that stops, a
re-send under new ids, a unit error. These assets find it and say what it is worth."""

from concurrent.futures import ThreadPoolExecutor
from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from billing_assets.analytics.anomalies import HISTORY_DAYS, anomaly_rows, history_days
from billing_assets.analytics.detect import FINDINGS
from billing_assets.analytics.schemas import SessionRow, UsageAnomalyRow
from billing_assets.analytics.sessions import sessions_of_day
from billing_assets.lib.automation import follows_upstream
from billing_assets.lib.checks import markdown_preview, table_metadata
from billing_assets.lib.lake import BillingLake
from billing_assets.partitions import daily_usage_partitions
from billing_assets.reference.assets import read_reference, read_suppressions


def read_metered(lake: BillingLake, days: list[date]) -> dict[date, pa.Table | None]:
    """``metered_usage`` of each day, None for a day never metered."""
    present = set()
    for month in sorted({day.isoformat()[:7] for day in days}):
        present |= lake.days_present("metered_usage", month)
    wanted = [day for day in days if day.isoformat() in present]
    with ThreadPoolExecutor(max_workers=8) as pool:
        tables = dict(zip(wanted, pool.map(lambda day: lake.read_table("metered_usage", day.isoformat()), wanted)))
    return {day: tables.get(day) for day in days}


@dg.asset(
    deps=[dg.AssetDep("metered_usage", partition_mapping=dg.TimeWindowPartitionMapping(
              start_offset=-HISTORY_DAYS, allow_nonexistent_upstream_partitions=True)),
          "customers", "contracts", "plans", "meters"],
    partitions_def=daily_usage_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="analytics",
    # a day is judged again when any day its baseline reads is re-metered, but only a day that was
    # judged before: the window reaches 34 days ahead, into days not metered yet
    automation_condition=follows_upstream() & ~dg.AutomationCondition.missing(),
    owners=["team:billing"],
    kinds={"s3", "parquet"},
    metadata=table_metadata("usage_anomalies", UsageAnomalyRow),
)
def usage_anomalies(context: dg.AssetExecutionContext, lake: BillingLake) -> dg.MaterializeResult:
    """Each active contract × priced meter judged against its own history: a meter that stopped
    reporting, a drop, a spike or a level shift, with what was observed, the baseline and the days
    it came from, the rule, the revenue at risk priced through the plan and one sentence to act on.
    Known migrations in reference/anomaly_suppressions.csv are marked, not flagged. A day is
    judged again when late data re-meters it or any of the days its baseline reads."""
    reference = read_reference(lake)
    suppressions = read_suppressions(lake, reference)
    days = [date.fromisoformat(key) for key in context.partition_keys]
    usage = read_metered(lake, sorted({d for day in days for d in history_days(day)}))
    findings, risk, last = {kind: 0 for kind in FINDINGS}, {}, None
    for day in days:
        table = anomaly_rows(day, usage, reference, suppressions)
        lake.write_table("usage_anomalies", day.isoformat(), table)
        for row in table.filter(pc.is_in(table.column("kind"), pa.array(FINDINGS))).to_pylist():
            if row["suppressed_by"] is None:
                findings[row["kind"]] += 1
                if row["revenue_at_risk_minor"] is not None:
                    risk[row["currency"]] = risk.get(row["currency"], 0) + row["revenue_at_risk_minor"]
        last = table
    metadata = {**{f"findings/{kind}": count for kind, count in findings.items()},
                **{f"revenue_at_risk_minor/{currency}": amount for currency, amount in sorted(risk.items())}}
    if len(days) == 1:
        flagged = last.filter(pc.is_in(last.column("kind"), pa.array(FINDINGS)))
        metadata |= {"dagster/row_count": last.num_rows,
                     "preview": markdown_preview((flagged if flagged.num_rows else last).select(
                         ["customer_id", "meter", "kind", "observed", "baseline", "revenue_at_risk_minor",
                          "explanation"]))}
    return dg.MaterializeResult(metadata=metadata)


SESSION_COLUMNS = ["object_key", "line_number", "event_id", "timestamp", "meter", "customer_id", "ip_prefix",
                   "quantity", "unique_value", "properties"]


@dg.asset(
    deps=["usage_events", "meters"],
    partitions_def=daily_usage_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="analytics",
    automation_condition=follows_upstream(),
    owners=["team:billing"],
    kinds={"s3", "parquet"},
    metadata=table_metadata("sessions", SessionRow),
)
def sessions(context: dg.AssetExecutionContext, lake: BillingLake) -> dg.MaterializeResult:
    """The day's sessions per customer: events that carry properties.session_id grouped by it,
    the rest by IP prefix with a new session after 30 minutes of silence; each with its start,
    end, duration, events and quantity per meter (aggregated as metering aggregates)."""
    aggregation = read_reference(lake).meter_aggregation()
    totals, last = {"sessions": 0, "given": 0, "events": 0}, None
    for day in context.partition_keys:
        with lake.local_partition("usage_events", day) as path:
            events = pq.read_table(path, columns=SESSION_COLUMNS)
        table = sessions_of_day(date.fromisoformat(day), events, aggregation)
        lake.write_table("sessions", day, table)
        totals["sessions"] += table.num_rows
        totals["given"] += table.num_rows - (pc.sum(pc.starts_with(table.column("session_id"), "gap:")).as_py() or 0)
        totals["events"] += events.num_rows
        last = table
    metadata = {"sessions": totals["sessions"], "sessions_with_given_id": totals["given"],
                "events": totals["events"]}
    if len(context.partition_keys) == 1:
        metadata |= {"dagster/row_count": last.num_rows, "preview": markdown_preview(last)}
    return dg.MaterializeResult(metadata=metadata)

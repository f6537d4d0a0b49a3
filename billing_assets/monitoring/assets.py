"""The monthly reconciliation with its blocking check, and the daily SLA report."""

from datetime import datetime

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from billing_assets.invoicing.build import build_invoices
from billing_assets.lib.automation import follows_upstream
from billing_assets.lib.checks import DUCKDB_CONFIG, markdown_preview, parquet_relation, table_metadata
from billing_assets.lib.lake import BillingLake
from billing_assets.monitoring.reconcile import breaks, reconcile_month
from billing_assets.monitoring.schemas import ReconciliationRow, SlaReportRow
from billing_assets.monitoring.sla import SLA_REPORT_SCHEMA, SlaPolicy, invoices_issued_at, materialised_at
from billing_assets.partitions import daily_usage_partitions, monthly_billing_partitions
from billing_assets.rating.assets import metered_month
from billing_assets.reference.assets import read_reference
from billing_assets.usage.assets import raw_prefix

RECONCILIATION_TIES = "reconciliation_ties"


def _accepted_month(lake: BillingLake, month: str) -> pa.Table:
    """Accepted events per customer and meter over the month's days, counted by DuckDB over
    each stored day (another engine than metering's, and never a day held in memory)."""
    counts = []
    for day in sorted(lake.days_present("usage_events", month)):
        with lake.local_partition("usage_events", day) as path, duckdb.connect(config=DUCKDB_CONFIG) as connection:
            counts.append(connection.sql(f"SELECT customer_id, meter, count(*) AS events FROM {parquet_relation(path)} "
                                         "GROUP BY ALL").to_arrow_table())
    if not counts:
        return pa.table({"customer_id": pa.array([], pa.string()), "meter": pa.array([], pa.string()),
                         "events": pa.array([], pa.int64())})
    total = pa.concat_tables(counts).group_by(["customer_id", "meter"]).aggregate([("events", "sum")])
    return total.rename_columns(["customer_id", "meter", "events"])


@dg.asset(
    deps=["usage_events", "metered_usage", "rated_charges", "invoice_lines", "invoices", "invoice_adjustments"],
    partitions_def=monthly_billing_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="monitoring",
    automation_condition=follows_upstream(),
    owners=["team:billing"],
    kinds={"s3", "parquet"},
    metadata=table_metadata("reconciliation", ReconciliationRow),
    check_specs=[dg.AssetCheckSpec(RECONCILIATION_TIES, asset="reconciliation", blocking=True,
                                   description="Every tie-out of the month holds exactly.")],
)
def reconciliation(context: dg.AssetExecutionContext, lake: BillingLake):
    """Proof for the month that nothing was lost or counted twice between stages: accepted events
    = metered events per customer and meter; metered period quantity = rated quantity per
    contract and meter; each invoice's total = its lines; each issued invoice plus its
    corrections = what is owed now. A break names customer, meter and difference."""
    reference = read_reference(lake)
    months = context.partition_keys
    found: dict[str, list[str]] = {}
    counted: dict[str, int] = {}
    last, key = None, None
    for month in months:
        metered, _ = metered_month(lake, month)
        rated = lake.read_table("rated_charges", month)
        invoices = lake.read_table("invoices", month)
        # what is owed now is only tied to issued invoices: an open month's drafts need no rebuild
        issued = pc.any(pc.equal(invoices.column("status"), "issued")).as_py()
        table = reconcile_month(
            month, _accepted_month(lake, month), metered, rated, invoices, lake.read_table("invoice_lines", month),
            lake.read_table("invoice_adjustments", month), build_invoices(month, rated, reference) if issued else [],
            reference)
        key, _ = lake.write_table("reconciliation", month, table)
        found[month], counted[month], last = breaks(table), table.num_rows, table
    tie_outs = sum(counted.values())
    every_break = [entry for month in months for entry in found[month]]
    metadata = {"dagster/row_count": tie_outs, "breaks": len(every_break)}
    if len(months) == 1:
        metadata |= {"dagster/uri": lake.uri(key), "preview": markdown_preview(last)}
    yield dg.MaterializeResult(metadata=metadata)
    if len(months) > 1:
        # as the daily checks do in a range run: each month's outcome recorded against that month
        for month in months:
            context.log_event(dg.AssetCheckEvaluation(
                asset_key=context.asset_key, check_name=RECONCILIATION_TIES, passed=not found[month], partition=month,
                metadata={"tie_outs": counted[month], "breaks": "\n".join(found[month][:50]) or "none"}))
    yield dg.AssetCheckResult(check_name=RECONCILIATION_TIES, passed=not every_break,
                              metadata={"tie_outs": tie_outs, "breaks": "\n".join(every_break[:50]) or "none",
                                        "failed_months": ", ".join(m for m in months if found[m]) or "none"})


def sla_rows(lake: BillingLake, instance: dg.DagsterInstance, day: str, sla: SlaPolicy,
             issued: datetime | None) -> list[dict]:
    """The day's report rows; ``issued`` is when the day's month was invoiced, if it was."""
    deadline = sla.metered_deadline(day)
    objects = sorted(lake.list_objects(raw_prefix(day)), key=lambda item: item.key)
    ingested = [at for at, _ in materialised_at(instance, "usage_events", day)]
    metered = [at for at, _ in materialised_at(instance, "metered_usage", day)]
    last_landed = max((item.last_modified for item in objects), default=None)
    complete = sorted(at for at in metered if last_landed is None or at >= last_landed)
    lateness = None if not complete else max(0, int((complete[0] - deadline).total_seconds()))
    shared = {"dt": day, "deadline": deadline, "ingested_at": max(ingested, default=None),
              "metered_at": max(metered, default=None), "metered_lateness_seconds": lateness,
              "invoices_issued_at": issued}
    if not objects:
        return [shared | {"object_key": None, "landed_at": None, "landed_after_deadline": None,
                          "landed_after_invoicing": None}]
    return [shared | {"object_key": item.key, "landed_at": item.last_modified,
                      "landed_after_deadline": item.last_modified > deadline,
                      "landed_after_invoicing": issued is not None and item.last_modified > issued}
            for item in objects]


@dg.asset(
    deps=["metered_usage"],
    partitions_def=daily_usage_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="sla",
    owners=["team:billing"],
    kinds={"s3", "parquet"},
    automation_condition=follows_upstream(),
    metadata=table_metadata("sla_report", SlaReportRow),
)
def sla_report(context: dg.AssetExecutionContext, lake: BillingLake, sla: SlaPolicy) -> dg.MaterializeResult:
    """For each usage day: when each raw file landed, when the day was ingested and metered, how
    late against the metering deadline, and which files arrived after the month's invoices were
    issued (those reach customers as credit notes or adjustment invoices)."""
    rows, key, issued = [], None, {}
    for day in context.partition_keys:
        if day[:7] not in issued:  # one listing of a month's documents, however many of its days
            issued[day[:7]] = invoices_issued_at(lake, day[:7])
        day_rows = sla_rows(lake, context.instance, day, sla, issued[day[:7]])
        key, _ = lake.write_table("sla_report", day, pa.Table.from_pylist(day_rows, schema=SLA_REPORT_SCHEMA))
        rows += day_rows
    table = pa.Table.from_pylist(rows, schema=SLA_REPORT_SCHEMA)
    late = [row for row in rows if row["metered_lateness_seconds"]]
    metadata = {
        "dagster/row_count": table.num_rows,
        "files_after_deadline": sum(bool(row["landed_after_deadline"]) for row in rows),
        "files_after_invoicing": sum(bool(row["landed_after_invoicing"]) for row in rows),
        "days_metered_late": len({row["dt"] for row in late}),
    }
    if len(context.partition_keys) == 1:
        metadata |= {"dagster/uri": lake.uri(key), "preview": markdown_preview(table)}
    return dg.MaterializeResult(metadata=metadata)

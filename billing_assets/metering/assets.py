"""Daily metered usage, from accepted events."""


from datetime import date, timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from billing_assets.lib.automation import follows_upstream
from billing_assets.lib.checks import markdown_preview, table_metadata
from billing_assets.lib.engine import BillingEngine
from billing_assets.lib.lake import BillingLake
from billing_assets.lib.memory import give_back_memory
from billing_assets.metering.aggregate import meter_batches
from billing_assets.metering.schemas import MeteredUsage
from billing_assets.partitions import daily_usage_partitions
from billing_assets.reference.assets import read_reference

METERING_BATCH_ROWS = 1 << 20
METERED_COLUMNS = ["event_id", "timestamp", "meter", "customer_id", "quantity", "unique_value"]  # what metering reads


@dg.asset(
    deps=["usage_events", "meters"],
    partitions_def=daily_usage_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="metering",
    automation_condition=follows_upstream(),
    # asset-level health in the UI; the per-day SLA is the metered_by_deadline check
    freshness_policy=dg.FreshnessPolicy.cron(deadline_cron="0 6 * * *", lower_bound_delta=timedelta(hours=24)),
    owners=["team:billing"],
    kinds={"s3", "parquet"},
    metadata=table_metadata("metered_usage", MeteredUsage),
)
def metered_usage(context: dg.AssetExecutionContext, lake: BillingLake, engine: BillingEngine) -> dg.MaterializeResult:
    """Usage per customer, meter and UTC day, aggregated exactly by the meter's rule, with what a
    monthly aggregate needs: the day's distinct values (unique_count) and its latest event (latest)."""
    if engine.is_spark:
        (result,) = engine.run_spark(context, "meter")
        return result
    aggregation = read_reference(lake).meter_aggregation()
    tables, uri = {}, None
    for day in context.partition_keys:
        with lake.local_partition("usage_events", day) as path:  # a day's events are read a batch at a time
            table = meter_batches(date.fromisoformat(day), pq.ParquetFile(path).iter_batches(
                METERING_BATCH_ROWS, columns=METERED_COLUMNS), aggregation)
        give_back_memory()
        key, _ = lake.write_table("metered_usage", day, table)
        uri, tables[day] = lake.uri(key), table
    return dg.MaterializeResult(metadata=metered_metadata(tables, uri) | {"engine": "local"})


def metered_metadata(tables: dict[str, pa.Table], uri: str | None) -> dict:
    """What a materialisation of metered days says, whichever engine metered them."""
    combined = pa.concat_tables(tables.values())
    events = int(pc.sum(combined.column("event_count")).as_py() or 0)
    metadata = {
        "dagster/row_count": combined.num_rows,
        "events_metered": events,
        "customers": len(set(combined.column("customer_id").to_pylist())),
    }
    if len(tables) == 1:
        metadata |= {"dagster/uri": uri, "preview": markdown_preview(combined)}
    return metadata

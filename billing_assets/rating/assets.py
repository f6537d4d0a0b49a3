"""Monthly rated charges, from the month's daily metered usage."""

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from billing_assets.lib.automation import follows_upstream
from billing_assets.lib.checks import markdown_preview, table_metadata
from billing_assets.lib.lake import BillingLake
from billing_assets.metering.aggregate import METERED_USAGE_SCHEMA
from billing_assets.partitions import monthly_billing_partitions
from billing_assets.rating.rate import month_days, rate_month
from billing_assets.rating.schemas import RatedCharge
from billing_assets.reference.assets import read_reference


def metered_month(lake: BillingLake, month: str) -> tuple[pa.Table, list[str]]:
    """The month's metered rows, and the days that have no metered partition yet."""
    tables = lake.read_month("metered_usage", month)
    missing = [day.isoformat() for day in month_days(month) if day.isoformat() not in tables]
    return (pa.concat_tables(tables.values()) if tables else METERED_USAGE_SCHEMA.empty_table()), missing


@dg.asset(
    deps=[dg.AssetDep("metered_usage", partition_mapping=dg.TimeWindowPartitionMapping()),
          "meters", "plans", "customers", "contracts"],
    partitions_def=monthly_billing_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="rating",
    automation_condition=follows_upstream(),
    owners=["team:billing"],
    kinds={"s3", "parquet"},
    metadata=table_metadata("rated_charges", RatedCharge),
)
def rated_charges(context: dg.AssetExecutionContext, lake: BillingLake) -> dg.MaterializeResult:
    """What each contract's usage costs in a UTC calendar month, line by line: per priced meter
    the contract's exact period aggregate over the days it covers (a unique count over the whole
    span, the latest event of the span), priced by the plan's model with its tier breakdown,
    and the base fee prorated by covered days. Amounts are exact and rounded once, half-up."""
    reference = read_reference(lake)
    totals, uri, missing_days, last = {}, None, [], None
    for month in context.partition_keys:
        metered, missing = metered_month(lake, month)
        table = rate_month(month, metered, reference)
        key, _ = lake.write_table("rated_charges", month, table)
        uri, last = lake.uri(key), table
        missing_days += missing
        for currency in sorted(set(table.column("currency").to_pylist())):
            subset = table.filter(pc.equal(table.column("currency"), currency))
            totals[currency] = totals.get(currency, 0) + int(pc.sum(subset.column("amount_minor")).as_py() or 0)
        context.log.info(f"{month}: {table.num_rows} rated lines; days without metered usage: {len(missing)}")
    metadata = {
        "dagster/row_count": last.num_rows if len(context.partition_keys) == 1 else None,
        "days_not_yet_metered": dg.MetadataValue.json(missing_days),
        **{f"total_minor/{currency}": amount for currency, amount in totals.items()},
    }
    if len(context.partition_keys) == 1:
        metadata |= {"dagster/uri": uri, "preview": markdown_preview(last)}
    return dg.MaterializeResult(metadata={key: value for key, value in metadata.items() if value is not None})

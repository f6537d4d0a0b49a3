"""Blocking checks on metered usage: its pandera contract, and that it ties to accepted events."""


import duckdb
import pyarrow.compute as pc

from billing_assets.lib.checks import DUCKDB_CONFIG, pandera_asset_check, parquet_relation, partition_check
from billing_assets.lib.lake import BillingLake
from billing_assets.metering.schemas import MeteredUsage
from billing_assets.partitions import daily_usage_partitions

metered_usage_matches_contract = pandera_asset_check(
    asset="metered_usage", table="metered_usage", model=MeteredUsage, partitions_def=daily_usage_partitions)


_TIE_OUT = """
    WITH expected AS (
        SELECT customer_id, meter, count(*) AS accepted, sum(quantity) AS total FROM events GROUP BY ALL)
    SELECT coalesce(m.customer_id, e.customer_id) AS customer_id, coalesce(m.meter, e.meter) AS meter,
           m.aggregation, m.event_count, coalesce(e.accepted, 0) AS accepted, m.quantity, e.total
    FROM metered AS m FULL OUTER JOIN expected AS e ON m.customer_id = e.customer_id AND m.meter = e.meter
    WHERE m.event_count IS DISTINCT FROM coalesce(e.accepted, 0)
       OR (m.aggregation = 'sum' AND m.quantity IS DISTINCT FROM e.total)
    ORDER BY 1, 2"""


def ties_to_events(lake: BillingLake, day: str) -> tuple[bool, dict]:
    """Recompute, with another engine (DuckDB over the stored Parquet, exact DECIMAL sums), what
    each customer × meter should hold: the number of accepted events, and for sum meters their
    exact total."""
    metered = lake.read_table("metered_usage", day).select(
        ["customer_id", "meter", "aggregation", "quantity", "event_count"])
    with lake.local_partition("usage_events", day) as path, duckdb.connect(config=DUCKDB_CONFIG) as connection:
        connection.execute(f"CREATE VIEW events AS SELECT customer_id, meter, quantity FROM {parquet_relation(path)}")
        connection.register("metered", metered)
        rows = connection.sql(_TIE_OUT).fetchall()
        accepted = connection.sql("SELECT count(*) FROM events").fetchall()[0][0]
    breaks = []
    for customer, meter, aggregation, event_count, accepted, quantity, total in rows:
        key = (customer, meter)
        if event_count is None:
            breaks.append(f"{key}: {accepted} accepted events but no metered row")
        elif event_count != accepted:
            breaks.append(f"{key}: event_count {event_count} vs {accepted} accepted events")
        else:
            breaks.append(f"{key}: quantity {quantity} vs accepted total {total}")
    return not breaks, {
        "accepted_events": accepted,
        "metered_events": int(pc.sum(metered.column("event_count")).as_py() or 0),
        "breaks": len(breaks),
        **({"first_breaks": "\n".join(breaks[:20])} if breaks else {}),
    }


metered_usage_ties_to_events = partition_check(
    asset="metered_usage",
    name="metered_usage_ties_to_events",
    description="Metered event counts equal accepted events per customer and meter, and sum meters' "
                "quantities equal the exact total of accepted quantities.",
    partitions_def=daily_usage_partitions,
    evaluate=ties_to_events,
)

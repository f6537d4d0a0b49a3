"""Blocking checks on metered usage: its pandera contract, and that it ties to accepted events."""


from collections import defaultdict
from decimal import Decimal

from billing_assets.lib.checks import pandera_asset_check, partition_check
from billing_assets.lib.lake import BillingLake
from billing_assets.metering.schemas import MeteredUsage
from billing_assets.partitions import daily_usage_partitions

metered_usage_matches_contract = pandera_asset_check(
    asset="metered_usage", table="metered_usage", model=MeteredUsage, partitions_def=daily_usage_partitions)


def ties_to_events(lake: BillingLake, day: str) -> tuple[bool, dict]:
    """Recompute, row by row in plain Python decimals, what each customer × meter should hold:
    the number of accepted events, and for sum meters their exact total."""
    events = lake.read_table("usage_events", day).select(["customer_id", "meter", "quantity"]).to_pylist()
    metered = lake.read_table("metered_usage", day).select(
        ["customer_id", "meter", "aggregation", "quantity", "event_count"]).to_pylist()
    expected_count: dict[tuple, int] = defaultdict(int)
    expected_sum: dict[tuple, Decimal] = defaultdict(Decimal)
    for event in events:
        key = (event["customer_id"], event["meter"])
        expected_count[key] += 1
        expected_sum[key] += event["quantity"]
    breaks = []
    for row in metered:
        key = (row["customer_id"], row["meter"])
        accepted = expected_count.pop(key, 0)
        if row["event_count"] != accepted:
            breaks.append(f"{key}: event_count {row['event_count']} vs {accepted} accepted events")
        elif row["aggregation"] == "sum" and row["quantity"] != expected_sum[key]:
            breaks.append(f"{key}: quantity {row['quantity']} vs accepted total {expected_sum[key]}")
    breaks += [f"{key}: {count} accepted events but no metered row" for key, count in expected_count.items()]
    return not breaks, {
        "accepted_events": len(events),
        "metered_events": sum(row["event_count"] for row in metered),
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

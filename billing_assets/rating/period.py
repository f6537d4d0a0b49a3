"""A contract's period aggregate of a meter, from the daily metered rows of the days it covers.

Exact by construction: a unique count is the size of the union of the days' value sets (never
a sum of daily counts), and latest compares the days' winning events."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal


def period_quantity(aggregation: str, days: Iterable[dict]) -> Decimal:
    """``days``: ``metered_usage`` rows (dicts) of one customer and meter, any order."""
    rows = list(days)
    if not rows:
        return Decimal(0)
    if aggregation in ("sum", "count"):
        return sum((row["quantity"] for row in rows), Decimal(0))
    if aggregation == "max":
        return max(row["quantity"] for row in rows)
    if aggregation == "unique_count":
        return Decimal(len(set().union(*(row["distinct_values"] or () for row in rows))))
    if aggregation == "latest":
        return max(rows, key=lambda row: (row["latest_timestamp"], row["latest_event_id"]))["quantity"]
    raise ValueError(f"unknown aggregation {aggregation!r}")

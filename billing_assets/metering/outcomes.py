"""What became of a month's lines, per day × customer × meter: accepted (events metered),
duplicate, or quarantined by reason. Grouped in Arrow a day at a time, so a day of millions of
rejected lines is never made into Python rows; the same figures serve the KPIs, the record of
what a month's invoices were issued against, and a remediation's before and after."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from billing_assets.lib.lake import BillingLake
from billing_assets.lib.money import QUANTITY_TYPE

LINE_OUTCOMES_SCHEMA = pa.schema([
    ("day", pa.string()), ("customer_id", pa.string()), ("meter", pa.string()), ("outcome", pa.string()),
    ("reason", pa.string()), ("lines", pa.int64()),
    # quarantined lines' Σ quantity where the lines gave one (what they would have added); else null
    ("quantity", QUANTITY_TYPE),
])
# table → (outcome, group keys, aggregations): an accepted line is an event metered
_SOURCES = {
    "metered_usage": ("accepted", ["customer_id", "meter"], [("event_count", "sum")]),
    "duplicate_events": ("duplicate", ["customer_id", "meter"], [([], "count_all")]),
    "quarantined_events": ("quarantined", ["customer_id", "meter", "reason"], [([], "count_all"), ("quantity", "sum")]),
}
_NAMES = {"event_count_sum": "lines", "count_all": "lines", "quantity_sum": "quantity"}
# a day's partition is grouped this many rows at a time: a 50M-event day's 17M quarantined rows,
# read whole, took the monthly run to 2 GiB
OUTCOME_BATCH_ROWS = 1 << 20


def _regrouped(partials: list[pa.Table], keys: list[str]) -> pa.Table:
    """Partial groups folded into one row per key: lines and quantities add up exactly (a
    group whose every quantity is null stays null, as in one pass)."""
    both = pa.concat_tables(partials)
    aggregations = [(name, "sum") for name in ("lines", "quantity") if name in both.column_names]
    folded = both.group_by(keys, use_threads=False).aggregate(aggregations)
    return folded.rename_columns([name.removesuffix("_sum") for name in folded.column_names])


def _day_groups(lake: BillingLake, table: str, day: str, batch_rows: int) -> pa.Table:
    outcome, keys, aggregations = _SOURCES[table]
    columns = keys + [column for column, _ in aggregations if column]
    grouped = None
    with lake.local_partition(table, day) as path:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=columns):
            partial = pa.Table.from_batches([batch]).group_by(keys, use_threads=False).aggregate(aggregations)
            partial = partial.rename_columns([_NAMES.get(name, name) for name in partial.column_names])
            grouped = partial if grouped is None else _regrouped([grouped, partial], keys)
    if grouped is None:  # a partition of no rows
        grouped = pa.table({**{key: pa.array([], pa.string()) for key in keys}, "lines": pa.array([], pa.int64())})
    size = grouped.num_rows
    return pa.table({
        "day": pa.array([day] * size, pa.string()),
        "customer_id": grouped.column("customer_id"), "meter": grouped.column("meter"),
        "outcome": pa.array([outcome] * size, pa.string()),
        "reason": grouped.column("reason") if "reason" in keys else pa.nulls(size, pa.string()),
        "lines": grouped.column("lines").cast(pa.int64()),
        "quantity": (grouped.column("quantity").cast(QUANTITY_TYPE) if "quantity" in grouped.column_names
                     else pa.nulls(size, QUANTITY_TYPE)),
    }, schema=LINE_OUTCOMES_SCHEMA)


def line_outcomes(lake: BillingLake, month: str, batch_rows: int = OUTCOME_BATCH_ROWS) -> pa.Table:
    """The month's lines as they stand now, one row per day × customer × meter × outcome (× reason)."""
    parts = [_day_groups(lake, table, day, batch_rows) for table in _SOURCES for day in sorted(lake.days_present(table, month))]
    return pa.concat_tables(parts) if parts else LINE_OUTCOMES_SCHEMA.empty_table()


def of_outcome(outcomes: pa.Table, outcome: str) -> pa.Table:
    return outcomes.filter(pc.equal(outcomes.column("outcome"), outcome))

"""Daily metering: one row per customer × meter × day, carrying what an exact monthly
aggregate needs (a monthly unique count is a union of daily value sets, never a sum of
daily counts; a monthly latest compares the daily latest events)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from billing_assets.lib.money import QUANTITY_TYPE

METERED_USAGE_SCHEMA = pa.schema([
    ("day", pa.date32()),
    ("customer_id", pa.string()),
    ("meter", pa.string()),
    ("aggregation", pa.string()),
    ("quantity", QUANTITY_TYPE),
    ("event_count", pa.int64()),
    ("latest_timestamp", pa.timestamp("ns", tz="UTC")),
    ("latest_event_id", pa.string()),
    ("distinct_values", pa.list_(pa.string())),
])
_KEYS = ["customer_id", "meter"]


def meter_day(day: date, events: pa.Table, aggregation: dict[str, str]) -> pa.Table:
    """Aggregate one day of accepted ``usage_events`` by each meter's aggregation."""
    if events.num_rows == 0:
        return METERED_USAGE_SCHEMA.empty_table()
    by_key = [("customer_id", "ascending"), ("meter", "ascending")]
    totals = events.group_by(_KEYS).aggregate([
        ("quantity", "sum"), ("quantity", "max"), ("event_id", "count"),
    ]).sort_by(by_key)
    totals = totals.append_column("aggregation", pa.array(
        [aggregation[name] for name in totals.column("meter").to_pylist()], pa.string()))

    # each event's meter looked up once; the rows of one kind of meter are then picked by number
    meter_names = sorted(aggregation)
    meter_number = pc.index_in(events.column("meter"), value_set=pa.array(meter_names, pa.string())).to_numpy(
        zero_copy_only=False)

    def meters_aggregated_by(kind: str, *columns: str) -> pa.Table:
        numbers = [number for number, name in enumerate(meter_names) if aggregation[name] == kind]
        return events.select([*_KEYS, *columns]).filter(pa.array(np.isin(meter_number, numbers)))

    # latest: the event with the greatest timestamp, ties broken by the greatest event_id. The
    # sort keys are the instant first so that strings are only compared between equal instants;
    # the first row of each customer × meter in that order wins.
    latest_events = meters_aggregated_by("latest", "timestamp", "event_id", "quantity")
    ordered = latest_events.sort_by([("timestamp", "descending"), ("event_id", "descending")])
    ordered = ordered.append_column("position", pa.array(np.arange(ordered.num_rows, dtype=np.int64)))
    winners = ordered.group_by(_KEYS).aggregate([("position", "min")]).column("position_min")
    won = ordered.take(winners)
    latest = {
        (customer, meter): (stamp, event_id, quantity)
        for customer, meter, stamp, event_id, quantity in zip(
            won.column("customer_id").to_pylist(), won.column("meter").to_pylist(),
            won.column("timestamp").cast(pa.int64()).to_pylist(), won.column("event_id").to_pylist(),
            won.column("quantity").to_pylist())
    }
    unique = meters_aggregated_by("unique_count", "unique_value")
    distinct = unique.group_by(_KEYS).aggregate([("unique_value", "distinct")])
    values_of = {
        (customer, meter): sorted(values)
        for customer, meter, values in zip(*(distinct.column(name).to_pylist()
                                              for name in ("customer_id", "meter", "unique_value_distinct")))
    }
    keys = list(zip(totals.column("customer_id").to_pylist(), totals.column("meter").to_pylist()))
    winner = [latest.get(key, (None, None, None)) for key in keys]
    joined = totals.append_column("timestamp_first", pa.array([w[0] for w in winner], pa.int64())
                                  .cast(pa.timestamp("ns", tz="UTC"))) \
        .append_column("event_id_first", pa.array([w[1] for w in winner], pa.string())) \
        .append_column("quantity_first", pa.array([w[2] for w in winner], QUANTITY_TYPE)) \
        .append_column("unique_value_distinct", pa.array([values_of.get(key) for key in keys], pa.list_(pa.string())))
    kind = joined.column("aggregation")
    count = joined.column("event_id_count")
    quantity = pc.case_when(
        pc.make_struct(pc.equal(kind, "sum"), pc.equal(kind, "max"), pc.equal(kind, "latest"), pc.equal(kind, "count")),
        joined.column("quantity_sum").cast(QUANTITY_TYPE),
        joined.column("quantity_max"),
        joined.column("quantity_first"),
        count.cast(QUANTITY_TYPE),
        pc.list_value_length(joined.column("unique_value_distinct")).cast(QUANTITY_TYPE),
    )
    is_latest = pc.equal(kind, "latest")
    result = pa.table({
        "day": pa.array([day] * joined.num_rows, pa.date32()),
        "customer_id": joined.column("customer_id"),
        "meter": joined.column("meter"),
        "aggregation": kind,
        "quantity": quantity,
        "event_count": count.cast(pa.int64()),
        "latest_timestamp": pc.if_else(is_latest, joined.column("timestamp_first"),
                                       pa.nulls(joined.num_rows, pa.timestamp("ns", tz="UTC"))),
        "latest_event_id": pc.if_else(is_latest, joined.column("event_id_first"), pa.nulls(joined.num_rows, pa.string())),
        "distinct_values": joined.column("unique_value_distinct"),
    }, schema=METERED_USAGE_SCHEMA)
    return result.sort_by([("customer_id", "ascending"), ("meter", "ascending")])


def merge_metered(day: date, parts: list[pa.Table]) -> pa.Table:
    """Daily metered rows of one day computed over disjoint batches of its events, merged into
    what ``meter_day`` gives over all of them: sums and counts add, max keeps the greatest,
    latest keeps the latest winner (ties by event_id), and a unique count is the size of the
    union of the batches' value sets."""
    parts = [part for part in parts if part.num_rows]
    if len(parts) <= 1:
        return parts[0] if parts else METERED_USAGE_SCHEMA.empty_table()
    rows = pa.concat_tables(parts).combine_chunks()
    totals = rows.group_by(_KEYS + ["aggregation"], use_threads=False).aggregate([
        ("quantity", "sum"), ("quantity", "max"), ("event_count", "sum")]).sort_by([(key, "ascending") for key in _KEYS])
    ordered = rows.filter(pc.equal(rows.column("aggregation"), "latest")).sort_by(
        [("latest_timestamp", "descending"), ("latest_event_id", "descending")])
    ordered = ordered.append_column("position", pa.array(np.arange(ordered.num_rows, dtype=np.int64)))
    won = ordered.take(ordered.group_by(_KEYS).aggregate([("position", "min")]).column("position_min"))
    latest = {key: row for key, row in zip(zip(won.column("customer_id").to_pylist(), won.column("meter").to_pylist()),
                                            won.select(["quantity", "latest_timestamp", "latest_event_id"]).to_pylist())}
    unique = rows.filter(pc.equal(rows.column("aggregation"), "unique_count"))
    values: dict[tuple, set] = {}
    for customer, meter, distinct in zip(*(unique.column(name).to_pylist()
                                           for name in ("customer_id", "meter", "distinct_values"))):
        values.setdefault((customer, meter), set()).update(distinct or ())
    keys = list(zip(totals.column("customer_id").to_pylist(), totals.column("meter").to_pylist()))
    kinds = totals.column("aggregation").to_pylist()
    sums, maxima = totals.column("quantity_sum").to_pylist(), totals.column("quantity_max").to_pylist()
    quantity = [maxima[i] if kind == "max" else latest[key]["quantity"] if kind == "latest"
                else len(values[key]) if kind == "unique_count" else sums[i]
                for i, (key, kind) in enumerate(zip(keys, kinds))]
    return pa.table({
        "day": pa.array([day] * len(keys), pa.date32()),
        "customer_id": totals.column("customer_id"), "meter": totals.column("meter"),
        "aggregation": totals.column("aggregation"),
        "quantity": pa.array([Decimal(value) for value in quantity], QUANTITY_TYPE),
        "event_count": totals.column("event_count_sum").cast(pa.int64()),
        "latest_timestamp": pa.array([latest[key]["latest_timestamp"] if kind == "latest" else None
                                      for key, kind in zip(keys, kinds)], pa.timestamp("ns", tz="UTC")),
        "latest_event_id": pa.array([latest[key]["latest_event_id"] if kind == "latest" else None
                                     for key, kind in zip(keys, kinds)], pa.string()),
        "distinct_values": pa.array([sorted(values[key]) if kind == "unique_count" else None
                                     for key, kind in zip(keys, kinds)], pa.list_(pa.string())),
    }, schema=METERED_USAGE_SCHEMA)


def meter_batches(day: date, batches, aggregation: dict[str, str]) -> pa.Table:
    """``meter_day`` over a day's events given batch by batch (never all held at once)."""
    return merge_metered(day, [meter_day(day, pa.Table.from_batches([batch]), aggregation) for batch in batches])

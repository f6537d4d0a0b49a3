"""`sessions` of one day (CONTRACT.md §9): accepted events grouped per customer × the session
id their producer gave (`properties.session_id`), and the rest per customer × IP prefix, a new
session after 30 minutes without an event. A session's quantity per meter is what metering
would make of its events (metering.aggregate.meter_day, the one implementation of each meter's
aggregation), so a session's sums, maxima, latest values and unique counts are exact."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from billing_assets.lib.money import decimal_text
from billing_assets.metering.aggregate import meter_day

INACTIVITY_GAP_NS = 30 * 60 * 10**9
NO_PREFIX = "-"  # an event attributed by customer id carries no IP prefix
_SEPARATOR = "\x1f"  # joins customer and session into metering's customer key; in neither id's alphabet

SESSIONS_SCHEMA = pa.schema([
    ("day", pa.date32()), ("customer_id", pa.string()), ("session_id", pa.string()),
    ("started_at", pa.timestamp("ns", tz="UTC")), ("ended_at", pa.timestamp("ns", tz="UTC")),
    ("duration_seconds", pa.int64()), ("events", pa.int64()), ("quantities", pa.string()),
])


def _given_session_ids(properties: pa.ChunkedArray) -> list[str | None]:
    """``properties.session_id`` of each event as text (a number as its JSON text), else None."""
    ids = []
    for text in properties.to_pylist():
        value = json.loads(text).get("session_id") if text and '"session_id"' in text else None
        ids.append(None if value is None or isinstance(value, (dict, list)) else
                   value if isinstance(value, str) else json.dumps(value))
    return ids


def session_ids(events: pa.Table) -> list[str]:
    """The session of each event: its given id, else ``gap:<ip_prefix>:<n>``, the n-th run of
    the customer's events from that prefix with no gap over 30 minutes, counted from 1 in time
    order (ties by object key and line, the dedupe order, so the numbering is deterministic)."""
    given = _given_session_ids(events.column("properties"))
    prefixes = pc.fill_null(events.column("ip_prefix"), NO_PREFIX).to_pylist()
    customers = events.column("customer_id").to_pylist()
    stamps = events.column("timestamp").cast(pa.int64()).to_numpy()
    def rank(values) -> np.ndarray:  # equal values equal ranks, for lexsort
        return pc.rank(values, tiebreaker="dense").to_numpy()

    order = np.lexsort((events.column("line_number").to_numpy(), rank(events.column("object_key")), stamps,
                        rank(pa.array(prefixes)), rank(events.column("customer_id"))))
    result = list(given)
    key, last, number = None, 0, 0
    for index in order:
        if given[index] is not None:
            continue
        here = (customers[index], prefixes[index])
        if here != key:
            key, number = here, 1
        elif stamps[index] - last > INACTIVITY_GAP_NS:
            number += 1
        last = stamps[index]
        result[index] = f"gap:{prefixes[index]}:{number}"
    return result


def sessions_of_day(day: date, events: pa.Table, aggregation: dict[str, str]) -> pa.Table:
    """The day's ``sessions`` rows, by customer and session id."""
    if events.num_rows == 0:
        return SESSIONS_SCHEMA.empty_table()
    sessions = pa.array(session_ids(events), pa.string())
    keyed = pc.binary_join_element_wise(events.column("customer_id"), sessions, _SEPARATOR)
    spans = pa.table({"key": keyed, "timestamp": events.column("timestamp")}).group_by("key").aggregate([
        ("timestamp", "min"), ("timestamp", "max"), ("timestamp", "count")]).sort_by("key")
    metered = meter_day(day, events.set_column(events.schema.get_field_index("customer_id"), "customer_id", keyed),
                        aggregation)
    quantities: dict[str, dict[str, str]] = {}
    for key, meter, quantity in zip(*(metered.column(name).to_pylist() for name in ("customer_id", "meter", "quantity"))):
        quantities.setdefault(key, {})[meter] = decimal_text(quantity)
    keys = spans.column("key").to_pylist()
    started, ended = spans.column("timestamp_min"), spans.column("timestamp_max")
    duration = pc.divide(pc.subtract(ended.cast(pa.int64()), started.cast(pa.int64())), 10**9)  # whole seconds, down
    return pa.table({
        "day": pa.array([day] * len(keys), pa.date32()),
        "customer_id": pa.array([key.split(_SEPARATOR, 1)[0] for key in keys], pa.string()),
        "session_id": pa.array([key.split(_SEPARATOR, 1)[1] for key in keys], pa.string()),
        "started_at": started, "ended_at": ended, "duration_seconds": duration.cast(pa.int64()),
        "events": spans.column("timestamp_count").cast(pa.int64()),
        "quantities": pa.array([json.dumps(quantities[key], sort_keys=True) for key in keys], pa.string()),
    }, schema=SESSIONS_SCHEMA)

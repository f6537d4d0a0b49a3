"""A day's ingest and metering as Spark runs them: Spark only schedules and shuffles; every rule
is the project's own stage function, called inside ``mapInArrow`` on Arrow batches.

1. per object (``check_objects``): read, lines, parse, checks — ``check_lines`` chunk by chunk;
2. per dedupe bucket (``deduplicate``): after a repartition by the fine bucket of the dedupe key,
   every copy of a key is in one task, where ``first_occurrences`` and ``same_payload`` decide;
3. per object again (``stage_objects``): the object's rows in line order, shaped into the
   published tables by ``published_events``, ``conflict_quarantine`` and friends, and staged;
4. per customer × meter (``meter``): ``meter_day`` over every event of a key at once.

All stages move rows of one wide schema (``ROWS``). Timestamps cross Spark as int64
nanoseconds (Spark's own timestamps stop at microseconds) and quantities as DECIMAL(38, 9),
which Spark carries unchanged.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta, timezone
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from billing_assets.lib.money import QUANTITY_TYPE
from billing_assets.metering.aggregate import meter_day
from billing_assets.usage.ingest.dedupe import (
    PAYLOAD_COLUMNS, dedupe_keys, fine_buckets, first_occurrences, same_payload, tails,
)
from billing_assets.usage.ingest.lines import object_chunks
from billing_assets.usage.ingest.objects import check_lines
from billing_assets.usage.ingest.partition import (
    RawObject, conflict_quarantine, conflict_texts, published_events,
)
from billing_assets.usage.ingest.rules import DUPLICATE_EVENTS_SCHEMA, QUARANTINED_EVENTS_SCHEMA, _PartitionContext
from billing_assets.usage.quarantine import QUARANTINE_RECORD_SCHEMA

NS_UTC = pa.timestamp("ns", tz="UTC")
OBJECTS = pa.schema([("object_index", pa.int64()), ("object_key", pa.string()), ("last_modified_ns", pa.int64())])
ROWS = pa.schema([
    ("object_index", pa.int64()), ("object_key", pa.string()), ("line_number", pa.int64()),
    ("kind", pa.string()),  # passed | rejected | object (one per object: what reading it found)
    ("event_id", pa.string()), ("source", pa.string()), ("timestamp", pa.int64()), ("meter", pa.string()),
    ("customer_id", pa.string()), ("attributed_by", pa.string()), ("ip_prefix", pa.string()),
    ("quantity", QUANTITY_TYPE), ("unique_value", pa.string()), ("properties", pa.string()),
    ("ip_normalised", pa.string()), ("dedupe_key", pa.string()), ("bucket", pa.int32()),
    ("reason", pa.string()), ("detail", pa.string()), ("line", pa.string()),
    ("status", pa.string()),  # of a passed line after dedupe: accepted | duplicate | conflict
    ("first_object_key", pa.string()), ("first_line_number", pa.int64()),
    ("lines", pa.int64()), ("bytes_read", pa.int64()), ("unreadable", pa.string()), ("ignored_fields", pa.int64()),
    ("reasons", pa.string()), ("largest_chunk", pa.int64()),
])
STAGED = pa.schema([("object_index", pa.int64()), ("accepted", pa.int64()), ("duplicates", pa.int64()),
                    ("quarantined", pa.int64()), ("conflicts", pa.int64())])
STAGED_TABLES = ("usage_events", "duplicate_events", "quarantined_events", "records")


def _rows(n: int, **columns) -> pa.RecordBatch:
    """A batch of ``ROWS`` with ``columns`` given, every other column null."""
    return pa.RecordBatch.from_arrays(
        [pa.array(columns[f.name], f.type) if isinstance(columns.get(f.name), list)
         else columns[f.name].cast(f.type) if f.name in columns else pa.nulls(n, f.type) for f in ROWS], schema=ROWS)


def _conform(batches: Iterator[pa.RecordBatch], schema: pa.Schema = ROWS) -> Iterator[pa.RecordBatch]:
    # Spark may hand strings over as large_string, whatever the schema said
    for batch in batches:
        yield batch if batch.schema.equals(schema) else batch.cast(schema)


def check_objects(ctx: _PartitionContext, chunk_bytes: int | None,
                  open_object: Callable[[str], io.BufferedIOBase]) -> Callable:
    """Stage 1 over batches of ``OBJECTS``: each object's passed and rejected lines, then one
    ``object`` row with what reading it found. An object found unreadable late (a corrupt
    gzip's end) has given rows already; its ``object`` row says so and later stages drop them."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in _conform(batches, OBJECTS):
            for index, key, modified in zip(*(batch.column(i).to_pylist() for i in range(3))):
                # whole microseconds, as datetime holds them, by integer arithmetic (a float drifts)
                landed = datetime.fromtimestamp(modified // 10**9, timezone.utc) + timedelta(
                    microseconds=modified % 10**9 // 1000)
                yield from _object_rows(index, key, landed, open_object(key))

    def _object_rows(index, key, modified, stream) -> Iterator[pa.RecordBatch]:
        lines_seen = ignored = largest = bytes_read = 0
        reasons: Counter = Counter()
        for lines in object_chunks(key, stream, chunk_bytes):
            bytes_read = lines.bytes_read
            if lines.unreadable:
                yield _rows(1, object_index=[index], object_key=[key], kind=["object"], bytes_read=[bytes_read],
                            unreadable=[lines.unreadable], lines=[0])
                return
            if lines.is_empty:
                continue
            done = check_lines(lines, modified, ctx)
            lines_seen += len(lines.line_numbers)
            largest = max(largest, len(lines.line_numbers))
            ignored += done.ignored_fields
            reasons.update(done.reasons)
            good = done.passed
            event_id = good.column("event_id").combine_chunks()
            n = good.num_rows
            yield _rows(n, object_index=pa.repeat(pa.scalar(index, pa.int64()), n),
                        object_key=pa.repeat(pa.scalar(key, pa.string()), n), kind=pa.repeat(pa.scalar("passed"), n),
                        **{name: good.column(name).combine_chunks() for name in PASSED_WIDE},
                        timestamp=good.column("timestamp").combine_chunks().cast(pa.int64()),
                        dedupe_key=dedupe_keys(good.column("source").combine_chunks(), event_id),
                        bucket=pa.array(fine_buckets(tails(event_id)).astype(np.int32)))
            if done.rejected is not None:
                bad, m = done.rejected, done.rejected.num_rows
                yield _rows(m, object_index=pa.repeat(pa.scalar(index, pa.int64()), m),
                            object_key=pa.repeat(pa.scalar(key, pa.string()), m), kind=pa.repeat(pa.scalar("rejected"), m),
                            **{name: bad.column(name).combine_chunks() for name in REJECTED_WIDE})
        yield _rows(1, object_index=[index], object_key=[key], kind=["object"], lines=[lines_seen],
                    bytes_read=[bytes_read], ignored_fields=[ignored], reasons=[json.dumps(dict(reasons))],
                    largest_chunk=[largest])

    return run


PASSED_WIDE = ["line_number", "event_id", "source", "meter", "customer_id", "attributed_by", "ip_prefix",
               "quantity", "unique_value", "properties", "ip_normalised"]
REJECTED_WIDE = ["line_number", "reason", "detail", "customer_id", "meter", "quantity", "line"]


def deduplicate(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Stage 2 over one task's passed lines (every copy of each of its keys): the first copy in
    (object, line) order is accepted; a later one a duplicate, or a conflict if its payload differs."""
    table = pa.Table.from_batches(list(_conform(batches)), ROWS)
    if not table.num_rows:
        return
    table = table.sort_by([("object_index", "ascending"), ("line_number", "ascending")]).combine_chunks()
    repeat, first = first_occurrences(table.column("dedupe_key").combine_chunks(), np.arange(table.num_rows))
    conflict = ~same_payload(table.select(PAYLOAD_COLUMNS).take(pa.array(repeat)),
                             table.select(PAYLOAD_COLUMNS).take(pa.array(first)))
    status = np.full(table.num_rows, "accepted", dtype=object)
    status[repeat] = np.where(conflict, "conflict", "duplicate")
    first_of = np.full(table.num_rows, -1)
    first_of[repeat] = first
    has_first = pa.array(first_of >= 0)
    pointer = pa.array(np.maximum(first_of, 0))
    table = table.set_column(table.schema.get_field_index("status"), "status", pa.array(status, pa.string()))
    for name, source in (("first_object_key", "object_key"), ("first_line_number", "line_number")):
        table = table.set_column(table.schema.get_field_index(name), name,
                                 pc.if_else(has_first, table.column(source).take(pointer), None))
    yield from table.to_batches(max_chunksize=1 << 16)


def stage_objects(put: Callable[[str, bytes], None], prefix: str, chunk_bytes: int | None,
                  open_object: Callable[[str], io.BufferedIOBase]) -> Callable:
    """Stage 3 over a task's rows sorted by (object, line): each object's tables staged as Arrow
    files under ``prefix`` (one object held at a time), and one ``STAGED`` row of counts."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        held: list[pa.RecordBatch] = []
        for batch in _conform(batches):
            indexes = batch.column("object_index").to_numpy()
            cuts = [0, *(np.flatnonzero(np.diff(indexes)) + 1).tolist(), batch.num_rows]
            for start, end in zip(cuts[:-1], cuts[1:]):
                piece = batch.slice(start, end - start)
                if held and held[0].column("object_index")[0] != piece.column("object_index")[0]:
                    yield _stage(pa.Table.from_batches(held).combine_chunks())
                    held = []
                held.append(piece)
        if held:
            yield _stage(pa.Table.from_batches(held).combine_chunks())

    def _stage(rows: pa.Table) -> pa.RecordBatch:
        index, key = rows.column("object_index")[0].as_py(), rows.column("object_key")[0].as_py()
        status = rows.column("status")
        events = rows.filter(pc.equal(status, "accepted"))
        events = published_events(key, events.set_column(
            events.schema.get_field_index("timestamp"), "timestamp", events.column("timestamp").cast(NS_UTC)))
        duplicates = rows.filter(pc.equal(status, "duplicate")).select(DUPLICATE_EVENTS_SCHEMA.names)
        conflicts = rows.filter(pc.equal(status, "conflict"))
        rejected = rows.filter(pc.equal(rows.column("kind"), "rejected")).select(REJECTED_WIDE)
        pieces = [rejected.cast(rejected.schema.set(6, pa.field("line", pa.large_string())))]
        if conflicts.num_rows:
            raw = RawObject(key, None, datetime.now(timezone.utc), open=lambda: open_object(key))
            pieces.append(conflict_quarantine(conflicts, conflict_texts(conflicts, raw, chunk_bytes))
                          .cast(pieces[0].schema))
        quarantined = pa.concat_tables(pieces)
        quarantined = quarantined.take(pc.sort_indices(quarantined.column("line_number")))
        quarantined = quarantined.add_column(0, "object_key", pa.repeat(pa.scalar(key, pa.string()),
                                                                         quarantined.num_rows))
        tables = {"usage_events": events, "duplicate_events": duplicates.cast(DUPLICATE_EVENTS_SCHEMA),
                  "quarantined_events": quarantined.select(QUARANTINED_EVENTS_SCHEMA.names).cast(QUARANTINED_EVENTS_SCHEMA),
                  "records": quarantined.select(QUARANTINE_RECORD_SCHEMA.names).cast(QUARANTINE_RECORD_SCHEMA)}
        for name, table in tables.items():
            if table.num_rows:
                put(staged_key(prefix, index, name), arrow_bytes(table))
        return pa.RecordBatch.from_pylist([{
            "object_index": index, "accepted": events.num_rows, "duplicates": duplicates.num_rows,
            "quarantined": quarantined.num_rows, "conflicts": conflicts.num_rows}], schema=STAGED)

    return run


def staged_key(prefix: str, index: int, table: str) -> str:
    return f"{prefix}{index:07d}/{table}.arrow"


def arrow_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def arrow_table(body: bytes) -> pa.Table:
    return ipc.open_stream(body).read_all()


METERED_INPUT = pa.schema([("event_id", pa.string()), ("timestamp", pa.int64()), ("meter", pa.string()),
                           ("customer_id", pa.string()), ("quantity", QUANTITY_TYPE), ("unique_value", pa.string())])
METERED_ROWS = pa.schema([("day", pa.date32()), ("customer_id", pa.string()), ("meter", pa.string()),
                          ("aggregation", pa.string()), ("quantity", QUANTITY_TYPE), ("event_count", pa.int64()),
                          ("latest_timestamp", pa.int64()), ("latest_event_id", pa.string()),
                          ("distinct_values", pa.list_(pa.string()))])


def meter(day: date, aggregation: dict[str, str]) -> Callable:
    """Stage 4 over one task's events, every event of each of its customer × meter keys."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        events = pa.Table.from_batches(list(_conform(batches, METERED_INPUT)), METERED_INPUT)
        if not events.num_rows:
            return
        events = events.set_column(1, "timestamp", events.column("timestamp").cast(NS_UTC))
        metered = meter_day(day, events, aggregation)
        metered = metered.set_column(6, "latest_timestamp", metered.column("latest_timestamp").cast(pa.int64()))
        yield from metered.cast(METERED_ROWS).to_batches()

    return run


@cache
def worker_lake(bucket: str):
    """The lake as a Spark worker sees it (the job's endpoint and credentials, from the
    environment the cluster gives its workers), built once a worker and bucket."""
    from billing_assets.resources import billing_lake

    return billing_lake(bucket)

"""One daily partition of raw usage → accepted events, duplicates and quarantined lines (§2–§4),
in three stages that each hold a bounded batch, whatever the day's size:

1. per object (``objects``): chunks of lines read, parsed and checked, left in the spill;
2. per dedupe bucket (``dedupe``): runs of buckets deduplicated side by side;
3. per chunk again, in (object key, line number) order: the accepted events, the duplicates
   and the quarantine handed to sinks as they come (the asset's sinks stream Parquet files).

Only the repeats' identities (about 60 bytes a repeated line) are kept across stages.
"""

from __future__ import annotations

import io
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import BinaryIO, Protocol, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from billing_assets.lib.arrow_text import join_texts
from billing_assets.lib.money import QUANTITY_TYPE
from billing_assets.reference.loading import ReferenceData
from billing_assets.usage.ingest.dedupe import (
    FINE_BUCKETS, PAYLOAD_COLUMNS, BucketedKeys, bucket_runs, repeats_in_run, same_payload,
)
from billing_assets.usage.ingest.lines import object_chunks
from billing_assets.usage.ingest.objects import CheckedChunk, CheckedObject, check_object
from billing_assets.usage.ingest.rules import (
    DUPLICATE_EVENTS_SCHEMA, QUARANTINED_EVENTS_SCHEMA, USAGE_EVENTS_SCHEMA, _PartitionContext,
)
from billing_assets.usage.ingest.spill import Spill
from billing_assets.usage.quarantine import QUARANTINE_RECORD_SCHEMA
from billing_assets.usage.reasons import Reason


@dataclass(frozen=True)
class RawObject:
    """One raw object. ``body`` holds its bytes, or ``open`` streams them when ingest reaches it."""

    key: str
    body: bytes | None
    last_modified: datetime
    etag: str = ""  # as listed: what tells a replaced object from the one ingested
    open: Callable[[], BinaryIO] | None = None
    size: int | None = None  # bytes as listed, when listed

    def stream(self) -> BinaryIO:
        return io.BytesIO(self.body) if self.body is not None else self.open()


@dataclass(frozen=True)
class Limits:
    """What one partition may hold at once: a chunk of about ``chunk_bytes`` decoded text per
    worker while checking, about ``bucket_rows`` dedupe keys per worker while deduplicating."""

    chunk_bytes: int | None = 32 << 20
    bucket_rows: int = 1_000_000
    workers: int = (os.cpu_count() or 1) + 1  # one more than cores: a fetch overlaps the others' parsing
    spill_dir: str | None = None


class TableSink(Protocol):
    def write(self, table: pa.Table) -> None: ...


class MemorySink:
    def __init__(self, schema: pa.Schema):
        self.schema, self.tables = schema, []

    def write(self, table: pa.Table) -> None:
        self.tables.append(table)

    def table(self) -> pa.Table:
        return pa.concat_tables(self.tables).combine_chunks() if self.tables else self.schema.empty_table()


@dataclass
class Sinks:
    events: TableSink
    quarantined: TableSink
    duplicates: TableSink
    records: TableSink  # QUARANTINE_RECORD_SCHEMA: the raw text of every quarantined line

    @classmethod
    def in_memory(cls) -> "Sinks":
        return cls(MemorySink(USAGE_EVENTS_SCHEMA), MemorySink(QUARANTINED_EVENTS_SCHEMA),
                   MemorySink(DUPLICATE_EVENTS_SCHEMA), MemorySink(QUARANTINE_RECORD_SCHEMA))


@dataclass
class IngestResult:
    """What one partition's raw objects became: counts, and the tables when they were collected
    in memory (``ingest_partition``). ``quarantined_lines`` keeps the raw text of every rejected
    line for the quarantine prefix; the warehouse tables never hold raw lines."""

    accepted: int = 0
    duplicate_count: int = 0
    reason_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys((r.value for r in Reason), 0))
    lines_read: int = 0
    bytes_read: int = 0
    objects_read: int = 0
    empty_objects: list[str] = field(default_factory=list)
    unreadable_objects: list[str] = field(default_factory=list)
    ignored_fields: int = 0
    largest_batch_lines: int = 0  # the most lines of one chunk held at once
    largest_batch_keys: int = 0  # the most dedupe keys of one run held at once
    stage_seconds: dict[str, float] = field(default_factory=dict)  # wall time of each stage
    events: pa.Table | None = None
    quarantined: pa.Table | None = None
    duplicates: pa.Table | None = None
    quarantined_lines: pa.Table | None = None  # QUARANTINE_RECORD_SCHEMA

    @property
    def quarantined_line_count(self) -> int:
        return sum(count for reason, count in self.reason_counts.items() if reason != Reason.UNREADABLE_FILE.value)


def ingest_partition(day: date, objects: Sequence[RawObject], reference: ReferenceData,
                     limits: Limits = Limits()) -> IngestResult:
    """Apply CONTRACT.md §2–§4 to every object of one daily partition, the tables in memory."""
    sinks = Sinks.in_memory()
    result = ingest_into(day, objects, reference, sinks, limits)
    result.events, result.quarantined = sinks.events.table(), sinks.quarantined.table()
    result.duplicates, result.quarantined_lines = sinks.duplicates.table(), sinks.records.table()
    return result


@dataclass
class _Chunks:
    """The readable objects' checked chunks in partition order, their passed lines numbered
    across the partition (chunk ``i`` holds rows ``starts[i]`` to ``starts[i + 1]``)."""

    owners: list[CheckedObject]
    chunks: list[CheckedChunk]

    def __post_init__(self):
        self.starts = np.cumsum([0] + [chunk.passed for chunk in self.chunks])

    def take(self, spill: Spill, rows: np.ndarray, columns: list[str]) -> pa.Table:
        """``columns`` of passed ``rows`` (in any order), with each row's ``object_key``."""
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        owner = np.searchsorted(self.starts, ordered, side="right") - 1
        bounds = np.searchsorted(owner, np.arange(len(self.chunks) + 1))
        pieces = [pa.Table.from_batches([spill.read(f"passed-{self.chunks[i].name}").select(columns)])
                  .take(pa.array(ordered[start:end] - self.starts[i]))
                  for i, (start, end) in enumerate(zip(bounds[:-1], bounds[1:])) if end > start]
        taken = pa.concat_tables(pieces).combine_chunks()
        keys = pa.array([item.key for item in self.owners], pa.string())
        taken = taken.append_column("object_key", keys.take(pa.array(owner)))
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return taken.take(pa.array(inverse))


_REPEATS_SCHEMA = pa.schema([("row", pa.int64()), ("first_row", pa.int64()), ("conflict", pa.bool_()),
                             ("object_key", pa.string()), ("line_number", pa.int64()), ("source", pa.string()),
                             ("event_id", pa.string()), ("first_object_key", pa.string()),
                             ("first_line_number", pa.int64()), ("customer_id", pa.string()), ("meter", pa.string()),
                             ("quantity", QUANTITY_TYPE)])


def _repeats(spill: Spill, parts: _Chunks, run: tuple[int, int]) -> tuple[pa.Table, int]:
    """Stage 2 for one run of fine buckets: every repeated row, whether it conflicts, and where
    its first occurrence is; and how many keys the run held."""
    low, high = run
    batches = []
    for chunk in parts.chunks:  # only the run's buckets of each chunk are read
        bounds = chunk.key_bounds - chunk.key_bounds[low]
        keys = spill.read_parts(f"keys-{chunk.name}", chunk.key_bounds, low, high) if bounds[high] else None
        batches.append(BucketedKeys(keys.column("key").combine_chunks(), keys.column("row").to_numpy(), bounds)
                       if keys is not None else BucketedKeys(pa.array([], pa.string()), np.zeros(0, np.int64), bounds))
    repeat, first, held = repeats_in_run(batches, parts.starts[:-1], run)
    if not len(repeat):
        return _REPEATS_SCHEMA.empty_table(), held
    these = parts.take(spill, repeat, PAYLOAD_COLUMNS + ["line_number", "source", "event_id"])
    those = parts.take(spill, first, PAYLOAD_COLUMNS + ["line_number"])
    return pa.table({
        "row": repeat, "first_row": first, "conflict": pa.array(~same_payload(these, those)),
        "object_key": these.column("object_key"), "line_number": these.column("line_number"),
        "source": these.column("source"), "event_id": these.column("event_id"),
        "first_object_key": those.column("object_key"), "first_line_number": those.column("line_number"),
        "customer_id": these.column("customer_id"), "meter": these.column("meter"), "quantity": these.column("quantity"),
    }, schema=_REPEATS_SCHEMA), held


def _in_order(pool: ThreadPoolExecutor, work: Callable, items: Iterable, ahead: int) -> Iterator:
    """``work`` of each item, side by side but at most ``ahead`` at once, yielded in order."""
    pending = []
    for item in items:
        pending.append(pool.submit(work, item))
        if len(pending) > ahead:
            yield pending.pop(0).result()
    for future in pending:
        yield future.result()


def ingest_into(day: date, objects: Sequence[RawObject], reference: ReferenceData, sinks: Sinks,
                limits: Limits = Limits()) -> IngestResult:
    """Apply CONTRACT.md §2–§4 to every object of one daily partition, handing the tables to
    ``sinks`` in (object key, line number) order; returns the counts."""
    ctx = _PartitionContext.build(day, reference)
    ordered = sorted(objects, key=lambda item: item.key)
    with Spill(limits.spill_dir) as spill, ThreadPoolExecutor(max_workers=limits.workers) as pool:
        started = time.perf_counter()
        checked = list(pool.map(
            lambda pair: check_object(pair[0], pair[1].key, pair[1].stream(), pair[1].last_modified, ctx, spill,
                                      limits.chunk_bytes), enumerate(ordered)))
        readable = [item for item in checked if not item.unreadable]
        parts = _Chunks([item for item in readable for _ in item.chunks], [c for item in readable for c in item.chunks])
        per_bucket = sum((np.diff(chunk.key_bounds) for chunk in parts.chunks), np.zeros(FINE_BUCKETS, np.int64))
        checked_at = time.perf_counter()
        found = list(pool.map(lambda run: _repeats(spill, parts, run), bucket_runs(per_bucket, limits.bucket_rows)))
        repeats = pa.concat_tables([table for table, _ in found] or [_REPEATS_SCHEMA.empty_table()])
        repeats = repeats.take(pc.sort_indices(repeats.column("row")))
        result = IngestResult(
            objects_read=len(ordered), bytes_read=sum(item.bytes_read for item in checked),
            lines_read=sum(item.line_count for item in readable),
            ignored_fields=sum(item.ignored_fields for item in readable),
            unreadable_objects=[item.key for item in checked if item.unreadable],
            empty_objects=[item.key for item in readable if not item.chunks],
            largest_batch_lines=max((chunk.lines for chunk in parts.chunks), default=0),
            largest_batch_keys=max((held for _, held in found), default=0),
        )
        deduplicated_at = time.perf_counter()
        conflicts = repeats.filter(repeats.column("conflict"))
        # the conflicting copies' objects are read again while the events are encoded (the
        # quarantine written beside them too took a 50M-event day past its memory bound)
        texts = _ConflictTexts(conflicts, {raw.key: raw for raw in ordered}, limits.chunk_bytes, 2)
        try:
            _publish_events(spill, parts, repeats, sinks.events, pool, limits.workers, result)
            _publish_duplicates(repeats, sinks.duplicates, result)
            _publish_quarantine(spill, parts, conflicts, texts, checked, sinks, limits, result, pool)
        finally:
            texts.close()
        result.stage_seconds = {"objects": checked_at - started, "dedupe": deduplicated_at - checked_at,
                                "publish": time.perf_counter() - deduplicated_at}
    return result


def _publish_events(spill: Spill, parts: _Chunks, repeats: pa.Table, sink: TableSink, pool: ThreadPoolExecutor,
                    ahead: int, result: IngestResult) -> None:
    repeated = repeats.column("row").to_numpy()

    def accepted(index: int) -> pa.Table:
        table = pa.Table.from_batches([spill.read(f"passed-{parts.chunks[index].name}")])
        low, high = np.searchsorted(repeated, parts.starts[index:index + 2])
        if high > low:
            keep = np.ones(table.num_rows, dtype=bool)
            keep[repeated[low:high] - parts.starts[index]] = False
            table = table.filter(pa.array(keep))
        return published_events(parts.owners[index].key, table)

    for table in _in_order(pool, accepted, range(len(parts.chunks)), ahead):
        result.accepted += table.num_rows
        sink.write(table)


def published_events(object_key: str, passed: pa.Table) -> pa.Table:
    """Accepted lines of one object as ``usage_events`` rows."""
    key = pa.repeat(pa.scalar(object_key, pa.string()), passed.num_rows)
    return pa.Table.from_arrays([key, *passed.select(USAGE_EVENTS_SCHEMA.names[1:]).columns], schema=USAGE_EVENTS_SCHEMA)


def _publish_duplicates(repeats: pa.Table, sink: TableSink, result: IngestResult) -> None:
    plain = repeats.filter(pc.invert(repeats.column("conflict")))
    result.duplicate_count = plain.num_rows
    sink.write(plain.select(DUPLICATE_EVENTS_SCHEMA.names).cast(DUPLICATE_EVENTS_SCHEMA))


def _publish_quarantine(spill: Spill, parts: _Chunks, conflicts: pa.Table, texts: "_ConflictTexts",
                        checked: list[CheckedObject], sinks: Sinks, limits: Limits, result: IngestResult,
                        pool: ThreadPoolExecutor) -> None:
    """Unreadable objects first (in key order), then every rejected line and conflicting copy
    (``conflicts`` with their raw ``texts``) by (object key, line number); the quarantine records
    list the lines first, the files last."""
    files = unreadable_quarantine([item.key for item in checked if item.unreadable],
                                  [item.unreadable for item in checked if item.unreadable])
    sinks.quarantined.write(files)
    counts = Counter({Reason.UNREADABLE_FILE.value: files.num_rows, Reason.DUPLICATE_CONFLICT.value: conflicts.num_rows})
    for item in checked:
        counts.update(item.reasons)
    result.reason_counts.update(counts)
    conflict_rows = conflicts.column("row").to_numpy()

    def rejected(index: int) -> pa.Table | None:  # the chunk's rejected lines and conflicting copies
        chunk, pieces = parts.chunks[index], []
        if chunk.lines > chunk.passed:
            pieces.append(pa.Table.from_batches([spill.read(f"rejects-{chunk.name}")]))
        low, high = np.searchsorted(conflict_rows, parts.starts[index:index + 2])
        if high > low:
            pieces.append(conflict_quarantine(conflicts.slice(low, high - low), texts.between(low, high)))
        if not pieces:
            return None
        rejects = pa.concat_tables(pieces)
        if len(pieces) > 1:
            rejects = rejects.take(pc.sort_indices(rejects.column("line_number")))
        key = pa.repeat(pa.scalar(parts.owners[index].key, pa.string()), rejects.num_rows)
        return rejects.add_column(0, "object_key", key)

    for rejects in _in_order(pool, rejected, range(len(parts.chunks)), limits.workers):
        if rejects is not None:
            sinks.quarantined.write(rejects.select(QUARANTINED_EVENTS_SCHEMA.names).cast(QUARANTINED_EVENTS_SCHEMA))
            sinks.records.write(rejects.select(QUARANTINE_RECORD_SCHEMA.names).cast(QUARANTINE_RECORD_SCHEMA))
    sinks.records.write(file_records(files))


def file_records(files: pa.Table) -> pa.Table:
    """The quarantine records of unreadable objects (``unreadable_quarantine`` rows): no line text."""
    return (files.append_column("line", pa.nulls(files.num_rows, pa.large_string()))
            .select(QUARANTINE_RECORD_SCHEMA.names).cast(QUARANTINE_RECORD_SCHEMA))


def unreadable_quarantine(keys: list[str], details: list[str]) -> pa.Table:
    """The quarantine rows of unreadable objects: one per object, no line."""
    return pa.table({
        "object_key": keys, "line_number": pa.nulls(len(keys), pa.int64()),
        "reason": [Reason.UNREADABLE_FILE.value] * len(keys), "detail": details,
        **{name: pa.nulls(len(keys), QUARANTINED_EVENTS_SCHEMA.field(name).type)
           for name in ("customer_id", "meter", "quantity")},
    }, schema=QUARANTINED_EVENTS_SCHEMA)


def conflict_quarantine(mine: pa.Table, texts: pa.Array) -> pa.Table:
    """The quarantine rows (but object_key) of conflicting copies — ``mine`` as ``_repeats``
    gives them — with their raw ``texts``."""
    return pa.table({
        "line_number": mine.column("line_number"),
        "reason": pa.repeat(pa.scalar(Reason.DUPLICATE_CONFLICT.value, pa.string()), mine.num_rows),
        # source and event_id passed their charsets: quoted, they are their own repr
        "detail": join_texts("(source '", mine.column("source"), "', event_id '", mine.column("event_id"),
                             "') was first seen at ", mine.column("first_object_key"), " line ",
                             mine.column("first_line_number").cast(pa.string()), " with a different payload"),
        **{name: mine.column(name) for name in ("customer_id", "meter", "quantity")},
        "line": texts,
    })


def conflict_texts(conflicts: pa.Table, raw: RawObject, chunk_bytes: int | None) -> pa.Array:
    """The raw text of each conflicting copy in one object, in the conflicts' order: the object is
    read again (a conflict is found after its object was let go)."""
    wanted, found = conflicts.column("line_number").to_numpy(), []  # ascending: in partition order
    for lines in object_chunks(raw.key, raw.stream(), chunk_bytes):
        where = np.flatnonzero(np.isin(lines.line_numbers, wanted))
        if len(where):
            found.append(lines.lines_at(where))
    return pa.concat_arrays(found) if found else pa.array([], pa.large_string())


class _ConflictTexts:
    """``conflict_texts`` of every object holding a conflicting copy, read ``workers`` objects at
    once from the start; the quarantine waits for an object's texts only when it reaches it."""

    def __init__(self, conflicts: pa.Table, raw_of: dict[str, RawObject], chunk_bytes: int | None, workers: int):
        self._keys = conflicts.column("object_key").to_pylist()
        firsts = [0] + [i for i in range(1, len(self._keys)) if self._keys[i] != self._keys[i - 1]]
        self._pool = ThreadPoolExecutor(max_workers=workers)
        self._objects = {self._keys[start]: (start, self._pool.submit(
            conflict_texts, conflicts.slice(start, end - start), raw_of[self._keys[start]], chunk_bytes))
            for start, end in zip(firsts, [*firsts[1:], len(self._keys)]) if end > start}

    def between(self, low: int, high: int) -> pa.Array:
        """The texts of conflicts ``low`` to ``high``, all in one object."""
        start, texts = self._objects[self._keys[low]]
        return texts.result().slice(low - start, high - low)

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)

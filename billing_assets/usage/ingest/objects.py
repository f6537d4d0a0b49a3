"""Per object: read it in bounded chunks, split each into lines, parse and check them, and
leave three things per chunk in the spill — the lines that passed every check (in line order),
their dedupe keys by bucket, and the rejected lines with reason, detail and raw text. Only one
chunk of an object is in memory at a time."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from billing_assets.usage.ingest.dedupe import bucketed, dedupe_keys, tails
from billing_assets.usage.ingest.line_checks import _validate_object
from billing_assets.usage.ingest.lines import object_chunks
from billing_assets.usage.ingest.parse import parse_in_parts
from billing_assets.usage.ingest.rules import _PartitionContext, _single_array
from billing_assets.usage.ingest.spill import Spill

# what a passed line carries to the next stages: the published columns (but object_key, which
# the chunk's object gives) and the normalised IP the dedupe compares
PASSED_COLUMNS = ["line_number", "event_id", "source", "timestamp", "meter", "customer_id", "attributed_by",
                  "ip_prefix", "quantity", "unique_value", "properties", "ip_normalised"]


@dataclass
class CheckedChunk:
    name: str  # of its files in the spill
    lines: int
    passed: int
    key_bounds: np.ndarray  # where each fine bucket starts in its keys file, and the end


@dataclass
class CheckedObject:
    key: str
    bytes_read: int = 0
    unreadable: str | None = None
    chunks: list[CheckedChunk] = field(default_factory=list)
    ignored_fields: int = 0
    reasons: Counter = field(default_factory=Counter)

    @property
    def line_count(self) -> int:
        return sum(chunk.lines for chunk in self.chunks)


@dataclass
class CheckedLines:
    """One chunk of lines checked: the passed lines (``PASSED_COLUMNS``, in line order), the
    rejected ones with reason, detail and raw text (None when none was), and their reasons."""

    passed: pa.Table
    rejected: pa.Table | None
    reasons: Counter
    ignored_fields: int


def check_lines(lines, last_modified: datetime, ctx: _PartitionContext) -> CheckedLines:
    """Every check of §3 over one chunk of an object's lines: the per-object rule, whatever runs it.
    A chunk parsed in parts (``parse_in_parts``) is checked part by part: each line's outcome is
    its own, so the parts' outcomes merge back in line order."""
    parts = [_checked(part, parsed, last_modified, ctx) for part, parsed in parse_in_parts(lines, ctx.property_fields)]
    if len(parts) == 1:
        return parts[0]
    return CheckedLines(_in_line_order([part.passed for part in parts]),
                        _in_line_order([part.rejected for part in parts if part.rejected is not None]),
                        sum((part.reasons for part in parts), Counter()), sum(part.ignored_fields for part in parts))


def _in_line_order(tables: list[pa.Table]) -> pa.Table | None:
    """Tables each in line order, as one (the odd lines rarely pass: usually nothing to sort)."""
    tables = [table for table in tables if table.num_rows] or tables[:1]
    if len(tables) <= 1:
        return tables[0] if tables else None
    merged = pa.concat_tables(tables)
    return merged.take(pc.sort_indices(merged.column("line_number")))


def _checked(lines, parsed: pa.Table, last_modified: datetime, ctx: _PartitionContext) -> CheckedLines:
    parsed = parsed.append_column("line_number", pa.array(lines.line_numbers).take(parsed.column("row")))
    # parsing keeps the lines' order, so a checked row's index is its position among the lines
    rows, rejections = _validate_object(parsed, last_modified, ctx)
    ignored = int(pc.sum(parsed.column("ignored_fields")).as_py() or 0)
    good = rows.select(PASSED_COLUMNS)
    if not len(rejections.rows):
        return CheckedLines(good, None, Counter(), ignored)
    passed = np.ones(rows.num_rows, dtype=bool)
    passed[rejections.rows] = False
    bad = rows.select(["line_number", "customer_id", "meter", "quantity"]).take(pa.array(rejections.rows))
    bad = bad.add_column(1, "reason", rejections.reasons).add_column(2, "detail", rejections.details)
    bad = _attributed(bad, ctx)
    reasons = Counter(dict(zip(*(pc.value_counts(rejections.reasons).flatten()[i].to_pylist() for i in (0, 1)))))
    return CheckedLines(good.filter(pa.array(passed)), bad.append_column("line", lines.lines_at(rejections.rows)),
                        reasons, ignored)


def bucketed_keys(passed: pa.Table):
    """The passed lines' dedupe keys by fine bucket, each with its row among them."""
    event_id = _single_array(passed.column("event_id"))
    return bucketed(dedupe_keys(_single_array(passed.column("source")), event_id), tails(event_id),
                    np.arange(passed.num_rows, dtype=np.int64))


def check_object(index: int, key: str, stream, last_modified: datetime, ctx: _PartitionContext, spill: Spill,
                 chunk_bytes: int | None) -> CheckedObject:
    checked = CheckedObject(key)
    for number, lines in enumerate(object_chunks(key, stream, chunk_bytes)):
        checked.bytes_read = lines.bytes_read
        if lines.unreadable:  # whatever was spilled for it is never read
            return CheckedObject(key, lines.bytes_read, lines.unreadable)
        if lines.is_empty:
            continue
        name = f"{index:07d}-{number:05d}"
        done = check_lines(lines, last_modified, ctx)
        checked.ignored_fields += done.ignored_fields
        checked.reasons.update(done.reasons)
        if done.rejected is not None:
            spill.write(f"rejects-{name}", done.rejected)
        keys = bucketed_keys(done.passed)
        spill.write(f"passed-{name}", done.passed)
        spill.write_parts(f"keys-{name}", pa.table({"key": keys.keys, "row": keys.rows}), keys.bounds)
        checked.chunks.append(CheckedChunk(name, len(lines.line_numbers), done.passed.num_rows, keys.bounds))
    return checked


def _attributed(bad: pa.Table, ctx: _PartitionContext) -> pa.Table:
    """A rejected line's customer and meter only where they name a known one (a bad line can
    carry any text there): what was not billed is then told to that customer, never to another."""
    for name, known in (("customer_id", ctx.customers), ("meter", pa.array(sorted(ctx.aggregation), pa.string()))):
        values = bad.column(name)
        bad = bad.set_column(bad.column_names.index(name), name,
                             pc.if_else(pc.is_in(values, value_set=known), values, None))
    return bad

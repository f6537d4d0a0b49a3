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
from billing_assets.usage.ingest.parse import parse_object
from billing_assets.usage.ingest.rules import _absent, _PartitionContext, _single_array
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
        parsed = parse_object(lines, ctx.property_fields)
        parsed = parsed.append_column("line_number", pa.array(lines.line_numbers).take(parsed.column("row")))
        # parsing keeps the lines' order, so a checked row's index is its position among the lines
        rows = _validate_object(parsed, last_modified, ctx)
        checked.ignored_fields += int(pc.sum(parsed.column("ignored_fields")).as_py() or 0)
        passed = _absent(rows.column("reason"))
        good = rows.select(PASSED_COLUMNS)
        if not passed.all():
            good = good.filter(pa.array(passed))
            rejected = np.flatnonzero(~passed)
            taken = pa.array(rejected)
            bad = _attributed(rows.select(["line_number", "reason", "detail", "customer_id", "meter", "quantity"])
                              .take(taken), ctx)
            spill.write(f"rejects-{name}", bad.append_column("line", lines.lines.take(taken)))
            checked.reasons.update(dict(zip(*(pc.value_counts(bad.column("reason")).flatten()[i].to_pylist()
                                              for i in (0, 1)))))
        event_id = _single_array(good.column("event_id"))
        keys = bucketed(dedupe_keys(_single_array(good.column("source")), event_id), tails(event_id),
                        np.arange(good.num_rows, dtype=np.int64))
        spill.write(f"passed-{name}", good)
        spill.write_parts(f"keys-{name}", pa.table({"key": keys.keys, "row": keys.rows}), keys.bounds)
        checked.chunks.append(CheckedChunk(name, len(lines.line_numbers), good.num_rows, keys.bounds))
    return checked


def _attributed(bad: pa.Table, ctx: _PartitionContext) -> pa.Table:
    """A rejected line's customer and meter only where they name a known one (a bad line can
    carry any text there): what was not billed is then told to that customer, never to another."""
    for name, known in (("customer_id", ctx.customers), ("meter", pa.array(sorted(ctx.aggregation), pa.string()))):
        values = bad.column(name)
        bad = bad.set_column(bad.column_names.index(name), name,
                             pc.if_else(pc.is_in(values, value_set=known), values, None))
    return bad

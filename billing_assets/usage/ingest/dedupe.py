"""Per dedupe bucket (§4): the first occurrence of each (source, event_id) in partition order is
the event; a later one is a duplicate when its normalised payload equals the first's, else a
duplicate_conflict.

Equal keys always fall in the same bucket (a function of the event_id's last bytes), so the
buckets are independent: each is deduplicated on its own, side by side, and only one bucket's
keys are ever held at once. Rows are numbered across the partition in (object key, line
number) order, which is the order "first" means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from billing_assets.lib.arrow_text import value_data, value_offsets
from billing_assets.usage.ingest.rules import _mask

FINE_BUCKET_BITS = 10
FINE_BUCKETS = 1 << FINE_BUCKET_BITS  # each batch's keys are put in this many buckets

# the normalised payload beyond the dedupe key (source, event_id), which repeats share already
PAYLOAD_COLUMNS = ["timestamp", "meter", "customer_id", "ip_normalised", "quantity", "properties"]


def dedupe_keys(source: pa.Array, event_id: pa.Array) -> pa.Array:
    """The dedupe identity (source, event_id) as one text per line: the event_id alone when
    there is no source, else source, a unit separator and the event_id. Both were checked to
    hold only [A-Za-z0-9._:-], so different identities never give the same text."""
    if pc.all(pc.equal(source, "")).as_py() is not False:  # most producers send no source
        return event_id
    return pc.if_else(pc.equal(source, ""), event_id, pc.binary_join_element_wise(source, event_id, "\x1f"))


@dataclass
class BucketedKeys:
    """One batch's dedupe keys ordered by bucket, each with its row in the batch; a bucket's
    rows keep the batch's order."""

    keys: pa.Array
    rows: np.ndarray
    bounds: np.ndarray  # where each fine bucket starts, and the end


def fine_buckets(tails: np.ndarray) -> np.ndarray:
    """Each key's fine bucket: equal keys, equal buckets. The top ten bits of a multiplicative
    (Fibonacci) hash of the tails: ids that differ only in their last digits still land in
    buckets spread over the whole range, which runs of neighbouring buckets then share out evenly."""
    return (((tails.astype(np.uint32) * 0x9E37) & 0xFFFF) >> (16 - FINE_BUCKET_BITS)).astype(np.uint16)


def bucketed(keys: pa.Array, tails: np.ndarray, rows: np.ndarray) -> BucketedKeys:
    bucket = fine_buckets(tails)
    order = np.argsort(bucket, kind="stable")  # 16 bits: a radix sort; stable keeps the rows' order
    bounds = np.concatenate(([0], np.cumsum(np.bincount(bucket, minlength=FINE_BUCKETS))))
    return BucketedKeys(keys.take(pa.array(order)), rows[order], bounds)


def tails(values: pa.StringArray) -> np.ndarray:
    """Each value's last two bytes as one 16-bit number (0 for a missing byte or value), so
    equal values get equal numbers. Event ids end in their most varied characters."""
    data = values.buffers()[2]
    result = np.zeros(len(values), dtype=np.uint16)
    if data is None or len(data) == 0:
        return result
    ends = value_offsets(values).astype(np.int64)
    lengths = np.diff(ends)
    ends = ends[1:]
    data = np.frombuffer(data, dtype=np.uint8)
    for back in (2, 1):
        byte = data[np.maximum(ends - back, 0)]
        result = (result << np.uint16(8)) | np.where(lengths >= back, byte, 0).astype(np.uint16)
    return result


def bucket_runs(keys_per_bucket: np.ndarray, rows_per_run: int) -> list[tuple[int, int]]:
    """Neighbouring fine buckets grouped into runs of about ``rows_per_run`` keys (a run is at
    least one bucket, whatever its size): the unit of work and of memory of the dedupe."""
    runs, start, held = [], 0, 0
    for bucket, count in enumerate(keys_per_bucket.tolist()):
        if held and held + count > rows_per_run:
            runs.append((start, bucket))
            start, held = bucket, 0
        held += count
    if held:
        runs.append((start, len(keys_per_bucket)))
    return runs


def first_occurrences(keys: pa.Array, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For keys whose occurrences are each in partition order (``rows``: their numbers across
    the partition), every repeated row and the row of its key's first occurrence."""
    # dictionary codes are handed out in order of first appearance: a code is new exactly at
    # its key's first position
    codes = keys.dictionary_encode().indices.to_numpy().astype(np.int64)
    is_new = codes > np.maximum.accumulate(np.concatenate(([-1], codes[:-1])))
    repeated = np.flatnonzero(~is_new)
    return rows[repeated], rows[np.flatnonzero(is_new)][codes[repeated]]


def same_payload(these: pa.Table, those: pa.Table) -> np.ndarray:
    """Whether each row's normalised payload equals its counterpart's: what must hold for a
    repeated event to be a plain duplicate (a missing value equals only a missing value)."""
    same = np.ones(these.num_rows, dtype=bool)
    for name in PAYLOAD_COLUMNS:
        this, that = these.column(name), those.column(name)
        same &= _mask(pc.equal(this, that)) | (_mask(pc.is_null(this)) & _mask(pc.is_null(that)))
    return same


def repeats_in_run(batches: list[BucketedKeys], row_starts, run: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, int]:
    """Every repeated row of the keys in fine buckets ``run[0]`` to ``run[1]`` and the row of
    its key's first occurrence (rows numbered across the partition: batch ``i``'s row ``r``
    is ``row_starts[i] + r``), and how many keys the run held. Batches come in partition order,
    so within a bucket every key's occurrences keep that order, which is all first-come needs."""
    low, high = run
    keys, rows = [], []
    for batch, row_start in zip(batches, row_starts):
        start, end = int(batch.bounds[low]), int(batch.bounds[high])
        if end > start:
            keys.append(batch.keys.slice(start, end - start))
            rows.append(np.asarray(batch.rows[start:end]) + row_start)
    if not keys:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 0
    if sum(len(value_data(piece)) for piece in keys) >= 2**31:  # beyond 32-bit offsets
        keys = [piece.cast(pa.large_string()) for piece in keys]
    repeat, first = first_occurrences(pa.concat_arrays(keys), np.concatenate(rows))
    return repeat, first, sum(len(piece) for piece in keys)

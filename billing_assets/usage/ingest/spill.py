"""Where a partition's work waits between stages: Arrow IPC files in a private temporary
directory, each written once. A file read whole is memory-mapped; a file read in parts (the
dedupe keys, one record batch per bucket) is read part by part into memory, so that what a
stage holds is what it asked for — a mapped page counts in the process's resident size for as
long as the file stays mapped. The directory is removed when the partition is done, whatever
happened."""

from __future__ import annotations

import os
import shutil
import tempfile

import pyarrow as pa
import pyarrow.ipc as ipc

# buckets written together as one record batch: a batch per bucket made each chunk's key file
# 1,024 tiny batches, most of a day of many small objects' ingest time; a run of buckets reads
# the parts that hold it, at most a part's worth more at either end
BUCKETS_PER_PART = 32


class Spill:
    def __init__(self, parent: str | None = None):
        self.directory = tempfile.mkdtemp(prefix="billing-ingest-", dir=parent)

    def __enter__(self) -> "Spill":
        return self

    def __exit__(self, *_) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def write(self, name: str, table: pa.Table) -> None:
        """``table`` as one record batch (so that a row's position in the file is its position)."""
        batch = table.combine_chunks().to_batches()
        with pa.OSFile(self.path(name), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
            writer.write_batch(batch[0] if batch else pa.RecordBatch.from_pylist([], schema=table.schema))

    def read(self, name: str) -> pa.RecordBatch:
        return ipc.open_file(pa.memory_map(self.path(name))).get_batch(0)

    def write_parts(self, name: str, table: pa.Table, bounds) -> None:
        """``table``, whose bucket ``i`` is rows ``bounds[i]`` to ``bounds[i + 1]``, as one record
        batch per ``BUCKETS_PER_PART`` neighbouring buckets."""
        table, edges = table.combine_chunks(), _part_edges(bounds)
        with pa.OSFile(self.path(name), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
            for start, end in zip(edges[:-1], edges[1:]):
                writer.write_batch(table.slice(int(start), int(end - start)).to_batches(max_chunksize=None)[0]
                                   if end > start else pa.RecordBatch.from_pylist([], schema=table.schema))

    def read_parts(self, name: str, bounds, first: int, last: int) -> pa.Table:
        """Buckets ``first`` to ``last`` (excluded) of a file ``write_parts`` wrote with ``bounds``:
        the parts that hold them are read, at most a part more than asked for at either end."""
        low, high = first // BUCKETS_PER_PART, -(-last // BUCKETS_PER_PART)
        with pa.OSFile(self.path(name)) as source:
            reader = ipc.open_file(source)
            table = pa.Table.from_batches([reader.get_batch(part) for part in range(low, high)], reader.schema)
        offset = int(bounds[low * BUCKETS_PER_PART])
        return table.slice(int(bounds[first]) - offset, int(bounds[last] - bounds[first]))


def _part_edges(bounds):
    edges = list(bounds[::BUCKETS_PER_PART])
    return edges if (len(bounds) - 1) % BUCKETS_PER_PART == 0 else [*edges, bounds[-1]]

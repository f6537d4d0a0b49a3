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
        """``table`` as one record batch per part: rows ``bounds[i]`` to ``bounds[i + 1]``."""
        table = table.combine_chunks()
        with pa.OSFile(self.path(name), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
            for start, end in zip(bounds[:-1], bounds[1:]):
                writer.write_batch(table.slice(int(start), int(end - start)).to_batches(max_chunksize=None)[0]
                                   if end > start else pa.RecordBatch.from_pylist([], schema=table.schema))

    def read_parts(self, name: str, first: int, last: int) -> pa.Table:
        """Parts ``first`` to ``last`` (excluded) of a file written by ``write_parts``."""
        with pa.OSFile(self.path(name)) as source:
            reader = ipc.open_file(source)
            return pa.Table.from_batches([reader.get_batch(part) for part in range(first, last)], reader.schema)

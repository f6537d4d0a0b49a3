"""Where a partition's work waits between stages: Arrow IPC files in a private temporary
directory, each written once and read back memory-mapped (a read touches only what it
takes). The directory is removed when the partition is done, whatever happened."""

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

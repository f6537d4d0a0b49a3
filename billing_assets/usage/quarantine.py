"""The quarantine prefix's record of rejected lines, written column-wise.

Each record is what ``json.dumps(record, ensure_ascii=False, sort_keys=True)`` gives for
``{"object_key", "line_number", "reason", "detail", "line"}`` (the raw line's text, null for a
whole file), one a line. A day whose lines are mostly rejected writes millions of them: Arrow
builds them all at once instead of one ``json.dumps`` per line.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from isal import igzip

from billing_assets.lib.arrow_text import join_texts, value_data

QUARANTINE_RECORD_SCHEMA = pa.schema([
    ("object_key", pa.string()),
    ("line_number", pa.int64()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("line", pa.large_string()),
])
_CONTROL = r"[\x00-\x1f]"
_SCAN_WINDOW = 1 << 20


def json_strings(values: pa.Array) -> pa.Array:
    """Each value as a JSON string literal as ``json.dumps(value, ensure_ascii=False)`` writes it
    (``null`` for a missing one)."""
    values = values.cast(pa.large_string())
    # one byte scan each says whether a whole column needs a pass at all: most details and keys
    # hold no quote, and lines no backslash or control character
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    data = [np.frombuffer(value_data(chunk), dtype=np.uint8) for chunk in chunks]
    escaped = values
    for byte, escape in (("\\", "\\\\"), ('"', '\\"')):  # backslashes first: the quotes' escapes add some
        if _holds(data, ord(byte)):
            escaped = pc.replace_substring(escaped, byte, escape)
    literal = join_texts('"', escaped, '"')
    if _holds(data, 0x20, below=True):  # rare: control characters take json's own escapes
        controlled = pc.fill_null(pc.match_substring_regex(values, _CONTROL), False)
        rows = np.flatnonzero(controlled.to_numpy(zero_copy_only=False))
        texts = [json.dumps(value, ensure_ascii=False) for value in values.take(pa.array(rows)).to_pylist()]
        mask = np.zeros(len(values), dtype=bool)
        mask[rows] = True
        literal = pc.replace_with_mask(literal, pa.array(mask), pa.array(texts, pa.large_string()))
    return pc.fill_null(literal, pa.scalar("null", pa.large_string()))


def _holds(data: list[np.ndarray], byte: int, below: bool = False) -> bool:
    """Whether ``data`` holds ``byte`` (or, ``below``, any byte under it), looked at a window at
    a time so the comparison's temporary stays small."""
    return any((window < byte if below else window == byte).any()
               for part in data for window in (part[start:start + _SCAN_WINDOW] for start in range(0, len(part), _SCAN_WINDOW)))


def jsonl_pieces(records: pa.Table) -> list[pa.Buffer]:
    """``records`` (QUARANTINE_RECORD_SCHEMA) as JSON lines, keys in sorted order: the text as
    the Arrow buffers it was built in, back to back. The writer takes them as they are (copying
    hundreds of megabytes into one ``bytes`` cost more than building them)."""
    if records.num_rows == 0:
        return []
    number = pc.fill_null(records.column("line_number").cast(pa.large_string()), pa.scalar("null", pa.large_string()))
    lines = join_texts(
        '{"detail": ', json_strings(records.column("detail")), ', "line": ', json_strings(records.column("line")),
        ', "line_number": ', number, ', "object_key": ', json_strings(records.column("object_key")),
        ', "reason": ', json_strings(records.column("reason")), "}\n",
    )
    return [value_data(chunk) for chunk in (lines.chunks if isinstance(lines, pa.ChunkedArray) else [lines])]


class RecordsFileSink:
    """The records as gzip JSON lines in a local file, batch by batch. A day of millions of
    rejected lines writes close to a gigabyte of records: ISA-L's gzip (standard gzip out) takes
    a fraction of zlib's time for it."""

    def __init__(self, path: str):
        self.path = path
        self._file = igzip.GzipFile(path, "wb", compresslevel=1, mtime=0)
        # encoded and compressed on a thread of its own, in order, a couple of batches behind
        # the caller (both release the GIL), so the caller's Parquet writes go on meanwhile
        self._writer = ThreadPoolExecutor(max_workers=1)
        self._pending: list = []

    def write(self, records: pa.Table) -> None:
        if len(self._pending) >= 2:
            self._pending.pop(0).result()
        self._pending.append(self._writer.submit(self._write, records))

    def _write(self, records: pa.Table) -> None:
        for piece in jsonl_pieces(records):
            self._file.write(piece)

    def close(self) -> None:
        for future in self._pending:
            future.result()
        self._writer.shutdown()
        self._file.close()

"""Zero-copy views of Arrow string arrays, and row-wise joins of text columns."""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def value_offsets(array: pa.Array) -> np.ndarray:
    """A string array's ``len + 1`` offsets into its data buffer, without copying them (the
    array's offset honoured)."""
    width = np.int64 if pa.types.is_large_string(array.type) else np.int32
    return np.frombuffer(array.buffers()[1], dtype=width)[array.offset: array.offset + len(array) + 1]


def value_data(array: pa.Array) -> pa.Buffer:
    """The bytes of a string array's values, back to back, without copying them (the array's
    offset honoured; an empty or all-null array has none)."""
    data = array.buffers()[2]
    if data is None or len(array) == 0:
        return pa.py_buffer(b"")
    bounds = value_offsets(array)
    return data[bounds[0]: bounds[-1]]


def join_texts(*parts: pa.Array | str) -> pa.Array:
    """Text columns and literal texts concatenated row by row; the literals take the columns'
    type (string, or large_string where a day's raw lines can pass 2 GiB)."""
    kind = next(part.type for part in parts if not isinstance(part, str))
    return pc.binary_join_element_wise(*(pa.scalar(part, kind) if isinstance(part, str) else part for part in parts),
                                       pa.scalar("", kind))


"""The spill's key files: buckets written in parts of several buckets, any run of buckets read
back exactly — checked against the rows each bucket was given, bucket by bucket."""

import numpy as np
import pyarrow as pa
from hypothesis import given, settings, strategies as st

from billing_assets.usage.ingest.dedupe import FINE_BUCKETS
from billing_assets.usage.ingest.spill import Spill


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, FINE_BUCKETS - 1), max_size=300), st.data())
def test_any_run_of_buckets_reads_back_exactly_its_rows(buckets, data):
    buckets = sorted(buckets)  # the file holds the keys in bucket order
    table = pa.table({"key": [f"k{n}-b{bucket}" for n, bucket in enumerate(buckets)],
                      "row": np.arange(len(buckets), dtype=np.int64)})
    bounds = np.concatenate(([0], np.cumsum(np.bincount(np.array(buckets, dtype=np.int64), minlength=FINE_BUCKETS))))
    first = data.draw(st.integers(0, FINE_BUCKETS - 1))
    last = data.draw(st.integers(first + 1, FINE_BUCKETS))
    with Spill() as spill:
        spill.write_parts("keys", table, bounds)
        read = spill.read_parts("keys", bounds, first, last)
    expected = [f"k{n}-b{bucket}" for n, bucket in enumerate(buckets) if first <= bucket < last]
    assert read.column("key").to_pylist() == expected
    assert read.column("row").to_pylist() == [n for n, bucket in enumerate(buckets) if first <= bucket < last]

"""The lake against a real S3 endpoint: retries on throttling, atomic partition replacement."""

import io

import pyarrow as pa
import pyarrow.parquet as pq
from botocore.awsrequest import AWSResponse

from billing_assets.resources import billing_lake

SLOW_DOWN = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"


class _Body(io.BytesIO):
    def stream(self, **_):
        yield self.getvalue()


def test_throttled_reads_are_retried(bucket, s3):
    s3.put_object(Bucket=bucket, Key="raw/usage/dt=2026-01-05/a.jsonl", Body=b"payload")
    lake = billing_lake()
    client = lake.client()
    failures = {"left": 2}

    def slow_down(request, **_):
        if failures["left"]:
            failures["left"] -= 1
            return AWSResponse(request.url, 503, {}, _Body(SLOW_DOWN))
        return None

    client.meta.events.register("before-send.s3.GetObject", slow_down)
    assert lake.get_bytes("raw/usage/dt=2026-01-05/a.jsonl") == b"payload"
    assert failures["left"] == 0  # both injected 503s were met and retried through


def test_a_partition_is_replaced_whole(bucket):
    lake = billing_lake()
    first = pa.table({"n": pa.array([1, 2, 3], pa.int64())})
    second = pa.table({"n": pa.array([4], pa.int64())})
    key, size = lake.write_table("example", "2026-01-05", first)
    assert key == "warehouse/example/dt=2026-01-05/part-00000.parquet" and size > 0
    lake.write_table("example", "2026-01-05", second)
    assert lake.read_table("example", "2026-01-05").column("n").to_pylist() == [4]
    assert lake.partition_key("example", "2026-01") == "warehouse/example/month=2026-01/part-00000.parquet"


def test_the_same_table_always_serialises_to_the_same_bytes(bucket, s3):
    lake = billing_lake()
    table = pa.table({"n": pa.array([1, 2], pa.int64()), "s": ["a", "b"]})
    lake.write_table("example", "2026-01-05", table)
    once = s3.get_object(Bucket=bucket, Key="warehouse/example/dt=2026-01-05/part-00000.parquet")["Body"].read()
    lake.write_table("example", "2026-01-05", pa.table({"n": pa.array([1, 2], pa.int64()), "s": ["a", "b"]}))
    twice = s3.get_object(Bucket=bucket, Key="warehouse/example/dt=2026-01-05/part-00000.parquet")["Body"].read()
    assert once == twice
    assert pq.read_table(io.BytesIO(once)).equals(table)

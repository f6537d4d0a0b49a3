"""The lake against a real S3 endpoint: retries on throttling, atomic partition replacement."""

import io

import pyarrow as pa
import pyarrow.parquet as pq
from botocore.awsrequest import AWSResponse

from billing_assets.resources import billing_lake
from billing_assets_tests.processes import kill_at_marker

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


_HELD_UPLOAD = """
import pathlib, sys, time
from boto3.s3.transfer import TransferConfig
import billing_assets.lib.lake as lake_module
from billing_assets.resources import billing_lake

lake_module._TRANSFER = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20, max_concurrency=1)
lake, parts = billing_lake(), []

def hold(**_):  # the first part goes through; the run is then held there until it is killed
    parts.append(1)
    if len(parts) == 2:
        pathlib.Path(sys.argv[1]).write_text("first part sent")
        time.sleep(300)

lake.client().meta.events.register("before-call.s3.UploadPart", hold)
lake.publish_file("usage_events", "2026-01-05", sys.argv[2])
"""


def test_a_run_killed_between_the_parts_of_a_large_partition_leaves_the_previous_version(bucket, s3, tmp_path):
    import os

    lake = billing_lake()
    previous = pa.table({"v": ["previous"]})
    lake.write_table("usage_events", "2026-01-05", previous)
    large = pa.table({"v": pa.array([os.urandom(1024) for _ in range(16_000)], pa.binary())})  # ~16 MiB, incompressible
    path = str(tmp_path / "new.parquet")
    pq.write_table(large, path, compression="zstd")
    assert os.path.getsize(path) > 15 << 20  # three parts of 5 MiB and more

    kill_at_marker(_HELD_UPLOAD, path, marker=tmp_path / "marker", what="the upload's second part")

    key = lake.partition_key("usage_events", "2026-01-05")
    assert lake.read_table("usage_events", "2026-01-05").equals(previous)  # what every reader still sees
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [upload["Key"] for upload in uploads] == [key]  # begun, never completed: invisible
    assert [item.key for item in lake.list_objects("warehouse/")] == [key]

    lake.publish_file("usage_events", "2026-01-05", path)  # the next run publishes it whole
    assert lake.read_table("usage_events", "2026-01-05").equals(large)


def test_lakes_share_one_client_per_configuration(aws_env, monkeypatch, s3_endpoint):
    # Dagster builds resources afresh for every step: the client must outlive them
    first, second = billing_lake(), billing_lake()
    assert first.client() is second.client()
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint.replace("127.0.0.1", "localhost"))
    moved = billing_lake().client()
    assert moved is not first.client()
    assert moved.meta.endpoint_url == s3_endpoint.replace("127.0.0.1", "localhost")


def _dictionary_columns(path) -> set[str]:
    metadata = pq.ParquetFile(path).metadata
    return {metadata.schema.column(index).name for group in range(metadata.num_row_groups)
            for index in range(metadata.num_columns)
            if "RLE_DICTIONARY" in metadata.row_group(group).column(index).encodings}


def test_only_columns_that_repeat_their_values_get_a_dictionary(tmp_path):
    # 3 writes of 30,000 rows: the sink holds the first batches until it has 65,536 rows to look
    # at; "kind" takes 3 values, "event_id" and "line" one per row, "note" 2 per 3 rows (more
    # than half distinct) and "empty" none
    from billing_assets.lib.lake import ParquetFileSink

    schema = pa.schema([("event_id", pa.string()), ("line", pa.int64()), ("kind", pa.string()),
                        ("note", pa.string()), ("empty", pa.string())])
    sink = ParquetFileSink(str(tmp_path / "t.parquet"), schema)
    for start in range(0, 90_000, 30_000):
        rows = range(start, start + 30_000)
        sink.write(pa.table({"event_id": [f"e{n}" for n in rows], "line": list(rows), "kind": [f"k{n % 3}" for n in rows],
                             "note": [f"n{n - n % 3 + min(n % 3, 1)}" for n in rows], "empty": [None] * 30_000},
                            schema=schema))
    sink.close()
    stored = pq.read_table(tmp_path / "t.parquet")
    assert stored.num_rows == 90_000 and stored.column("line").to_pylist() == list(range(90_000))
    assert _dictionary_columns(tmp_path / "t.parquet") == {"kind", "empty"}
    # a file of few rows tells little about its columns: all of them get one, as Arrow chooses
    small = ParquetFileSink(str(tmp_path / "s.parquet"), schema)
    small.write(pa.table({"event_id": ["a", "b"], "line": [1, 2], "kind": ["k", "k"], "note": ["x", "y"],
                          "empty": [None, None]}, schema=schema))
    small.close()
    assert pq.read_table(tmp_path / "s.parquet").column("event_id").to_pylist() == ["a", "b"]
    assert _dictionary_columns(tmp_path / "s.parquet") == set(schema.names)


def test_a_partition_this_process_published_is_read_back_without_a_download_while_s3_holds_it(bucket, s3, tmp_path):
    lake = billing_lake()
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"n": pa.array([1, 2, 3], pa.int64())}), path)
    lake.publish_file("example", "2026-01-05", str(path))
    path.unlink()  # the publisher's file goes with its temporary directory
    gets = []
    lake.client().meta.events.register("before-send.s3.GetObject", lambda request, **_: gets.append(request.url))
    for _ in range(2):  # a reader's copy is its own: the next reader still gets one
        with lake.local_partition("example", "2026-01-05") as local:
            assert pq.read_table(local).column("n").to_pylist() == [1, 2, 3]
    assert gets == []
    # replaced by anyone else (here the same key written through boto3 directly): downloaded again
    replaced = io.BytesIO()
    pq.write_table(pa.table({"n": pa.array([9], pa.int64())}), replaced)
    s3.put_object(Bucket=bucket, Key=lake.partition_key("example", "2026-01-05"), Body=replaced.getvalue())
    with lake.local_partition("example", "2026-01-05") as local:
        assert pq.read_table(local).column("n").to_pylist() == [9]
    assert len(gets) == 1


def test_published_copies_keep_to_their_limit_oldest_first(tmp_path):
    from billing_assets.lib.lake import _PublishedCopies

    copies = _PublishedCopies(limit=10)
    for name, size in (("a", 4), ("b", 4), ("c", 4)):  # the third passes 10 bytes: "a" goes
        (tmp_path / name).write_bytes(b"x" * size)
        copies.keep(("e", "bucket", name), f"etag-{name}", str(tmp_path / name))
    assert [copies.holds(("e", "bucket", name)) for name in "abc"] == [False, True, True]
    assert not copies.lend(("e", "bucket", "b"), "another etag", str(tmp_path / "b-read"))
    assert copies.lend(("e", "bucket", "b"), "etag-b", str(tmp_path / "b-read"))
    assert (tmp_path / "b-read").read_bytes() == b"xxxx"
    copies.clear()

"""The billing lake: one S3 bucket holding raw usage, reference data and warehouse tables.

Every warehouse partition is a single Parquet object, so publishing it is one PUT, or for a
large one one multipart upload: S3 makes either atomic (a multipart object appears only when
the upload is completed), a reader sees the previous version or the new one and never half of
either, and a failed or killed run leaves the previous version in place.
"""


import atexit
import contextlib
import io
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from boto3.s3.transfer import TransferConfig
from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr

DEFAULT_BUCKET = "billing"
PARQUET_FILE = "part-00000.parquet"


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    etag: str
    last_modified: datetime


_PARQUET_OPTIONS = {"compression": "zstd", "use_dictionary": True, "write_statistics": True, "store_schema": True}
# parts of 64 MiB: a day of 50M events is a few dozen parts; S3 allows 10,000
_TRANSFER = TransferConfig(multipart_threshold=64 << 20, multipart_chunksize=64 << 20, max_concurrency=4)


_SAMPLE_ROWS = 1 << 16


def parquet_options(sample: pa.Table) -> dict:
    """The writer's options for a table whose first rows are ``sample``: a dictionary only for
    the columns that repeat their values there (at most half of them distinct). Arrow would
    otherwise hash every value of a column of unique ones (event ids, line numbers) before it
    gave up on the dictionary: a third of a day's encoding time, and a larger file. A small
    sample tells little: every column then gets one."""
    if sample.num_rows < 1000:
        return _PARQUET_OPTIONS
    repeating = []
    for name in sample.column_names:
        try:
            distinct = pc.count_distinct(sample.column(name)).as_py()
        except pa.ArrowNotImplementedError:  # a nested column: Arrow's own choice
            distinct = 0
        if distinct <= sample.num_rows // 2:
            repeating.append(name)
    return _PARQUET_OPTIONS | {"use_dictionary": repeating}


def parquet_bytes(table: pa.Table) -> bytes:
    """Serialise deterministically: the same table always gives the same bytes."""
    sink = io.BytesIO()
    pq.write_table(table, sink, **parquet_options(table.slice(0, _SAMPLE_ROWS)))
    return sink.getvalue()


class ParquetFileSink:
    """A Parquet file written batch by batch (each batch its row groups), for tables too large
    to hold: the same batches always give the same bytes. The first batches are held until
    they make a sample (``parquet_options``) or the file closes."""

    ROW_GROUP_ROWS = 1 << 20

    def __init__(self, path: str, schema: pa.Schema):
        self.path, self.schema, self.rows, self.head = path, schema, 0, schema.empty_table()
        self._writer: pq.ParquetWriter | None = None
        self._held: list[pa.Table] = []

    def write(self, table: pa.Table) -> None:
        table = table.cast(self.schema)
        if self.head.num_rows < 10:
            self.head = pa.concat_tables([self.head, table.slice(0, 10)]).slice(0, 10)
        self.rows += table.num_rows
        if self._writer is None:
            self._held.append(table)
            if self.rows < _SAMPLE_ROWS:
                return
            table = pa.concat_tables(self._held)
            self._writer = pq.ParquetWriter(self.path, self.schema, **parquet_options(table.slice(0, _SAMPLE_ROWS)))
            self._held = []
        if table.num_rows:
            self._writer.write_table(table, row_group_size=self.ROW_GROUP_ROWS)

    def close(self) -> None:
        if self._writer is None:
            table = pa.concat_tables([self.schema.empty_table(), *self._held])
            self._writer = pq.ParquetWriter(self.path, self.schema, **parquet_options(table))
            self._writer.write_table(table, row_group_size=self.ROW_GROUP_ROWS)
        self._writer.close()


_CLIENTS: dict[tuple, object] = {}
_CLIENTS_LOCK = threading.Lock()


def shared_client(s3: S3Resource):
    """One boto3 client per S3 configuration in this process. Building one loads botocore's
    service models (~0.1–0.3 s), and Dagster builds a step's resources afresh for every step: a
    run of forty steps spent more than a second building the same client. Clients are
    thread-safe. The key holds the resource's settings and the AWS_* environment, which boto3
    reads when it builds a client (a changed endpoint or key gets a client of its own)."""
    key = (s3.model_dump_json(), tuple(sorted((name, value) for name, value in os.environ.items()
                                              if name.startswith("AWS_"))))
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            _CLIENTS[key] = s3.get_client()
        return _CLIENTS[key]


class _PublishedCopies:
    """The partitions this process published from local files, kept on local disk by endpoint,
    bucket, key and the ETag S3 gave them. ``billing run`` runs a job's steps in one process,
    and six of them read the day's events partition it just wrote: a hundred megabytes fetched
    back six times. A copy stands in for the object only while S3 still holds that very object
    (its ETag, asked afresh at each read), so a partition replaced by anyone is downloaded as
    before. At most ``limit`` bytes are kept, the oldest let go first."""

    def __init__(self, limit: int = 2 << 30):
        self.limit, self._lock, self._copies, self._directory = limit, threading.Lock(), {}, None
        self._made = 0

    def keep(self, where: tuple[str, str, str], etag: str, path: str) -> None:
        with self._lock:
            if self._directory is None:
                self._directory = tempfile.mkdtemp(prefix="billing-published-")
                atexit.register(shutil.rmtree, self._directory, True)
            self._drop(where)
            self._made += 1
            copy = os.path.join(self._directory, f"{self._made}.parquet")
            _link_or_copy(path, copy)
            self._copies[where] = (etag, copy, os.path.getsize(copy))
            while sum(size for _, _, size in self._copies.values()) > self.limit:
                self._drop(next(iter(self._copies)))

    def holds(self, where: tuple[str, str, str]) -> bool:
        return where in self._copies

    def lend(self, where: tuple[str, str, str], etag: str, path: str) -> bool:
        """Put the copy of ``where`` at ``path`` if it is the object S3 holds (``etag``)."""
        with self._lock:
            kept = self._copies.get(where)
            if kept is None or kept[0] != etag:
                return False
            _link_or_copy(kept[1], path)  # the reader's own link: letting the copy go leaves it whole
            return True

    def clear(self) -> None:
        with self._lock:
            for where in list(self._copies):
                self._drop(where)

    def _drop(self, where: tuple[str, str, str]) -> None:
        kept = self._copies.pop(where, None)
        if kept is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(kept[1])


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copyfile(source, target)


PUBLISHED = _PublishedCopies()


class BillingLake(dg.ConfigurableResource):
    """The S3 bucket the platform reads raw data from and writes its tables to."""

    s3: dg.ResourceDependency[S3Resource]
    bucket: str | None = Field(
        default=None, description="Bucket name; defaults to $BILLING_BUCKET, else 'billing'."
    )

    _client: object = PrivateAttr(default=None)

    @property
    def bucket_name(self) -> str:
        return self.bucket or os.environ.get("BILLING_BUCKET") or DEFAULT_BUCKET

    def client(self):
        if self._client is None:
            self._client = shared_client(self.s3)
        return self._client

    def arrow_filesystem(self):
        """The bucket as an Arrow filesystem, for reads that want only some columns and rows of a
        partition (ranged GETs of the Parquet footer and the column chunks asked for). Same
        endpoint and credentials as ``client()``: boto3's chain, or the resource's own keys."""
        import boto3
        from pyarrow import fs

        client = self.client()
        credentials = boto3.Session(profile_name=self.s3.profile_name).get_credentials()
        frozen = credentials.get_frozen_credentials() if credentials else None
        return fs.S3FileSystem(
            access_key=self.s3.aws_access_key_id or (frozen.access_key if frozen else None),
            secret_key=self.s3.aws_secret_access_key or (frozen.secret_key if frozen else None),
            session_token=self.s3.aws_session_token or (frozen.token if frozen else None),
            region=client.meta.region_name or "us-east-1", endpoint_override=client.meta.endpoint_url)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket_name}/{key}"

    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        paginator = self.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket_name, Prefix=prefix):
            for item in page.get("Contents", []):
                yield StoredObject(
                    key=item["Key"],
                    size=item["Size"],
                    etag=item["ETag"].strip('"'),
                    last_modified=item["LastModified"],
                )

    def list_folders(self, prefix: str) -> tuple[list[str], list[str]]:
        """One level below ``prefix``: (sub-folder prefixes, keys directly in it), paginated."""
        folders, keys = [], []
        paginator = self.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket_name, Prefix=prefix, Delimiter="/"):
            folders += [entry["Prefix"] for entry in page.get("CommonPrefixes", [])]
            keys += [item["Key"] for item in page.get("Contents", [])]
        return folders, keys

    def get_bytes(self, key: str) -> bytes:
        return self.client().get_object(Bucket=self.bucket_name, Key=key)["Body"].read()

    def get_bytes_or_none(self, key: str) -> bytes | None:
        client = self.client()
        try:
            return client.get_object(Bucket=self.bucket_name, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            return None

    def open_stream(self, key: str):
        """The object's body as a stream: read as it is consumed, never held whole."""
        return self.client().get_object(Bucket=self.bucket_name, Key=key)["Body"]

    def get_many(self, keys: Sequence[str], threads: int = 8) -> list[bytes]:
        """Fetch objects concurrently (S3 latency, not bandwidth, bounds a day of small objects)."""
        client = self.client()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(lambda key: client.get_object(Bucket=self.bucket_name, Key=key)["Body"].read(), keys))

    def delete(self, keys: Sequence[str]) -> None:
        client = self.client()
        for start in range(0, len(keys), 1000):
            client.delete_objects(Bucket=self.bucket_name,
                                  Delete={"Objects": [{"Key": key} for key in keys[start:start + 1000]]})

    def copy(self, source_key: str, target_key: str) -> None:
        self.client().copy_object(Bucket=self.bucket_name, Key=target_key,
                                  CopySource={"Bucket": self.bucket_name, "Key": source_key})

    def put_bytes(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        self.client().put_object(Bucket=self.bucket_name, Key=key, Body=body, ContentType=content_type)

    def put_once(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> bool:
        """Write ``key`` only if it does not exist yet (S3 conditional write, If-None-Match: *).
        True when ``key`` now holds ``body`` written by this call; False when something else was
        already there, which is left untouched. A 412 is read back and compared: when a first
        attempt landed but its response was lost, the retry's 412 is this call's own success."""
        client = self.client()
        try:
            client.put_object(Bucket=self.bucket_name, Key=key, Body=body, ContentType=content_type, IfNoneMatch="*")
        except client.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                return self.get_bytes(key) == body
            raise
        return True

    @staticmethod
    def partition_key(table: str, partition: str) -> str:
        """Hive-style location of a partition: ``warehouse/<table>/dt=2026-01-05/part-00000.parquet``."""
        column = "month" if len(partition) == 7 else "dt"
        return f"warehouse/{table}/{column}={partition}/{PARQUET_FILE}"

    def days_present(self, table_name: str, month: str) -> set[str]:
        """The days of ``month`` (YYYY-MM) for which a daily table has a partition."""
        return {item.key.split("/")[2].removeprefix("dt=")
                for item in self.list_objects(f"warehouse/{table_name}/dt={month}-")}

    def read_month(self, table_name: str, month: str) -> dict[str, pa.Table]:
        """The partitions a daily table has in ``month``, by day, in day order."""
        return {day: self.read_table(table_name, day) for day in sorted(self.days_present(table_name, month))}

    def write_table(self, table_name: str, partition: str, table: pa.Table) -> tuple[str, int]:
        """Replace one partition of a warehouse table in a single atomic PUT; returns (key, bytes)."""
        key = self.partition_key(table_name, partition)
        body = parquet_bytes(table)
        self.put_bytes(key, body, "application/vnd.apache.parquet")
        return key, len(body)

    def publish_file(self, table_name: str, partition: str, path: str) -> str:
        """Replace one partition of a warehouse table with a local Parquet file, by one PUT or
        one multipart upload (atomic either way; a failed upload is aborted and leaves the
        previous version); returns the key."""
        key = self.partition_key(table_name, partition)
        self.put_file(key, path, "application/vnd.apache.parquet")
        PUBLISHED.keep(self._where(key), self._etag(key), path)
        return key

    def _where(self, key: str) -> tuple[str, str, str]:
        return self.client().meta.endpoint_url, self.bucket_name, key

    def _etag(self, key: str) -> str:
        return self.client().head_object(Bucket=self.bucket_name, Key=key)["ETag"].strip('"')

    def put_file(self, key: str, path: str, content_type: str) -> None:
        """A local file as ``key``: one PUT, or a multipart upload past 64 MiB (atomic either way)."""
        self.client().upload_file(path, self.bucket_name, key, Config=_TRANSFER, ExtraArgs={"ContentType": content_type})

    def read_table(self, table_name: str, partition: str) -> pa.Table:
        return pq.read_table(io.BytesIO(self.get_bytes(self.partition_key(table_name, partition))))

    def row_count(self, table_name: str, partition: str) -> int:
        """A partition's rows, from its Parquet footer alone."""
        with self.local_partition(table_name, partition) as path:
            return pq.ParquetFile(path).metadata.num_rows

    @contextlib.contextmanager
    def local_partition(self, table_name: str, partition: str) -> Iterator[str]:
        """A local copy of one partition (streamed to disk, never held in memory, or this
        process's own copy of what it published, when S3 still holds that), removed after."""
        key = self.partition_key(table_name, partition)
        with tempfile.TemporaryDirectory(prefix="billing-read-") as directory:
            path = os.path.join(directory, PARQUET_FILE)
            where = self._where(key)
            if not (PUBLISHED.holds(where) and PUBLISHED.lend(where, self._etag(key), path)):
                self.client().download_file(self.bucket_name, key, path, Config=_TRANSFER)
            yield path

"""The ``spark`` engine's job, launched through Dagster Pipes: ``python -m billing_assets.spark.job``
in local mode, the same module as EMR Serverless's entry point. It ingests (or meters) the days
the asset was launched for and reports what it materialised, with Spark's facts, to Dagster.

Publishing is the local engine's: each day's tables are streamed, object by object in key order,
from what the Spark tasks staged, into the same Parquet sinks and atomic uploads.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections import Counter
from datetime import date, datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.compute as pc

from billing_assets.lib.lake import BillingLake
from billing_assets.spark.stages import (
    METERED_INPUT, METERED_ROWS, OBJECTS, ROWS, STAGED, arrow_table, check_objects, deduplicate, meter,
    stage_objects, staged_key, worker_lake,
)
from billing_assets.usage.ingest import IngestResult, Limits, RawObject, Sinks, ingest_into
from billing_assets.usage.ingest.partition import file_records, unreadable_quarantine
from billing_assets.usage.ingest.rules import _PartitionContext
from billing_assets.usage.reasons import Reason

STAGING = "staging/spark/"  # outside warehouse/: what a task staged is never read as a table


def session(settings: dict):
    """A Spark session: in local mode on this machine (``master`` set), else the one the cluster
    (spark-submit, EMR Serverless) provides."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("billing")
    if settings.get("master"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers run this interpreter
        builder = builder.master(settings["master"]).config("spark.ui.enabled", "false")
    for key, value in (settings.get("conf") or {}).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _reader(bucket: str):
    return lambda key: worker_lake(bucket).open_stream(key)


def _writer(bucket: str):
    return lambda key, body: worker_lake(bucket).put_bytes(key, body)


def spark_day(spark, lake: BillingLake, token: str, reference, limits: Limits, partitions: int):
    """A ``DayEngine``: one day's objects through the Spark stages, the staged tables handed to
    the sinks in the local engine's order."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema
    from pyspark.storagelevel import StorageLevel

    def run(day: str, objects: list[RawObject], sinks: Sinks) -> IngestResult:
        if not objects:  # nothing to hand Spark: an empty day's tables
            return ingest_into(date.fromisoformat(day), objects, reference, sinks, limits)
        ctx = _PartitionContext.build(date.fromisoformat(day), reference)
        epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
        listed = [(index, raw.key, (raw.last_modified - epoch) // timedelta(microseconds=1) * 1000)
                  for index, raw in enumerate(objects)]
        frame = spark.createDataFrame(_slotted(spark, listed, [raw.size or 0 for raw in objects], partitions),
                                      from_arrow_schema(OBJECTS))
        rows = from_arrow_schema(ROWS)
        checked = frame.mapInArrow(check_objects(ctx, limits.chunk_bytes, _reader(lake.bucket_name)), rows).persist(StorageLevel.DISK_ONLY)
        prefix = f"{STAGING}{token}/dt={day}/"
        started = time.perf_counter()
        try:
            facts = checked.filter(F.col("kind") == "object").toArrow().sort_by("object_index")
            checked_at = time.perf_counter()
            unreadable = [index for index, why in zip(facts.column("object_index").to_pylist(),
                                                      facts.column("unreadable").to_pylist()) if why]
            kept = checked.filter((F.col("kind") != "object") & ~F.col("object_index").isin(unreadable))
            deduplicated = (kept.filter(F.col("kind") == "passed").repartition(partitions, "bucket")
                            .mapInArrow(deduplicate, rows))
            staged = (deduplicated.unionByName(kept.filter(F.col("kind") == "rejected"))
                      .repartition(partitions, "object_index").sortWithinPartitions("object_index", "line_number")
                      .mapInArrow(stage_objects(_writer(lake.bucket_name), prefix, limits.chunk_bytes,
                                                 _reader(lake.bucket_name)), from_arrow_schema(STAGED))
                      .toArrow())
            staged_at = time.perf_counter()
            result = _assemble(lake, prefix, objects, facts, staged, sinks)
            result.stage_seconds = {"objects": checked_at - started, "dedupe_and_staging": staged_at - checked_at,
                                    "publish": time.perf_counter() - staged_at}
            return result
        finally:
            checked.unpersist()
            stale = [item.key for item in lake.list_objects(prefix)]
            if stale:
                lake.delete(stale)

    return run


def _slotted(spark, listed: list[tuple], sizes: list[int], slots: int):
    """The objects dealt into at most ``slots`` tasks, largest first to the lightest task: a task
    costs Spark a fraction of a second whatever it holds (a day of 200 small objects, one a task,
    spent most of its time starting tasks), and an object is never split."""
    slots = max(1, min(slots, len(listed)))
    load, slot_of = [0] * slots, {}
    for index in sorted(range(len(listed)), key=lambda i: -sizes[i]):
        slot = min(range(slots), key=load.__getitem__)
        slot_of[index], load[slot] = slot, load[slot] + sizes[index] + 1
    pairs = [(slot_of[index], row) for index, row in enumerate(listed)]
    return spark.sparkContext.parallelize(pairs, slots).partitionBy(slots, lambda slot: slot).values()


def _assemble(lake: BillingLake, prefix: str, objects: list[RawObject], facts: pa.Table, staged: pa.Table,
              sinks: Sinks) -> IngestResult:
    found = facts.to_pylist()
    readable = [item for item in found if not item["unreadable"]]
    files = unreadable_quarantine([item["object_key"] for item in found if item["unreadable"]],
                                  [item["unreadable"] for item in found if item["unreadable"]])
    sinks.quarantined.write(files)
    counts = {row["object_index"]: row for row in staged.to_pylist()}
    targets = {"usage_events": sinks.events, "duplicate_events": sinks.duplicates,
               "quarantined_events": sinks.quarantined, "records": sinks.records}
    column = {"usage_events": "accepted", "duplicate_events": "duplicates", "quarantined_events": "quarantined",
              "records": "quarantined"}
    for item in readable:
        count = counts.get(item["object_index"])
        for name, sink in targets.items():
            if count and count[column[name]]:
                sink.write(arrow_table(lake.get_bytes(staged_key(prefix, item["object_index"], name))))
    sinks.records.write(file_records(files))
    reasons = Counter({Reason.UNREADABLE_FILE.value: files.num_rows,
                       Reason.DUPLICATE_CONFLICT.value: int(pc.sum(staged.column("conflicts")).as_py() or 0)})
    for item in readable:
        reasons.update(json.loads(item["reasons"]))
    result = IngestResult(
        objects_read=len(objects), bytes_read=sum(item["bytes_read"] for item in found),
        lines_read=sum(item["lines"] for item in readable),
        ignored_fields=sum(item["ignored_fields"] for item in readable),
        unreadable_objects=[item["object_key"] for item in found if item["unreadable"]],
        empty_objects=[item["object_key"] for item in readable if not item["lines"]],
        largest_batch_lines=max((item["largest_chunk"] for item in readable), default=0),
        accepted=sum(row["accepted"] for row in counts.values()),
        duplicate_count=sum(row["duplicates"] for row in counts.values()),
    )
    result.reason_counts.update(reasons)
    return result


def meter_days(spark, lake: BillingLake, days: list[str], aggregation: dict[str, str], partitions: int):
    """Each day's metered usage: events read a Parquet row group a task, every event of a
    customer × meter brought to one task, ``meter_day`` there; the day's rows written as the
    local engine writes them."""
    import pyarrow.parquet as pq
    from pyspark.sql.pandas.types import from_arrow_schema

    from billing_assets.metering.aggregate import METERED_USAGE_SCHEMA
    from billing_assets.metering.assets import METERED_COLUMNS

    tables, uri = {}, None
    for day in days:
        key = lake.partition_key("usage_events", day)
        groups = pq.ParquetFile(lake.arrow_filesystem().open_input_file(f"{lake.bucket_name}/{key}")).num_row_groups
        frame = spark.createDataFrame(spark.sparkContext.parallelize([(group,) for group in range(groups)],
                                                                     max(groups, 1)), "row_group long")
        events = frame.mapInArrow(_row_groups(lake.bucket_name, key, METERED_COLUMNS),
                                  from_arrow_schema(METERED_INPUT))
        metered = (events.repartition(partitions, "customer_id", "meter")
                   .mapInArrow(meter(date.fromisoformat(day), aggregation), from_arrow_schema(METERED_ROWS)).toArrow())
        metered = metered.cast(METERED_ROWS)
        metered = metered.set_column(6, "latest_timestamp", metered.column("latest_timestamp")
                                     .cast(METERED_USAGE_SCHEMA.field("latest_timestamp").type))
        table = metered.cast(METERED_USAGE_SCHEMA).sort_by([("customer_id", "ascending"), ("meter", "ascending")])
        written, _ = lake.write_table("metered_usage", day, table)
        uri, tables[day] = lake.uri(written), table
    return tables, uri


def _row_groups(bucket: str, key: str, columns: list[str]):
    def run(batches):
        import pyarrow.parquet as pq

        for batch in batches:
            for group in batch.column(0).to_pylist():
                with worker_lake(bucket).arrow_filesystem().open_input_file(f"{bucket}/{key}") as source:
                    table = pq.ParquetFile(source).read_row_group(group, columns=columns)
                table = table.set_column(1, "timestamp", table.column("timestamp").cast(pa.int64()))
                yield from table.cast(METERED_INPUT).to_batches()

    return run


def _facts(spark, settings: dict, started: float, session_seconds: float) -> dict:
    tracker = spark.sparkContext.statusTracker()
    jobs = [tracker.getJobInfo(job) for job in tracker.getJobIdsForGroup("billing")]
    stages = [tracker.getStageInfo(stage) for job in jobs if job for stage in job.stageIds]
    return {"engine": "spark", "spark/master": spark.sparkContext.master,
            # local mode: the driver is the one executor
            "spark/executors": max(spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1, 1),
            "spark/default_parallelism": spark.sparkContext.defaultParallelism,
            "spark/shuffle_partitions": settings["partitions"],
            "spark/tasks": sum(stage.numTasks for stage in stages if stage),
            "spark/session_start_seconds": round(session_seconds, 2),
            "spark/wall_seconds": round(time.perf_counter() - started, 2)}


def pipes_metadata(metadata: dict) -> dict:
    """Dagster metadata values as Pipes carries them (raw values, or typed where Dagster's type
    says more than the value: JSON and Markdown)."""
    import dagster as dg

    typed = {dg.JsonMetadataValue: "json", dg.MarkdownMetadataValue: "md", dg.TextMetadataValue: "text"}
    out = {}
    for name, value in metadata.items():
        kind = typed.get(type(value))
        out[name] = {"raw_value": value.value, "type": kind} if kind else value
    return out


def main() -> None:
    from dagster_pipes import open_dagster_pipes

    from billing_assets.reference.assets import read_reference
    from billing_assets.resources import billing_lake

    import dagster as dg

    # the asset modules' beta parameters say so on import: news for the Dagster process, not here
    for category in (dg.BetaWarning, dg.PreviewWarning):
        warnings.filterwarnings("ignore", category=category)
    with open_dagster_pipes() as pipes:
        started = time.perf_counter()
        settings, days, job = pipes.get_extra("spark"), pipes.get_extra("days"), pipes.get_extra("job")
        spark = session(settings)
        session_seconds = time.perf_counter() - started
        # asked for; else twice the local session's cores; else what the cluster was submitted with
        settings["partitions"] = settings.get("partitions") or (
            2 * spark.sparkContext.defaultParallelism if settings.get("master")
            else int(spark.conf.get("spark.sql.shuffle.partitions")))
        spark.sparkContext.setJobGroup("billing", f"billing {job} {days[0]}..{days[-1]}")
        lake = billing_lake()
        reference = read_reference(lake)
        if job == "ingest":
            from billing_assets.usage.assets import ingest_days, ingest_metadata

            limits = pipes.get_extra("limits")
            spill_dir = limits.get("spill_dir")
            # the Dagster machine's spill directory, where this driver has it too (not on a cluster)
            limits = Limits(**limits | {"spill_dir": spill_dir if spill_dir and os.path.isdir(spill_dir) else None})
            engine = spark_day(spark, lake, pipes.run_id, reference, limits, settings["partitions"])
            per_day, fingerprints, heads = ingest_days(lake, days, reference, limits, pipes.log, engine)
            facts = _facts(spark, settings, started, session_seconds)
            reports = ingest_metadata(lake, days, per_day, fingerprints, heads, reference.fingerprint, facts)
            for metadata in reports.values():
                metadata.pop("largest_batch_keys", None)  # the local engine's dedupe batch; Spark's tasks say theirs
        else:
            from billing_assets.metering.assets import metered_metadata

            tables, uri = meter_days(spark, lake, days, reference.meter_aggregation(), settings["partitions"])
            reports = {"metered_usage": metered_metadata(tables, uri) | _facts(spark, settings, started,
                                                                                 session_seconds)}
        for asset, metadata in reports.items():
            pipes.report_asset_materialization(asset_key=asset, metadata=pipes_metadata(metadata))


if __name__ == "__main__":
    main()

"""Daily ingest: every raw object of a day becomes accepted events, duplicates or quarantine."""


import dataclasses
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from datetime import date

import dagster as dg
import pyarrow as pa
from pydantic import Field

from billing_assets.lib.checks import markdown_preview, table_metadata
from billing_assets.lib.engine import BillingEngine
from billing_assets.lib.lake import BillingLake, ParquetFileSink
from billing_assets.lib.memory import give_back_memory
from billing_assets.partitions import daily_usage_partitions
from billing_assets.reference.assets import REFERENCE_ASSET_KEYS, read_reference
from billing_assets.reference.loading import ReferenceData
from billing_assets.usage.ingest import (
    DUPLICATE_EVENTS_SCHEMA, QUARANTINED_EVENTS_SCHEMA, USAGE_EVENTS_SCHEMA, IngestResult, Limits, RawObject, Sinks,
    ingest_into,
)
from billing_assets.usage.quarantine import RecordsFileSink
from billing_assets.usage.schemas import DuplicateEvent, QuarantinedEvent, UsageEvent

USAGE_TABLES = ("usage_events", "quarantined_events", "duplicate_events")
RAW_FINGERPRINTS = "raw_fingerprints"  # materialisation metadata: day → fingerprint of the objects read


def raw_prefix(day: str) -> str:
    return f"raw/usage/dt={day}/"


def quarantine_prefix(day: str) -> str:
    return f"quarantine/usage/dt={day}/"


def load_raw_objects(lake: BillingLake, day: str) -> list[RawObject]:
    """The day's raw objects, each read from S3 only when ingest reaches it."""
    return [RawObject(item.key, None, item.last_modified, etag=item.etag, open=lambda key=item.key: lake.open_stream(key),
                      size=item.size)
            for item in sorted(lake.list_objects(raw_prefix(day)), key=lambda item: item.key)]


def day_fingerprint(objects) -> str:
    """Keys and ETags of a day's objects: a new, replaced or deleted object changes it."""
    digest = hashlib.sha256()
    for item in sorted(objects, key=lambda item: item.key):
        digest.update(f"{item.key}\0{item.etag}\n".encode())
    return digest.hexdigest()[:20]


class IngestLimits(dg.ConfigurableResource):
    """How much of a day the ingest holds at once (memory does not grow with the day's size)
    and where it spills the rest."""

    chunk_mib: int = Field(default=32, description="Decoded text of one object read and checked at once, per worker.")
    bucket_keys: int = Field(default=1_000_000, description="Dedupe keys held at once, per worker.")
    spill_dir: str | None = Field(
        default=None, description="Local directory for the day's spill and the files being published; defaults "
                                  "to $BILLING_SPILL_DIR, else the system's temporary directory.")

    def limits(self) -> Limits:
        return Limits(chunk_bytes=self.chunk_mib << 20, bucket_rows=self.bucket_keys,
                      spill_dir=self.spill_dir or os.environ.get("BILLING_SPILL_DIR") or None)


USAGE_SCHEMAS = {"usage_events": USAGE_EVENTS_SCHEMA, "quarantined_events": QUARANTINED_EVENTS_SCHEMA,
                 "duplicate_events": DUPLICATE_EVENTS_SCHEMA}


def ingest_day(lake: BillingLake, day: str, reference: ReferenceData, objects: list[RawObject] | None = None,
               limits: Limits = Limits(), engine: Callable[[Sinks], IngestResult] | None = None,
               ) -> tuple[IngestResult, dict[str, pa.Table]]:
    """Ingest one day and publish its three tables and its quarantine, streamed through local
    files (a day is never held in memory); returns the counts and each table's first rows.
    ``engine`` fills the sinks in the tables' order (default: this process, ``ingest_into``)."""
    objects = load_raw_objects(lake, day) if objects is None else objects
    engine = engine or (lambda sinks: ingest_into(date.fromisoformat(day), objects, reference, sinks, limits))
    with tempfile.TemporaryDirectory(prefix="billing-publish-", dir=limits.spill_dir) as directory:
        tables = {name: ParquetFileSink(os.path.join(directory, f"{name}.parquet"), schema)
                  for name, schema in USAGE_SCHEMAS.items()}
        records = RecordsFileSink(os.path.join(directory, "lines.jsonl.gz"))
        result = engine(Sinks(tables["usage_events"], tables["quarantined_events"], tables["duplicate_events"], records))
        for sink in (*tables.values(), records):
            sink.close()
        for name, sink in tables.items():
            lake.publish_file(name, day, sink.path)
        _write_quarantine(lake, day, result, records.path)
    return result, {name: sink.head for name, sink in tables.items()}


def _write_quarantine(lake: BillingLake, day: str, result: IngestResult, records_path: str) -> None:
    """Rejected lines with their raw text, and copies of unreadable objects, under quarantine/.
    Raw text may hold personal data (IPs): this prefix keeps raw data's access rules."""
    prefix = quarantine_prefix(day)
    lake.put_file(f"{prefix}lines.jsonl.gz", records_path, "application/gzip")
    wanted = {f"{prefix}files/{key.removeprefix(raw_prefix(day))}": key for key in result.unreadable_objects}
    stale = [item.key for item in lake.list_objects(f"{prefix}files/") if item.key not in wanted]
    if stale:
        lake.delete(stale)
    for target, source in wanted.items():
        lake.copy(source, target)


def _day_metadata(result: IngestResult) -> dict:
    counts = _day_counts(result)
    by_reason = counts.pop("by_reason")
    return counts | {
        **{f"quarantined/{reason}": count for reason, count in by_reason.items()},
        "objects_read": result.objects_read,
        "bytes_read": result.bytes_read,
        "empty_objects": dg.MetadataValue.json(result.empty_objects),
        "unreadable_objects": dg.MetadataValue.json(result.unreadable_objects),
        "ignored_top_level_fields": result.ignored_fields,
        "largest_batch_lines": result.largest_batch_lines,
        "largest_batch_keys": result.largest_batch_keys,
        "stage_seconds": dg.MetadataValue.json({name: round(value, 2) for name, value in result.stage_seconds.items()}),
    }


def _day_counts(result: IngestResult) -> dict:
    return {"lines_read": result.lines_read, "accepted": result.accepted,
            "duplicates": result.duplicate_count, "quarantined": result.quarantined_line_count,
            "by_reason": dict(result.reason_counts)}


def _summary_table(per_day: dict[str, IngestResult]) -> dg.MetadataValue:
    header = "| day | lines read | accepted | duplicates | quarantined |\n|---|---:|---:|---:|---:|\n"
    body = "".join(
        f"| {day} | {r.lines_read} | {r.accepted} | {r.duplicate_count} | {r.quarantined_line_count} |\n"
        for day, r in per_day.items()
    )
    return dg.MetadataValue.md(header + body)


def _table_spec(name: str, model, description: str) -> dg.AssetSpec:
    return dg.AssetSpec(name, description=description, deps=REFERENCE_ASSET_KEYS, group_name="usage",
                        owners=["team:billing"], kinds={"s3", "parquet"}, metadata=table_metadata(name, model))


@dg.multi_asset(
    name="usage_ingest",
    specs=[
        _table_spec("usage_events", UsageEvent,
                    "Accepted usage events: every event that passed the contract's checks, once per "
                    "(source, event_id) — the first copy by object key and line number. IP addresses are "
                    "kept only as a /24 (IPv4) or /48 (IPv6) prefix."),
        _table_spec("quarantined_events", QuarantinedEvent,
                    "Every raw line that was not accepted or a plain duplicate, with the first reason that "
                    "applies in the contract's order, and every unreadable object."),
        _table_spec("duplicate_events", DuplicateEvent,
                    "Repeated events whose normalised payload equals the accepted copy: counted, never "
                    "billed, and traceable to the copy that was."),
    ],
    partitions_def=daily_usage_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def usage_ingest(context: dg.AssetExecutionContext, lake: BillingLake, ingest_limits: IngestLimits,
                 engine: BillingEngine):
    """Ingest each day of the run: read every raw object, apply the contract, publish the three
    tables and the quarantine. Re-running a day replaces its partitions with identical content."""
    if engine.is_spark:
        yield from engine.run_spark(context, "ingest", {"limits": dataclasses.asdict(ingest_limits.limits())})
        return
    reference = read_reference(lake)
    per_day, fingerprints, heads = ingest_days(lake, context.partition_keys, reference, ingest_limits.limits(),
                                               context.log)
    for table_name, metadata in ingest_metadata(lake, context.partition_keys, per_day, fingerprints, heads,
                                                reference.fingerprint, {"engine": "local"}).items():
        yield dg.MaterializeResult(asset_key=table_name, metadata=metadata)


DayEngine = Callable[[str, list[RawObject], Sinks], IngestResult]  # one day's objects → the sinks filled


def ingest_days(lake: BillingLake, days: list[str], reference: ReferenceData, limits: Limits, log,
                engine: DayEngine | None = None) -> tuple[dict[str, IngestResult], dict[str, str], dict[str, pa.Table]]:
    """Each day ingested and published in turn: its counts, the fingerprint of the objects it
    read, and the last day's first rows of each table."""
    per_day: dict[str, IngestResult] = {}
    fingerprints: dict[str, str] = {}
    heads: dict[str, pa.Table] = {}
    for day in days:
        objects = load_raw_objects(lake, day)
        fingerprints[day] = day_fingerprint(objects)
        started = time.perf_counter()
        result, heads = ingest_day(lake, day, reference, objects, limits,
                                   engine and (lambda sinks, day=day, objects=objects: engine(day, objects, sinks)))
        result.stage_seconds["published"] = time.perf_counter() - started - sum(result.stage_seconds.values())
        give_back_memory()
        log.info(
            f"{day}: {result.lines_read} lines → {result.accepted} accepted, "
            f"{result.duplicate_count} duplicates, {result.quarantined_line_count} quarantined"
            + (f"; unreadable objects: {result.unreadable_objects}" if result.unreadable_objects else "")
        )
        per_day[day] = result
    return per_day, fingerprints, heads


def ingest_metadata(lake: BillingLake, days: list[str], per_day: dict[str, IngestResult], fingerprints: dict[str, str],
                    heads: dict[str, pa.Table], reference_fingerprint: str, engine_facts: dict) -> dict[str, dict]:
    """What each of the three tables' materialisation says, whichever engine ran the days."""
    single = len(per_day) == 1
    only = next(iter(per_day.values()))
    shared = {"reference_fingerprint": reference_fingerprint, "per_day_counts": dg.MetadataValue.json(
        {day: _day_counts(result) for day, result in per_day.items()}),
        # what each day's run read, so the raw-usage sensor need not ingest the same objects again
        RAW_FINGERPRINTS: dg.MetadataValue.json(fingerprints), **engine_facts}
    if single:
        shared |= _day_metadata(only)
    else:
        shared |= {"days": len(per_day), "per_day": _summary_table(per_day),
                   "lines_read": sum(r.lines_read for r in per_day.values())}
    rows_of = {"usage_events": lambda r: r.accepted, "duplicate_events": lambda r: r.duplicate_count,
               "quarantined_events": lambda r: r.quarantined_line_count + len(r.unreadable_objects)}
    result = {}
    for table_name in USAGE_TABLES:
        metadata = dict(shared) | {"dagster/row_count": sum(rows_of[table_name](r) for r in per_day.values())}
        if single:
            metadata |= {"dagster/uri": lake.uri(lake.partition_key(table_name, days[0])),
                         "preview": markdown_preview(heads[table_name])}
        result[table_name] = metadata
    return result

"""Blocking checks on the daily usage tables: the pandera contracts, and conservation."""


import os
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import duckdb

from billing_assets.lib.checks import (
    DUCKDB_CONFIG, PartitionEvaluation, pandera_asset_check, pandera_evaluation, parquet_relation, side_by_side_checks,
)
from billing_assets.lib.lake import BillingLake
from billing_assets.partitions import daily_usage_partitions
from billing_assets.usage.assets import load_raw_objects
from billing_assets.usage.ingest import Limits
from billing_assets.usage.ingest.lines import object_chunks
from billing_assets.usage.schemas import DuplicateEvent, QuarantinedEvent, UsageEvent

quarantined_events_matches_contract = pandera_asset_check(
    asset="quarantined_events", table="quarantined_events", model=QuarantinedEvent, partitions_def=daily_usage_partitions)
duplicate_events_matches_contract = pandera_asset_check(
    asset="duplicate_events", table="duplicate_events", model=DuplicateEvent, partitions_def=daily_usage_partitions)


def conservation(lake: BillingLake, day: str) -> tuple[bool, dict]:
    """Recount the day's raw lines from S3 and tie them to the three published tables:
    lines_read = accepted + duplicates + quarantined, and every unreadable object is on record."""
    def count(raw) -> tuple[str, int | None]:  # None: the object is unreadable
        lines = 0
        for chunk in object_chunks(raw.key, raw.stream(), Limits().chunk_bytes):  # streamed: never held whole
            if chunk.unreadable:
                return raw.key, None
            lines += len(chunk.line_numbers)
        return raw.key, lines

    # objects are recounted side by side (decompression and the newline scan release the GIL)
    with ThreadPoolExecutor(max_workers=(os.cpu_count() or 1) + 1) as pool:
        counted = list(pool.map(count, load_raw_objects(lake, day)))
    unreadable = {key for key, lines in counted if lines is None}
    lines_read = sum(lines for _, lines in counted if lines is not None)
    accepted = lake.row_count("usage_events", day)
    duplicates = lake.row_count("duplicate_events", day)
    with lake.local_partition("quarantined_events", day) as path, duckdb.connect(config=DUCKDB_CONFIG) as connection:
        relation = parquet_relation(path)  # a day of millions of rejected lines is never held
        quarantined = connection.sql(f"SELECT count(line_number) FROM {relation}").fetchall()[0][0]
        files_on_record = {key for (key,) in connection.sql(
            f"SELECT DISTINCT object_key FROM {relation} WHERE line_number IS NULL").fetchall()}
    balance = lines_read - (accepted + duplicates + quarantined)
    passed = balance == 0 and files_on_record == unreadable
    return passed, {
        "lines_read": lines_read, "accepted": accepted, "duplicates": duplicates, "quarantined": quarantined,
        "unaccounted_lines": balance,
        "unreadable_objects_missing_from_quarantine": dg.MetadataValue.json(sorted(unreadable - files_on_record)),
    }


usage_lines_conserved = PartitionEvaluation(
    name="usage_lines_conserved",
    description="Nothing lost, nothing counted twice: every non-blank raw line of the day is accepted, "
                "a duplicate, or quarantined, and every unreadable object is quarantined as a file.",
    evaluate=conservation,
)

# the day's two heavy checks, side by side: pandera holds the GIL, the recount mostly decompresses
usage_events_checks = side_by_side_checks(
    name="usage_events_checks", asset="usage_events", partitions_def=daily_usage_partitions,
    evaluations=[pandera_evaluation("usage_events", UsageEvent), usage_lines_conserved],
)

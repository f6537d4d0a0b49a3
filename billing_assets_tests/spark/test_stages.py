"""The Spark engine's stages against the local engine on the same objects in S3: every table
equal row for row, and the same counts (CONTRACT.md §10: one implementation, identical tables)."""

import gzip

from billing_assets.reference.loading import load_reference
from billing_assets.resources import billing_lake
from billing_assets.spark.job import spark_day
from billing_assets.usage.assets import load_raw_objects
from billing_assets.usage.ingest import Limits, Sinks, ingest_into
from billing_assets.usage.reasons import REASON_CODES
from billing_assets_tests.conftest import reference_files
from billing_assets_tests.usage.helpers import DAY, event

DT = f"raw/usage/dt={DAY.isoformat()}/"
BIG = "999999999999999.999999999"  # 24 digits, the contract's largest quantity
EVERY_REASON = [
    "x" * (1 << 20) + "y",  # line_too_long
    "{not json",
    "[1, 2]",
    event(event_id="m1", meter=...),
    event(event_id="bad id!"),
    event(event_id="t1", timestamp="yesterday"),
    event(event_id="f1", timestamp="2099-01-07T10:00:00Z"),  # after the object landed
    event(event_id="p1", timestamp="2026-01-04T10:00:00Z"),
    event(event_id="u1", meter="teleport"),
    event(event_id="q1", quantity="-1"),
    event(event_id="c1", customer_id="nobody"),
    event(event_id="i1", customer_id=..., ip="192.0.2.1"),
    event(event_id="h1", customer_id="hooli"),
]


def _lines(*lines: str) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


def _day() -> dict[str, bytes]:
    """Repeats spread over objects that land in different tasks: plain duplicates and conflicts,
    first copies in later keys' objects never counting as first; many ids so buckets differ."""
    many = [event(event_id=f"n{i}", quantity=f"{i % 7}.{i % 10}") for i in range(120)]
    return {
        f"{DT}a.jsonl": _lines(*EVERY_REASON, event(event_id="e1"), event(event_id="e2"), *many[:60],
                               event(event_id="big", quantity=BIG),
                               event(event_id="v6", customer_id=..., ip="2001:db8:42::7")),
        f"{DT}b.jsonl.gz": gzip.compress(_lines(event(event_id="e1"), "", event(event_id="e2", quantity="9"),
                                                *many[40:120]), mtime=0),
        f"{DT}c.jsonl": _lines(event(event_id="e2", quantity="8"), event(event_id="e1", source="other"),
                               *many[100:]),
        f"{DT}d.jsonl.gz": gzip.compress(_lines(event(event_id="z1")), mtime=0)[:-6],  # corrupt: unreadable
        # cut short mid-stream, after some lines could be read: unreadable as a whole
        f"{DT}d2.jsonl.gz": gzip.compress(_lines(*(event(event_id=f"z{i}") for i in range(50))), mtime=0)[:120],
        f"{DT}e.jsonl": b"\n  \n",
    }


def test_spark_publishes_the_local_engines_tables(spark, put, bucket):
    put(reference_files() | _day())
    lake = billing_lake()
    reference = load_reference(reference_files().get)
    objects = load_raw_objects(lake, DAY.isoformat())
    local, on_spark = Sinks.in_memory(), Sinks.in_memory()
    expected = ingest_into(DAY, objects, reference, local, Limits(chunk_bytes=2000, workers=2))
    got = spark_day(spark, lake, "test", reference, Limits(chunk_bytes=2000), partitions=3)(
        DAY.isoformat(), objects, on_spark)
    for name in ("events", "quarantined", "duplicates", "records"):
        mine, theirs = getattr(on_spark, name).table(), getattr(local, name).table()
        assert mine.to_pylist() == theirs.to_pylist(), name
    assert (got.lines_read, got.accepted, got.duplicate_count, got.reason_counts, got.unreadable_objects,
            got.empty_objects, got.bytes_read, got.ignored_fields) == \
        (expected.lines_read, expected.accepted, expected.duplicate_count, expected.reason_counts,
         expected.unreadable_objects, expected.empty_objects, expected.bytes_read, expected.ignored_fields)
    # what the day holds, counted by hand: every reason once (conflicts: e2 twice), e1 and many's
    # 40 + 20 overlaps duplicates, 125 first copies (e1, e2, n0-n119, big, v6, e1 under source "other")
    assert {reason for reason, count in got.reason_counts.items() if count} == set(REASON_CODES)
    assert got.reason_counts["duplicate_conflict"] == 2 and got.reason_counts["unreadable_file"] == 2
    assert got.duplicate_count == 1 + 20 + 20
    assert got.accepted == 125
    events = {row["event_id"]: row for row in on_spark.events.table().to_pylist()}
    assert str(events["big"]["quantity"]) == BIG
    assert (events["v6"]["customer_id"], events["v6"]["attributed_by"]) == ("initech", "ip")
    assert not list(lake.list_objects("staging/"))  # what the tasks staged is gone

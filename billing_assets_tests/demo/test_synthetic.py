"""The demo month exercises what it promises: every quarantine reason, duplicates of both
kinds, several currencies and every meter kind."""

from datetime import datetime, timezone

from billing_assets.demo.synthetic import (
    DEMO_BAD_DAY,
    demo_late_objects,
    demo_month_objects,
    reference_objects,
)
from billing_assets.reference.loading import load_reference
from billing_assets.usage.ingest import RawObject, ingest_partition
from billing_assets.usage.reasons import REASON_CODES

LANDED = datetime(2026, 11, 1, tzinfo=timezone.utc)


def day_result(objects, day):
    prefix = f"raw/usage/dt={day.isoformat()}/"
    raws = [RawObject(key, body, LANDED) for key, body in objects.items() if key.startswith(prefix)]
    return ingest_partition(day, raws, load_reference(reference_objects().get))


def test_the_bad_day_has_every_reason_code():
    result = day_result(demo_month_objects(), DEMO_BAD_DAY)
    assert all(count >= 1 for count in result.reason_counts.values()), result.reason_counts
    assert set(result.reason_counts) == set(REASON_CODES)
    assert result.empty_objects == [f"raw/usage/dt={DEMO_BAD_DAY.isoformat()}/empty-0005.jsonl"]


def test_the_month_has_redelivery_conflicts_currencies_and_every_meter_kind():
    objects = demo_month_objects()
    reference = load_reference(reference_objects().get)
    assert set(reference.customers["currency"]) == {"USD", "EUR", "JPY", "KWD"}
    assert set(reference.meters["aggregation"]) == {"sum", "count", "max", "unique_count", "latest"}
    redelivered = day_result(objects, DEMO_BAD_DAY.replace(day=3))
    assert redelivered.duplicates.num_rows > 1000 and redelivered.quarantined.num_rows > 0
    retried = day_result(objects, DEMO_BAD_DAY.replace(day=5))
    assert retried.reason_counts["duplicate_conflict"] == 2 and retried.duplicates.num_rows == 3


def test_the_late_file_adds_events_to_its_day():
    late = demo_late_objects()
    day = DEMO_BAD_DAY.replace(day=12)
    before = day_result(demo_month_objects(), day).events.num_rows
    after = day_result(demo_month_objects() | late, day).events.num_rows
    assert after - before == 300

"""The raw usage sensor, tick by tick with explicit cursors, against the S3 server.

The clock is the resource's ``as_of``: an hour after the objects land, so nothing is still
settling unless a test says so. Days are named relative to that clock's date.
"""

import json
from datetime import datetime, timedelta, timezone

import dagster as dg

from billing_assets.lib.lake import BillingLake
from billing_assets.resources import billing_lake
from billing_assets.usage.sensors import LandingCursor, LandingWatch, raw_usage_sensor
from billing_assets_tests.conftest import reference_files
from billing_assets_tests.usage.conftest import QUIET

NOW = datetime.now(timezone.utc) + timedelta(hours=1)
TODAY = NOW.date()


def day(offset: int) -> str:
    return (TODAY - timedelta(days=offset)).isoformat()


def tick(cursor: str | None = None, *, as_of: datetime = NOW, settle_seconds: int = 0, instance=None, **watch):
    with dg.build_sensor_context(cursor=cursor, instance=instance or dg.DagsterInstance.ephemeral(), resources={
            "lake": billing_lake(),
            "landing_watch": LandingWatch(as_of=as_of.isoformat(), settle_seconds=settle_seconds, **watch)}) as context:
        return raw_usage_sensor(context)


def requests(result) -> list[dg.RunRequest]:
    return list(result.run_requests or [])


def line(event_id: str) -> bytes:
    return json.dumps({"event_id": event_id, "customer_id": "acme", "meter": "egress_gb", "quantity": "1",
                       "timestamp": "2026-01-01T00:00:00Z"}).encode() + b"\n"


def test_a_new_file_requests_one_run_of_its_day(put, bucket):
    put({f"raw/usage/dt={day(1)}/a.jsonl": line("e1")})
    result = tick()
    [request] = requests(result)
    assert request.partition_key == day(1)
    assert request.run_key.startswith(f"raw-usage:{day(1)}:")
    assert day(1) in LandingCursor.parse(result.cursor).fingerprints


def test_the_same_objects_listed_again_request_nothing(put, bucket):
    put({f"raw/usage/dt={day(1)}/a.jsonl": line("e1")})
    first = tick()
    again = tick(first.cursor)
    assert requests(again) == []
    assert "no new or changed" in again.skip_reason.skip_message


def test_a_burst_of_fifty_files_for_one_day_is_one_run(put, bucket):
    put({f"raw/usage/dt={day(2)}/part-{n:03}.jsonl": line(f"e{n}") for n in range(50)})
    assert [r.partition_key for r in requests(tick())] == [day(2)]


def test_files_for_three_days_are_three_runs(put, bucket):
    put({f"raw/usage/dt={day(n)}/a.jsonl": line("e") for n in (1, 2, 3)})
    assert sorted(r.partition_key for r in requests(tick())) == sorted([day(1), day(2), day(3)])


def test_a_late_file_for_a_day_already_seen_requests_it_again_with_a_new_run_key(put, bucket):
    put({f"raw/usage/dt={day(1)}/a.jsonl": line("e1")})
    first = tick()
    put({f"raw/usage/dt={day(1)}/late.jsonl": line("e2")})
    second = tick(first.cursor)
    [request] = requests(second)
    assert request.partition_key == day(1)
    assert request.run_key != requests(first)[0].run_key


def test_run_keys_are_stable_and_follow_content(put, bucket):
    put({f"raw/usage/dt={day(1)}/a.jsonl": line("e1")})
    assert requests(tick())[0].run_key == requests(tick())[0].run_key  # two sensors, no cursor: same key
    before = requests(tick())[0].run_key
    put({f"raw/usage/dt={day(1)}/a.jsonl": line("e1-rewritten")})  # same key, new bytes → new ETag
    assert requests(tick())[0].run_key != before


def test_malformed_and_out_of_range_keys_are_reported_and_good_days_still_run(put, bucket):
    put({
        f"raw/usage/dt={day(1)}/good.jsonl": line("e1"),
        "raw/usage/dt=2026-13-45/bad-date.jsonl": line("x"),
        "raw/usage/dt=yesterday/word.jsonl": line("x"),
        "raw/usage/loose.jsonl": line("x"),
        "raw/usage/dt=2024-12-31/before-start.jsonl": line("x"),
        f"raw/usage/dt={(TODAY + timedelta(days=3)).isoformat()}/future.jsonl": line("x"),
    })
    result = tick()
    assert [r.partition_key for r in requests(result)] == [day(1)]
    reported = LandingCursor.parse(result.cursor).reported
    assert reported
    # the same problems are not reported again, and nothing more is requested
    again = tick(result.cursor)
    assert LandingCursor.parse(again.cursor).reported == reported
    assert "5 malformed key(s)" in again.skip_reason.skip_message


def test_todays_folder_waits_for_its_partition(put, bucket):
    put({f"raw/usage/dt={TODAY.isoformat()}/a.jsonl": line("e1")})
    assert requests(tick()) == []


def test_a_day_still_landing_waits_until_it_settles(put, bucket):
    # judged on the real clock (the object's LastModified), so the day must be closed on it:
    # day(1) is the real today between 23:00 and midnight UTC, whose partition is not open yet
    settling = day(2)
    put({f"raw/usage/dt={settling}/a.jsonl": line("e1")})
    landed = datetime.now(timezone.utc)
    waiting = tick(as_of=landed, settle_seconds=30)
    assert requests(waiting) == []
    assert settling not in LandingCursor.parse(waiting.cursor).fingerprints
    later = tick(waiting.cursor, as_of=landed + timedelta(seconds=31), settle_seconds=30)
    assert [r.partition_key for r in requests(later)] == [settling]


def test_pagination_past_a_thousand_objects(s3, bucket):
    keys = [f"raw/usage/dt={day(1)}/part-{n:05}.jsonl" for n in range(1050)]
    for key in keys[:-1]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"")
    first = tick()
    assert len(requests(first)) == 1
    assert requests(first)[0].tags["billing/objects"] == "1049"
    s3.put_object(Bucket=bucket, Key=keys[-1], Body=line("last"))  # sorts after the first page
    second = tick(first.cursor)
    assert [r.tags["billing/objects"] for r in requests(second)] == ["1050"]


def test_older_watched_days_are_listed_a_slice_per_tick(put, bucket):
    old_days = [day(n) for n in range(5, 15)]  # ten days older than the three recent ones
    put({f"raw/usage/dt={d}/a.jsonl": line("e") for d in old_days})
    cursor = tick().cursor  # first sight of every folder: all listed once
    put({f"raw/usage/dt={day(9)}/late.jsonl": line("late")})
    found = []
    for _ in range(3):  # 10 older days, 4 per tick: every one is listed within 3 ticks
        result = tick(cursor, older_days_per_tick=4)
        found += [r.partition_key for r in requests(result)]
        cursor = result.cursor
    assert found == [day(9)]


def test_days_beyond_the_lookback_are_not_relisted(put, bucket, monkeypatch):
    put({f"raw/usage/dt={day(60)}/a.jsonl": line("e")})
    cursor = tick().cursor  # a never-seen folder is listed whatever its age
    put({f"raw/usage/dt={day(60)}/late.jsonl": line("late")})
    listed = []
    original = BillingLake.list_objects
    monkeypatch.setattr(BillingLake, "list_objects", lambda self, prefix: listed.append(prefix) or original(self, prefix))
    assert requests(tick(cursor)) == []
    assert listed == []


def test_a_day_already_ingested_from_the_same_objects_requests_no_run(put, bucket):
    # `billing run` (or a backfill) ingested the day before the sensor ever saw it: the UI
    # starting afterwards must not ingest it again; a changed object still requests a run.
    # day(2): the run needs a partition open on the real clock (day(1) is not, 23:00-24:00 UTC)
    from billing_assets.definitions import defs

    put(reference_files() | {f"raw/usage/dt={day(2)}/a.jsonl": line("e1"), f"raw/usage/dt={day(2)}/b.jsonl": line("e2")})
    with dg.instance_for_test() as instance:
        ingest = defs.resolve_job_def("daily_usage_job").execute_in_process(
            partition_key=day(2), instance=instance, run_config=QUIET)
        assert ingest.success
        first = tick(instance=instance)
        assert requests(first) == []
        assert day(2) in LandingCursor.parse(first.cursor).fingerprints
        put({f"raw/usage/dt={day(2)}/b.jsonl": line("e2") + line("e3")})  # replaced: a new ETag
        second = tick(first.cursor, instance=instance)
        assert [r.partition_key for r in requests(second)] == [day(2)]


def test_a_day_ingested_before_a_late_file_landed_is_ingested_again(put, bucket):
    from billing_assets.definitions import defs

    put(reference_files() | {f"raw/usage/dt={day(2)}/a.jsonl": line("e1")})
    with dg.instance_for_test() as instance:
        assert defs.resolve_job_def("daily_usage_job").execute_in_process(
            partition_key=day(2), instance=instance, run_config=QUIET).success
        put({f"raw/usage/dt={day(2)}/late.jsonl": line("e2")})
        assert [r.partition_key for r in requests(tick(instance=instance))] == [day(2)]
